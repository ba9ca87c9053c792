#!/usr/bin/env python3
"""Seeds the fuzz corpora from the APDU transcripts (test-vectors/transcripts/*.apdu and, when
present, the conformance corpus test-vectors/fmcos/*.apdu).

* corpus/apdu_parse/: every distinct command APDU of every transcript, one file each;
* corpus/card_sequences/: every transcript cut into runs of up to 24 consecutive commands, in the
  target's input format (one length byte, then that many APDU bytes; a `reset` line becomes the
  target's reset marker `00 FF`), so the fuzzer starts from real personalization, purse and
  security sequences.

File names are the SHA-1 of the contents, as libFuzzer names its own, so running this again adds
nothing twice. Corpora stay out of git (.gitignore).

    python3 fuzz/seed.py          # from anywhere; prints how many files each corpus got
"""

import hashlib
import pathlib
import re

HERE = pathlib.Path(__file__).resolve().parent
VECTORS = HERE.parent / "test-vectors"
SOURCES = [VECTORS / "transcripts", VECTORS / "fmcos"]
RUN = 24
RESET = bytes([0x00, 0xFF])


def commands(text: str):
    """The command APDUs (bytes) and `reset` markers of a transcript, in order."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("random "):
            continue
        if line.lower() == "reset":
            yield RESET
            continue
        apdu = line.split("=>", 1)[0]
        digits = re.sub(r"[\s:]", "", apdu)
        if not digits or len(digits) % 2 or not re.fullmatch(r"[0-9A-Fa-f]+", digits):
            continue
        yield bytes.fromhex(digits)


def write(directory: pathlib.Path, data: bytes) -> bool:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / hashlib.sha1(data).hexdigest()
    if path.exists():
        return False
    path.write_bytes(data)
    return True


def main() -> None:
    parse_dir = HERE / "corpus" / "apdu_parse"
    seq_dir = HERE / "corpus" / "card_sequences"
    added = {"apdu_parse": 0, "card_sequences": 0}
    transcripts = sorted(p for d in SOURCES if d.is_dir() for p in d.glob("*.apdu"))
    for path in transcripts:
        apdus = list(commands(path.read_text(encoding="utf-8")))
        for apdu in apdus:
            if apdu != RESET and len(apdu) <= 255:
                added["apdu_parse"] += write(parse_dir, apdu)
        for start in range(0, len(apdus), RUN):
            chunk = [a for a in apdus[start : start + RUN] if len(a) <= 255]
            data = b"".join(bytes([len(a)]) + a for a in chunk)
            added["card_sequences"] += write(seq_dir, data)
    print(f"{len(transcripts)} transcripts: " + ", ".join(f"{k} +{v}" for k, v in added.items()))


if __name__ == "__main__":
    main()
