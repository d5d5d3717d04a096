"""`python -m client.vectors [PATH]`: write envelope v2 test vectors for other clients.

Fixed key pairs (private keys included: test keys only), envelopes made with them, and what
a conforming client must get out of each: the plaintext, the signature verdict, the chain
links and the safety number. The suite checks the committed files (tests/unit/test_vectors.py)
and the browser client proves itself against the same files. envelope-v1.json, written by an
earlier version of this module, stays committed: v1 envelopes must stay readable.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from contracts.envelope import P256_N
from contracts.keys import device_proof_input

from . import crypto
from .envelope import Content, Recipient, envelope_hash, seal, signing_input

VECTORS_DIR = Path(__file__).resolve().parent.parent / "contracts" / "vectors"
DEFAULT_PATH = VECTORS_DIR / "envelope-v2.json"
ALICE, BOB = "64b0a1e1f00d000000000a11", "64b0a1e1f00d000000000b0b"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2a2a0c20000000049454e44ae426082")


def _pem(key: Any) -> str:
    return str(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode())


def _device(user: str, keys: crypto.DeviceKeys) -> dict[str, str]:
    return {"user": user, "kid": keys.kid, "sid": keys.sid, "enc_spki": keys.enc_spki,
            "sig_spki": keys.sig_spki, "enc_private_pkcs8_pem": _pem(keys.enc),
            "sig_private_pkcs8_pem": _pem(keys.sig)}


def build() -> dict[str, Any]:
    alice, bob = crypto.DeviceKeys.generate(), crypto.DeviceKeys.generate()
    room = f"{ALICE}.{BOB}"
    recipients = [Recipient(alice.kid, alice.enc.public_key()),
                  Recipient(bob.kid, bob.enc.public_key())]
    contents = [("text", Content.text("hello, bob — ünïcödé ✓")),
                ("image", Content({"mime": "image/png", "name": "dot.png"}, PNG)),
                ("text", Content.text("third"))]
    cases, prev = [], ""
    for seq, (kind, content) in enumerate(contents, start=1):
        env = seal(room=room, sender=ALICE, device=alice, seq=seq, prev=prev, kind=kind,
                   content=content, recipients=recipients)
        cases.append({
            "name": f"alice-{seq}-{kind}", "envelope": env, "signer": "alice",
            "signature_valid": True, "readers": ["alice", "bob"],
            "plaintext_meta": content.meta, "plaintext_data_b64u": crypto.b64u(content.data),
            "plaintext_encoded_b64u": crypto.b64u(content.encode()),
            "signing_input_b64u": crypto.b64u(signing_input(env)),
            "hash": envelope_hash(env),
        })
        prev = envelope_hash(env)
    first = cases[0]["envelope"]
    tampered = copy.deepcopy(first)
    tampered["ct"] = ("A" if tampered["ct"][0] != "A" else "B") + tampered["ct"][1:]
    # The same signature in the forms v2 refuses (each verifies as ECDSA, and each left
    # v1's chain link different): s replaced by n - s, and the 4 spare bits of the last
    # base64url digit set.
    raw = crypto.unb64u(first["sig"])
    high_s = {**first, "sig": crypto.b64u(raw[:32] + (P256_N - int.from_bytes(raw[32:], "big"))
                                          .to_bytes(32, "big"))}
    last = first["sig"][-1]
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    reencoded = {**first, "sig": first["sig"][:-1] + digits[digits.index(last) | 1]}
    assert crypto.unb64u(reencoded["sig"]) == raw
    for name, env in (("tampered-ciphertext", tampered), ("high-s-signature", high_s),
                      ("re-encoded-signature", reencoded)):
        cases.append({"name": name, "envelope": env, "signer": "alice",
                      "signature_valid": False, "readers": []})
    return {
        "version": 2,
        "note": "Test keys only. Envelope v2 as documented in docs/protocol.md.",
        "room": room,
        "devices": {"alice": _device(ALICE, alice), "bob": _device(BOB, bob)},
        "cases": cases,
        "safety_number": crypto.safety_number(ALICE, [(alice.kid, alice.sid)],
                                              BOB, [(bob.kid, bob.sid)]),
        # PUT /api/keys's proof of possession for alice's device (a proof is randomized:
        # check it verifies, and that the input is byte for byte this one).
        "device_proof": {
            "user": ALICE, "label": "phone",
            "input_b64u": crypto.b64u(device_proof_input(ALICE, alice.enc_spki,
                                                         alice.sig_spki, "phone")),
            "upload": alice.public(ALICE, "phone"),
        },
    }


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n")
    print(path)


if __name__ == "__main__":
    main()
