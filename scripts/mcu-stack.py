#!/usr/bin/env python3
"""Static stack depth of the chip firmware: every function's frame from its prologue, and the
deepest chain of direct calls from a root (default: the firmware's `main`).

    scripts/mcu-stack.py [ELF] [--root SYMBOL] [--exclude REGEX] [--top N] [--budget BYTES]

ELF defaults to the served firmware (card-os/firmware/target/thumbv6m-none-eabi/release/...).
A frame is what the prologue reserves: `push {...}` (4 bytes a register) plus `sub sp, #n`, or a
negative constant added to sp. Only direct calls (`bl`) are followed and recursion is cut; the
bench's stack painting (scripts/mcu-bench.sh) measures what commands really use, this bounds
every path, including keys the bench does not use (e.g. `--exclude 'aes|sm4'` for DES keys only).
Indirect calls (`blx rN`: the card's random source) are not followed; the functions making them
are listed. With --budget, RAM = the deepest path + the statics (.data + .bss without the NVM
image) must fit, else the exit status is 1 (scripts/test.sh checks the chip's 4 KiB this way).
Needs arm-none-eabi-objdump (binutils-arm-none-eabi) and size/nm.
"""
import argparse
import re
import subprocess
import sys

parser = argparse.ArgumentParser()
parser.add_argument("elf", nargs="?",
                    default="card-os/firmware/target/thumbv6m-none-eabi/release/card-os-firmware")
parser.add_argument("--root", default="card_os_firmware::__cortex_m_rt_main")
parser.add_argument("--exclude", help="regex of callees not to follow")
parser.add_argument("--top", type=int, default=15, help="largest frames to list")
parser.add_argument("--budget", type=int, help="RAM budget in bytes (deepest path + statics)")
args = parser.parse_args()

dump = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", "-C", args.elf],
                      capture_output=True, text=True, check=True).stdout
# Keyed by address: generic functions have several instances with one demangled name.
functions, names = {}, {}
current = None
for line in dump.splitlines():
    m = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
    if m:
        address = int(m.group(1), 16)
        names[address] = m.group(2)
        current = functions.setdefault(address, [])
    elif current is not None and line.strip():
        current.append(line)

frames, calls, indirect = {}, {}, set()
for name, lines in functions.items():
    pool = {}
    for l in lines:
        m = re.match(r"\s*([0-9a-f]+):\s+\.word\s+0x([0-9a-f]+)", l)
        if m:
            pool[int(m.group(1), 16)] = int(m.group(2), 16)
    size = 0
    for l in lines[:12]:
        if re.search(r"\spush\s", l):
            size += 4 * len(l.split("{")[1].split(","))
        m = re.search(r"sub\s+sp,\s*#(\d+)", l)
        if m:
            size += int(m.group(1))
        m = re.search(r"ldr\s+r\d+,\s*\[pc.*\]\s*@\s*\(([0-9a-f]+)", l)
        if m and pool.get(int(m.group(1), 16), 0) >= 0x80000000:
            size += (1 << 32) - pool[int(m.group(1), 16)]
    frames[name] = size if size < 1 << 20 else 0  # the reset handler sets sp itself
    if any(re.search(r"\sblx\s+r\d+", l) for l in lines):
        indirect.add(name)
    calls[name] = {int(m.group(1), 16) for l in lines
                   for m in [re.search(r"\sbl\s+([0-9a-f]+) <(.*)>\s*$", l)]
                   if m and "+0x" not in m.group(2)}

memo = {}


def deepest(name, path=()):
    if name in memo:
        return memo[name]
    if name in path:
        return 0, []
    best = (0, [])
    for callee in calls.get(name, ()):
        if args.exclude and re.search(args.exclude, names.get(callee, "")):
            continue
        best = max(best, deepest(callee, path + (name,)), key=lambda d: d[0])
    result = (frames.get(name, 0) + best[0], [name] + best[1])
    memo[name] = result
    return result


print(f"largest frames ({args.elf}):")
for address, size in sorted(frames.items(), key=lambda f: -f[1])[:args.top]:
    print(f"  {size:6d}  {names[address][:110]}")
roots = [a for a, n in names.items() if n == args.root]
if not roots:
    sys.exit(f"no function {args.root}")
total, path = max(deepest(root) for root in roots)
print(f"deepest path from {args.root}: {total} bytes")
for address in path:
    print(f"  {frames.get(address, 0):6d}  {names[address][:110]}")
if indirect:
    print("indirect calls not followed, in: " + ", ".join(sorted(names[a] for a in indirect)))
if args.budget is not None:
    sections = subprocess.run(["size", "-A", args.elf], capture_output=True, text=True,
                              check=True).stdout
    statics = sum(int(f[1]) for f in (l.split() for l in sections.splitlines())
                  if len(f) >= 2 and f[0] in (".data", ".bss"))
    symbols = subprocess.run(["nm", "-S", args.elf], capture_output=True, text=True,
                             check=True).stdout
    nvm = sum(int(f[1], 16) for f in (l.split() for l in symbols.splitlines())
              if len(f) == 4 and re.search(r"firmware3NVM", f[3]))
    ram = total + statics - nvm
    print(f"RAM {ram} bytes = deepest path {total} + statics {statics - nvm} "
          f"(without the {nvm}-byte NVM image); budget {args.budget}")
    if ram > args.budget:
        sys.exit("over budget")
