"""This device's prekeys and its Double Ratchet sessions with other devices, kept in the
`sessions` vault (client.vault), and the one thing envelopes need of them: a content key
sealed to a device, and opened from one (docs/sessions.md).

Sessions are kept per peer device, most recently used first, at most MAX_SESSIONS: two
devices that started a session with each other at the same moment each hold two, and the
one that last opened a message is the one they send on (Signal's Sesame rule).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from contracts.prekeys import KEY_ID_MAX, MAX_ONE_TIME, bundle_signing_input

from . import crypto
from .errors import CryptoError
from .ratchet import (
    Header,
    RatchetError,
    Session,
    private_raw,
    public_raw,
    x3dh_initiate,
    x3dh_respond,
)
from .vault import Vault

MAX_SESSIONS = 3  # per peer device
SPK_ROTATE_DAYS = 7  # a new signed prekey this often (Signal: every week or month)
OLD_SPKS = 2  # replaced signed prekeys kept, for messages built on a bundle claimed before
MAX_UNUSED_ONE_TIME = 4 * MAX_ONE_TIME  # private halves kept for claimed-but-unused keys


@dataclass(frozen=True)
class Target:
    """A device an envelope is for: its kid, RSA key (for a device without a session or a
    bundle) and its verified bundle with a one-time prekey, if one was claimed."""

    kid: str
    rsa: RSAPublicKey
    bundle: dict[str, Any] | None = None
    one_time: dict[str, Any] | None = None


def _key(raw: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(crypto.unb64u(raw))


def _new() -> tuple[X25519PrivateKey, str]:
    key = X25519PrivateKey.generate()
    return key, crypto.b64u(private_raw(key))


def sign_bundle(device: crypto.DeviceKeys, user: str, ik: X25519PrivateKey, spk_id: int,
                spk: X25519PrivateKey) -> dict[str, Any]:
    """The device's bundle (contracts/prekeys.py), signed by its signing key."""
    bundle: dict[str, Any] = {"v": 1, "user": user, "kid": device.kid,
                              "ik": crypto.b64u(public_raw(ik)),
                              "spk": {"id": spk_id, "key": crypto.b64u(public_raw(spk))}}
    bundle["sig"] = crypto.b64u(crypto.sign(device.sig, bundle_signing_input(bundle)))
    return bundle


def bundle_verifies(bundle: dict[str, Any], user: str, kid: str, sig_spki: str) -> bool:
    """The bundle is this user's device `kid`'s, signed by that device's signing key."""
    if bundle.get("user") != user or bundle.get("kid") != kid or bundle.get("v") != 1:
        return False
    try:
        return crypto.verify(crypto.load_ec_public(sig_spki), bundle_signing_input(bundle),
                             crypto.unb64u(str(bundle.get("sig", ""))))
    except (CryptoError, KeyError, TypeError):
        return False


def _made(d: dict[str, Any], now_ms: int) -> bool:
    """Make the device's session identity key and first signed prekey, if not yet."""
    if "ik" in d:
        return False
    d["ik"] = _new()[1]
    d["spk"] = {"id": 1, "private": _new()[1], "made": now_ms}
    d["one_time"], d["next_id"] = {}, 1
    return True


class DeviceSessions:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    # -- prekeys -----------------------------------------------------------------------
    def spk_due(self, now_ms: int) -> bool:
        """Whether the signed prekey is older than SPK_ROTATE_DAYS (or not made yet)."""
        spk = self.vault.read().get("spk")
        return spk is None or now_ms - int(spk.get("made", 0)) > SPK_ROTATE_DAYS * 86_400_000

    def prekey_upload(self, device: crypto.DeviceKeys, user: str, want_one_time: int,
                      now_ms: int) -> dict[str, Any]:
        """PUT /api/prekeys's body: the bundle (made on first use; with a new signed prekey
        once the current one is SPK_ROTATE_DAYS old, the previous one kept for messages
        built on it) and `want_one_time` new one-time prekeys, whose private halves are
        kept before they are published."""
        with self.vault.open() as d:
            if not _made(d, now_ms) and (now_ms - int(d["spk"].get("made", 0))
                                         > SPK_ROTATE_DAYS * 86_400_000):
                d["old_spk"] = [d["spk"], *d.get("old_spk", [])][:OLD_SPKS]
                d["spk"] = {"id": d["spk"]["id"] % KEY_ID_MAX + 1, "private": _new()[1],
                            "made": now_ms}
            fresh = []
            for _ in range(want_one_time):
                key, raw = _new()
                key_id = d["next_id"]
                d["next_id"] = key_id + 1 if key_id < KEY_ID_MAX else 1
                d["one_time"][str(key_id)] = raw
                fresh.append({"id": key_id, "key": crypto.b64u(public_raw(key))})
            # Claimed keys whose messages never came: the oldest go.
            for old in sorted(d["one_time"], key=int)[:max(0, len(d["one_time"])
                                                          - MAX_UNUSED_ONE_TIME)]:
                del d["one_time"][old]
            ik, spk = _key(d["ik"]), _key(d["spk"]["private"])
            spk_id = d["spk"]["id"]
        return {"bundle": sign_bundle(device, user, ik, spk_id, spk), "one_time": fresh}

    def has_session(self, kid: str) -> bool:
        return kid in self.peers()

    def peers(self) -> set[str]:
        """The devices this device holds a session with."""
        return {kid for kid, held in self.vault.read().get("sessions", {}).items() if held}

    # -- sealing and opening a content key ---------------------------------------------
    def seal(self, content_key: bytes, targets: list[Target]) -> list[dict[str, Any]]:
        """One `keys` entry per target: a ratchet message where a session exists or a
        bundle allows one, else the RSA-OAEP wrap (a device that published no bundle)."""
        entries: list[dict[str, Any]] = []
        with self.vault.open() as d:
            _made(d, int(time.time() * 1000))
            sessions = d.setdefault("sessions", {})
            for t in sorted(targets, key=lambda t: t.kid):
                held = sessions.get(t.kid) or []
                if not held and t.bundle is not None:
                    try:
                        held = [self._initiate(d, t)]
                    except RatchetError:  # a low-order key in the bundle: RSA instead
                        held = []
                    else:
                        sessions[t.kid] = held
                if not held:
                    entries.append({"kid": t.kid, "wk": crypto.b64u(crypto.wrap(t.rsa,
                                                                                content_key))})
                    continue
                session = Session(held[0]["state"])
                header, wk = session.encrypt(content_key)
                entries.append({"kid": t.kid, "h": header.wire(), "pre": session.state["prekey"],
                                "wk": crypto.b64u(wk)})
        return entries

    def _initiate(self, d: dict[str, Any], t: Target) -> dict[str, Any]:
        assert t.bundle is not None
        ek = X25519PrivateKey.generate()
        peer_ik = crypto.unb64u(t.bundle["ik"])
        peer_spk = crypto.unb64u(t.bundle["spk"]["key"])
        opk = crypto.unb64u(t.one_time["key"]) if t.one_time else None
        sk, ad = x3dh_initiate(_key(d["ik"]), ek, peer_ik, peer_spk, opk)
        ek_pub = crypto.b64u(public_raw(ek))
        prekey = {"ik": crypto.b64u(public_raw(_key(d["ik"]))), "ek": ek_pub,
                  "spk": t.bundle["spk"]["id"], "opk": t.one_time["id"] if t.one_time else None}
        return {"ek": ek_pub, "state": Session.initiate(sk, ad, peer_spk, prekey).state}

    def open(self, sender_kid: str, entry: dict[str, Any], *,
             kept: Callable[[], bytes | None] = lambda: None,
             keep: Callable[[bytes], None] | None = None) -> bytes:
        """The content key of a ratchet entry from the device `sender_kid`. Raises
        RatchetError (its code says why); the sessions change only when it opens. Under
        the sessions' lock: `kept()` first (opened already, by this process or another:
        its kept key), and `keep(key)` before the sessions are written, so a message whose
        ratchet step is stored is always kept too."""
        header = Header.from_wire(entry.get("h") or {})
        wk = crypto.unb64u(str(entry.get("wk", "")))
        pre = entry.get("pre")
        with self.vault.open() as d:
            already = kept()
            if already is not None:
                return already
            key = self._open(d, sender_kid, header, wk, pre)
            if keep is not None:
                keep(key)
            return key

    def _open(self, d: dict[str, Any], sender_kid: str, header: Header, wk: bytes,
              pre: dict[str, Any] | None) -> bytes:
        held: list[dict[str, Any]] = d.setdefault("sessions", {}).setdefault(sender_kid, [])
        if pre is not None and not any(s["ek"] == pre.get("ek") for s in held):
            record, key = self._respond(d, pre, header, wk)
            held.insert(0, record)
            del held[MAX_SESSIONS:]
            if pre.get("opk") is not None:
                d["one_time"].pop(str(pre["opk"]), None)  # used once, then gone
            return key
        first: RatchetError | None = None
        for i, record in enumerate(held):
            session = Session(record["state"])
            try:
                key = session.decrypt(header, wk)
            except RatchetError as exc:
                first = first or exc
                continue
            record["state"] = session.state
            held.insert(0, held.pop(i))
            return key
        if not held:
            raise RatchetError("no_session", "no session with the sending device, and "
                               "the message starts none")
        assert first is not None
        raise first

    def _respond(self, d: dict[str, Any], pre: dict[str, Any], header: Header,
                 wk: bytes) -> tuple[dict[str, Any], bytes]:
        if "ik" not in d:
            raise RatchetError("prekey_gone", "this device has published no prekeys")
        signed = next((k for k in [d["spk"], *d.get("old_spk", [])]
                       if k["id"] == pre.get("spk")), None)
        if signed is None:
            raise RatchetError("prekey_gone", f"signed prekey {pre.get('spk')} is not this "
                               "device's (or was replaced long ago)")
        opk = None
        if pre.get("opk") is not None:
            raw = d["one_time"].get(str(pre["opk"]))
            if raw is None:
                raise RatchetError("prekey_gone", f"one-time prekey {pre['opk']} was used "
                                   "already or never made here")
            opk = _key(raw)
        try:
            peer_ik, peer_ek = crypto.unb64u(pre["ik"]), crypto.unb64u(pre["ek"])
        except (KeyError, TypeError, CryptoError) as exc:
            raise RatchetError("bad_message", "a malformed prekey header") from exc
        spk = _key(signed["private"])
        sk, ad = x3dh_respond(_key(d["ik"]), spk, opk, peer_ik, peer_ek)
        session = Session.respond(sk, ad, spk)
        key = session.decrypt(header, wk)
        return {"ek": pre["ek"], "state": session.state}, key
