#!/usr/bin/env bash
# The production database of the Prefect server: a local PostgreSQL cluster on 127.0.0.1, then
# `prefect server start` on it (docs/production.md says why: SQLite locks under concurrent runs).
#
#   bash deployments/postgres_server.sh [prefect server start options]   # init once, start PostgreSQL, serve Prefect
#   bash deployments/postgres_server.sh db       # init once and start PostgreSQL only; prints the connection URL
#   bash deployments/postgres_server.sh url      # prints the connection URL (for PREFECT_API_DATABASE_CONNECTION_URL)
#   bash deployments/postgres_server.sh status   # is PostgreSQL running?
#   bash deployments/postgres_server.sh stop     # stop PostgreSQL (stop the Prefect server first: Ctrl-C)
#   bash deployments/postgres_server.sh check    # prints the PostgreSQL binaries and OS user it would use
#
# Settings (environment; the defaults in brackets):
#   QCOS_PG_DATA      data directory [~/.local/share/qcos/postgres; as root ~postgres/qcos]
#   QCOS_PG_HOST      address PostgreSQL listens on [127.0.0.1]       QCOS_PG_PORT [55432]
#   QCOS_PG_DB        database [prefect]    QCOS_PG_USER role [prefect]
#   QCOS_PG_PASSWORD  the role's password [generated at init, kept in $QCOS_PG_DATA/qcos.password]
#   QCOS_PG_OS_USER   the unprivileged OS user PostgreSQL runs as when this runs as root [postgres]
#   PG_BINDIR         where initdb, pg_ctl and postgres are [pg_config --bindir, else the newest
#                     /usr/lib/postgresql/*/bin, else the directory of initdb on PATH]
#   PREFECT, PREFECT_HOST [127.0.0.1], PREFECT_PORT [4200]: the Prefect server, as in local_server.sh
#
# PostgreSQL refuses to run as root: as root, initdb and pg_ctl run as QCOS_PG_OS_USER (runuser),
# which must be able to reach the data directory. The cluster accepts TCP connections on
# QCOS_PG_HOST only (no Unix socket), with a password (scram-sha-256); its role owns it.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_HOST="${QCOS_PG_HOST:-127.0.0.1}"
PG_PORT="${QCOS_PG_PORT:-55432}"
PG_DB="${QCOS_PG_DB:-prefect}"
PG_USER="${QCOS_PG_USER:-prefect}"
PG_OS_USER="${QCOS_PG_OS_USER:-postgres}"

die() { echo "postgres_server.sh: $*" >&2; exit 1; }

has_server_binaries() { [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]; }

find_bindir() {
    local dir
    if [ -n "${PG_BINDIR:-}" ]; then
        has_server_binaries "$PG_BINDIR" || die "PG_BINDIR=$PG_BINDIR lacks initdb, pg_ctl or postgres"
        echo "$PG_BINDIR"; return
    fi
    # pg_config may come from libpq-dev without the server (or for another major version)
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        if [ -n "$dir" ] && has_server_binaries "$dir"; then echo "$dir"; return; fi
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if has_server_binaries "$dir"; then echo "$dir"; return; fi
    done
    if command -v initdb >/dev/null 2>&1; then
        dir="$(dirname "$(readlink -f "$(command -v initdb)")")"
        if has_server_binaries "$dir"; then echo "$dir"; return; fi
    fi
    die "PostgreSQL's server binaries (initdb, pg_ctl, postgres) not found: install PostgreSQL" \
        "(Debian/Ubuntu: apt-get install postgresql) or set PG_BINDIR"
}

BINDIR="$(find_bindir)"
PSQL="$BINDIR/psql"
[ -x "$PSQL" ] || PSQL="$(command -v psql || true)"
[ -n "$PSQL" ] || die "psql not found (Debian/Ubuntu: apt-get install postgresql-client)"

if [ "$(id -u)" = 0 ]; then
    getent passwd "$PG_OS_USER" >/dev/null || die "running as root, PostgreSQL needs an unprivileged OS user:" \
        "'$PG_OS_USER' does not exist (create it, or set QCOS_PG_OS_USER)"
    PG_HOME="$(getent passwd "$PG_OS_USER" | cut -d: -f6)"
    DEFAULT_DATA="$PG_HOME/qcos"
    if command -v runuser >/dev/null 2>&1; then
        as_pg() { (cd / && runuser -u "$PG_OS_USER" -- "$@"); }
    else
        as_pg() { (cd / && su -s /bin/sh "$PG_OS_USER" -c "$(printf '%q ' "$@")"); }
    fi
    RUN_AS="$PG_OS_USER"
else
    DEFAULT_DATA="${XDG_DATA_HOME:-${HOME:-/tmp}/.local/share}/qcos/postgres"
    as_pg() { (cd / && "$@"); }
    RUN_AS="$(id -un)"
fi
PGDATA="${QCOS_PG_DATA:-$DEFAULT_DATA}"
case "$PGDATA" in /*) ;; *) PGDATA="$PWD/$PGDATA" ;; esac
PASSWORD_FILE="$PGDATA/qcos.password"

initialised() { [ -f "$PGDATA/PG_VERSION" ]; }

password() {
    if [ -n "${QCOS_PG_PASSWORD:-}" ]; then echo "$QCOS_PG_PASSWORD"
    elif [ -f "$PASSWORD_FILE" ]; then cat "$PASSWORD_FILE"
    else die "no password: $PASSWORD_FILE is missing and QCOS_PG_PASSWORD is not set"
    fi
}

url() {
    local pass
    pass="$(password)"
    echo "postgresql+asyncpg://$PG_USER:$pass@$PG_HOST:$PG_PORT/$PG_DB"
}

running() { as_pg "$BINDIR/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

init_cluster() {
    initialised && return 0
    echo "initialising a PostgreSQL cluster in $PGDATA (runs as $RUN_AS)" >&2
    mkdir -p "$PGDATA"
    if [ "$(id -u)" = 0 ]; then chown "$PG_OS_USER" "$PGDATA"; fi
    chmod 700 "$PGDATA"
    as_pg test -r "$PGDATA" -a -w "$PGDATA" -a -x "$PGDATA" || die "$RUN_AS cannot use $PGDATA" \
        "(a parent directory it cannot enter?): choose another QCOS_PG_DATA"
    [ -z "$(ls -A "$PGDATA")" ] || die "$PGDATA is not empty and holds no PostgreSQL cluster"
    local pass="${QCOS_PG_PASSWORD:-}"
    if [ -z "$pass" ]; then
        pass="$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 || true)"
    fi
    [ -n "$pass" ] || die "could not generate a password"
    local pwfile
    pwfile="$(mktemp)"
    printf '%s\n' "$pass" >"$pwfile"
    if [ "$(id -u)" = 0 ]; then chown "$PG_OS_USER" "$pwfile"; fi
    # the Prefect role is the cluster's owner; password authentication over TCP, no trust anywhere
    if ! as_pg "$BINDIR/initdb" -D "$PGDATA" --username="$PG_USER" --pwfile="$pwfile" \
        --auth-host=scram-sha-256 --auth-local=scram-sha-256 --encoding=UTF8 --no-locale >"$pwfile.log" 2>&1; then
        cat "$pwfile.log" >&2
        rm -f "$pwfile" "$pwfile.log"
        die "initdb failed"
    fi
    rm -f "$pwfile" "$pwfile.log"
    {
        echo "# QCOS (deployments/postgres_server.sh): TCP on QCOS_PG_HOST only (given at each start), no Unix socket"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = ''"
    } >>"$PGDATA/postgresql.conf"
    (umask 077 && printf '%s\n' "$pass" >"$PASSWORD_FILE")
    if [ "$(id -u)" = 0 ]; then chown "$PG_OS_USER" "$PASSWORD_FILE"; fi
}

start_cluster() {
    if running; then
        echo "PostgreSQL is already running in $PGDATA" >&2
    else
        echo "starting PostgreSQL on $PG_HOST:$PG_PORT (log: $PGDATA/postgres.log)" >&2
        as_pg "$BINDIR/pg_ctl" -D "$PGDATA" -l "$PGDATA/postgres.log" -w -t 60 \
            -o "-h $PG_HOST -p $PG_PORT" start >/dev/null || {
            tail -n 20 "$PGDATA/postgres.log" >&2 || true
            die "PostgreSQL did not start"
        }
    fi
    local exists
    export PGPASSWORD
    PGPASSWORD="$(password)"
    exists="$("$PSQL" -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" || die "cannot connect to $PG_HOST:$PG_PORT as $PG_USER"
    if [ "$exists" != 1 ]; then
        echo "creating the database $PG_DB" >&2
        "$PSQL" -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres \
            -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
    fi
}

command="${1:-server}"
case "$command" in
    check)
        echo "binaries: $BINDIR"
        echo "runs as: $RUN_AS"
        echo "data: $PGDATA"
        ;;
    db)
        init_cluster
        start_cluster
        url
        ;;
    url)
        initialised || die "no cluster in $PGDATA (run: bash deployments/postgres_server.sh db)"
        url
        ;;
    status)
        if running; then echo "PostgreSQL is running in $PGDATA on $PG_HOST:$PG_PORT"
        else echo "PostgreSQL is not running in $PGDATA"; exit 3
        fi
        ;;
    stop)
        if running; then
            as_pg "$BINDIR/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
            echo "PostgreSQL stopped ($PGDATA)" >&2
        else
            echo "PostgreSQL is not running in $PGDATA" >&2
        fi
        ;;
    -h | --help | help)
        sed -n '2,24p' "$0"
        ;;
    server | -*)
        [ "$command" = server ] && [ $# -gt 0 ] && shift
        init_cluster
        start_cluster
        PREFECT="${PREFECT:-prefect}"
        PORT="${PREFECT_PORT:-4200}"
        HOST="${PREFECT_HOST:-127.0.0.1}"
        unset PGPASSWORD
        export PREFECT_API_DATABASE_CONNECTION_URL
        PREFECT_API_DATABASE_CONNECTION_URL="$(url)"
        export PREFECT_UI_API_URL="${PREFECT_UI_API_URL:-http://$HOST:$PORT/api}"
        export PREFECT_API_URL="${PREFECT_API_URL:-http://$HOST:$PORT/api}"
        echo "Prefect on postgresql+asyncpg://$PG_USER:***@$PG_HOST:$PG_PORT/$PG_DB" >&2
        echo "Prefect UI at http://$HOST:$PORT ; clients: export PREFECT_API_URL=$PREFECT_API_URL" >&2
        echo "stop: Ctrl-C, then bash deployments/postgres_server.sh stop" >&2
        exec "$PREFECT" server start --host "$HOST" --port "$PORT" "$@"
        ;;
    *)
        die "unknown command: $command (see --help)"
        ;;
esac
