"""History shares: the content keys of earlier messages, from the approving device to the
one it just linked, so the new device reads the history the approving one can (docs/
protocol.md "History for a linked device"). No I/O."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from contracts.devicelist import SHARE_KEYS, share_signing_input

from . import crypto
from .errors import CryptoError


def seal_shares(*, user: str, sender: crypto.DeviceKeys, to_kid: str,
                to_key: rsa.RSAPublicKey, keys: dict[str, bytes]) -> list[dict[str, Any]]:
    """{envelope hash: content key} in parts of SHARE_KEYS, each encrypted to the new device
    and signed by this one."""
    items = sorted(keys.items())
    parts = [dict(items[i:i + SHARE_KEYS]) for i in range(0, len(items), SHARE_KEYS)]
    shares = []
    for n, part in enumerate(parts):
        key, iv = crypto.new_content_key()
        plain = crypto.canonical({h: crypto.b64u(k) for h, k in part.items()})
        share: dict[str, Any] = {
            "v": 1, "user": user, "to": to_kid, "from": sender.kid, "part": n,
            "wk": crypto.b64u(crypto.wrap(to_key, key)), "iv": crypto.b64u(iv),
            "ct": crypto.b64u(crypto.seal(key, iv, plain))}
        share["sig"] = crypto.b64u(crypto.sign(sender.sig, share_signing_input(share)))
        shares.append(share)
    return shares


def open_share(share: dict[str, Any], *, user: str, device: crypto.DeviceKeys,
               signer: ec.EllipticCurvePublicKey) -> dict[str, bytes]:
    """The content keys of one part, if `signer` (a device of the user's signed list)
    signed it for this device; else CryptoError."""
    if share.get("user") != user or share.get("to") != device.kid:
        raise CryptoError("a history share for another device")
    if not crypto.verify(signer, share_signing_input(share), crypto.unb64u(share["sig"])):
        raise CryptoError("a history share not signed by the device it names")
    key = crypto.unwrap(device.enc, crypto.unb64u(share["wk"]))
    try:
        plain = json.loads(crypto.unseal(key, crypto.unb64u(share["iv"]),
                                         crypto.unb64u(share["ct"])))
    except ValueError as exc:
        raise CryptoError("a history share that is not JSON") from exc
    return {h: crypto.unb64u(k) for h, k in plain.items()}
