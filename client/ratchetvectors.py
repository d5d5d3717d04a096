"""`python -m client.ratchetvectors [PATH]`: write session test vectors for other clients.

A signed prekey bundle (and a forged one), X3DH from both sides (with and without a one-time
prekey), and a Double Ratchet conversation of 12 messages each way with late, reordered,
replayed, tampered and too-far-ahead deliveries. The ratchet keys each side generated are
listed in order, so a client that takes its new keys from that list must produce every
header and ciphertext byte for byte, and open every delivery to its plaintext or to the
named error. tests/unit/test_ratchet_vectors.py checks the committed file; the browser
proves itself against it (tests/e2e/test_web_ratchet_units.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from contracts.prekeys import MAX_SKIP, bundle_signing_input

from . import crypto
from .ratchet import (
    Header,
    RatchetError,
    Session,
    private_raw,
    public_raw,
    x3dh_initiate,
    x3dh_respond,
)
from .sessions import sign_bundle
from .vectors import ALICE, BOB, VECTORS_DIR, _pem

DEFAULT_PATH = VECTORS_DIR / "ratchet-v1.json"


def _pair(key: X25519PrivateKey) -> dict[str, str]:
    return {"private": crypto.b64u(private_raw(key)), "public": crypto.b64u(public_raw(key))}


class Recorder:
    """A key source that records what it generated, for the vector's key lists."""

    def __init__(self) -> None:
        self.made: list[dict[str, str]] = []

    def __call__(self) -> X25519PrivateKey:
        key = X25519PrivateKey.generate()
        self.made.append(_pair(key))
        return key


def replay_keys(pairs: list[dict[str, str]]) -> Iterator[X25519PrivateKey]:
    for pair in pairs:
        yield X25519PrivateKey.from_private_bytes(crypto.unb64u(pair["private"]))


def build() -> dict[str, Any]:
    device = crypto.DeviceKeys.generate()
    a_ik, a_ek = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    b_ik, b_spk, b_opk = (X25519PrivateKey.generate() for _ in range(3))
    bundle = sign_bundle(device, BOB, b_ik, 7, b_spk)
    forged = {**bundle, "spk": {"id": 7, "key": crypto.b64u(public_raw(a_ek))}}
    sk, ad = x3dh_initiate(a_ik, a_ek, public_raw(b_ik), public_raw(b_spk), public_raw(b_opk))
    assert (sk, ad) == x3dh_respond(b_ik, b_spk, b_opk, public_raw(a_ik), public_raw(a_ek))
    sk_no_opk, _ = x3dh_initiate(a_ik, a_ek, public_raw(b_ik), public_raw(b_spk), None)
    prekey = {"ik": crypto.b64u(public_raw(a_ik)), "ek": crypto.b64u(public_raw(a_ek)),
              "spk": 7, "opk": 8}

    keys = {"alice": Recorder(), "bob": Recorder()}
    sessions = {"alice": Session.initiate(sk, ad, public_raw(b_spk), prekey, keys["alice"]),
                "bob": Session.respond(sk, ad, b_spk, keys["bob"])}
    sent: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    def send(by: str, count: int) -> None:
        for _ in range(count):
            mine = sum(1 for m in sent if m["from"] == by) + 1
            text = f"{by} {mine}" + (" — ünïcödé ✓" if mine == 1 else "")
            header, ct = sessions[by].encrypt(text.encode())
            sent.append({"from": by, "name": f"{by[0]}{mine}", "pt_b64u": crypto.b64u(
                text.encode()), "header": header.wire(), "ct_b64u": crypto.b64u(ct)})
            events.append({"op": "send", "by": by, "msg": len(sent) - 1})

    def recv(by: str, *names: str) -> None:
        for name in names:
            index = next(i for i, m in enumerate(sent) if m["name"] == name)
            message = sent[index]
            plaintext = sessions[by].decrypt(Header.from_wire(message["header"]),
                                             crypto.unb64u(message["ct_b64u"]))
            assert crypto.b64u(plaintext) == message["pt_b64u"]
            events.append({"op": "recv", "by": by, "msg": index})

    def fails(by: str, code: str, header: dict[str, Any], ct_b64u: str) -> None:
        try:
            sessions[by].decrypt(Header.from_wire(header), crypto.unb64u(ct_b64u))
        except RatchetError as exc:
            assert exc.code == code, exc
            events.append({"op": "recv", "by": by, "header": header, "ct_b64u": ct_b64u,
                           "error": code})
            return
        raise AssertionError(f"{code} expected")

    def message(name: str) -> dict[str, Any]:
        return next(m for m in sent if m["name"] == name)

    send("alice", 3)
    recv("bob", "a1", "a3", "a2")
    send("bob", 2)
    recv("alice", "b2", "b1")
    send("alice", 3)
    recv("bob", "a4", "a6")
    send("bob", 3)
    recv("alice", "b3", "b4", "b5")
    recv("bob", "a5")  # late, from a chain Bob has since ratcheted past
    send("alice", 4)
    recv("bob", "a7", "a8", "a9", "a10")
    send("bob", 5)
    recv("alice", "b10", "b6", "b7", "b8", "b9")
    fails("bob", "key_gone", message("a3")["header"], message("a3")["ct_b64u"])  # a replay
    send("bob", 1)
    b11 = message("b11")
    ct = crypto.unb64u(b11["ct_b64u"])
    tampered = crypto.b64u(bytes([ct[0] ^ 1]) + ct[1:])
    fails("alice", "bad_message", b11["header"], tampered)
    recv("alice", "b11")  # a failed open leaves the session as it was
    far = {**b11["header"], "n": b11["header"]["n"] + MAX_SKIP + 2}
    fails("alice", "too_far_ahead", far, b11["ct_b64u"])
    send("alice", 2)
    recv("bob", "a11", "a12")
    send("bob", 1)
    recv("alice", "b12")
    return {
        "version": 1,
        "note": "Test keys only. Prekey bundles, X3DH and the Double Ratchet as documented "
                "in docs/sessions.md.",
        "alice": {"user": ALICE, "ik": _pair(a_ik), "ek": _pair(a_ek)},
        "bob": {"user": BOB, "kid": device.kid, "sig_spki": device.sig_spki,
                "sig_private_pkcs8_pem": _pem(device.sig), "ik": _pair(b_ik),
                "spk": {"id": 7, **_pair(b_spk)}, "opk": {"id": 8, **_pair(b_opk)}},
        "bundle": bundle,
        "bundle_signing_input_b64u": crypto.b64u(bundle_signing_input(bundle)),
        "forged_bundle": forged,
        "x3dh": {"sk_b64u": crypto.b64u(sk), "ad_b64u": crypto.b64u(ad),
                 "sk_without_opk_b64u": crypto.b64u(sk_no_opk), "prekey": prekey},
        "ratchet": {"keys": {who: rec.made for who, rec in keys.items()}, "messages": sent,
                    "events": events},
    }


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    path.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n")
    print(path)


if __name__ == "__main__":
    main()
