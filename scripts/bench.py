#!/usr/bin/env python3
"""Throughput of the simulated card through a real pcscd, next to the tools people use.

    scripts/bench.py [--apdus 1000] [--pairs 20000] [--runs 5]

Builds `citizencard` (release), starts pcscd unless one runs (root needed), makes a card image with a
32-byte binary EF, serves it on vsmartcard's `Virtual PCD 00 00`, and measures in one run:

* `citizencard bench in-process`: the SELECT + READ BINARY loop straight into the card OS and through
  host-lib's simulated-card transport;
* `citizencard bench pcsc`: the same loop through pcscd, as a bare loop over the `pcsc` crate (the
  floor) and through host-lib's PC/SC transport;
* the wall time of one script of `--apdus` APDUs (the same loop) run by `citizencard script`,
  `scriptor`, `opensc-tool` and pyscard (`/usr/bin/python3`), each the median of `--runs` runs, with
  the bare loop's time for as many APDUs as the floor;
* `citizencard` process start-up (median of 50 runs of `citizencard --version`) and the peak memory
  (VmHWM) of the `citizencard script` run.

Run it on an otherwise idle machine: pcscd, the served card and the client share the cores.

Standard library only. Prints a table and the ratios the README records.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXE = ROOT / "target" / "release" / "citizencard"
READER = "Virtual PCD 00 00"
SELECT_EF = "00A40200020001"
READ_BINARY = "00B0000020"
CREATE_EF = "80E0000107280020F0F0FFFF"


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def pcscd_running():
    pid_file = Path("/run/pcscd/pcscd.pid")
    if not Path("/run/pcscd/pcscd.comm").is_socket() or not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_bytes().strip(b"\0\n ")), 0)
        return True
    except (ValueError, OSError):
        return False


def wait_for(predicate, what, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit(f"bench: timed out waiting for {what}")


def reader_state():
    out = subprocess.run([str(EXE), "--json", "readers"], text=True, capture_output=True)
    for line in out.stdout.splitlines():
        r = json.loads(line)
        if r.get("name", "").startswith(READER) and r.get("atr"):
            return r
    return None


def timed(cmd, stdin=None):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   stdin=stdin)
    return time.perf_counter() - start


def median_time(cmd, runs, stdin_path=None):
    times = []
    for _ in range(runs):
        if stdin_path:
            with open(stdin_path) as f:
                times.append(timed(cmd, stdin=f))
        else:
            times.append(timed(cmd))
    return statistics.median(times)


def peak_rss_kib(cmd):
    """Peak resident memory of one run of `cmd`: its VmHWM, sampled every 0.5 ms until it exits.
    (getrusage would count the memory of the forking Python process too.)"""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = Path(f"/proc/{proc.pid}/status")
    peak = 0
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.0005)
    return peak


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--apdus", type=int, default=1000, help="APDUs in the script (even)")
    ap.add_argument("--pairs", type=int, default=20000, help="SELECT+READ pairs in the loops")
    ap.add_argument("--runs", type=int, default=5, help="runs per tool (the median counts)")
    args = ap.parse_args()
    pairs_in_script = args.apdus // 2

    log("building citizencard (release)")
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "citizencard"], cwd=ROOT,
                   check=True)
    for tool in ("pcscd", "scriptor", "opensc-tool"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is missing (scripts/test.sh installs it)")

    procs = []
    work = Path(tempfile.mkdtemp(prefix="citizencard-bench-"))
    try:
        if pcscd_running():
            log("using the running pcscd")
        else:
            log("starting pcscd")
            procs.append(subprocess.Popen(["pcscd", "--foreground"], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
            wait_for(lambda: Path("/run/pcscd/pcscd.comm").is_socket(), "pcscd's socket")

        image = work / "bench.img"
        run([str(EXE), "sim", "new", "--image", str(image), "--serial", "0000BE0C"])
        run([str(EXE), "--sim", str(image), "apdu", f"{CREATE_EF} => 9000"])
        procs.append(subprocess.Popen([str(EXE), "sim", "serve", "--image", str(image)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(lambda: reader_state() is not None, "the served card in " + READER)
        index = str(reader_state()["index"])

        rows = []
        out = run([str(EXE), "--json", "bench", "in-process", "--pairs", str(args.pairs * 10)])
        inproc = [json.loads(l) for l in out.stdout.splitlines()]
        out = run([str(EXE), "--json", "-r", READER, "bench", "pcsc", "--pairs", str(args.pairs)])
        floor, ours = [json.loads(l) for l in out.stdout.splitlines()]

        script = work / "loop.apdu"
        script.write_text("".join(f"{SELECT_EF}\n{READ_BINARY}\n" for _ in range(pairs_in_script)))
        tools = {
            "citizencard script": [str(EXE), "-r", READER, "--no-auto-get-response", "script",
                                   str(script)],
            "scriptor": ["scriptor", "-r", READER, str(script)],
            "opensc-tool": ["opensc-tool", "-r", index, "-c", "default"]
                           + [a for _ in range(pairs_in_script)
                              for a in ("-s", SELECT_EF, "-s", READ_BINARY)],
            "pyscard": ["/usr/bin/python3", "-c",
                        "import sys\nfrom smartcard.System import readers\n"
                        "from smartcard.util import toBytes\n"
                        "r = [x for x in readers() if str(x) == sys.argv[1]][0]\n"
                        "c = r.createConnection(); c.connect()\n"
                        "for a in open(sys.argv[2]).read().split():\n"
                        "    c.transmit(toBytes(a))\n", READER, str(script)],
        }
        wall = {}
        for name, cmd in tools.items():
            log(f"timing {name}")
            wall[name] = median_time(cmd, args.runs)
        wall["pcsc crate, bare loop (floor)"] = args.apdus * floor["micros_per_apdu"] / 1e6
        startup = median_time([str(EXE), "--version"], 50)
        rss = peak_rss_kib(tools["citizencard script"])

        print()
        print("In-process loop (SELECT + READ BINARY):")
        for m in inproc:
            print(f"  {m['path']:<28} {m['apdus_per_second']:>12,.0f} APDUs/s "
                  f"({m['micros_per_apdu']:.3f} µs/APDU)")
        print("Through pcscd + vpcd (same loop):")
        for m in (floor, ours):
            print(f"  {m['path']:<28} {m['apdus_per_second']:>12,.0f} APDUs/s "
                  f"({m['micros_per_apdu']:.1f} µs/APDU)")
        print(f"  host-lib / bare loop: {ours['micros_per_apdu'] / floor['micros_per_apdu']:.3f} "
              "(time per APDU)")
        print(f"One {args.apdus}-APDU script, wall time (median of {args.runs}):")
        base = wall["scriptor"]
        for name, t in wall.items():
            print(f"  {name:<32} {t * 1000:>8.1f} ms  {args.apdus / t:>9,.0f} APDUs/s  "
                  f"speed vs scriptor {base / t:>5.2f}x")
        print(f"citizencard start-up: {startup * 1000:.2f} ms (median of 50 `--version`)")
        print(f"citizencard script peak memory: {rss / 1024:.2f} MiB = {rss * 1024 / 1e6:.2f} MB "
              "(VmHWM)")
        goals = [
            ("in process >= 500,000 APDUs/s", inproc[0]["apdus_per_second"] >= 500_000),
            ("host-lib through pcscd within 10% of the bare loop",
             ours["micros_per_apdu"] <= 1.10 * floor["micros_per_apdu"]),
            ("citizencard script >= 1.5x scriptor's rate", base / wall["citizencard script"] >= 1.5),
            ("start-up <= 5 ms", startup <= 0.005),
            ("peak memory <= 5 MB (decimal)", rss * 1024 <= 5_000_000),
        ]
        print("Goals:")
        for text, ok in goals:
            print(f"  [{'met' if ok else 'MISSED'}] {text}")
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
