#!/bin/sh
# The project's database, a container of the inner Docker: after dockerd,
# ready once it answers (not when docker's port proxy listens), stopped with
# SIGINT (PostgreSQL's fast shutdown; docker run passes it on).
# unitsync: unit=db after=dockerd ready="exec:docker exec devdb pg_isready -q"
# unitsync: ready-timeout=5m stop-signal=INT stop-timeout=20s env-file=db.env
exec docker run --rm --name devdb -p 5432:5432 \
	-e POSTGRES_USER -e POSTGRES_PASSWORD -e POSTGRES_DB postgres:16
