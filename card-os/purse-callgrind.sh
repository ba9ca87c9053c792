#!/usr/bin/env bash
# Instructions the card executes per purchase (INITIALIZE FOR PURCHASE + DEBIT FOR PURCHASE),
# counted by valgrind's callgrind on the simulated card (x86-64, release build: a proxy for the
# work, not a Cortex-M cycle count). The driver is card-os/examples/purse_callgrind.rs; only the
# card's side of each command is collected.
#
#     card-os/purse-callgrind.sh [N]      # N purchases (default 100)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
n="${1:-100}"
cd "$here/.."
cargo build --quiet --release -p card-os --example purse_callgrind
bin="target/release/examples/purse_callgrind"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for f in card_initialize card_debit; do
  valgrind --tool=callgrind --toggle-collect="*purse_callgrind::$f*" \
    --callgrind-out-file="$out/$f.out" "$bin" "$n" >/dev/null 2>"$out/$f.log"
  ir=$(awk '/^totals:/ { print $2 }' "$out/$f.out")
  echo "$f: $ir instructions over $n calls, $((ir / n)) per call"
  eval "ir_$f=$ir"
done
echo "INITIALIZE + DEBIT: $(((ir_card_initialize + ir_card_debit) / n)) instructions per purchase"
