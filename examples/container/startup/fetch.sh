#!/bin/sh
# First step: nothing to wait for. It uses the CLI itself; the others use a
# header. Set FETCH_FAIL=1 to see a failure propagate to every dependent.
exec unitsync run fetch -- sh -c '
	sleep 0.3
	[ "${FETCH_FAIL:-0}" = 1 ] && { echo "fetch: network down" >&2; exit 2; }
	echo "fetched" > /run/app.src
	echo fetch >> /run/order'
