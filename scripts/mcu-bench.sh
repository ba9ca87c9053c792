#!/usr/bin/env bash
# The card OS on the emulated Cortex-M0 chip (card-os/firmware in QEMU's `microbit` machine):
# instructions and deepest stack per command, flash and RAM. Prints a table; asserts nothing.
#
#   scripts/mcu-bench.sh
#
# Needs qemu-system-arm and the thumbv6m-none-eabi Rust target (scripts/test.sh installs both).
# How the figures are taken: host-lib/examples/mcu_bench.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

(cd card-os/firmware && cargo build --quiet --release --features test-hooks --target-dir target/hooks \
  && cargo build --quiet --release)
elf=card-os/firmware/target/hooks/thumbv6m-none-eabi/release/card-os-firmware
served=card-os/firmware/target/thumbv6m-none-eabi/release/card-os-firmware

addr() { nm "$elf" | awk -v s="$1" '$3 == s { print "0x" $1 }'; }
section() { size -A "$1" | awk -v s="$2" '$1 == s { print $2; f = 1 } END { if (!f) print 0 }'; }
# The stack runs from the top of RAM down to the end of the statics.
floor=$(addr __ebss); top=$(addr _stack_start)
nvm=$(nm -S "$elf" | awk '$4 ~ /firmware3NVM/ { print $2 }')
nvm=$((16#${nvm}))

cargo run --quiet --release -p host-lib --example mcu_bench -- \
  --firmware "$elf" --stack-floor "$floor" --stack-top "$top" | tee target/mcu-bench.txt

flash=$(( $(section "$served" .vector_table) + $(section "$served" .text) + $(section "$served" .rodata) + $(section "$served" .data) ))
statics=$(( $(section "$served" .data) + $(section "$served" .bss) - nvm ))
stack=$(awk '/^deepest stack of anything/ { print $5 }' target/mcu-bench.txt)
printf '\nserved firmware (%s):\n' "$served"
printf '  flash        %6d bytes (vector table, code, constants)\n' "$flash"
printf '  NVM image    %6d bytes of RAM (stands in for the chip'"'"'s EEPROM/flash, loaded by the host)\n' "$nvm"
printf '  statics      %6d bytes of RAM (besides the NVM image)\n' "$statics"
printf '  deepest stack %5d bytes (main'"'"'s frame with the card state and APDU buffer, and the deepest command or power-up)\n' "$stack"
printf '  RAM          %6d bytes = statics + deepest stack   goal 4096\n' "$((statics + stack))"
