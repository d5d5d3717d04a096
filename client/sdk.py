"""The Python SDK: `async with Client(url, home=..., passphrase=...) as c`.

Register or log in (a new home directory is a new device: keys generated and published),
befriend, send text and images, read history, and iterate over live messages. Every
message is verified (signature, key directory, hash chain) before it is decrypted; what
fails comes out as an `Alert`, never as a message.
"""

from __future__ import annotations

import asyncio
import mimetypes
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts import room_id

from . import crypto
from .api import Api
from .chain import Chains
from .envelope import Content, Recipient, envelope_hash, open_content, seal, verify_signature
from .errors import ConfigError, CryptoError
from .profile import Profile, default_home
from .room import RoomSession

MAX_TEXT = 64 * 1024
MAX_IMAGE = 5 * 1024 * 1024

Progress = Callable[[str], None]
"""Told each stage of a send as it starts: "encrypt", "send", then "sent" once acked."""


@dataclass(frozen=True)
class Message:
    id: str
    room: str
    sender: str
    sender_name: str
    kind: str
    content: Content
    ts: int
    cursor: str
    own: bool

    @property
    def text(self) -> str:
        return self.content.as_text() if self.kind == "text" else f"[image {self.content.mime}]"


@dataclass(frozen=True)
class Alert:
    """A message that did not verify, or a change the user must see."""

    kind: str  # bad_signature | unknown_key | undecryptable | mismatch | gap | replay | fork
    #            | key_changed
    sender: str
    detail: str
    id: str | None = None
    cursor: str | None = None


Event = Message | Alert


@dataclass
class _Device:
    kid: str
    sid: str
    enc: str
    sig: str
    revoked_at: int | None = None


@dataclass
class _Directory:
    devices: dict[str, _Device] = field(default_factory=dict)
    fetched: float = 0.0

    def live(self) -> list[_Device]:
        return [d for d in self.devices.values() if d.revoked_at is None]


class Client:
    def __init__(self, url: str | None = None, *, home: Path | str | None = None,
                 passphrase: str | None = None, rsa_bits: int = 2048,
                 max_text: int = MAX_TEXT, max_image: int = MAX_IMAGE) -> None:
        self.profile = Profile(Path(home) if home else default_home())
        account = self.profile.account()
        self.url = (url or account.get("server") or "").rstrip("/")
        if not self.url:
            raise ConfigError("no server URL: pass one, or log in first")
        self._passphrase = passphrase
        self._rsa_bits = rsa_bits
        self.max_text, self.max_image = max_text, max_image
        self.api = Api(self.url)
        self.user_id: str | None = account.get("user_id")
        self.username: str | None = account.get("username")
        if account.get("token") and account.get("server", "").rstrip("/") == self.url:
            self.api.token = account["token"]
        self._device: crypto.DeviceKeys | None = None
        state = self.profile.state()
        self._send_chains: dict[str, dict[str, Any]] = state.get("send_chains", {})
        self._chains = Chains(state.get("recv_chains"))
        self._cursors: dict[str, str] = state.get("cursors", {})
        self._peers: dict[str, list[list[str]]] = state.get("peers", {})
        self._names: dict[str, str] = {}
        self._directories: dict[str, _Directory] = {}
        self._key_changed: set[str] = set(state.get("key_changed", []))
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._rooms: dict[str, RoomSession] = {}
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for session in list(self._rooms.values()):
            await session.close()
        self._rooms.clear()
        await self.api.close()

    def _save_state(self) -> None:
        self.profile.save_state({"send_chains": self._send_chains,
                                 "recv_chains": self._chains.to_json(),
                                 "cursors": self._cursors, "peers": self._peers,
                                 "key_changed": sorted(self._key_changed)})

    # -- account and device ----------------------------------------------------------
    async def register(self, username: str, password: str) -> str:
        registered = await self.api.register(username, password)
        await self.login(username, password)
        return str(registered["user_id"])

    async def login(self, username: str, password: str) -> None:
        """Log in; on a new device generate its keys and publish them."""
        token = await self.api.login(username, password)
        self.user_id, self.username = token["user_id"], username
        self.profile.save_account(server=self.url, user_id=self.user_id, username=username,
                                  token=token["access_token"],
                                  token_expires=int(time.time()) + int(token["expires_in"]))
        if not self.profile.has_device():
            device = await asyncio.to_thread(crypto.DeviceKeys.generate, self._rsa_bits)
            self.profile.save_device(device, self._passphrase)
            self._device = device
        await self.api.publish_keys([self.device.public()])

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

    async def _peer(self, friend: str) -> str:
        """A friend's user id, from a username or a user id."""
        for uid, name in self._names.items():
            if friend in (uid, name) or name.lower() == friend.lower():
                return uid
        for f in await self.friends():
            if friend in (f["user_id"], f["username"]) or f["username"].lower() == friend.lower():
                return str(f["user_id"])
        raise ConfigError(f"{friend!r} is not among your friends")

    # -- keys ------------------------------------------------------------------------
    async def _directory(self, user_id: str, *, refresh: bool = False) -> _Directory:
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
        directory = _Directory(fetched=time.monotonic())
        for k in profile["keys"]:
            directory.devices[k["kid"]] = _Device(k["kid"], k["sid"], k["enc"], k["sig"])
        for k in profile.get("revoked", []):
            directory.devices[k["kid"]] = _Device(k["kid"], k["sid"], k["enc"], k["sig"],
                                                  k["revoked_at"])
        self._directories[user_id] = directory
        if user_id != self.user_id:
            self._remember_keys(user_id, directory)
        return directory

    def _remember_keys(self, user_id: str, directory: _Directory) -> None:
        """Trust on first use; afterwards a changed key set raises a key_changed alert."""
        current = sorted([d.kid, d.sid] for d in directory.live())
        known = self._peers.get(user_id)
        if known is not None and known != current:
            self._key_changed.add(user_id)
        self._peers[user_id] = current
        self._save_state()

    async def safety_number(self, friend: str) -> str:
        peer = await self._peer(friend)
        mine = await self._directory(self._me(), refresh=True)
        theirs = await self._directory(peer, refresh=True)
        return crypto.safety_number(
            self._me(), [(d.kid, d.sid) for d in mine.live()],
            peer, [(d.kid, d.sid) for d in theirs.live()])

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

    async def _send(self, friend: str, kind: str, content: Content,
                    message_id: str | None, progress: Progress | None = None
                    ) -> dict[str, Any]:
        me, peer = self._me(), await self._peer(friend)
        room = room_id(me, peer)
        theirs = await self._directory(peer, refresh=True)
        mine = await self._directory(me, refresh=True)
        recipients = [Recipient(d.kid, crypto.load_rsa_public(d.enc))
                      for d in theirs.live() + mine.live()]
        if not theirs.live():
            raise ConfigError(f"{friend} has published no device keys yet")
        link = self._send_chains.get(room, {"seq": 0, "hash": ""})
        if progress:
            progress("encrypt")
        envelope = await asyncio.to_thread(
            seal, room=room, sender=me, device=self.device, seq=link["seq"] + 1,
            prev=link["hash"], kind=kind, content=content, recipients=recipients)
        # Advance the chain before sending, so a crash can never reuse a sequence number.
        self._send_chains[room] = {"seq": envelope["seq"], "hash": envelope_hash(envelope)}
        self._save_state()
        if progress:
            progress("send")
        session = await self._session(peer, sync=False)
        frame = {"type": "send", "id": message_id or secrets.token_urlsafe(12), "kind": kind,
                 "body": envelope}
        ack = await session.send(frame)
        if progress:
            progress("sent")
        return ack

    async def wait_stored(self, friend: str, message_id: str, timeout: float = 10.0) -> None:
        session = self._rooms[await self._peer(friend)]
        await asyncio.wait_for(session.stored[message_id], timeout)

    # -- receiving -------------------------------------------------------------------
    async def _session(self, peer: str, *, sync: bool) -> RoomSession:
        session = self._rooms.get(peer)
        if session is None:
            room = room_id(self._me(), peer)
            self._queues.setdefault(peer, asyncio.Queue())

            async def on_message(frame: dict[str, Any]) -> None:
                if sync:  # verified by listen() as it is consumed, not ahead of it
                    await self._queues[peer].put(frame)

            assert self.api.token is not None
            session = RoomSession(self.url, self.api.token, peer, on_message=on_message,
                                  cursor=self._cursors.get(room), sync=sync)
            self._rooms[peer] = session
            await session.start()
        await session.wait_connected(30)
        return session

    async def listen(self, friend: str, *, from_start: bool = False) -> AsyncIterator[Event]:
        """Verified, decrypted events of a room: what was missed since last time, then live."""
        peer = await self._peer(friend)
        room = room_id(self._me(), peer)
        if from_start:
            # Replayed from its first message, the room's chains are checked afresh (as in
            # history()); otherwise every message seen before would be dropped as a duplicate.
            self._cursors.pop(room, None)
            self._chains = Chains({k: v for k, v in self._chains.to_json().items()
                                   if not k.startswith(f"{room}/")})
        old = self._rooms.get(peer)
        if old is not None and not old.syncing:
            # A send-only session: reopen it as one that syncs and verifies.
            del self._rooms[peer]
            await old.close()
        await self._session(peer, sync=True)
        queue = self._queues[peer]
        while True:
            # Verify, advance the chains and the cursor, and save, one frame at a time as
            # the caller asks: a caller that stops early finds the rest again next time.
            frame = await queue.get()
            events = await self._process(frame)
            self._cursors[room] = max(self._cursors.get(room, ""), frame["cursor"])
            self._save_state()
            for event in events:
                yield event

    async def history(self, friend: str, *, limit: int = 100) -> list[Event]:
        """Every stored message of the room, verified and decrypted, oldest first."""
        peer = await self._peer(friend)
        events: list[Event] = []
        chains = self._chains
        self._chains = Chains()  # history is checked as a whole, from its first message
        try:
            after = None
            while True:
                page = await self.api.messages(peer, after=after, limit=limit)
                for frame in page["messages"]:
                    events.extend(await self._process(frame, dedup=False))
                after = page["next"]
                if after is None:
                    break
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

    async def _verify(self, frame: dict[str, Any]) -> list[Event]:
        env, sender, mid = frame["body"], frame["sender"], frame["id"]
        alerts: list[Event] = []

        def alert(kind: str, detail: str) -> list[Event]:
            return [*alerts, Alert(kind, sender, detail, mid, frame.get("cursor"))]

        if env.get("sender") != sender or env.get("room") != frame.get("room"):
            return alert("mismatch", "the envelope names another sender or room")
        try:
            directory = await self._directory(sender)
            device = directory.devices.get(env.get("from", ""))
            if device is None:
                directory = await self._directory(sender, refresh=True)
                device = directory.devices.get(env.get("from", ""))
        except ConfigError as exc:
            return alert("unknown_key", str(exc))
        if sender in self._key_changed:
            self._key_changed.discard(sender)
            alerts.append(Alert("key_changed", sender,
                                "this friend's keys changed: compare safety numbers", mid))
        if device is None:
            return alert("unknown_key", "signed by a key this user never published")
        if not verify_signature(env, crypto.load_ec_public(device.sig)):
            return alert("bad_signature", "the signature does not match the sender's key")
        verdict = self._chains.check(frame["room"], device.kid, int(env["seq"]), env["prev"],
                                     envelope_hash(env), mid)
        if verdict.kind != "ok" and verdict.kind != "duplicate":
            alerts.append(Alert(verdict.kind, sender, verdict.detail, mid, frame.get("cursor")))
        if not verdict.show:
            return alerts
        try:
            content = await asyncio.to_thread(open_content, env, self.device)
        except CryptoError as exc:
            return alert("undecryptable", str(exc))
        name = self.username if sender == self.user_id else self._names.get(sender, sender)
        return [*alerts, Message(mid, frame["room"], sender, name or sender, frame["kind"],
                                 content, frame["ts"], frame["cursor"],
                                 sender == self.user_id)]
