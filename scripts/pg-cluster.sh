#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests and the load benchmark.
#
#   scripts/pg-cluster.sh start DIR [PORT]   # initdb (if DIR is new) + start; prints the URL
#   scripts/pg-cluster.sh stop DIR           # fast shutdown; waits until the server is gone
#   scripts/pg-cluster.sh url DIR            # the URL of a running cluster
#
# The server never runs as root: when started by root it runs as the unprivileged `postgres`
# user of Debian's `postgresql` package (the data directory is handed to that user). It listens
# on 127.0.0.1:PORT (default 54329) and in DIR/socket, with `trust` authentication for local
# connections only: a test cluster, not a bureau's server (README, "Running a bureau's registry").
# The URL printed is postgres://postgres@127.0.0.1:PORT/postgres; tests create their own
# databases in it.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
port=${3:-54329}
[ -n "$cmd" ] && [ -n "$dir" ] || {
    echo "usage: $0 start|stop|url DIR [PORT]" >&2
    exit 2
}

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pg_bin/pg_ctl" ] || {
    echo "pg-cluster.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
    exit 1
}

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$pg_bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
            --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            exit 1
        }
    fi
    as_owner mkdir -p "$dir/socket"
    echo "$port" >"$dir/port"
    as_owner "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir/socket -c listen_addresses=127.0.0.1 -c max_connections=200" \
        start >/dev/null || {
        tail -n 30 "$dir/server.log" >&2
        exit 1
    }
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$pg_bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
url)
    echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres"
    ;;
*)
    echo "usage: $0 start|stop|url DIR [PORT]" >&2
    exit 2
    ;;
esac
