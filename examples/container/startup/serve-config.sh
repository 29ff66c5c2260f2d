#!/bin/sh
# Needs the build; its files must exist before the main command runs.
exec unitsync run serve-config --after build -- sh -c '
	echo "config for $(cat /run/app.bin)" > /run/app.conf
	echo serve-config >> /run/order'
