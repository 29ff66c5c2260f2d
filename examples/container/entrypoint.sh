#!/bin/sh
# Container entrypoint for a busybox image with unitsync in /bin.
#
# Starts the unitsync server, runs every executable in /startup at the same
# time (each declares its own order with 'unitsync run ... --after ...'),
# waits for all of them, and then runs the container's main command, only
# if every startup script succeeded. The server keeps serving meanwhile,
# so the main command may use unitsync too.
set -u

unitsync serve --detach --pidfile /run/unitsync.pid --log /run/unitsync.log >/dev/null || exit 1
trap 'kill "$(cat /run/unitsync.pid)" 2>/dev/null' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

pids=""
for script in /startup/*; do
	[ -x "$script" ] || continue
	"$script" &
	pids="$pids $!"
done

failed=0
for pid in $pids; do
	wait "$pid" || failed=1
done

unitsync list >&2
if [ "$failed" -ne 0 ]; then
	echo "entrypoint: a startup script failed; not starting the main command" >&2
	exit 1
fi
"$@"
