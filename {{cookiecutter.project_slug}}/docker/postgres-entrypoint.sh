#!/bin/sh
# The compose stack's PostgreSQL: on first start, a cluster with POSTGRES_USER (password
# POSTGRES_PASSWORD, checked on TCP) and POSTGRES_DB; then the server, in the foreground.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password_file="$(mktemp)"
    printf '%s' "$POSTGRES_PASSWORD" >"$password_file"
    # UTF-8 as the official image: with no locale installed, initdb would pick SQL_ASCII, whose
    # text psycopg returns as bytes (MLflow then fails to connect).
    initdb --username="$POSTGRES_USER" --pwfile="$password_file" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --no-locale --pgdata="$PGDATA" >/dev/null
    rm -f "$password_file"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses=''" --wait start >/dev/null
    createdb --username="$POSTGRES_USER" "$POSTGRES_DB"
    pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
