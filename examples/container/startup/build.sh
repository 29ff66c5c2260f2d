#!/bin/sh
# unitsync: after=fetch
# Needs the fetched source.
cat /run/app.src > /run/app.bin
echo build >> /run/order
