#!/bin/sh
# unitsync: after=serve-config ready=tcp:127.0.0.1:8080 stop-timeout=2s
# A service: busybox's web server, serving the config. up starts its
# dependents (probe.sh) as soon as the port accepts connections, runs the
# main command while it keeps serving, and stops it (SIGTERM) when the main
# command ends.
mkdir -p /run/www
cp /run/app.conf /run/www/index.html
echo web >> /run/order
httpd -f -p 127.0.0.1:8080 -h /run/www &
trap 'kill $! 2>/dev/null; echo web stopped >> /run/order; exit 0' TERM
wait
