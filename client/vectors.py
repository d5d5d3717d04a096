"""`python -m client.vectors [PATH]`: write envelope v1 test vectors for other clients.

Fixed key pairs (private keys included: test keys only), envelopes made with them, and what
a conforming client must get out of each: the plaintext, the signature verdict, the chain
links and the safety number. The suite checks the committed file (tests/unit/test_vectors.py)
and the browser client proves itself against the same file.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from . import crypto
from .envelope import Content, Recipient, envelope_hash, seal, signing_input

DEFAULT_PATH = (Path(__file__).resolve().parent.parent / "contracts" / "vectors"
                / "envelope-v1.json")
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
    tampered = copy.deepcopy(cases[0]["envelope"])
    tampered["ct"] = ("A" if tampered["ct"][0] != "A" else "B") + tampered["ct"][1:]
    cases.append({"name": "tampered-ciphertext", "envelope": tampered, "signer": "alice",
                  "signature_valid": False, "readers": []})
    return {
        "version": 1,
        "note": "Test keys only. Envelope v1 as documented in the README.",
        "room": room,
        "devices": {"alice": _device(ALICE, alice), "bob": _device(BOB, bob)},
        "cases": cases,
        "safety_number": crypto.safety_number(ALICE, [(alice.kid, alice.sid)],
                                              BOB, [(bob.kid, bob.sid)]),
    }


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n")
    print(path)


if __name__ == "__main__":
    main()
