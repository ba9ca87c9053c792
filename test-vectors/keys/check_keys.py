#!/usr/bin/env python3
"""Independent check of test-vectors/keys/vectors.toml and the development key sets.

A second implementation of the key store's rules (apdu-specs/keys.md): the social-security and
purse diversification factors, diversified card keys, WRITE KEY data, authentication, line
protection and purse MACs. The block-cipher and MAC primitives come from
test-vectors/crypto/check_vectors.py (Python over pyca/cryptography); nothing is shared with
card-os or host-lib. Every value in vectors.toml was computed with this script.

    pip install cryptography      # 48 or newer
    python3 test-vectors/keys/check_keys.py           # check; exit status 1 on any mismatch
    python3 test-vectors/keys/check_keys.py --fill    # print the computed value of every "?"

It also checks that both development key sets say `development = true` and that every key's
`kcv` matches its value.
"""

import pathlib
import sys
import tomllib

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "crypto"))

import check_vectors as c  # noqa: E402  (the crypto vectors' independent primitives)

ALGORITHMS = {"des": "des", "3des": "3des", "sm4": "sm4", "aes128": "aes"}
ALG_IDS = {"des": 0x01, "3des": 0x01, "sm4": 0x03, "aes": 0x04}


def unhex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def load_key_set(name: str) -> dict:
    with (HERE / name).open("rb") as f:
        data = tomllib.load(f)
    if data["key_set"]["development"] is not True:
        raise AssertionError(f"{name}: a development key set must say development = true")
    keys = {}
    for key_name, k in data["keys"].items():
        alg = ALGORITHMS[k["algorithm"]]
        value = unhex(k["value"])
        kcv = c.ecb_encrypt(alg, value, bytes(c.block_size(alg)))[:3]
        if kcv.hex().upper() != k["kcv"].upper():
            raise AssertionError(f"{name}: key {key_name}: kcv {k['kcv']} != {kcv.hex().upper()}")
        keys[key_name] = (alg, value, k["diversification"], k["version"])
    return keys


# --- factors (apdu-specs/keys.md §3) ------------------------------------------------------------


def factors(card: dict) -> dict:
    city = card["city_code"]
    card_id = unhex(card["card_id"])
    l1 = (city[:2] + "0000sh").encode()
    if city.startswith("33"):  # Zhejiang: the first 2 bytes of the card id, as digits, then 00sx
        l2 = (card_id[:2].hex() + "00sx").encode()
    else:
        l2 = (city + "sx").encode()
    hist = unhex(card["historical"])
    assert len(hist) == 13
    l3 = hist[5:13]  # T6..TD
    purse = unhex(card["application_serial"])[-8:]
    return {"l1": l1, "l2": l2, "l3": l3, "purse": purse}


def card_key(key_set: dict, card: dict, name: str):
    alg, value, rule, version = key_set[name]
    f = factors(card)
    levels = {"none": [], "application-serial": [f["purse"]], "social-security": [f["l1"], f["l2"], f["l3"]]}
    for factor in levels[rule]:
        value = c.diversify(alg, value, factor)
    return alg, value, version


def layout_record(layout: str, alg: str, key: bytes, version: int) -> bytes:
    words = layout.split()
    if "key" not in words:
        words.append("key")
    out = b""
    for word in words:
        if word == "version":
            out += bytes([version])
        elif word == "alg":
            out += bytes([ALG_IDS[alg]])
        elif word == "alg?":  # the algorithm id after SM4/AES keys only (apdu-specs/security.md)
            out += b"" if alg in ("des", "3des") else bytes([ALG_IDS[alg]])
        elif word == "key":
            out += key
        else:
            out += bytes.fromhex(word)
    return out


def line_mac(alg: str, key: bytes, messaging: str, challenge: bytes, header: bytes, data: bytes) -> bytes:
    message = header + bytes([len(data) + 4]) + data
    if messaging == "fmcos":
        return c.mac(alg, key, challenge, message)
    sk = c.session_key(alg, key, challenge)
    return c.mac(c.session_algorithm(alg), sk, None, message)


def line_encrypt(alg: str, key: bytes, messaging: str, challenge: bytes, data: bytes) -> bytes:
    if messaging == "fmcos":
        return c.line_encrypt(alg, key, data, "when_unaligned")
    sk = c.session_key(alg, key, challenge)
    return c.line_encrypt(c.session_algorithm(alg), sk, data, "always")


# --- the checker --------------------------------------------------------------------------------


def compute(v: dict, cards: dict, sets: dict) -> dict:
    kind = v["kind"]
    card = cards[v["card"]]
    if kind == "factors":
        return factors(card)
    ks = sets[v["key_set"]]
    if kind == "derived":
        return {"derived": card_key(ks, card, v["key"])[1]}
    if kind == "write_key":
        alg, key, version = card_key(ks, card, v["key"])
        record = layout_record(v["layout"], alg, key, version)
        p_alg, p_key, _ = card_key(ks, card, v["protect_with"])
        challenge, header = unhex(v["challenge"]), unhex(v["header"])
        cipher = line_encrypt(p_alg, p_key, v["messaging"], challenge, record)
        return {"data": cipher + line_mac(p_alg, p_key, v["messaging"], challenge, header, cipher)}
    if kind == "external_auth":
        alg, key, _ = card_key(ks, card, v["key"])
        return {"cryptogram": c.challenge_cryptogram(alg, key, unhex(v["challenge"]))}
    if kind == "ldt32_external_auth":
        alg, key, _ = card_key(ks, card, v["key"])
        sk = c.session_key(alg, key, unhex(v["challenge"]))
        return {"auth": c.authentication_data(c.session_algorithm(alg), sk, unhex(v["original"]))}
    if kind == "ldt32_internal_auth":
        alg, key, _ = card_key(ks, card, v["key"])
        sk = c.session_key(alg, key, unhex(v["session_input"]))
        return {"answer": c.authentication_data(c.session_algorithm(alg), sk, unhex(v["original"]))}
    if kind == "line_mac":
        alg, key, _ = card_key(ks, card, v["key"])
        mac = line_mac(alg, key, v["messaging"], unhex(v["challenge"]), unhex(v["header"]), unhex(v["data"]))
        return {"mac": mac}
    if kind == "pboc_load":
        alg, dlk, version = card_key(ks, card, "DLK")
        t_alg, dtk, _ = card_key(ks, card, "DTK")
        assert version == int(v["key_version"], 16) and ALG_IDS[alg] == int(v["alg_id"], 16)
        ctr, amount, txn, term = (unhex(v[f]) for f in ("online_counter", "amount", "txn_type", "terminal_id"))
        dt = unhex(v["date"]) + unhex(v["time"])
        old = unhex(v["old_balance"])
        seslk = c.session_key(alg, dlk, unhex(v["random"]) + ctr + b"\x80\x00")
        sk_alg = c.session_algorithm(alg)
        mac1 = c.mac(sk_alg, seslk, None, old + amount + txn + term)
        new = (int.from_bytes(old, "big") + int.from_bytes(amount, "big")).to_bytes(4, "big")
        tk_alg, tk = c.tac_key(t_alg, dtk)
        init = old + ctr + unhex(v["key_version"]) + unhex(v["alg_id"]) + unhex(v["random"]) + mac1
        return {
            "init_response": init,
            "mac1": mac1,
            "mac2": c.mac(sk_alg, seslk, None, amount + txn + term + dt),
            "tac": c.mac(tk_alg, tk, None, new + ctr + amount + txn + term + dt),
        }
    if kind == "pboc_purchase":
        alg, dpk, version = card_key(ks, card, "DPK")
        t_alg, dtk, _ = card_key(ks, card, "DTK")
        assert version == int(v["key_version"], 16) and ALG_IDS[alg] == int(v["alg_id"], 16)
        ctr, amount, txn, term, seq = (
            unhex(v[f]) for f in ("offline_counter", "amount", "txn_type", "terminal_id", "terminal_seq")
        )
        dt = unhex(v["date"]) + unhex(v["time"])
        sespk = c.session_key(alg, dpk, unhex(v["random"]) + ctr + seq[2:])
        sk_alg = c.session_algorithm(alg)
        tk_alg, tk = c.tac_key(t_alg, dtk)
        init = unhex(v["balance"]) + ctr + bytes(3) + unhex(v["key_version"]) + unhex(v["alg_id"]) + unhex(v["random"])
        return {
            "init_response": init,
            "mac1": c.mac(sk_alg, sespk, None, amount + txn + term + dt),
            "mac2": c.mac(sk_alg, sespk, None, amount),
            "tac": c.mac(tk_alg, tk, None, amount + txn + term + seq + dt),
        }
    raise AssertionError(f"unknown kind {kind!r}")


def main() -> int:
    fill = "--fill" in sys.argv[1:]
    with (HERE / "vectors.toml").open("rb") as f:
        data = tomllib.load(f)
    cards = {card["name"]: card for card in data["card"]}
    sets = {name: load_key_set(name) for name in ("dev.toml", "dev-sm4.toml")}
    failures = 0
    for i, v in enumerate(data["vector"]):
        where = f"vectors.toml #{i} {v['name']}"
        for field, got in compute(v, cards, sets).items():
            want = v[field]
            got_hex = got.hex().upper()
            if want == "?":
                print(f"{where}: {field} = \"{got_hex}\"")
                failures += 0 if fill else 1
            elif unhex(want) != got:
                print(f"{where}: {field}: got {got_hex}, want {want}")
                failures += 1
    if failures:
        print(f"{failures} mismatches")
        return 1
    print(f"{len(data['vector'])} key vectors OK, {sum(len(s) for s in sets.values())} development keys OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
