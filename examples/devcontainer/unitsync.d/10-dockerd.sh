#!/bin/sh
# Docker in Docker: the daemon is a service, ready once its socket accepts
# a connection, not once its process exists (the race of
# devcontainers/features#634).
# unitsync: unit=dockerd ready=unix:/var/run/docker.sock ready-timeout=60s
# unitsync: stop-timeout=10s
# A socket left by the container's last run would answer nobody.
rm -f /var/run/docker.sock /var/run/docker.pid
exec dockerd --host=unix:///var/run/docker.sock
