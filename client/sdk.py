"""The Python SDK: `async with Client(url, home=..., passphrase=...) as c`.

Register or log in (a new home directory is a new device: keys generated and published),
befriend, send text and images, read history, and follow every conversation over this
device's one socket (protocol v2). Every message and signal is verified (signature, key
directory, hash chain for messages) before it is decrypted; what fails comes out as an
`Alert`, never as a message. Receipts go out by themselves: `delivered` as messages are
decrypted, `read` when the caller says what the user has seen (`mark_read`) and the
user's read-receipts setting allows.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from contracts import room_id, room_members
from contracts.devicelist import link_code, safety_number
from contracts.envelope import MESSAGE_KINDS, SIGNAL_KINDS
from contracts.prekeys import MAX_ONE_TIME, REFILL_BELOW

from . import crypto
from . import identity as identity_mod
from .api import Api
from .chain import Chains
from .crypto import unb64u
from .device import DeviceSession
from .envelope import (
    Content,
    Recipient,
    content_key,
    envelope_hash,
    open_content,
    own_entry,
    seal,
    seal_v3,
    verify_signature,
)
from .errors import ApiError, ConfigError, CryptoError, IdentityChanged, SendError
from .events import (
    NOT_FOR_DEVICE,
    Alert,
    Event,
    Message,
    Presence,
    ReadPosition,
    Receipt,
    Typing,
    Unsent,
)
from .identity import Directory, Pin
from .localhistory import LocalHistory
from .profile import Profile, default_home
from .ratchet import RatchetError
from .sessions import DeviceSessions, Target, bundle_verifies
from .shares import open_share, seal_shares
from .signals import (
    TYPING_SHOWN_S,
    Ticks,
    later,
    parse_receipt,
    parse_typing,
    receipt_content,
    typing_content,
)
from .transport import check_server_url
from .vault import Vault

log = logging.getLogger(__name__)

MAX_TEXT = 64 * 1024
MAX_IMAGE = 5 * 1024 * 1024
RENEW_AT = 0.8  # renew the session when this share of the token's lifetime has passed
RECEIPT_DELAY_S = 0.3  # receipts of a burst of messages go out as one
CATCH_UP_S = 30.0  # how far back a sync after `sync_needed` reaches, at least
CLAIM_EVERY_S = 30.0  # how often to ask again for the bundles of devices without a session

Progress = Callable[[str], None]
"""Told each stage of a send as it starts: "encrypt", "send", then "sent" once acked."""

__all__ = ["Alert", "Client", "Event", "Message", "Presence", "ReadPosition", "Receipt",
           "Typing"]


class Client:
    def __init__(self, url: str | None = None, *, home: Path | str | None = None,
                 passphrase: str | None = None, rsa_bits: int = 2048,
                 max_text: int = MAX_TEXT, max_image: int = MAX_IMAGE,
                 insecure: bool = False) -> None:
        """`insecure=True` allows a plain http:// URL to a host that is not loopback
        (transport.py); without it such a URL raises InsecureServer."""
        self.profile = Profile(Path(home) if home else default_home())
        account = self.profile.account()
        self.url = (url or account.get("server") or "").rstrip("/")
        if not self.url:
            raise ConfigError("no server URL: pass one, or log in first")
        check_server_url(self.url, insecure=insecure)
        self._passphrase = passphrase
        self._rsa_bits = rsa_bits
        self.max_text, self.max_image = max_text, max_image
        self.api = Api(self.url)
        self.user_id: str | None = account.get("user_id")
        self.username: str | None = account.get("username")
        if account.get("token") and account.get("server", "").rstrip("/") == self.url:
            self.api.token = account["token"]
        self._device: crypto.DeviceKeys | None = None
        self._identity_key: Any = None
        self._shared: dict[str, bytes] | None = None  # history shares, loaded when needed
        state = self.profile.state()
        self._send_chains: dict[str, dict[str, Any]] = state.get("send_chains", {})
        self._chains = Chains(state.get("recv_chains"))
        self._cursors: dict[str, str] = state.get("cursors", {})
        # The cursors as they were CATCH_UP_S to twice that ago, and at the last snapshot.
        self._earlier: dict[str, str] = dict(self._cursors)
        self._recent: dict[str, str] = dict(self._cursors)
        self._snapped = time.monotonic()
        self._pins: dict[str, Pin] = {u: Pin(p["list"], bool(p.get("verified")))
                                      for u, p in state.get("pins", {}).items()}
        self._names: dict[str, str] = {}
        self._directories: dict[str, Directory] = {}
        self.warnings: list[Alert] = []  # trust alerts heard outside a message (docs/clients.md)
        self._warned: set[tuple[str, str]] = set()
        self.device_state: str | None = None  # "identity" | "linked" | "pending"
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._unsent: set[tuple[str, str]] = set()  # (sender, id) shown, then unsent
        self._session: DeviceSession | None = None
        self._opening: asyncio.Lock | None = None
        self._listeners: list[_Listener] = []
        self.ticks = Ticks()
        self._online: dict[str, Presence] = {}
        self._typing: dict[str, float] = {}  # room -> monotonic time the friend's typing ends
        self._delivered: dict[str, str] = {}  # room -> newest friend's message decrypted
        self._read: dict[str, str] = {}  # room -> newest friend's message shown here
        self._told: dict[str, tuple[str | None, str | None]] = {}  # room -> last receipt
        self._told_read: dict[str, str] = {}  # room -> last read position sent
        self._receipts: dict[str, asyncio.Task[None]] = {}
        self._read_receipts: bool | None = None  # the user's setting, asked once
        self._renewer: asyncio.Task[None] | None = None  # renews the session (sliding)
        self._ratchets: DeviceSessions | None = None
        self._local: LocalHistory | None = None
        self._claimed: dict[str, float] = {}  # user -> when bundles were last asked for
        self._prekeys_checked = False
        self._fetching: dict[str, asyncio.Task[None]] = {}
        self._told_fetched: dict[str, str] = {}  # room -> last `fetched` cursor sent

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Send the receipts still due, then close the socket and HTTP; safe twice."""
        due = [t for t in [*self._receipts.values(), *self._fetching.values()]
               if not t.done()]
        if due:
            await asyncio.wait(due, timeout=5)
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        await self.api.close()

    def _save_state(self) -> None:
        self.profile.save_state({"send_chains": self._send_chains,
                                 "recv_chains": self._chains.to_json(),
                                 "cursors": self._cursors,
                                 "pins": {u: {"list": p.list, "verified": p.verified}
                                          for u, p in self._pins.items()}})

    # -- account and device ----------------------------------------------------------
    async def register(self, username: str, password: str) -> str:
        registered = await self.api.register(username, password)
        await self.login(username, password)
        return str(registered["user_id"])

    async def login(self, username: str, password: str) -> None:
        """Log in; on a new device generate its keys and publish them."""
        token = await self.api.login(username, password)
        self.user_id, self.username = token["user_id"], username
        self._save_token(token)
        self.profile.save_account(server=self.url, user_id=self.user_id, username=username)
        if not self.profile.has_device():
            device = await asyncio.to_thread(crypto.DeviceKeys.generate, self._rsa_bits)
            self.profile.save_device(device, self._passphrase)
            self._device = device
        await self.api.publish_keys([self.device.public(self.user_id)])
        await self.refresh_device_state()
        await self.publish_prekeys()
        self._prekeys_checked = True

    # -- forward-secret sessions (docs/sessions.md) -----------------------------------
    @property
    def ratchets(self) -> DeviceSessions:
        """This device's prekeys and sessions with other devices."""
        if self._ratchets is None:
            self._ratchets = DeviceSessions(Vault(self.profile.home, "sessions",
                                                  self._passphrase))
        return self._ratchets

    @property
    def local(self) -> LocalHistory:
        """What this device has read or sent, kept encrypted in its home."""
        if self._local is None:
            self._local = LocalHistory(self.profile.home, self._passphrase)
        return self._local

    async def publish_prekeys(self) -> int:
        """Publish this device's bundle if the directory has none or its signed prekey is
        due for rotation, and top its one-time prekeys up to MAX_ONE_TIME when fewer than
        REFILL_BELOW are left. Returns how many it holds now."""
        me = self._me()
        stock = {s["kid"]: s for s in await self.api.prekey_stock()}
        mine = stock.get(self.device.kid)
        left = int(mine["one_time_left"]) if mine else 0
        now = int(time.time() * 1000)
        if mine is not None and left >= REFILL_BELOW and not self.ratchets.spk_due(now):
            return left
        upload = await asyncio.to_thread(self.ratchets.prekey_upload, self.device, me,
                                         MAX_ONE_TIME - left, now)
        return int((await self.api.publish_prekeys(upload))["one_time_left"])

    async def refresh_device_state(self) -> str:
        """Whether this device holds the account's identity key ("identity"), is in the
        list it signed ("linked") or waits to be approved ("pending"). On an account with
        no list yet, this device makes the identity key and signs the first list."""
        me = self._me()
        profile = await self.api.user(self.username or me)
        identity = self._identity()
        if profile.get("device_list") is None:
            identity = identity_mod.new_identity()
            mine = next(k for k in profile["keys"] if k["kid"] == self.device.kid)
            body = {"v": 1, "user": me, "identity": identity_mod.identity_spki(identity),
                    "version": 1, "devices": [identity_mod.listed(mine)], "revoked": []}
            await self._put_list(identity, body)
            self.profile.save_identity(identity, self._passphrase)
            self._identity_key = identity
            self._pins[me] = Pin(body)
            self._save_state()
        directory = await self._directory(me, refresh=True)
        if identity is not None and identity_mod.identity_spki(identity) == directory.identity:
            self.device_state = "identity"
        elif self.device.kid in {d.kid for d in directory.live()}:
            self.device_state = "linked"
        else:
            self.device_state = "pending"
        return self.device_state

    @property
    def link_code(self) -> str:
        """The code this device shows while it waits for approval (docs/protocol.md)."""
        return link_code(self.device.kid, self.device.sid)

    def _identity(self) -> Any:
        if self._identity_key is None:
            self._identity_key = self.profile.load_identity(self._passphrase)
        return self._identity_key

    async def _put_list(self, identity: Any, body: dict[str, Any], *,
                        reset: bool = False) -> None:
        signed = identity_mod.sign_list(identity, body)
        await self.api.call("PUT", "/api/devicelist", {**signed, "reset": reset})

    def _save_token(self, token: dict[str, Any]) -> None:
        self.profile.save_account(token=token["access_token"],
                                  token_ttl=int(token["expires_in"]),
                                  token_expires=int(time.time()) + int(token["expires_in"]))

    # -- sessions (each login is one; docs/protocol.md "Sessions") ----------------------
    async def sessions(self) -> list[dict[str, Any]]:
        """The user's live sessions; `current` marks this device's."""
        self._me()
        return await self.api.sessions()

    async def revoke_session(self, session_id: str) -> None:
        self._me()
        await self.api.revoke_session(session_id)

    # -- devices (this account's signed device list; docs/clients.md "Devices") ------
    async def devices(self) -> list[dict[str, Any]]:
        """The account's devices, oldest first: those the signed list names (`state`
        "approved") and those waiting for approval ("pending", with their link `code`).
        `current` marks this device."""
        directory = await self._directory(self._me(), refresh=True)
        approved = [{"kid": d.kid, "label": d.label, "created_at": d.added,
                     "state": "approved", "code": None} for d in directory.live()]
        pending = [{"kid": k["kid"], "label": k.get("label"), "created_at": k["created_at"],
                    "state": "pending", "code": link_code(k["kid"], k["sid"])}
                   for k in directory.unlisted]
        every = sorted(approved + pending, key=lambda d: d["created_at"])
        return [{**d, "current": d["kid"] == self.device.kid} for d in every]

    async def pending_devices(self) -> list[dict[str, Any]]:
        """Devices of this account waiting for approval: kid, label, created_at, code."""
        return [{k: d[k] for k in ("kid", "label", "created_at", "code")}
                for d in await self.devices() if d["state"] == "pending"]

    async def approve_device(self, code: str, *, share_history: bool = True) -> str:
        """Approve the pending device showing `code` (spaces optional): the identity key
        signs the next list with it, and (unless told not to) it gets the content keys of
        the history this device can read. Returns its kid."""
        wanted = "".join(code.split())
        directory = await self._directory(self._me(), refresh=True)
        match = [k for k in directory.unlisted
                 if "".join(link_code(k["kid"], k["sid"]).split()) == wanted]
        if not match:
            raise ConfigError("no device waiting for approval shows that code")
        await self._change_list(lambda body: body["devices"].append(
            identity_mod.listed(match[0])))
        if share_history:
            await self._share_history(match[0])
        return str(match[0]["kid"])

    async def _share_history(self, device: dict[str, Any]) -> None:
        """Give a newly linked device the content keys of every message this device can
        read, so it reads the same history (docs/protocol.md "History for a linked
        device"). Signals are left out: their moment has passed."""
        wrapped: list[dict[str, Any]] = []
        for conversation in (await self.api.call("GET", "/api/conversations"))["conversations"]:
            # Open (and keep) what reached this device but it has not read yet: a
            # forward-secret message's key is in its own history only once it has.
            await self.history(conversation["user_id"])
            after = None
            while True:
                peer = conversation["user_id"]
                page = await self.api.messages(peer, after=after, limit=100)
                wrapped.extend(m["body"] for m in page["messages"] if m.get("kind")
                               in MESSAGE_KINDS and isinstance(m.get("body"), dict))
                after = page["next"]
                if after is None:
                    break

        def unwrap_all() -> dict[str, bytes]:
            keys = {}
            for env in wrapped:
                entry = own_entry(env, self.device.kid)
                if entry is None or "h" in entry:
                    continue  # not readable here, or (a ratchet entry) kept below
                try:
                    keys[envelope_hash(env)] = content_key(env, self.device)
                except CryptoError:
                    continue  # not readable here either
            return keys

        keys = await asyncio.to_thread(unwrap_all)
        # Forward-secret messages open once: their keys are in this device's own history.
        keys.update(await asyncio.to_thread(self.local.keys))
        if not keys:
            return
        shares = await asyncio.to_thread(
            seal_shares, user=self._me(), sender=self.device, to_kid=device["kid"],
            to_key=crypto.load_rsa_public(device["enc"]), keys=keys)
        for share in shares:
            await self.api.call("PUT", "/api/history-shares", share)

    async def _shared_key(self, env: dict[str, Any]) -> bytes | None:
        """A content key another device of this user shared with this one, if any."""
        if self._shared is None:
            self._shared = {}
            mine = await self._directory(self._me())
            found = await self.api.call("GET", "/api/history-shares",
                                        params={"to": self.device.kid})
            for share in found["shares"]:
                signer = mine.devices.get(share.get("from", ""))
                if signer is None or signer.revoked_at is not None:
                    continue
                try:
                    self._shared.update(await asyncio.to_thread(
                        open_share, share, user=self._me(), device=self.device,
                        signer=crypto.load_ec_public(signer.sig)))
                except CryptoError:
                    continue
        return self._shared.get(envelope_hash(env))

    async def decline_device(self, kid: str) -> None:
        """Refuse a pending device: its uploaded keys are deleted."""
        self._me()
        await self.api.revoke_key(kid)

    async def revoke_device(self, kid: str) -> None:
        """Revoke a device: the identity key signs the next list with it moved to
        `revoked` (messages it signs later are refused; new ones wrap no key for it). A
        device still pending is declined instead."""
        directory = await self._directory(self._me(), refresh=True)
        if any(k["kid"] == kid for k in directory.unlisted):
            await self.decline_device(kid)
            return

        def revoke(body: dict[str, Any]) -> None:
            gone = [d for d in body["devices"] if d["kid"] == kid]
            if not gone:
                raise ConfigError(f"no approved device {kid}")
            body["devices"] = [d for d in body["devices"] if d["kid"] != kid]
            body["revoked"] = [*body["revoked"],
                               {**gone[0], "revoked_at": identity_mod.now_ms()}]
        await self._change_list(revoke)

    async def reset_identity(self) -> None:
        """A new identity key for the account (the old one's device is lost): it signs a
        list of this device alone; every friend sees identity_changed."""
        me = self._me()
        profile = await self.api.user(self.username or me)
        mine = next(k for k in profile["keys"] if k["kid"] == self.device.kid)
        stored = profile.get("device_list")
        version = stored["list"]["version"] + 1 if stored else 1
        identity = identity_mod.new_identity()
        body = {"v": 1, "user": me, "identity": identity_mod.identity_spki(identity),
                "version": version, "devices": [identity_mod.listed(mine)], "revoked": []}
        await self._put_list(identity, body, reset=True)
        self.profile.save_identity(identity, self._passphrase)
        self._identity_key = identity
        self._pins[me] = Pin(body)
        self._save_state()
        self.device_state = "identity"

    async def _change_list(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Sign and upload the next version of the own list (this device must hold the
        identity key); on a concurrent change, start again from the new one, once."""
        identity = self._identity()
        if identity is None:
            raise ConfigError("this device does not hold the account's identity key: "
                              "approve or revoke devices from the one that does")
        for attempt in range(2):
            await self._directory(self._me(), refresh=True)  # the pin, brought up to date
            pin = self._pins[self._me()]
            body = {**pin.list, "version": pin.version + 1,
                    "devices": list(pin.list["devices"]), "revoked": list(pin.list["revoked"])}
            change(body)
            body["devices"].sort(key=lambda d: d["kid"])
            try:
                await self._put_list(identity, body)
            except ApiError as exc:
                if exc.status == 409 and attempt == 0:
                    continue
                raise
            self._pins[self._me()] = Pin(body, pin.verified)
            self._save_state()
            return

    async def logout(self, *, everywhere: bool = False) -> None:
        """End this device's session (with everywhere, every session of the user) and
        forget its token; the device keys stay, for the next login."""
        self._me()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        await self.api.logout(everywhere=everywhere)
        self.profile.save_account(token=None, token_expires=None)

    async def change_password(self, current: str, new: str) -> None:
        """Change the account password; every other session of the user ends."""
        self._me()
        await self.api.change_password(current, new)

    async def renew(self) -> None:
        """A fresh token for this session, whose expiry moves forward; the device socket
        stays open (its next reconnect uses the new token)."""
        self._me()
        self._save_token(await self.api.renew())
        if self._session is not None:
            self._session._token = self.api.token or ""  # noqa: SLF001  (for reconnects)

    async def _keep_renewed(self) -> None:
        """While the device socket lives, renew the session before its token expires."""
        while True:
            account = self.profile.account()
            ttl = float(account.get("token_ttl") or 0)
            expires = float(account.get("token_expires") or 0)
            await asyncio.sleep(max(1.0, expires - time.time() - ttl * (1 - RENEW_AT)))
            try:
                await self.renew()
            except ApiError as exc:
                if exc.status == 401:
                    return  # the session ended: its socket is closed (not_authenticated) too
                await asyncio.sleep(30)
            except (httpx.HTTPError, OSError):  # unreachable for now: try again soon
                await asyncio.sleep(30)

    @property
    def device(self) -> crypto.DeviceKeys:
        if self._device is None:
            self._device = self.profile.load_device(self._passphrase)
        return self._device

    def _me(self) -> str:
        if not self.user_id or not self.api.token:
            raise ConfigError("not logged in")
        return self.user_id

    # -- friends ---------------------------------------------------------------------
    async def friends(self) -> list[dict[str, Any]]:
        friends = await self.api.friends()
        for f in friends:
            self._names[f["user_id"]] = f["username"]
        return friends

    async def add_friend(self, username: str) -> dict[str, Any]:
        return await self.api.request_friend(username)

    async def accept_friend(self, username: str) -> dict[str, Any]:
        user = await self.api.user(username)
        return await self.api.accept_friend(user["user_id"])

    async def unfriend(self, friend: str) -> None:
        """End the friendship with `friend` (a username or user id), or withdraw or decline
        a request; their room sockets close and sends between you are refused at once."""
        peer = await self._peer(friend)
        await self.api.call("DELETE", f"/api/friends/{peer}")
        self._names.pop(peer, None)

    async def block(self, username: str) -> dict[str, Any]:
        """Block a user (friend or not): the friendship ends and they can no longer ask,
        open a room or send to you. They are not told (docs/security.md)."""
        blocked = dict(await self.api.call("POST", "/api/blocks", {"username": username}))
        self._names.pop(blocked["user_id"], None)
        return blocked

    async def blocks(self) -> list[dict[str, Any]]:
        """The users this user blocked: [{user_id, username, since}]."""
        return list((await self.api.call("GET", "/api/blocks"))["blocks"])

    async def unblock(self, user: str) -> None:
        """Lift a block (`user` a username or user id); no friendship comes back."""
        for b in await self.blocks():
            if user in (b["user_id"], b["username"]) or b["username"].lower() == user.lower():
                await self.api.call("DELETE", f"/api/blocks/{b['user_id']}")
                return
        raise ConfigError(f"{user!r} is not among the users you blocked")

    async def delete_account(self, password: str) -> None:
        """Delete this account for good (its password asked again): the server removes the
        user, devices, friendships, blocks, sessions and the conversations it was in. This
        device's socket closes and its token is forgotten; the local key files stay until
        the profile directory is removed."""
        self._me()
        await self.api.call("DELETE", "/api/account", {"password": password})
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self.profile.save_account(token=None, token_expires=None)

    async def _peer(self, friend: str) -> str:
        """A friend's user id, from a username or a user id."""
        for uid, name in self._names.items():
            if friend in (uid, name) or name.lower() == friend.lower():
                return uid
        for f in await self.friends():
            if friend in (f["user_id"], f["username"]) or f["username"].lower() == friend.lower():
                return str(f["user_id"])
        raise ConfigError(f"{friend!r} is not among your friends")

    # -- keys: the signed device lists this client pins (docs/protocol.md) ------------
    async def _directory(self, user_id: str, *, refresh: bool = False) -> Directory:
        """The user's devices as this client trusts them: from the list signed by the
        pinned identity key. What the server adds beside it is `unlisted`, warned of."""
        cached = self._directories.get(user_id)
        if cached is not None and not refresh:
            return cached
        name = self.username if user_id == self.user_id else self._names.get(user_id)
        if name is None:
            await self.friends()
            name = self._names.get(user_id)
        if name is None:
            raise ConfigError(f"unknown user {user_id}")
        profile = await self.api.user(name)
        pin = self._pins.get(user_id)
        verdict = identity_mod.judge(pin, profile.get("device_list"), user_id)
        if verdict.use is not None and (pin is None or verdict.use is not pin.list):
            self._pins[user_id] = Pin(verdict.use, pin.verified if pin else False)
            self._save_state()
        directory = Directory.from_list(verdict.use)
        directory.fetched = time.monotonic()
        directory.changed_to = verdict.changed_to
        directory.unlisted = [k for k in profile.get("keys", [])
                              if k["kid"] not in directory.devices]
        self._directories[user_id] = directory
        if verdict.alert is not None:
            kind, detail = verdict.alert
            if kind == "identity_changed" and pin is not None and pin.verified:
                detail = "you had verified this user, and their identity key changed: " + detail
            self._warn(kind, user_id, detail, verdict.alert[0] + ":" + str(
                (verdict.changed_to or {}).get("identity", "")))
        for k in directory.unlisted:
            if user_id == self.user_id and k["kid"] == self._device_kid():
                continue
            label = f"{k.get('label') or 'unnamed device'} ({k['kid'][:12]})"
            self._warn("unapproved_device", user_id,
                       f"device {label} is not in this user's signed device list: it gets "
                       "no key", k["kid"])
        return directory

    def _device_kid(self) -> str | None:
        return self.device.kid if self.profile.has_device() else None

    def _warn(self, kind: str, user: str, detail: str, key: str) -> None:
        """A trust alert, said once per thing (device, identity) per client."""
        if (user, key) in self._warned:
            return
        self._warned.add((user, key))
        self.warnings.append(Alert(kind, user, detail))

    async def safety_number(self, friend: str) -> str:
        """Over the two pinned identity keys: devices coming and going do not change it."""
        peer = await self._peer(friend)
        mine = await self._directory(self._me(), refresh=True)
        theirs = await self._directory(peer, refresh=True)
        if mine.identity is None or theirs.identity is None:
            raise ConfigError("no identity key pinned for this account or this friend yet")
        return safety_number(self._me(), crypto.fingerprint(crypto.unb64u(mine.identity)),
                             peer, crypto.fingerprint(crypto.unb64u(theirs.identity)))

    async def accept_identity(self, friend: str) -> None:
        """Trust the friend's new identity key (after comparing safety numbers): sending
        to them works again; the verified mark is cleared."""
        peer = await self._peer(friend)
        directory = await self._directory(peer, refresh=True)
        if directory.changed_to is None:
            return
        self._pins[peer] = Pin(directory.changed_to)
        self._save_state()
        await self._directory(peer, refresh=True)

    async def mark_verified(self, friend: str, verified: bool = True) -> None:
        """The user compared safety numbers with the friend (out of band)."""
        peer = await self._peer(friend)
        await self._directory(peer, refresh=True)
        pin = self._pins.get(peer)
        if pin is None:
            raise ConfigError("no identity key pinned for this friend yet")
        pin.verified = verified
        self._save_state()

    def verified(self, friend_id: str) -> bool:
        pin = self._pins.get(friend_id)
        return pin is not None and pin.verified

    # -- sending ---------------------------------------------------------------------
    async def send_text(self, friend: str, text: str, *, message_id: str | None = None
                        ) -> dict[str, Any]:
        if len(text.encode()) > self.max_text:
            raise ValueError(f"text longer than {self.max_text} bytes")
        return await self._send(friend, "text", Content.text(text), message_id)

    async def send_image(self, friend: str, image: Path | str | bytes, *,
                         mime: str | None = None, name: str | None = None,
                         message_id: str | None = None,
                         progress: Progress | None = None) -> dict[str, Any]:
        if isinstance(image, (str, Path)):
            path = Path(image)
            data = path.read_bytes()
            name = name or path.name
            mime = mime or mimetypes.guess_type(path.name)[0]
        else:
            data = image
        if len(data) > self.max_image:
            raise ValueError(f"image larger than {self.max_image} bytes")
        meta = {"mime": mime or "application/octet-stream", **({"name": name} if name else {})}
        return await self._send(friend, "image", Content(meta, data), message_id, progress)

    async def _recipients(self, peer: str) -> list[Recipient]:
        """Every live device of the friend's and this user's signed lists, asked afresh."""
        theirs, mine = await self._lists(peer)
        return [Recipient(d.kid, crypto.load_rsa_public(d.enc))
                for d in theirs.live() + mine.live()]

    async def _targets(self, peer: str) -> list[Target]:
        """The devices a v3 envelope is for: every live device of both signed lists but
        this one (which keeps what it sent), with a verified bundle for each that has no
        session yet and published one (asked for at most every CLAIM_EVERY_S)."""
        theirs, mine = await self._lists(peer)
        held = await asyncio.to_thread(self.ratchets.peers)  # one read of the vault a send
        targets = []
        for user, directory in ((peer, theirs), (self._me(), mine)):
            devices = [d for d in directory.live() if d.kid != self.device.kid]
            need = [d.kid for d in devices if d.kid not in held]
            claimed: dict[str, dict[str, Any]] = {}
            if need and time.monotonic() - self._claimed.get(user, -CLAIM_EVERY_S) \
                    >= CLAIM_EVERY_S:
                self._claimed[user] = time.monotonic()
                claimed = {c["bundle"]["kid"]: c
                           for c in await self.api.claim_prekeys(user, need)}
            for d in devices:
                c = claimed.get(d.kid)
                if c is not None and not bundle_verifies(c["bundle"], user, d.kid, d.sig):
                    self._warn("bad_bundle", user, f"the prekey bundle of device "
                               f"{d.kid[:12]} is not signed by it: no session with it",
                               "bundle:" + d.kid)
                    c = None
                targets.append(Target(d.kid, crypto.load_rsa_public(d.enc),
                                      c["bundle"] if c else None,
                                      c["one_time"] if c else None))
        return targets

    async def without_session(self, friend: str) -> list[str]:
        """The devices of a conversation (both users' live devices but this one) that this
        device has no session with: they get RSA-wrapped keys, so the conversation is
        forward secret when this is empty (docs/sessions.md)."""
        peer = await self._peer(friend)
        theirs = await self._directory(peer, refresh=True)
        mine = await self._directory(self._me(), refresh=True)
        held = await asyncio.to_thread(self.ratchets.peers)
        return [d.kid for d in theirs.live() + mine.live()
                if d.kid != self.device.kid and d.kid not in held]

    async def _lists(self, peer: str) -> tuple[Directory, Directory]:
        theirs = await self._directory(peer, refresh=True)
        mine = await self._directory(self._me(), refresh=True)
        name = self._names.get(peer, peer)
        if theirs.changed_to is not None:
            raise IdentityChanged(f"{name}'s identity key changed: compare safety numbers "
                                  f"(duet verify {name}), then accept the new key to send")
        if not theirs.live():
            raise ConfigError(f"{name} has no signed device list yet (their client has not "
                              "set up an identity key)")
        if self.device.kid not in {d.kid for d in mine.live()}:
            raise ConfigError("this device waits for approval: approve it from the device "
                              f"that holds your identity key (code {self.link_code})")
        return theirs, mine

    async def _send(self, friend: str, kind: str, content: Content,
                    message_id: str | None, progress: Progress | None = None
                    ) -> dict[str, Any]:
        me, peer = self._me(), await self._peer(friend)
        room = room_id(me, peer)
        targets = await self._targets(peer)
        link = self._send_chains.get(room, {"seq": 0, "hash": ""})
        if progress:
            progress("encrypt")
        envelope, key = await asyncio.to_thread(
            seal_v3, room=room, sender=me, device=self.device, seq=link["seq"] + 1,
            prev=link["hash"], kind=kind, content=content,
            keys=lambda k: self.ratchets.seal(k, targets))
        # Advance the chain before sending, so a crash can never reuse a sequence number;
        # keep the content key first, so this device can always read what it sent.
        message_id = message_id or secrets.token_urlsafe(12)
        frame = {"type": "message", "id": message_id, "sender": me, "room": room,
                 "kind": kind, "body": envelope}
        await asyncio.to_thread(self.local.add, frame, envelope_hash(envelope), key)
        self._send_chains[room] = {"seq": envelope["seq"], "hash": envelope_hash(envelope)}
        self._save_state()
        if progress:
            progress("send")
        ack = await self._post(peer, kind, envelope, message_id)
        await asyncio.to_thread(self.local.add, {**frame, "ts": ack["ts"],
                                                 "cursor": ack["cursor"]},
                                envelope_hash(envelope), key)
        if progress:
            progress("sent")
        return ack

    async def _post(self, peer: str, kind: str, envelope: dict[str, Any],
                    message_id: str | None = None) -> dict[str, Any]:
        """Send an envelope to `peer` over the device socket; return the ack."""
        session = await self._device_session()
        frame = {"type": "send", "id": message_id or secrets.token_urlsafe(12), "peer": peer,
                 "kind": kind, "body": envelope}
        ack = await session.send(frame)
        self.ticks.acked(str(frame["id"]), ack.get("room") or room_id(self._me(), peer),
                         ack["cursor"])
        return ack

    async def _signal(self, peer: str, kind: str, content: Content) -> dict[str, Any]:
        """A receipt or typing envelope: signed and encrypted, outside the chain. Receipts
        travel over the sessions (v3); typing stays v2 (docs/sessions.md says why)."""
        room, me = room_id(self._me(), peer), self._me()
        if kind == "typing":
            recipients = await self._recipients(peer)
            return await asyncio.to_thread(
                seal, room=room, sender=me, device=self.device, seq=0, prev="", kind=kind,
                content=content, recipients=recipients)
        targets = await self._targets(peer)
        envelope, _ = await asyncio.to_thread(
            seal_v3, room=room, sender=me, device=self.device, seq=0, prev="", kind=kind,
            content=content, keys=lambda k: self.ratchets.seal(k, targets))
        return envelope

    async def wait_stored(self, friend: str, message_id: str, timeout: float = 10.0) -> None:
        await self._peer(friend)
        session = await self._device_session()
        await asyncio.wait_for(asyncio.shield(session.stored[message_id]), timeout)

    def status(self, message_id: str) -> str | None:
        """An own message's ticks: None, "sent", "stored", "delivered" or "read" (as far as
        this client has heard: receipts arrive while it listens)."""
        session = self._session
        if session is not None:
            stored = session.stored.get(message_id)
            if stored is not None and stored.done() and not stored.exception():
                self.ticks.stored.add(message_id)
        return self.ticks.status(message_id)

    async def typing(self, friend: str, typing: bool = True) -> None:
        """Tell the friend this user is (or stopped) typing: best effort, never stored."""
        peer = await self._peer(friend)
        envelope = await self._signal(peer, "typing", typing_content(typing))
        session = await self._device_session()
        await session.post(_dumps({"type": "typing", "peer": peer, "body": envelope}))

    def is_typing(self, friend_id: str) -> bool:
        """Whether the friend typed in the last few seconds (heard while listening)."""
        ends = self._typing.get(room_id(self._me(), friend_id))
        return ends is not None and time.monotonic() < ends

    def online(self, friend_id: str) -> bool:
        """Whether the friend is online (heard while listening)."""
        seen = self._online.get(friend_id)
        return seen is not None and seen.online

    async def mark_read(self, friend: str, cursor: str | None = None) -> None:
        """The user has seen the room up to `cursor` (default: the newest message from the
        friend this client decrypted): keep the position server-side (every device of
        the user hears it) and, unless read receipts are off, tell the friend. Sent
        within RECEIPT_DELAY_S, once for a burst of calls."""
        peer = await self._peer(friend)
        room = room_id(self._me(), peer)
        cursor = cursor or self._delivered.get(room)
        if cursor is None:
            return
        self._read[room] = later(self._read.get(room), cursor) or cursor
        self._receipt_soon(peer)

    # -- settings and the conversation list ------------------------------------------
    async def settings(self) -> dict[str, bool]:
        return dict(await self.api.call("GET", "/api/settings"))

    async def update_settings(self, **changes: bool) -> dict[str, bool]:
        result = dict(await self.api.call("PUT", "/api/settings", changes))
        self._read_receipts = result["read_receipts"]
        return result

    async def conversations(self) -> list[dict[str, Any]]:
        """Every friend's conversation: unread count, last activity, presence, and
        `preview` (the newest message verified and decrypted, when it is a text)."""
        items = list((await self.api.call("GET", "/api/conversations"))["conversations"])
        for item in items:
            self._names[item["user_id"]] = item["username"]
            item["preview"] = None
            last = item.get("last")
            if last is not None and last.get("body") is not None:
                frame = {"type": "message", "room": item["room"], **last}
                for event in await self._verify(frame, chain=False):
                    item["preview"] = event
        return items

    # -- receiving -------------------------------------------------------------------
    async def _device_session(self) -> DeviceSession:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._session is None:
                self._me()
                assert self.api.token is not None
                if not self._prekeys_checked:  # a device made before v3 publishes here
                    self._prekeys_checked = True
                    await self.publish_prekeys()
                self._session = DeviceSession(
                    self.url, self.api.token, on_frame=self._on_frame, sync=self._sync_frame,
                    catch_up=lambda: self._sync_frame(catch_up=True))
                await self._session.start()
                if self._renewer is None:
                    self._renewer = asyncio.get_running_loop().create_task(
                        self._keep_renewed())
        await self._session.wait_connected(30)
        return self._session

    def _snapshot_cursors(self) -> None:
        """Every CATCH_UP_S: the last snapshot becomes the earlier one (what a catch-up
        sync starts from), the cursors now the last."""
        now = time.monotonic()
        if now - self._snapped >= CATCH_UP_S:
            self._earlier, self._recent, self._snapped = self._recent, dict(self._cursors), now

    def _sync_frame(self, *, catch_up: bool = False) -> dict[str, Any] | None:
        """What the listeners follow, from this device's cursors (None: nobody listens);
        with `catch_up`, from the cursors of CATCH_UP_S to twice that ago (after
        `sync_needed`: what was lost may lie behind live frames that came since; what
        comes again is dropped as seen)."""
        if not self._listeners:
            return None
        cursors: dict[str, str | None] = dict(self._cursors)
        if catch_up:
            cursors = {r: min(c, self._earlier[r]) if r in self._earlier else None
                       for r, c in self._cursors.items()}
        rooms: set[str] | None = set()
        for listener in self._listeners:
            if listener.rooms is None:
                rooms = None
                break
            assert rooms is not None
            rooms |= listener.rooms
        if rooms is None:
            return {"type": "sync", "after": dict(cursors)}
        return {"type": "sync", "after": {r: cursors.get(r) for r in sorted(rooms)},
                "rooms": sorted(rooms)}

    async def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "stored":
            self.ticks.stored.add(frame["id"])
            return
        if kind == "presence":
            rooms = {room_id(self._me(), frame["user"])}
        elif kind in ("message", "typing", "read", "unsent"):
            rooms = {frame["room"]}
        else:
            return
        for listener in self._listeners:
            if listener.rooms is None or listener.rooms & rooms:
                listener.queue.put_nowait(frame)

    async def listen(self, friend: str | None = None, *, from_start: bool = False,
                     signals: bool = False, on_ready: Callable[[], None] | None = None
                     ) -> AsyncIterator[Event]:
        """Verified, decrypted events of every conversation (no friend) or of one: what was
        missed since last time first (one sync over the device socket), then live ones.
        Messages and alerts; with `signals`, also the friends' receipts, typing and
        presence, and this user's read positions (always kept: `status`, `is_typing`,
        `online`). `on_ready` is called once, when the socket is open and the sync asked."""
        rooms = None if friend is None else {room_id(self._me(), await self._peer(friend))}
        if from_start:
            # Replayed from their first message, the rooms' chains are checked afresh (as in
            # history()); otherwise every message seen before would be dropped as a duplicate.
            def dropped(room: str) -> bool:
                return rooms is None or room in rooms
            self._cursors = {r: c for r, c in self._cursors.items() if not dropped(r)}
            self._chains = Chains({k: v for k, v in self._chains.to_json().items()
                                   if not dropped(k.partition("/")[0])})
        listener = _Listener(rooms, warned=len(self.warnings))
        self._listeners.append(listener)
        try:
            if self._session is not None:
                # Frames that came while nothing listened were dropped: a new socket
                # syncs them again (from this device's saved cursors).
                await self._session.reconnect()
            await self._device_session()
            if on_ready is not None:
                on_ready()
            while True:
                # Verify, advance the chains and the cursor, and save, one frame at a time
                # as the caller asks: a caller that stops early finds the rest next time.
                events = await self._handle(await listener.queue.get())
                # Trust alerts heard meanwhile (an unapproved device, a changed identity)
                # come first: they say what the messages after them are worth.
                fresh, listener.warned = self.warnings[listener.warned:], len(self.warnings)
                for event in [*fresh, *events]:
                    if signals or isinstance(event, Message | Alert | Unsent):
                        yield event
        finally:
            self._listeners.remove(listener)

    async def _handle(self, frame: dict[str, Any]) -> list[Event]:
        kind = frame["type"]
        if kind == "presence":
            event = Presence(frame["user"], bool(frame["online"]), int(frame["at"]))
            seen = self._online.get(event.user)
            if seen is not None and seen.at > event.at:
                return []  # an older event, overtaken
            self._online[event.user] = event
            return [event]
        if kind == "read":
            # Not folded into this device's receipts: it signs only what it showed itself.
            return [ReadPosition(frame["room"], frame["cursor"], int(frame["unread"]))]
        if kind == "typing":
            return await self._verify(frame, chain=False)
        if kind == "unsent":
            # Only what this device showed: shown again when it comes again.
            unsent: list[Event] = []
            for mid in frame["ids"]:
                key = (frame["sender"], mid)
                if key in self._seen:
                    del self._seen[key]
                    self._unsent.add(key)
                    unsent.append(Unsent(frame["room"], frame["sender"], mid))
            return unsent
        events = await self._process(frame)
        room = frame["room"]
        self._cursors[room] = max(self._cursors.get(room, ""), frame["cursor"])
        self._save_state()
        self._fetched_soon(room)
        self._snapshot_cursors()
        if any(isinstance(e, Message) and not e.own for e in events):
            self._delivered[room] = later(self._delivered.get(room), frame["cursor"]) or ""
            self._receipt_soon(frame["sender"])
        return events

    def _receipt_soon(self, peer: str) -> None:
        """One receipt for a burst: what this device decrypted and showed of the room."""
        room = room_id(self._me(), peer)
        task = self._receipts.get(room)
        if task is None or task.done():
            self._receipts[room] = asyncio.create_task(self._send_receipt(peer, room))

    def _fetched_soon(self, room: str) -> None:
        """Tell the server how far this device holds the room (its retention waits for
        every device): once for a burst, like receipts."""
        task = self._fetching.get(room)
        if task is None or task.done():
            self._fetching[room] = asyncio.create_task(self._send_fetched(room))

    async def _send_fetched(self, room: str) -> None:
        await asyncio.sleep(RECEIPT_DELAY_S)
        cursor = self._cursors.get(room)
        if cursor is None or cursor == self._told_fetched.get(room):
            return
        lo, hi = room_members(room)
        session = await self._device_session()
        if await session.post(_dumps({"type": "fetched", "device": self.device.kid,
                                      "peer": hi if lo == self._me() else lo,
                                      "cursor": cursor})):
            self._told_fetched[room] = cursor

    async def _send_receipt(self, peer: str, room: str) -> None:
        await asyncio.sleep(RECEIPT_DELAY_S)
        shown = self._read.get(room)
        session = await self._device_session()
        if shown is not None and shown != self._told_read.get(room):
            await session.post(_dumps({"type": "read", "peer": peer, "cursor": shown}))
            self._told_read[room] = shown
        if self._read_receipts is None:
            self._read_receipts = (await self.settings())["read_receipts"]
        marks = (self._delivered.get(room), shown if self._read_receipts else None)
        if marks == self._told.get(room) or marks == (None, None):
            return
        self._told[room] = marks
        envelope = await self._signal(peer, "receipt", receipt_content(*marks))
        try:
            await self._post(peer, "receipt", envelope)
        except SendError as exc:  # the session closed meanwhile: a receipt is best-effort
            self._told.pop(room, None)
            log.info("receipt for %s not sent: %s", room, exc)

    async def history(self, friend: str, *, limit: int = 100) -> list[Event]:
        """Every stored message of the room, verified and decrypted, oldest first."""
        peer = await self._peer(friend)
        events: list[Event] = []
        self._shared = None  # a share may have come since
        chains = self._chains
        self._chains = Chains()  # history is checked as a whole, from its first message
        try:
            frames: list[dict[str, Any]] = []
            after = None
            while True:
                page = await self.api.messages(peer, after=after, limit=limit)
                frames.extend(page["messages"])
                after = page["next"]
                if after is None:
                    break
            # What this device kept that the server no longer holds (past its retention).
            held = {envelope_hash(f["body"]) for f in frames if isinstance(f.get("body"), dict)}
            kept = await asyncio.to_thread(self.local.room, room_id(self._me(), peer))
            frames.extend(e["frame"] for h, e in kept.items()
                          if h not in held and e["frame"].get("cursor")
                          and e["frame"]["kind"] in MESSAGE_KINDS)
            frames.sort(key=lambda f: str(f["cursor"]))
            for frame in frames:
                events.extend(await self._process(frame, dedup=False))
        finally:
            self._chains = chains
        return events

    async def _process(self, frame: dict[str, Any], *, dedup: bool = True) -> list[Event]:
        """Verify one `message` frame and decrypt it, or say what is wrong with it."""
        key = (frame["sender"], frame["id"])
        if dedup and key in self._seen:
            return []
        events = await self._verify(frame)
        # Marked only once handled: a cancelled attempt is retried when the frame comes again.
        if dedup:
            self._seen[key] = None
            if len(self._seen) > 10_000:
                self._seen.popitem(last=False)
        return events

    async def _verify(self, frame: dict[str, Any], *, chain: bool = True) -> list[Event]:
        """Check one `message` (or `typing`) frame and decrypt it: the events it makes."""
        env, sender, mid = frame["body"], frame["sender"], frame.get("id")
        kind = frame.get("kind", "typing")
        alerts: list[Event] = []

        def alert(what: str, detail: str) -> list[Event]:
            return [*alerts, Alert(what, sender, detail, mid, frame.get("cursor"))]

        if (env.get("sender") != sender or env.get("room") != frame.get("room")
                or env.get("kind") != kind):
            return alert("mismatch", "the envelope names another sender, room or kind")
        try:
            directory = await self._directory(sender)
            device = directory.devices.get(env.get("from", ""))
            if device is None:
                directory = await self._directory(sender, refresh=True)
                device = directory.devices.get(env.get("from", ""))
        except ConfigError as exc:
            return alert("unknown_key", str(exc))
        if device is None:
            return alert("unknown_key", "signed by a device not in this user's signed "
                                        "device list")
        if not verify_signature(env, crypto.load_ec_public(device.sig)):
            return alert("bad_signature", "the signature does not match the sender's key")
        if device.revoked_at is not None and int(frame.get("ts") or 0) > device.revoked_at:
            return alert("revoked_device", f"signed by device {device.kid[:12]} after its "
                                           "revocation")
        if kind in SIGNAL_KINDS:
            if env.get("seq") != 0 or env.get("prev") != "":
                return alert("malformed", "a signal inside the message chain")
        elif chain:
            verdict = self._chains.check(frame["room"], device.kid, int(env["seq"]),
                                         env["prev"], envelope_hash(env), mid or "")
            if verdict.kind != "ok" and verdict.kind != "duplicate":
                alerts.append(Alert(verdict.kind, sender, verdict.detail, mid,
                                    frame.get("cursor")))
            if not verdict.show and not (verdict.kind == "duplicate"
                                         and (sender, mid) in self._unsent):
                return alerts
            self._unsent.discard((sender, mid or ""))
        h = envelope_hash(env)
        entry = own_entry(env, self.device.kid)
        room = frame["room"]
        kept_frame: dict[str, Any] = {k: frame[k] for k in ("type", "id", "sender", "room",
                                                            "kind", "body", "ts", "cursor")
                                      if k in frame}
        keep = kind != "typing" and bool(mid) and "cursor" in frame
        # Sent or read here before (a forward-secret message opens once), else this
        # device's entry: a ratchet message, or an RSA-OAEP wrap.
        kept = await asyncio.to_thread(self.local.entry, room, h) if keep else None
        key = unb64u(kept["key"]) if kept else None
        if kept and key is not None and not kept["frame"].get("cursor"):
            # Kept at sending, before an ack that never came: now with the server's cursor.
            await asyncio.to_thread(self.local.add, kept_frame, h, key)
        if key is None and entry is None:
            # Sent before this device was added (or to a list without it): explained, not
            # a failure. A signal of then is stale anyway: nothing to show.
            if kind in SIGNAL_KINDS:
                return alerts
            key = await self._shared_key(env)
            if key is None:
                return alert(NOT_FOR_DEVICE, "the message holds no key for this device")
        elif key is None and entry is not None and "h" in entry:
            # Opened and kept under the sessions' lock, the kept copy written before the
            # session moves on: a crash between them costs nothing, and two processes of
            # this home never both open it.
            try:
                key = await asyncio.to_thread(
                    self.ratchets.open, device.kid, entry,
                    kept=lambda: self.local.key(room, h),
                    keep=(lambda k: self.local.add(kept_frame, h, k)) if keep else None)
            except RatchetError as exc:
                return alert("undecryptable", f"{exc.code}: {exc.detail}")
            kept = {"frame": kept_frame}
        elif key is None:
            try:
                key = await asyncio.to_thread(content_key, env, self.device)
            except CryptoError as exc:
                return alert("undecryptable", str(exc))
        try:
            content = await asyncio.to_thread(open_content, env, self.device, key)
        except CryptoError as exc:
            return alert("undecryptable", str(exc))
        if keep and kept is None and key is not None:
            # Whatever opened it (RSA, a history share), the device keeps it: the server's
            # copy may go once every device fetched it (retention).
            await asyncio.to_thread(self.local.add, kept_frame, h, key)
        own = sender == self.user_id
        if kind == "receipt":
            try:
                delivered, read = parse_receipt(content)
            except CryptoError as exc:
                return alert("malformed", str(exc))
            if own:
                return alerts  # another device of this user's: the read position says it
            self.ticks.receipt(frame["room"], delivered, read)
            return [*alerts, Receipt(frame["room"], sender, delivered, read)]
        if kind == "typing":
            try:
                typing = parse_typing(content)
            except CryptoError as exc:
                return alert("stale", str(exc))
            if typing:
                self._typing[frame["room"]] = time.monotonic() + TYPING_SHOWN_S
            else:
                self._typing.pop(frame["room"], None)
            return [*alerts, Typing(frame["room"], sender, typing)]
        name = self.username if own else self._names.get(sender, sender)
        return [*alerts, Message(mid or "", frame["room"], sender, name or sender,
                                 frame["kind"], content, frame["ts"], frame["cursor"], own)]


@dataclass(eq=False)
class _Listener:
    """One `listen()`: the rooms it follows (None: all) and the frames waiting for it."""

    rooms: set[str] | None
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    warned: int = 0  # how many of Client.warnings it has yielded


def _dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()
