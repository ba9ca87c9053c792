#!/usr/bin/env python3
"""Writes the generated purse transcripts:

* purse-sm4.apdu: an application with SM4 purse keys (algorithm id 03) and a 3DES purchase key, an
  ED behind the PIN and an EP, loads and purchases of both, the refusals (wrong MAC, limits, state)
  and GET TRANSACTION PROOF, with the log read back;
* purse-ed-unload-cash.apdu: an electronic deposit's unloads (under 3DES and SM4 unload keys)
  and cash withdrawals next to loads and purchases, their refusals, proofs and log;
* purse-phone-reader.apdu: a transit card after twelve transactions, read the way a phone reading
  Chinese transit cards reads it (SELECT by name, READ BINARY SFI 15, GET BALANCE, READ RECORD SFI
  18 records 1..10).

Every MAC, TAC and expected answer comes from the independent Python crypto of
test-vectors/crypto/check_vectors.py (apdu-specs/crypto.md) and a model of the purse written from
apdu-specs/purse.md, not from card-os, so the transcripts check the card against a second
implementation.

    python3 test-vectors/transcripts/make_purse.py
"""

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "crypto"))
from check_vectors import algorithm_of, mac, session_algorithm, session_key, tac_key  # noqa: E402


def h(b: bytes) -> str:
    return b.hex().upper()


def be(value: int, n: int) -> bytes:
    return value.to_bytes(n, "big")


class Key:
    def __init__(self, alg_id: int, value: bytes, version: int):
        self.alg_id, self.value, self.version = alg_id, value, version
        self.alg = algorithm_of(alg_id, value)


class Purse:
    """The card's purse as apdu-specs/purse.md describes it."""

    def __init__(self, p2: int, max_balance: int):
        self.p2, self.max_balance = p2, max_balance
        self.balance = self.online = self.offline = 0
        self.proof = None  # (type, counter, mac, tac)

    def load_type(self):
        return 0x01 if self.p2 == 1 else 0x02

    def purchase_type(self):
        return 0x05 if self.p2 == 1 else 0x06


class Script:
    def __init__(self, dtk: Key):
        self.lines = []
        self.dtk = dtk
        self.log = []  # newest first, 23-byte records

    def say(self, text=""):
        self.lines.append(text)

    def tac(self, data: bytes) -> bytes:
        alg, key = tac_key(self.dtk.alg, self.dtk.value)
        return mac(session_algorithm(alg), key, None, data)

    def load(self, purse: Purse, kid: int, dlk: Key, amount: int, term: bytes, when: bytes,
             random: bytes, mac2_ok=True):
        typ = bytes([purse.load_type()])
        seslk = session_key(dlk.alg, dlk.value, random + be(purse.online, 2) + b"\x80\x00")
        sk_alg = session_algorithm(dlk.alg)
        mac1 = mac(sk_alg, seslk, None, be(purse.balance, 4) + be(amount, 4) + typ + term)
        mac2 = mac(sk_alg, seslk, None, be(amount, 4) + typ + term + when)
        self.say(f"random {h(random)}")
        self.say(f"80 50 00 {purse.p2:02X} 0B {kid:02X} {h(be(amount, 4))} {h(term)} 10 => "
                 f"{h(be(purse.balance, 4))} {h(be(purse.online, 2))} {dlk.version:02X} "
                 f"{dlk.alg_id:02X} {h(random)} {h(mac1)} 9000")
        if not mac2_ok:
            bad = bytes(b ^ 0x01 for b in mac2)
            self.say(f"80 52 00 00 0B {h(when)} {h(bad)} 04 => 9302")
            return
        new_balance = purse.balance + amount
        tac = self.tac(be(new_balance, 4) + be(purse.online, 2) + be(amount, 4) + typ + term + when)
        self.say(f"80 52 00 00 0B {h(when)} {h(mac2)} 04 => {h(tac)} 9000")
        self.log.insert(0, be(purse.online, 2) + bytes(3) + be(amount, 4) + typ + term + when)
        purse.proof = (typ[0], purse.online, mac2, tac)
        purse.balance = new_balance
        purse.online += 1

    def purchase(self, purse: Purse, kid: int, dpk: Key, amount: int, term: bytes, seq: bytes,
                 when: bytes, random: bytes, capp=None, mac1_ok=True):
        typ = bytes([0x09 if capp else purse.purchase_type()])
        p1 = "03" if capp else "01"
        self.say(f"random {h(random)}")
        self.say(f"80 50 {p1} {purse.p2:02X} 0B {kid:02X} {h(be(amount, 4))} {h(term)} 0F => "
                 f"{h(be(purse.balance, 4))} {h(be(purse.offline, 2))} 000000 {dpk.version:02X} "
                 f"{dpk.alg_id:02X} {h(random)} 9000")
        if capp:
            self.say(capp)
        sespk = session_key(dpk.alg, dpk.value, random + be(purse.offline, 2) + seq[2:])
        sk_alg = session_algorithm(dpk.alg)
        mac1 = mac(sk_alg, sespk, None, be(amount, 4) + typ + term + when)
        if not mac1_ok:
            bad = bytes(b ^ 0x80 for b in mac1)
            self.say(f"80 54 01 00 0F {h(seq)} {h(when)} {h(bad)} 08 => 9302")
            return
        mac2 = mac(sk_alg, sespk, None, be(amount, 4))
        tac = self.tac(be(amount, 4) + typ + term + seq + when)
        self.say(f"80 54 01 00 0F {h(seq)} {h(when)} {h(mac1)} 08 => {h(tac)} {h(mac2)} 9000")
        self.log.insert(0, be(purse.offline, 2) + bytes(3) + be(amount, 4) + typ + term + when)
        purse.proof = (typ[0], purse.offline, mac2, tac)
        purse.balance -= amount
        purse.offline += 1

    def unload(self, purse: Purse, kid: int, key: Key, amount: int, term: bytes, when: bytes,
               random: bytes, mac2_ok=True):
        """An ED unload (FMCOS 2.0 §8.10): a load's crypto under the unload key, type 03, the
        balance going down; CREDIT FOR UNLOAD answers MAC3 (the load TAC's fields under the
        session key)."""
        typ = bytes([0x03])
        sk = session_key(key.alg, key.value, random + be(purse.online, 2) + b"\x80\x00")
        sk_alg = session_algorithm(key.alg)
        mac1 = mac(sk_alg, sk, None, be(purse.balance, 4) + be(amount, 4) + typ + term)
        mac2 = mac(sk_alg, sk, None, be(amount, 4) + typ + term + when)
        self.say(f"random {h(random)}")
        self.say(f"80 50 05 {purse.p2:02X} 0B {kid:02X} {h(be(amount, 4))} {h(term)} 10 => "
                 f"{h(be(purse.balance, 4))} {h(be(purse.online, 2))} {key.version:02X} "
                 f"{key.alg_id:02X} {h(random)} {h(mac1)} 9000")
        if not mac2_ok:
            bad = bytes(b ^ 0x01 for b in mac2)
            self.say(f"80 54 03 00 0B {h(when)} {h(bad)} 04 => 9302")
            return
        new_balance = purse.balance - amount
        mac3 = mac(sk_alg, sk, None,
                   be(new_balance, 4) + be(purse.online, 2) + be(amount, 4) + typ + term + when)
        self.say(f"80 54 03 00 0B {h(when)} {h(mac2)} 04 => {h(mac3)} 9000")
        self.log.insert(0, be(purse.online, 2) + bytes(3) + be(amount, 4) + typ + term + when)
        purse.proof = (typ[0], purse.online, mac2, mac3)
        purse.balance = new_balance
        purse.online += 1

    def cash_withdraw(self, purse: Purse, kid: int, dpk: Key, amount: int, term: bytes,
                      seq: bytes, when: bytes, random: bytes, mac1_ok=True):
        """An ED cash withdrawal (FMCOS 2.0 §8.11): a purchase of type 04 under the DPK."""
        typ = bytes([0x04])
        self.say(f"random {h(random)}")
        self.say(f"80 50 02 {purse.p2:02X} 0B {kid:02X} {h(be(amount, 4))} {h(term)} 0F => "
                 f"{h(be(purse.balance, 4))} {h(be(purse.offline, 2))} 000000 {dpk.version:02X} "
                 f"{dpk.alg_id:02X} {h(random)} 9000")
        sespk = session_key(dpk.alg, dpk.value, random + be(purse.offline, 2) + seq[2:])
        sk_alg = session_algorithm(dpk.alg)
        mac1 = mac(sk_alg, sespk, None, be(amount, 4) + typ + term + when)
        if not mac1_ok:
            bad = bytes(b ^ 0x80 for b in mac1)
            self.say(f"80 54 01 00 0F {h(seq)} {h(when)} {h(bad)} 08 => 9302")
            return
        mac2 = mac(sk_alg, sespk, None, be(amount, 4))
        tac = self.tac(be(amount, 4) + typ + term + seq + when)
        self.say(f"80 54 01 00 0F {h(seq)} {h(when)} {h(mac1)} 08 => {h(tac)} {h(mac2)} 9000")
        self.log.insert(0, be(purse.offline, 2) + bytes(3) + be(amount, 4) + typ + term + when)
        purse.proof = (typ[0], purse.offline, mac2, tac)
        purse.balance -= amount
        purse.offline += 1

    def proof(self, purse: Purse):
        typ, counter, m, t = purse.proof
        self.say(f"80 5A 00 {typ:02X} 02 {h(be(counter, 2))} 08 => {h(m)} {h(t)} 9000")

    def balance(self, purse: Purse):
        self.say(f"80 5C 00 {purse.p2:02X} 04 => {h(be(purse.balance, 4))} 9000")

    def read_log(self, count=10):
        for n in range(1, count + 1):
            if n <= len(self.log[:10]):
                self.say(f"00 B2 {n:02X} C4 00 => {h(self.log[n - 1])} 9000")
            else:
                self.say(f"00 B2 {n:02X} C4 00 => 6A83")


def write(name: str, lines):
    (HERE / name).write_text("\n".join(lines) + "\n")


def header(title: str):
    return [
        f"# {title}",
        "# Generated by make_purse.py (MACs and TACs from the independent Python implementation of",
        "# apdu-specs/crypto.md, the expected answers from a model of apdu-specs/purse.md);",
        "# format: test-vectors/README.md.",
        "",
    ]


def sm4_transcript():
    dlk = Key(0x03, bytes.fromhex("5A3C1E7F9B2D4F6081A3C5E7092B4D6F"), 0x02)
    dpk = Key(0x03, bytes.fromhex("13579BDF02468ACEFDB97531ECA86420"), 0x02)
    dpk_3des = Key(0x00, bytes.fromhex("C0D3FEB4B15C614C259C7ACE4DAE8EB1"), 0x01)
    dtk = Key(0x03, bytes.fromhex("F0E1D2C3B4A5968778695A4B3C2D1E0F"), 0x02)
    s = Script(dtk)
    s.lines = header("A purse with SM4 keys (algorithm id 03): ED behind the PIN and EP, loads, purchases,")
    s.say("# refusals and proofs, the shared log read back.")
    s.say("reset")
    s.say("# --- DF 3F01 \"CITIZEN.PURSE\": key file; PIN 3A 00; SM4 DLK 3F 01, DPK 3E 01 and DTK 34 00")
    s.say("# (version 02, algorithm 03); a 3DES DPK 3E 02 (version 01, algorithm 00); log 0018 readable")
    s.say("# by anyone; the ED 0001 behind the PIN (an FMCOS CREATE FILE: no maximum balance) and the")
    s.say("# EP 0002 with a maximum balance of 500.00 yuan; TAC key id 00, log SFI 18.")
    s.say("80 E0 3F01 15 38 0400 F0 F0 95 FFFF 434954495A454E2E5055525345 => 9000")
    s.say("80 E0 0000 07 3F 0080 95 F0 FF FF => 9000")
    s.say("80 D4 01 00 0D 3A F0 EF 01 33 123456FFFFFFFFFF => 9000")
    for kt, kid, key in (("3F", 1, dlk), ("3E", 1, dpk), ("3E", 2, dpk_3des), ("34", 0, dtk)):
        s.say(f"80 D4 01 {kid:02X} 15 {kt} F0 F0 {key.version:02X} {key.alg_id:02X} {h(key.value)} => 9000")
    s.say("80 E0 0018 07 2E 0A 17 F0 EF FF FF => 9000")
    s.say("80 E0 0001 07 2F 0208 F1 00 FF 18 => 9000")
    s.say("80 E0 0002 0B 2F 0208 F0 00 FF 18 0000C350 => 9000")
    s.say("reset")
    s.say("00 A4 00 0C 02 3F01 => 9000")
    ed, ep = Purse(1, 0xFFFFFFFF), Purse(2, 0xC350)
    term = bytes.fromhex("330300000001")
    s.say("")
    s.say("# --- EP load of 200.00 yuan: the answer carries key version 02 and algorithm id 03")
    s.load(ep, 1, dlk, 20000, term, bytes.fromhex("20240301093000"), bytes.fromhex("CDEF4F20"))
    s.balance(ep)
    s.proof(ep)
    s.say("# over the maximum balance (500.00): refused at INITIALIZE")
    s.say(f"80 50 00 02 0B 01 {h(be(30001, 4))} {h(term)} 10 => 9401")
    s.say("# EP purchase of 4.00 yuan with the SM4 DPK")
    s.purchase(ep, 1, dpk, 400, term, bytes.fromhex("0000ABCD"), bytes.fromhex("20240302181500"),
               bytes.fromhex("9AC87503"))
    s.proof(ep)
    s.say("# the earlier load can no longer be proven: only the last transaction can")
    s.say("80 5A 00 02 02 0000 08 => 9406")
    s.say("# EP purchase of 1.50 yuan with the 3DES DPK (key index 02): algorithm id 00")
    s.purchase(ep, 2, dpk_3des, 150, term, bytes.fromhex("0000ABCE"), bytes.fromhex("20240302181700"),
               bytes.fromhex("01020304"))
    s.proof(ep)
    s.say("# a wrong MAC1 is refused and changes nothing: balance, counter, log, proof")
    s.purchase(ep, 1, dpk, 100, term, bytes.fromhex("0000ABCF"), bytes.fromhex("20240302182000"),
               bytes.fromhex("0A0B0C0D"), mac1_ok=False)
    s.balance(ep)
    s.proof(ep)
    s.say("80 54 01 00 0F 0000ABCF 20240302 182000 00000000 08 => 6901")
    s.say("# more than the balance")
    s.say(f"80 50 01 02 0B 01 {h(be(ep.balance + 1, 4))} {h(term)} 0F => 9401")
    s.say("")
    s.say("# --- the ED needs the PIN (use right F1)")
    s.say("80 5C 00 01 04 => 6982")
    s.say(f"80 50 00 01 0B 01 {h(be(100, 4))} {h(term)} 10 => 6982")
    s.say("80 5A 00 01 02 0000 08 => 6982")
    s.say("00 20 00 00 03 123456 => 9000")
    s.balance(ed)
    s.say("# an ED load of 1,000,000.00 yuan: an FMCOS-created purse has no maximum balance but 4 bytes")
    s.load(ed, 1, dlk, 100_000_000, term, bytes.fromhex("20240303080000"), bytes.fromhex("11223344"))
    s.say("# ED purchase (type 05), then a wrong MAC2 on a second ED load")
    s.purchase(ed, 1, dpk, 12345, term, bytes.fromhex("00000001"), bytes.fromhex("20240303081000"),
               bytes.fromhex("55667788"))
    s.load(ed, 1, dlk, 500, term, bytes.fromhex("20240303082000"), bytes.fromhex("99AABBCC"),
           mac2_ok=False)
    s.balance(ed)
    s.proof(ed)
    s.say("# the EP's proof is its own")
    s.proof(ep)
    s.say("# composite purchases are EP only")
    s.say(f"80 50 03 01 0B 01 {h(be(1, 4))} {h(term)} 0F => 6A86")
    s.say("# the shared log, newest first (EP and ED records interleaved)")
    s.read_log()
    s.say("# after a reset the ED is closed again; the EP answers")
    s.say("reset")
    s.say("00 A4 00 0C 02 3F01 => 9000")
    s.say("80 5C 00 01 04 => 6982")
    s.balance(ep)
    write("purse-sm4.apdu", s.lines)


def phone_transcript():
    dlk = Key(0x00, bytes.fromhex("374598B5C0B0EAE1E1D06609AC5BB369"), 0x01)
    dpk = Key(0x00, bytes.fromhex("A338D92A10C8285411E761445C831C22"), 0x01)
    dtk = Key(0x00, bytes.fromhex("CAA6025290114BFCC3C9043F70F7A07A"), 0x01)
    s = Script(dtk)
    s.lines = header("A transit card after twelve transactions, read the way a phone reads Chinese transit")
    s.say("# cards: SELECT the purse application by name, READ BINARY SFI 15, GET BALANCE")
    s.say("# 80 5C 00 02 04, READ RECORD SFI 18 records 1..10 (no PIN: the log is readable by anyone).")
    s.say("reset")
    aid = bytes.fromhex("A000000632010105")
    # issuer id 8 ‖ application type ‖ version ‖ application serial 10 ‖ start ‖ expiry ‖ 2 bytes
    # (FMCOS 2.0 appendix A-1)
    public = bytes.fromhex(
        "3303000000000000 01 01 00003303202400000001 20240101 20341231 0000".replace(" ", "")
    )
    assert len(public) == 30
    s.say("# --- DF 3F01 named A000000632010105 (FCI: EF 0015 in 9F0C), key file, 3DES keys, EF 0015,")
    s.say("# log 0018 (read F0), EP 0002 (maximum 1000.00 yuan), composite file 0017. The card's NVM")
    s.say("# cost per transaction (README, Measurements) is measured on this layout.")
    s.say(f"80 E0 3F01 10 38 0400 F0 F0 95 FFFF {h(aid)} => 9000")
    s.say("80 E0 0000 07 3F 0060 95 F0 FF FF => 9000")
    for kt, kid, key in (("3F", 1, dlk), ("3E", 1, dpk), ("34", 0, dtk)):
        s.say(f"80 D4 01 {kid:02X} 15 {kt} F0 F0 {key.version:02X} {key.alg_id:02X} {h(key.value)} => 9000")
    s.say("80 E0 0015 07 28 001E F0 F0 FF FF => 9000")
    s.say(f"00 D6 95 00 1E {h(public)} => 9000")
    s.say("80 E0 0018 07 2E 0A 17 F0 EF FF FF => 9000")
    s.say("# (the EP before 0017: so the 17 bytes a transaction rewrites lie in one 64-byte page)")
    s.say("80 E0 0002 0B 2F 0208 F0 00 FF 18 000186A0 => 9000")
    s.say("80 E0 0017 07 2C 02 30 F0 F0 FF FF => 9000")
    s.say(f"00 E2 00 B8 30 022E{'00' * 46} => 9000")
    fci = bytes([0x84, len(aid)]) + aid + bytes([0xA5, 3 + len(public), 0x9F, 0x0C, len(public)]) + public
    fci = bytes([0x6F, len(fci)]) + fci
    s.say("reset")
    s.say(f"00 A4 04 00 08 {h(aid)} => 61{len(fci):02X}")
    s.say("")
    s.say("# --- twelve transactions: three loads, six bus fares, three metro rides (composite: the")
    s.say("# ride record cached, then the debit)")
    ep = Purse(2, 100_000)
    bus = bytes.fromhex("330300000101")
    metro = bytes.fromhex("330300000201")
    host = bytes.fromhex("330300009001")
    random = 0x10203040
    seq = 1
    day = 1

    def when(hh):
        return bytes.fromhex(f"202403{day:02d}{hh:02d}0000")

    for n in range(12):
        random = (random * 1103515245 + 12345) & 0xFFFFFFFF
        r = be(random, 4)
        if n % 4 == 0:
            s.load(ep, 1, dlk, 5000, host, when(8), r)
        elif n % 4 == 3:
            ride = bytes.fromhex("022E") + bytes([n]) + bytes(45)
            capp = f"80 DC 02 B8 30 {h(ride)} => 9000"
            s.purchase(ep, 1, dpk, 300, metro, be(seq, 4), when(9), r, capp=capp)
            seq += 1
        else:
            s.purchase(ep, 1, dpk, 200, bus, be(seq, 4), when(10), r)
            seq += 1
        day += 1
    s.say("")
    s.say("# --- the phone, after the card was presented again")
    s.say("reset")
    s.say(f"00 A4 04 00 08 {h(aid)} 00 => {h(fci)} 9000")
    s.say(f"00 B0 95 00 00 => {h(public)} 9000")
    s.balance(ep)
    s.read_log()
    s.say("# the ride record of the last metro trip")
    s.say(f"00 B2 02 B8 00 => 022E0B{'00' * 45} 9000")
    write("purse-phone-reader.apdu", s.lines)


def ed_transcript():
    dlk = Key(0x00, bytes.fromhex("374598B5C0B0EAE1E1D06609AC5BB369"), 0x01)
    dpk = Key(0x00, bytes.fromhex("A338D92A10C8285411E761445C831C22"), 0x01)
    dulk = Key(0x00, bytes.fromhex("6B2E19C48A07F35D90E4C1A7285B3F6D"), 0x01)
    dulk_sm4 = Key(0x03, bytes.fromhex("2F4E6D8CABCAE9081726354453627180"), 0x02)
    dtk = Key(0x00, bytes.fromhex("CAA6025290114BFCC3C9043F70F7A07A"), 0x01)
    s = Script(dtk)
    s.lines = header("An electronic deposit (ED): unload and cash withdrawal (FMCOS 2.0 §8.10, §8.11) next to")
    s.say("# loads and purchases, their refusals, GET TRANSACTION PROOF of types 03 and 04, the log.")
    s.say("reset")
    s.say("# --- DF 3F01: key file; PIN; 3DES DLK 3F 01, DPK 3E 01, unload key 3D 01, an SM4 unload key")
    s.say("# 3D 02 (version 02, algorithm 03), DTK 34 00; log 0018; the ED 0001 behind the PIN.")
    s.say("80 E0 3F01 14 38 0300 F0 F0 95 FFFF 4349545A2E4445504F534954 => 9000")
    s.say("80 E0 0000 07 3F 0090 95 F0 FF FF => 9000")
    s.say("80 D4 01 00 0D 3A F0 EF 01 33 123456FFFFFFFFFF => 9000")
    for kt, kid, key in (("3F", 1, dlk), ("3E", 1, dpk), ("3D", 1, dulk), ("3D", 2, dulk_sm4),
                         ("34", 0, dtk)):
        s.say(f"80 D4 01 {kid:02X} 15 {kt} F0 F0 {key.version:02X} {key.alg_id:02X} {h(key.value)} => 9000")
    s.say("80 E0 0018 07 2E 0A 17 F0 EF FF FF => 9000")
    s.say("80 E0 0001 07 2F 0208 F1 00 FF 18 => 9000")
    s.say("reset")
    s.say("00 A4 00 0C 02 3F01 => 9000")
    s.say("# the ED needs the PIN for every purse command, unload and cash withdrawal included")
    term = bytes.fromhex("330300000001")
    s.say(f"80 50 05 01 0B 01 {h(be(100, 4))} {h(term)} 10 => 6982")
    s.say(f"80 50 02 01 0B 01 {h(be(100, 4))} {h(term)} 0F => 6982")
    s.say("00 20 00 00 03 123456 => 9000")
    ed = Purse(1, 0xFFFFFFFF)
    s.say("")
    s.say("# --- a load of 500.00 yuan, then an unload of 120.00 back to the bank account")
    s.load(ed, 1, dlk, 50000, term, bytes.fromhex("20240401090000"), bytes.fromhex("0A1B2C3D"))
    s.unload(ed, 1, dulk, 12000, term, bytes.fromhex("20240401091500"), bytes.fromhex("4E5F6071"))
    s.balance(ed)
    s.say("# the unload's proof: MAC2 (received) || MAC3 (answered), under type 03 and its online counter")
    s.proof(ed)
    s.say("# an unload with the SM4 unload key (key index 02): algorithm 03 in the answer")
    s.unload(ed, 2, dulk_sm4, 3000, term, bytes.fromhex("20240401092000"), bytes.fromhex("8293A4B5"))
    s.proof(ed)
    s.say("")
    s.say("# --- a cash withdrawal of 200.00 yuan (type 04, under the DPK, offline counter)")
    s.cash_withdraw(ed, 1, dpk, 20000, term, bytes.fromhex("00000101"),
                    bytes.fromhex("20240402100000"), bytes.fromhex("C6D7E8F9"))
    s.balance(ed)
    s.proof(ed)
    s.say("# and a purchase: the offline counter is shared with cash withdrawals")
    s.purchase(ed, 1, dpk, 1550, term, bytes.fromhex("00000102"), bytes.fromhex("20240402101500"),
               bytes.fromhex("01234567"))
    s.proof(ed)
    s.say("")
    s.say("# --- refusals change nothing")
    s.say("# more than the balance: at INITIALIZE")
    s.say(f"80 50 05 01 0B 01 {h(be(ed.balance + 1, 4))} {h(term)} 10 => 9401")
    s.say(f"80 50 02 01 0B 01 {h(be(ed.balance + 1, 4))} {h(term)} 0F => 9401")
    s.say("# no unload key 3D with index 07")
    s.say(f"80 50 05 01 0B 07 {h(be(1, 4))} {h(term)} 10 => 9403")
    s.say("# unload, cash withdrawal and the overdraft update are ED only (P2 02: 6A86); this card has")
    s.say("# no overdraft key 3C (9403)")
    s.say(f"80 50 05 02 0B 01 {h(be(1, 4))} {h(term)} 10 => 6A86")
    s.say(f"80 50 02 02 0B 01 {h(be(1, 4))} {h(term)} 0F => 6A86")
    s.say(f"80 50 04 02 07 01 {h(term)} 13 => 6A86")
    s.say(f"80 50 04 01 07 01 {h(term)} 13 => 9403")
    s.say("# a wrong MAC2 on an unload: 9302, and the session is gone")
    s.unload(ed, 1, dulk, 100, term, bytes.fromhex("20240403080000"), bytes.fromhex("11111111"),
             mac2_ok=False)
    s.say("80 54 03 00 0B 20240403 080000 00000000 04 => 6901")
    s.say("# a wrong MAC1 on a cash withdrawal: 9302")
    s.cash_withdraw(ed, 1, dpk, 100, term, bytes.fromhex("00000103"),
                    bytes.fromhex("20240403081000"), bytes.fromhex("22222222"), mac1_ok=False)
    s.balance(ed)
    s.proof(ed)
    s.say("# CREDIT FOR UNLOAD only after INITIALIZE FOR UNLOAD, CREDIT FOR LOAD only after a load's,")
    s.say("# DEBIT only after a purchase's or cash withdrawal's")
    random = bytes.fromhex("33333333")
    s.say(f"random {h(random)}")
    s.say(f"80 50 00 01 0B 01 {h(be(100, 4))} {h(term)} 10 => "
          f"{h(be(ed.balance, 4))} {h(be(ed.online, 2))} 01 00 {h(random)} xxxxxxxx 9000")
    s.say("80 54 03 00 0B 20240403 090000 00000000 04 => 6901")
    s.say(f"80 50 05 01 0B 01 {h(be(100, 4))} {h(term)} 10 => "
          f"{h(be(ed.balance, 4))} {h(be(ed.online, 2))} 01 00 {h(random)} xxxxxxxx 9000")
    s.say("80 52 00 00 0B 20240403 090000 00000000 04 => 6901")
    s.say(f"80 50 05 01 0B 01 {h(be(100, 4))} {h(term)} 10 => "
          f"{h(be(ed.balance, 4))} {h(be(ed.online, 2))} 01 00 {h(random)} xxxxxxxx 9000")
    s.say("80 54 01 00 0F 00000104 20240403 090000 00000000 08 => 6901")
    s.say("# wrong lengths: CREDIT FOR UNLOAD takes 11 bytes and answers 4")
    s.say("80 54 03 00 0A 20240403 090000 000000 04 => 6700")
    s.say("80 54 03 00 0B 20240403 090000 00000000 02 => 6700")
    s.balance(ed)
    s.say("# older transactions cannot be proven; types 03 and 04 with a counter never used: 9406")
    s.say("80 5A 00 03 02 0000 08 => 9406")
    s.say("80 5A 00 04 02 0000 08 => 9406")
    s.say("# the log, newest first: purchase, cash withdrawal, two unloads, the load")
    s.read_log()
    write("purse-ed-unload-cash.apdu", s.lines)


if __name__ == "__main__":
    sm4_transcript()
    phone_transcript()
    ed_transcript()
