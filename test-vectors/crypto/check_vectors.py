#!/usr/bin/env python3
"""Independent check of every vector in test-vectors/crypto/*.toml.

A second implementation of the card's crypto formulas (apdu-specs/crypto.md), written in Python
over pyca/cryptography's DES/3DES, SM4, AES and CMAC, shares no code with card-os. Every value in
the vector files that no public source lists was computed with the functions below, and this script
recomputes every vector, public or ours, so the two implementations are checked against each other.

    pip install cryptography      # 48 or newer (3DES lives in cryptography.hazmat.decrepit)
    python3 test-vectors/crypto/check_vectors.py

Exit status 0 when every vector matches; unknown kinds or unused fields are errors too.
"""

import pathlib
import sys
import tomllib

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac as pyca_cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# --- block ciphers ------------------------------------------------------------------------------


def algorithm_of(alg_id: int, key: bytes) -> str:
    """The algorithm an algorithm-id byte names for this key (apdu-specs/crypto.md §1)."""
    if alg_id in (0x00, 0x01) and len(key) == 8:
        return "des"
    if alg_id in (0x00, 0x01) and len(key) == 16:
        return "3des"
    if alg_id == 0x03 and len(key) == 16:
        return "sm4"
    if alg_id == 0x04 and len(key) == 16:
        return "aes"
    raise ValueError(f"no algorithm for id {alg_id:02X} with a {len(key)}-byte key")


def block_size(alg: str) -> int:
    return 8 if alg in ("des", "3des") else 16


def _pyca(alg: str, key: bytes):
    if alg == "des":
        return TripleDES(key * 3)  # K1 = K2 = K3: single DES
    if alg == "3des":
        return TripleDES(key + key[:8])  # keying option 2: K3 = K1
    if alg == "sm4":
        return algorithms.SM4(key)
    if alg == "aes":
        return algorithms.AES(key)
    raise ValueError(alg)


def ecb_encrypt(alg: str, key: bytes, data: bytes) -> bytes:
    enc = Cipher(_pyca(alg, key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def ecb_decrypt(alg: str, key: bytes, data: bytes) -> bytes:
    dec = Cipher(_pyca(alg, key), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def pad_method2(data: bytes, size: int) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 80, then 00 to a block boundary (always adds a byte)."""
    data = data + b"\x80"
    return data + b"\x00" * (-len(data) % size)


# --- MACs -----------------------------------------------------------------------------------


def cbc_chain(alg: str, key: bytes, iv: bytes, data: bytes) -> bytes:
    size = block_size(alg)
    state = iv
    for i in range(0, len(data), size):
        state = ecb_encrypt(alg, key, xor(state, data[i : i + size]))
    return state


def mac(alg: str, key: bytes, iv, message: bytes) -> bytes:
    """The card's 4-byte MAC for a key of `alg`; iv None means MacIv::Zero."""
    size = block_size(alg)
    if iv is not None and len(iv) > size:
        raise ValueError("IV longer than a block")
    if alg == "aes":
        c = pyca_cmac.CMAC(algorithms.AES(key))
        if iv is not None:
            c.update(iv + b"\x00" * (size - len(iv)))  # ours: the IV block is MAC'ed first
        c.update(message)
        return c.finalize()[:4]
    start = (iv or b"") + b"\x00" * (size - len(iv or b""))
    padded = pad_method2(message, size)
    if alg == "des":
        return cbc_chain("des", key, start, padded)[:4]
    if alg == "3des":  # ISO/IEC 9797-1 MAC algorithm 3
        last = cbc_chain("des", key[:8], start, padded)
        return ecb_encrypt("des", key[:8], ecb_decrypt("des", key[8:], last))[:4]
    if alg == "sm4":  # LD/T 32 part 4 §8.2.4.2: XOR fold of the four words
        last = cbc_chain("sm4", key, start, padded)
        out = bytes(4)
        for i in range(0, 16, 4):
            out = xor(out, last[i : i + 4])
        return out
    raise ValueError(alg)


# --- line encryption, session keys, auth data, diversification --------------------------------


def line_encrypt(alg: str, key: bytes, data: bytes, padding: str) -> bytes:
    size = block_size(alg)
    plain = bytes([len(data)]) + data
    if padding == "always" or len(plain) % size != 0:
        plain = pad_method2(plain, size)
    elif padding != "when_unaligned":
        raise ValueError(padding)
    return ecb_encrypt(alg, key, plain)


def session_algorithm(alg: str) -> str:
    return "des" if alg in ("des", "3des") else alg


def session_key(alg: str, key: bytes, data: bytes) -> bytes:
    size = block_size(alg)
    if not 0 < len(data) <= size:
        raise ValueError("session-key input length")
    return ecb_encrypt(alg, key, data + b"\x00" * (size - len(data)))


def authentication_data(sk_alg: str, sk: bytes, original: bytes) -> bytes:
    if block_size(sk_alg) == 8:
        return ecb_encrypt(sk_alg, sk, original)
    block = ecb_encrypt(sk_alg, sk, original + bytes(8))
    return xor(block[:8], block[8:])


def challenge_cryptogram(alg: str, key: bytes, challenge: bytes) -> bytes:
    size = block_size(alg)
    return ecb_encrypt(alg, key, challenge + b"\x00" * (size - len(challenge)))


def diversify(alg: str, master: bytes, factor: bytes) -> bytes:
    if alg == "des":
        return ecb_encrypt("des", master, factor)
    complement = bytes(b ^ 0xFF for b in factor)
    return ecb_encrypt(alg, master, factor + complement)


def tac_key(alg: str, dtk: bytes):
    if alg == "3des":
        return "des", xor(dtk[:8], dtk[8:])
    return alg, dtk


def counter_rng(seed: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += ecb_encrypt("sm4", seed, counter.to_bytes(16, "big"))
        counter += 1
    return out[:length]


# --- the checker ----------------------------------------------------------------------------


class Vector:
    """One [[vector]] table; records which fields were read so unused ones are reported."""

    def __init__(self, table: dict, where: str):
        self.table = table
        self.where = where
        self.used = {"kind", "name", "source", "note"}

    def has(self, field: str) -> bool:
        return field in self.table

    def text(self, field: str) -> str:
        self.used.add(field)
        return self.table[field]

    def hex(self, field: str) -> bytes:
        return bytes.fromhex("".join(self.text(field).split()))

    def hex_list(self, field: str) -> list:
        self.used.add(field)
        return [bytes.fromhex("".join(p.split())) for p in self.table[field]]

    def byte(self, field: str) -> int:
        (value,) = self.hex(field)
        return value

    def check(self, what: str, got: bytes, want: bytes):
        if got != want:
            raise AssertionError(f"{self.where}: {what}: got {got.hex().upper()}, want {want.hex().upper()}")

    def finish(self):
        unused = set(self.table) - self.used
        if unused:
            raise AssertionError(f"{self.where}: fields not checked: {sorted(unused)}")
        for field in ("name", "source"):
            if not isinstance(self.table.get(field), str) or not self.table[field]:
                raise AssertionError(f"{self.where}: missing {field}")


def check(v: Vector):
    kind = v.text("kind")
    if kind == "cipher":
        key = v.hex("key")
        alg = algorithm_of(v.byte("alg_id"), key)
        plain, want = v.hex("plaintext"), v.hex("ciphertext")
        v.check("encrypt", ecb_encrypt(alg, key, plain), want)
        v.check("decrypt", ecb_decrypt(alg, key, want), plain)
    elif kind == "challenge_cryptogram":
        key = v.hex("key")
        alg = algorithm_of(v.byte("alg_id"), key)
        v.check("cryptogram", challenge_cryptogram(alg, key, v.hex("challenge")), v.hex("cryptogram"))
    elif kind == "mac":
        key = v.hex("key")
        alg = algorithm_of(v.byte("alg_id"), key)
        iv = v.hex("iv") if v.has("iv") else None
        v.check("mac", mac(alg, key, iv, b"".join(v.hex_list("message"))), v.hex("mac"))
    elif kind == "aes_cmac":
        c = pyca_cmac.CMAC(algorithms.AES(v.hex("key")))
        c.update(b"".join(v.hex_list("message")))
        v.check("tag", c.finalize(), v.hex("tag"))
    elif kind == "line_encrypt":
        key = v.hex("key")
        alg = algorithm_of(v.byte("alg_id"), key)
        got = line_encrypt(alg, key, v.hex("data"), v.text("padding"))
        v.check("ciphertext", got, v.hex("ciphertext"))
    elif kind == "authentication_data":
        key = v.hex("key")
        alg = algorithm_of(v.byte("alg_id"), key)
        sk = session_key(alg, key, v.hex("session_input"))
        v.check("session key", sk, v.hex("session_key"))
        auth = authentication_data(session_algorithm(alg), sk, v.hex("original"))
        v.check("authentication data", auth, v.hex("auth_data"))
    elif kind == "diversify":
        key = v.hex("master")
        alg = algorithm_of(v.byte("alg_id"), key)
        for factor in v.hex_list("factors"):
            key = diversify(alg, key, factor)
        v.check("derived", key, v.hex("derived"))
    elif kind == "pboc_load":
        check_load(v)
    elif kind == "pboc_purchase":
        check_purchase(v)
    elif kind == "counter_rng":
        want = v.hex("output")
        v.check("stream", counter_rng(v.hex("seed"), len(want)), want)
    else:
        raise AssertionError(f"{v.where}: unknown kind {kind!r}")
    v.finish()


def check_load(v: Vector):
    dlk, dtk = v.hex("dlk"), v.hex("dtk")
    alg = algorithm_of(v.byte("alg_id"), dlk)
    sk_alg = session_algorithm(alg)
    counter = v.hex("online_counter")
    seslk = session_key(alg, dlk, v.hex("random") + counter + b"\x80\x00")
    v.check("SESLK", seslk, v.hex("seslk"))
    amount, txn, term = v.hex("amount"), v.hex("txn_type"), v.hex("terminal_id")
    date_time = v.hex("date") + v.hex("time")
    v.check("MAC1", mac(sk_alg, seslk, None, v.hex("old_balance") + amount + txn + term), v.hex("mac1"))
    v.check("MAC2", mac(sk_alg, seslk, None, amount + txn + term + date_time), v.hex("mac2"))
    t_alg, t_key = tac_key(alg, dtk)
    v.check("TAC key", t_key, v.hex("tac_key"))
    tac_input = v.hex("new_balance") + counter + amount + txn + term + date_time
    v.check("TAC", mac(t_alg, t_key, None, tac_input), v.hex("tac"))


def check_purchase(v: Vector):
    dpk, dtk = v.hex("dpk"), v.hex("dtk")
    alg = algorithm_of(v.byte("alg_id"), dpk)
    sk_alg = session_algorithm(alg)
    seq = v.hex("terminal_seq")
    sespk = session_key(alg, dpk, v.hex("random") + v.hex("offline_counter") + seq[2:])
    v.check("SESPK", sespk, v.hex("sespk"))
    amount, txn, term = v.hex("amount"), v.hex("txn_type"), v.hex("terminal_id")
    date_time = v.hex("date") + v.hex("time")
    if v.has("mac1"):
        v.check("MAC1", mac(sk_alg, sespk, None, amount + txn + term + date_time), v.hex("mac1"))
    v.check("MAC2", mac(sk_alg, sespk, None, amount), v.hex("mac2"))
    t_alg, t_key = tac_key(alg, dtk)
    v.check("TAC key", t_key, v.hex("tac_key"))
    v.check("TAC", mac(t_alg, t_key, None, amount + txn + term + seq + date_time), v.hex("tac"))


def main() -> int:
    folder = pathlib.Path(__file__).resolve().parent
    total = 0
    for path in sorted(folder.glob("*.toml")):
        with path.open("rb") as f:
            data = tomllib.load(f)
        extra = set(data) - {"vector"}
        if extra or not data.get("vector"):
            raise AssertionError(f"{path.name}: expected only [[vector]] tables, got {sorted(data)}")
        for i, table in enumerate(data["vector"]):
            check(Vector(table, f"{path.name} #{i} {table.get('name', '?')}"))
            total += 1
    print(f"{total} vectors OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
