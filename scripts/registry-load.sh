#!/usr/bin/env bash
# The registry load benchmark (issue 10): N stations — separate `citizencard` processes — each
# issuing M cards on simulated cards to ONE registry, while every station's shop thread records
# loads, purchases and loss reports on the cards it issued. Prints, per backend, cards/minute,
# registry and card time per card (p50, p99, mean) and their ratio, then checks: no card number
# issued twice, every transaction a station completed in the ledger exactly once, `registry
# verify` clean. A benchmark: it asserts the counts (exit 1 when one is off), never the times.
#
#   scripts/registry-load.sh [sqlite|postgres|both] [--stations 8] [--cards 200]
#                            [--apdu-ms MS] [--byte-us US] [--debug] [--keep]
#
# * sqlite: a fresh registry file in a temporary directory.
# * postgres: its own throw-away cluster (scripts/pg-cluster.sh on a free port, stopped and
#   removed at the end) with a database `cc_load`; stations get `--registry postgres://…`.
# * --apdu-ms / --byte-us: put the simulated card behind a modelled contact reader (about 12 ms
#   per APDU and 125 µs per byte for a real chip; see `citizencard bench registry-station --help`).
#   Without them the card time is the bare in-process simulator's: the registry's worst case.
# * --debug: the debug build (quicker to build; slower cards); default the release build.
# * --keep: keep the run directory (card images, station figures and logs) and print it.
#
# How a station works and what the check counts: cli/src/cmd/load.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

backends=sqlite stations=8 cards=200 apdu_ms=0 byte_us=0 profile=release keep=0
while (($#)); do
    case "$1" in
    sqlite | postgres) backends=$1 ;;
    both) backends="sqlite postgres" ;;
    --stations) stations=$2; shift ;;
    --cards) cards=$2; shift ;;
    --apdu-ms) apdu_ms=$2; shift ;;
    --byte-us) byte_us=$2; shift ;;
    --debug) profile=debug ;;
    --keep) keep=1 ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
        exit 2
        ;;
    esac
    shift
done

log() { printf 'registry-load: %s\n' "$*" >&2; }

if [ "$profile" = release ]; then
    cargo build --quiet --release -p citizencard
else
    cargo build --quiet -p citizencard
fi
bin="$PWD/target/$profile/citizencard"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

RUN_DIR="" PG_DIR="" PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$PG_DIR" ]; then
        scripts/pg-cluster.sh stop "$PG_DIR" || log "PostgreSQL did not stop cleanly ($PG_DIR/server.log)"
        rm -rf "$PG_DIR"
        PG_DIR=""
    fi
    if [ -n "$RUN_DIR" ] && [ "$keep" -eq 0 ]; then rm -rf "$RUN_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

status=0
for backend in $backends; do
    RUN_DIR=$(mktemp -d /tmp/citizencard-load.XXXXXX)
    case "$backend" in
    sqlite)
        registry="$RUN_DIR/registry.db"
        ;;
    postgres)
        PG_DIR=$(mktemp -d /tmp/citizencard-load-pg.XXXXXX)
        port=$(free_port)
        server=$(scripts/pg-cluster.sh start "$PG_DIR" "$port")
        psql=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/psql
        "$psql" -q "$server" -c "CREATE DATABASE cc_load"
        registry="${server%/postgres}/cc_load"
        log "PostgreSQL cluster on port $port (data in $PG_DIR)"
        ;;
    esac
    # The schema is made once, before the stations race to open a new registry (the bureau's
    # first station does it).
    "$bin" --registry "$registry" registry list >/dev/null
    log "$backend: $stations stations × $cards cards → $registry"
    PIDS=()
    for ((s = 0; s < stations; s++)); do
        "$bin" --registry "$registry" --operator load bench registry-station \
            --station-number "$s" --cards "$cards" --dir "$RUN_DIR" \
            --photo test-vectors/applicants/photos/p01.jpg \
            --apdu-ms "$apdu_ms" --byte-us "$byte_us" \
            >"$RUN_DIR/station-$s.log" 2>&1 &
        PIDS+=($!)
    done
    started=$SECONDS
    total=$((stations * cards))
    while :; do
        running=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && running=$((running + 1)); done
        done_cards=$(cat "$RUN_DIR"/station-*.progress 2>/dev/null | awk '{ n += $1 } END { print n + 0 }' || true)
        printf '\rregistry-load: %s: %d/%d cards, %d station(s) running, %d s ' \
            "$backend" "$done_cards" "$total" "$running" "$((SECONDS - started))" >&2
        if ((running == 0)); then break; fi
        sleep 2
    done
    printf '\n' >&2
    failed=0
    for ((s = 0; s < stations; s++)); do
        if ! wait "${PIDS[$s]}"; then
            failed=$((failed + 1))
            log "station $s failed; its log:"
            tail -n 20 "$RUN_DIR/station-$s.log" >&2
        fi
    done
    PIDS=()
    printf '\n== %s: %d stations × %d cards ==\n' "$backend" "$stations" "$cards"
    "$bin" --registry "$registry" bench registry-check --dir "$RUN_DIR" || status=1
    ((failed == 0)) || status=1
    if [ "$keep" -eq 1 ]; then log "kept $RUN_DIR"; fi
    if [ -n "$PG_DIR" ]; then
        scripts/pg-cluster.sh stop "$PG_DIR"
        rm -rf "$PG_DIR"
        PG_DIR=""
    fi
    if [ "$keep" -eq 0 ]; then rm -rf "$RUN_DIR"; fi
    RUN_DIR=""
done
exit "$status"
