#!/usr/bin/env python3
"""Recompute a citizencard registry's audit hash chain, independently of the Rust code.

    scripts/audit-chain.py REGISTRY.db [--expect-head ID:HASH]

Checks every audit_log record's hash (host-lib/docs/registry.md, "The audit chain"), its link to
the record before it, and that the chain ends at audit_head. Prints the head as ID:HASH and exits
0 when all holds, else prints each broken record and exits 1. Only the Python standard library;
the database is opened read-only. It does not replay the row images against the tables: that is
`citizencard registry verify`.
"""

import hashlib
import sqlite3
import sys

PREFIX = b"citizencard-audit-1\n"
# Records that name their station (schema version 7 on) hash it as a tenth field.
PREFIX_STATION = b"citizencard-audit-2\n"
GENESIS = "0" * 64


def field(value):
    """`~` for NULL, else `<UTF-8 byte length>:<UTF-8 bytes>,`."""
    if value is None:
        return b"~"
    data = str(value).encode("utf-8")
    return str(len(data)).encode() + b":" + data + b","


def record_hash(row, station):
    (rid, at, operator, action, card, id_number, details, effects, prev_hash) = row
    encoded = (PREFIX if station is None else PREFIX_STATION) + b"".join(
        field(v)
        for v in (str(rid), at, operator, action, card, id_number, details, effects, prev_hash)
    )
    if station is not None:
        encoded += field(station)
    return hashlib.sha256(encoded).hexdigest()


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--expect-head"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    db = sqlite3.connect("file:%s?mode=ro" % argv[1], uri=True)
    columns = [c[1] for c in db.execute("PRAGMA table_info(audit_log)")]
    station = "station" if "station" in columns else "NULL"
    rows = db.execute(
        "SELECT id, at, operator, action, card_number, id_number, details, effects, prev_hash, "
        "hash, %s FROM audit_log ORDER BY id" % station
    ).fetchall()
    problems = []
    prev = GENESIS
    for row in rows:
        rid, stored = row[0], row[9]
        if row[8] != prev:
            problems.append("audit_log %d: does not follow the record before it" % rid)
        if record_hash(row[:9], row[10]) != stored:
            problems.append("audit_log %d: its contents do not match its hash" % rid)
        prev = stored
    last = (rows[-1][0], rows[-1][9]) if rows else (0, GENESIS)
    head = db.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
    if head is None:
        problems.append("audit_head: missing")
    elif tuple(head) != last:
        problems.append(
            "audit_head: says record %d, the chain ends at record %d" % (head[0], last[0])
        )
    if len(argv) == 4:
        kid, khash = argv[3].split(":", 1)
        found = [r for r in rows if r[0] == int(kid)]
        if not found or found[0][9] != khash.lower():
            problems.append("audit_log %s: not the record noted as the head earlier" % kid)
    for p in problems:
        print(p)
    print("%d records; head: %d:%s" % (len(rows), last[0], last[1]))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
