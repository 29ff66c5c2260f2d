#!/bin/sh
# unitsync: after=build
# Needs the build; its files must exist before the main command runs.
echo "config for $(cat /run/app.bin)" > /run/app.conf
echo serve-config >> /run/order
