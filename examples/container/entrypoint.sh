#!/bin/sh
# Container entrypoint for a busybox image with unitsync in /bin.
#
# 'unitsync up' starts the server, runs every executable in /startup at the
# same time (each declares its own order, with a '# unitsync: after=...'
# header or with 'unitsync run'), prints a summary, and then runs the
# container's main command only if every startup script succeeded. The
# server keeps serving meanwhile, so the main command may use unitsync too.
# As PID 1 it forwards SIGTERM/SIGINT and reaps orphaned processes.
exec unitsync up --dir /startup --script-timeout "${STARTUP_TIMEOUT:-10m}" -- "$@"
