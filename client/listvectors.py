"""`python -m client.listvectors [PATH]`: write device-list test vectors for other clients.

A fixed identity key (private key included: a test key only), a device list it signed, the
same list in the forms a client must refuse, link codes, a safety number over identity
keys, and a history share (with the receiving device's private keys) to open.
tests/unit/test_vectors.py checks the committed file; the browser client proves itself
against it (tests/e2e/test_web_identity_units.py).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from contracts.devicelist import link_code, list_signing_input, safety_number, share_signing_input
from contracts.envelope import P256_N

from . import crypto
from .identity import identity_spki, listed, new_identity, sign_list
from .shares import seal_shares
from .vectors import ALICE, BOB, VECTORS_DIR, _pem

DEFAULT_PATH = VECTORS_DIR / "devicelist-v1.json"


def build() -> dict[str, Any]:
    identity, other = new_identity(), new_identity()
    phone, laptop = crypto.DeviceKeys.generate(), crypto.DeviceKeys.generate()
    devices = [listed({"kid": d.kid, "sid": d.sid, "enc": d.enc_spki, "sig": d.sig_spki,
                       "label": label}, added)
               for d, label, added in ((phone, "phone", 1767225600000),
                                       (laptop, "laptop — ü", 1767225700000))]
    devices.sort(key=lambda d: d["kid"])
    body = {"v": 1, "user": ALICE, "identity": identity_spki(identity), "version": 3,
            "devices": devices[:1], "revoked": [{**devices[1], "revoked_at": 1767225800000}]}
    signed = sign_list(identity, body)
    raw = crypto.unb64u(signed["sig"])
    high_s = raw[:32] + (P256_N - int.from_bytes(raw[32:], "big")).to_bytes(32, "big")
    bumped = copy.deepcopy(signed)
    bumped["list"]["version"] = 4
    foreign = sign_list(other, {**body, "identity": identity_spki(identity)})
    cases = [
        {"name": "valid", "signed": signed, "user": ALICE, "valid": True},
        {"name": "version-changed", "signed": bumped, "user": ALICE, "valid": False},
        {"name": "high-s-signature", "signed": {**signed, "sig": crypto.b64u(high_s)},
         "user": ALICE, "valid": False},
        {"name": "another-user", "signed": signed, "user": BOB, "valid": False},
        {"name": "signed-by-another-key", "signed": foreign, "user": ALICE, "valid": False},
    ]
    # A history share from the phone to the laptop: two content keys, one part.
    hashes = [crypto.b64u(bytes([n]) * 32) for n in (1, 2)]
    keys = {h: bytes([n + 10]) * 32 for n, h in enumerate(hashes)}
    share = seal_shares(user=ALICE, sender=phone, to_kid=laptop.kid,
                        to_key=laptop.enc.public_key(), keys=keys)[0]
    id_fp = crypto.fingerprint(crypto.spki(identity.public_key()))
    other_fp = crypto.fingerprint(crypto.spki(other.public_key()))
    return {
        "version": 1,
        "note": "Test keys only. Device lists as documented in docs/protocol.md.",
        "identity": {"spki": identity_spki(identity), "fingerprint": id_fp,
                     "private_pkcs8_pem": _pem(identity)},
        "signing_input_b64u": crypto.b64u(list_signing_input(body)),
        "cases": cases,
        "link_codes": [{"kid": d["kid"], "sid": d["sid"], "code": link_code(d["kid"], d["sid"])}
                       for d in devices],
        "history_share": {
            "share": share, "signing_input_b64u": crypto.b64u(share_signing_input(share)),
            "sender": {"kid": phone.kid, "sig_spki": phone.sig_spki},
            "receiver": {"kid": laptop.kid, "enc_spki": laptop.enc_spki,
                         "enc_private_pkcs8_pem": _pem(laptop.enc),
                         "sig_private_pkcs8_pem": _pem(laptop.sig), "sig_spki": laptop.sig_spki},
            "keys_b64u": {h: crypto.b64u(k) for h, k in keys.items()},
        },
        "safety_number": {"a": ALICE, "a_identity": id_fp, "b": BOB, "b_identity": other_fp,
                          "number": safety_number(ALICE, id_fp, BOB, other_fp)},
    }


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    path.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n")
    print(path)


if __name__ == "__main__":
    main()
