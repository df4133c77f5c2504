#!/bin/bash
# Build time only (sandbox/Dockerfile, stage `postgres`, as the postgres OS user): make the
# cluster in $PGDATA and do what the native driver does at `up`: the application role (with
# pg_monitor, so that the exporter sees every session), its database, the schema ($1), and
# the responder's reserved role ($2, sandbox/sql/reserved-role.sql: the sandbox's
# postgres_reserved in policy/environments.yml).
set -euo pipefail
schema="$1"
reserved_role="$2"
initdb --pgdata "$PGDATA" --username postgres --auth trust --encoding UTF8 --locale C --no-sync >/dev/null
# Peers reach it from the project network (and the host through a loopback-only published
# port): a throwaway sandbox, so any address may connect without a password, as in native.
cat >> "$PGDATA/pg_hba.conf" <<'HBA'
host all all 0.0.0.0/0 trust
host all all ::/0 trust
HBA
# Unix sockets in /tmp: Debian's /run/postgresql does not exist in a container.
echo "unix_socket_directories = '/tmp'" >> "$PGDATA/postgresql.conf"
# A server on the socket only, for the set-up; `-w` waits until it accepts connections.
pg_ctl --pgdata "$PGDATA" --options "-c listen_addresses=''" --wait --silent start
psql --host /tmp --username postgres --dbname postgres -v ON_ERROR_STOP=1 --quiet <<'SQL'
CREATE ROLE drillbook LOGIN;
GRANT pg_monitor TO drillbook;
CREATE DATABASE drillbook OWNER drillbook;
SQL
psql --host /tmp --username postgres --dbname postgres -v ON_ERROR_STOP=1 --quiet --file "$reserved_role"
psql --host /tmp --username drillbook --dbname drillbook -v ON_ERROR_STOP=1 --quiet --file "$schema"
pg_ctl --pgdata "$PGDATA" --mode fast --wait --silent stop
