#!/bin/sh
# Container entrypoint for a busybox image with unitsync in /bin.
#
# 'unitsync up' starts the server and runs every executable in /startup at
# the same time; each is a unit and declares its own order (a
# '# unitsync: after=...' header, or 'unitsync run' inside). web.sh is a
# service: it keeps running, and its dependents start once its port is
# open. Once every unit is completed or ready, up prints a summary and runs
# the container's main command, still serving. When the main command ends
# (or on 'docker stop'), up stops it and then the services in reverse
# dependency order, and leaves no process behind. As PID 1 it reaps orphans.
exec unitsync up --dir /startup --script-timeout "${STARTUP_TIMEOUT:-10m}" -- "$@"
