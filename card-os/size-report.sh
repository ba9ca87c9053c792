#!/usr/bin/env bash
# Footprint of the card OS on a Cortex-M0-class secure core (thumbv6m-none-eabi).
#
# Links card-os/size-probe (the OS driven through Card::process, with a stand-in NVM driver) at
# opt-level "z" with LTO and prints:
#   flash      = .text + .rodata + .ARM.exidx of the linked image
#   static RAM = .data + .bss of the linked image
#   card state = the Card value (volatile state, transaction buffer, GET RESPONSE buffer), which
#                firmware keeps in RAM
#   APDU bufs  = command buffer + response buffer owned by the I/O layer
# Budget for the whole OS: flash <= 64 KiB, RAM <= 4 KiB.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/size-probe"
rustup target list --installed 2>/dev/null | grep -qx thumbv6m-none-eabi \
  || rustup target add thumbv6m-none-eabi >/dev/null
cargo build --quiet --release --target thumbv6m-none-eabi
elf="target/thumbv6m-none-eabi/release/size-probe"

section() { size -A "$elf" | awk -v s="$1" '$1 == s { print $2; f = 1 } END { if (!f) print 0 }'; }
symbol_size() { printf '%d' "0x$(nm -S "$elf" | awk -v s="$1" '$4 == s { print $2 }')"; }

text=$(section .text); rodata=$(section .rodata); exidx=$(section .ARM.exidx)
data=$(section .data); bss=$(section .bss)
card=$(symbol_size PROBE_CARD_STATE); apdu=$(symbol_size PROBE_APDU_BUFFERS)
flash=$((text + rodata + exidx))
static_ram=$((data + bss))
ram=$((static_ram + card + apdu))

printf 'card-os footprint (thumbv6m-none-eabi, opt-level z, LTO)\n'
printf '  flash       %6d bytes  (.text %d + .rodata %d + .ARM.exidx %d)   budget 65536\n' \
  "$flash" "$text" "$rodata" "$exidx"
printf '  static RAM  %6d bytes  (.data %d + .bss %d)\n' "$static_ram" "$data" "$bss"
printf '  card state  %6d bytes  (the Card value: volatile state, transaction and response buffers)\n' "$card"
printf '  APDU bufs   %6d bytes  (command + response buffers of the I/O layer)\n' "$apdu"
printf '  RAM total   %6d bytes  (stack not included)   budget 4096\n' "$ram"
if [ "$flash" -gt 65536 ] || [ "$ram" -gt 4096 ]; then
  echo "over budget" >&2
  exit 1
fi
