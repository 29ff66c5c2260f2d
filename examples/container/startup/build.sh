#!/bin/sh
# Needs the fetched source.
exec unitsync run build --after fetch -- sh -c '
	cat /run/app.src > /run/app.bin
	echo build >> /run/order'
