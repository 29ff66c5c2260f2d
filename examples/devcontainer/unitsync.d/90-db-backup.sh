#!/bin/sh
# A stop script: at shutdown, while the database still runs (db is stopped
# only once this ended), a dump of it into the workspace.
# unitsync: unit=db-backup on=stop after=db stop-timeout=40s env-file=db.env
set -e
mkdir -p "$DUMP_DIR"
docker exec devdb pg_dump -U "$POSTGRES_USER" "$POSTGRES_DB" >"$DUMP_DIR/dump.sql.new"
mv "$DUMP_DIR/dump.sql.new" "$DUMP_DIR/dump.sql"
echo "saved $DUMP_DIR/dump.sql"
