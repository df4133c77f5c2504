#!/bin/sh
# Compose only: the postgres image runs this once, on an empty data directory, as the
# `postgres` superuser. It does what the native driver does at `up`: the application
# role (with pg_monitor, so the exporter sees every session), its database, the schema.
set -eu
psql -v ON_ERROR_STOP=1 --username postgres --dbname postgres <<'SQL'
CREATE ROLE drillbook LOGIN;
GRANT pg_monitor TO drillbook;
CREATE DATABASE drillbook OWNER drillbook;
SQL
psql -v ON_ERROR_STOP=1 --username drillbook --dbname drillbook --file /drillbook/schema.sql
