#!/usr/bin/env bash
# The project's one test command.
#
#   scripts/test.sh [extra `cargo test` arguments]
#
# 1. installs what the end-to-end tests need (pcscd, vsmartcard's vpcd reader, pcsc-tools,
#    opensc, pyscard, the pcsclite headers, pkgconf), the counter console's browser tests need
#    (headless Chromium, its WebDriver chromedriver, CJK fonts) and the emulated chip needs
#    (qemu-system-arm) and the shared registry needs (postgresql) with apt-get when any of it
#    is missing, and the thumbv6m-none-eabi Rust target;
# 2. starts `pcscd --foreground` unless one is running already (then it is used and left alone),
#    and a throw-away PostgreSQL cluster as the unprivileged `postgres` user on 127.0.0.1
#    (port $CITIZENCARD_PG_PORT, default 54330; scripts/pg-cluster.sh), exported to the tests as
#    CITIZENCARD_PG_URL with CITIZENCARD_PG=1 (the PostgreSQL tests fail, not skip, without it);
# 3. builds the card OS firmware for the emulated Cortex-M0 chip (card-os/firmware: the served
#    build, and the test-hooks build with fixed random bytes for the public vectors), then runs
#    `cargo test --workspace` with CITIZENCARD_E2E=1, CITIZENCARD_BROWSER=1 and CITIZENCARD_MCU=1,
#    so the end-to-end tests must find pcscd, the console's browser tests Chromium and the tests
#    on the chip QEMU and the firmware (they fail, not skip, when they cannot; the browser tests
#    start and stop chromedriver themselves); then the chaos suite of issue 9 (the `chaos_`
#    tests: a registry failure at every write of every workflow, stations issuing at once,
#    purchases at once, kill -9 at random points) on its own, one test at a time, printing its
#    counts;
# 4. builds the card OS for a Cortex-M0 (`cargo build -p card-os --release --target
#    thumbv6m-none-eabi`) and checks its footprint budget (`card-os/size-report.sh`) and the
#    chip firmware's RAM with its deepest stack, statically (`scripts/mcu-stack.py --budget 4096`);
# 5. stops the pcscd it started (SIGTERM, then waits for it to exit) and the PostgreSQL cluster
#    (and removes its directory), also when a step failed.
#
# Needs root for apt-get and for pcscd's socket directory /run/pcscd (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'test.sh: %s\n' "$*" >&2; }

# --- 1. packages and the embedded target ------------------------------------------------------
packages=(pcscd vsmartcard-vpcd pcsc-tools opensc python3-pyscard libpcsclite-dev pkgconf
    chromium chromium-driver fonts-noto-cjk qemu-system-arm binutils-arm-none-eabi postgresql)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq
    # No init system here: the packages' "policy-rc.d denied" messages are expected.
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! rustup target list --installed | grep -qx thumbv6m-none-eabi; then
    log "adding the thumbv6m-none-eabi Rust target"
    rustup target add thumbv6m-none-eabi
fi

# --- 2. pcscd ---------------------------------------------------------------------------------
PCSCD_PID=""
PCSCD_LOG="$PWD/target/pcscd-test.log"
mkdir -p target

stop_pcscd() {
    if [ -n "$PCSCD_PID" ]; then
        kill -TERM "$PCSCD_PID" 2>/dev/null || true
        # pcscd takes a second or two to exit; a new one cannot start before it has.
        for _ in $(seq 100); do
            kill -0 "$PCSCD_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$PCSCD_PID" 2>/dev/null; then
            log "pcscd ($PCSCD_PID) ignored SIGTERM for 10 s; killing it"
            kill -KILL "$PCSCD_PID" 2>/dev/null || true
        fi
        wait "$PCSCD_PID" 2>/dev/null || true
        PCSCD_PID=""
    fi
}
PG_DIR=""
stop_postgres() {
    if [ -n "$PG_DIR" ]; then
        scripts/pg-cluster.sh stop "$PG_DIR" || log "PostgreSQL did not stop cleanly (log: $PG_DIR/server.log)"
        rm -rf "$PG_DIR"
        PG_DIR=""
    fi
}
stop_services() {
    stop_pcscd
    stop_postgres
}
trap stop_services EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

running_pcscd() {
    # The PID file (with a trailing NUL) sits beside the socket; both vanish on a clean exit.
    [ -S /run/pcscd/pcscd.comm ] && [ -f /run/pcscd/pcscd.pid ] &&
        kill -0 "$(tr -d '\0' </run/pcscd/pcscd.pid)" 2>/dev/null
}

if running_pcscd; then
    log "using the pcscd that is already running (pid $(tr -d '\0' </run/pcscd/pcscd.pid))"
else
    # No --auto-exit: it would quit after 60 s idle.
    pcscd --foreground >"$PCSCD_LOG" 2>&1 &
    PCSCD_PID=$!
    for _ in $(seq 100); do
        [ -S /run/pcscd/pcscd.comm ] && break
        if ! kill -0 "$PCSCD_PID" 2>/dev/null; then
            log "pcscd exited at startup; its log:"
            cat "$PCSCD_LOG" >&2
            exit 1
        fi
        sleep 0.1
    done
    [ -S /run/pcscd/pcscd.comm ] || { log "pcscd did not create /run/pcscd/pcscd.comm in 10 s"; exit 1; }
    log "started pcscd (pid $PCSCD_PID, log $PCSCD_LOG)"
fi

# --- 2b. PostgreSQL ----------------------------------------------------------------------------
PG_DIR=$(mktemp -d /tmp/citizencard-pg.XXXXXX)
CITIZENCARD_PG_URL=$(scripts/pg-cluster.sh start "$PG_DIR" "${CITIZENCARD_PG_PORT:-54330}")
export CITIZENCARD_PG_URL CITIZENCARD_PG=1
log "started PostgreSQL ($CITIZENCARD_PG_URL, data in $PG_DIR)"

# --- 3. and 4. tests and the embedded build ----------------------------------------------------
status=0
# The firmware has its own workspace and target (thumbv6m-none-eabi, from its .cargo/config.toml).
(
    cd card-os/firmware
    cargo build --release
    cargo build --release --features test-hooks --target-dir target/hooks
) || status=$?
export CITIZENCARD_E2E=1 CITIZENCARD_BROWSER=1 CITIZENCARD_MCU=1
if [ "$#" -eq 0 ]; then
    cargo test --workspace -- --skip chaos_ || status=$?
    log "the chaos suite (counts below)"
    cargo test -p host-lib --test service -- --nocapture chaos_ || status=$?
    cargo test -p citizencard --test chaos -- --nocapture --test-threads 1 || status=$?
else
    cargo test --workspace "$@" || status=$?
fi
cargo build -p card-os --release --target thumbv6m-none-eabi || status=$?
card-os/size-report.sh || status=$?
# The chip's RAM goal, statically: the deepest call path of the served firmware plus its statics.
scripts/mcu-stack.py --top 0 --budget 4096 || status=$?

if [ "$status" -ne 0 ] && [ -n "$PCSCD_PID" ]; then
    log "failed (status $status); the last lines of the pcscd log:"
    tail -n 20 "$PCSCD_LOG" >&2 || true
fi
exit "$status"
