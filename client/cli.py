"""The `duet` command line, over the SDK: one device profile per home directory.

    duet [--server URL] [--home DIR] [--json] [--passphrase-file PATH] [--password-stdin]
         COMMAND ...

    register USERNAME            create an account; this home becomes its first device
    login USERNAME               log in; a new home is a new device (keys made and published)
    friends add|accept USERNAME  ask someone to be friends, or accept their request
    friends list                 friends and pending requests
    send FRIEND TEXT...          send a text message
    send-image FRIEND PATH       send an image (a progress bar on a terminal)
    listen [FRIEND]              replay what was missed since the last run, then live
    inbox                        conversations: unread counts, last activity, who is online
    history FRIEND               every stored message, verified and decrypted, oldest first
    verify FRIEND                the safety number to compare with FRIEND
    audit tail [--room A,B] [--since TIME | --offset N] [--follow] [--limit N]
                                 one JSON line per message in the broker's audit stream
    audit verify --since TIME [--until TIME] [--room A,B]
                                 the audit stream against MongoDB: every message in one only

Secrets never come from arguments. The account password: DUET_PASSWORD, or one line on
stdin with --password-stdin, else a prompt. The passphrase that unlocks this device's
private keys: --passphrase-file, or DUET_PASSPHRASE, else a prompt. Without a terminal
and without them a command fails at once, it never waits. No secret is ever printed.

Output: human lines, or with --json one JSON object per line on stdout. Errors: one line
`duet: error: ...` on stderr. Exit codes: 0 done, 1 error, 2 usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import mimetypes
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import WebSocketException

from . import audit
from .errors import ApiError, ConfigError, DuetError, SendError
from .profile import Profile, default_home
from .progress import Bar
from .sdk import Alert, Client, Event, Message

DEFAULT_SERVER = "http://127.0.0.1:8000"
READ_CHUNK = 256 * 1024
_USERNAME = re.compile(r"^[A-Za-z0-9_]{3,32}$")  # contracts.api.Username
# C0/C1 controls (but tab and newline) and bidi overrides: a friend's text must not be able
# to drive the terminal or disguise itself.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_IMAGE_MAGIC = [(b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif")]
_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif",
               "image/webp": ".webp"}

log = logging.getLogger(__name__)


# -- output ----------------------------------------------------------------------------
class Output:
    """Human lines or JSON lines on stdout, flushed one by one (output is often piped)."""

    def __init__(self, as_json: bool) -> None:
        self.json = as_json

    def emit(self, obj: dict[str, Any], human: str | None) -> None:
        if self.json:
            print(json.dumps(obj), flush=True)
        elif human is not None:
            print(human, flush=True)


def printable(text: str) -> str:
    """Text safe for a terminal; each continuation line indented, so no line is forged."""
    text = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                            else f"\\u{ord(m.group()):04x}", text)
    return text.replace("\n", "\n    ")


def clock(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


# -- secrets -----------------------------------------------------------------------------
def interactive() -> bool:
    return sys.stdin.isatty()


def ask(prompt: str) -> str:
    """A secret typed at the terminal, never echoed."""
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise ConfigError("nothing was typed") from None


class Session:
    """One run of a command: its arguments, the device profile, secrets, and output."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.home = Path(args.home).expanduser() if args.home else default_home()
        self.profile = Profile(self.home)
        self.account = self.profile.account()
        self.out = Output(args.json)
        self.secrets: list[str] = [s for s in [self.account.get("token")] if s]
        self.names: dict[str, str] = {}

    # Secrets -------------------------------------------------------------------------
    def keep(self, secret: str) -> str:
        self.secrets.append(secret)
        return secret

    def password(self, username: str, *, new: bool = False) -> str:
        if self.args.password_stdin:
            value = sys.stdin.readline().rstrip("\r\n")
            source = "the first line of stdin"
        elif os.environ.get("DUET_PASSWORD"):
            value, source = os.environ["DUET_PASSWORD"], "DUET_PASSWORD"
        elif interactive():
            value = ask(f"Password for {username}: ")
            if new and ask("Repeat the password: ") != value:
                raise ConfigError("the two passwords differ")
            source = "the prompt"
        else:
            raise ConfigError("a password is needed: set DUET_PASSWORD or use --password-stdin "
                              "(no terminal to ask on)")
        if not value:
            raise ConfigError(f"the password from {source} is empty")
        if new and not 8 <= len(value) <= 256:
            raise ConfigError("the password must be 8 to 256 characters long")
        return self.keep(value)

    def passphrase(self, *, new: bool = False) -> str:
        if self.args.passphrase_file:
            path = Path(self.args.passphrase_file).expanduser()
            try:
                value = path.read_text().rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not text"
                raise ConfigError(f"cannot read the passphrase file {path}: {reason}") from None
            source = str(path)
        elif os.environ.get("DUET_PASSPHRASE"):
            value, source = os.environ["DUET_PASSPHRASE"], "DUET_PASSPHRASE"
        elif interactive():
            prompt = ("New passphrase for this device's keys: " if new
                      else f"Passphrase for the device keys in {self.home}: ")
            value = ask(prompt)
            if new and ask("Repeat the passphrase: ") != value:
                raise ConfigError("the two passphrases differ")
            source = "the prompt"
        else:
            raise ConfigError("the passphrase of this device's keys is needed: set "
                              "DUET_PASSPHRASE or use --passphrase-file (no terminal to ask on)")
        if not value:
            raise ConfigError(f"the passphrase from {source} is empty")
        return self.keep(value)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    # Account ---------------------------------------------------------------------------
    def new_login_url(self, username: str) -> str:
        """The server to register or log in on; refuses a home that is another user's."""
        owner = self.account.get("username")
        if owner and owner.lower() != username.lower():
            raise ConfigError(f"{self.home} is {owner}'s device: use another --home for "
                              f"{username}")
        return str(self.args.server or self.account.get("server")
                   or os.environ.get("DUET_SERVER") or DEFAULT_SERVER).rstrip("/")

    def logged_in_url(self) -> str:
        """The server this device is logged in to; a clear error when it is not."""
        acc = self.account
        if not acc.get("token") or not acc.get("user_id"):
            raise ConfigError(f"no account on this device ({self.home}): run "
                              "`duet register USERNAME` or `duet login USERNAME`")
        server = str(acc.get("server", "")).rstrip("/")
        if self.args.server and self.args.server.rstrip("/") != server:
            raise ConfigError(f"this device is logged in to {server}, not {self.args.server}: "
                              f"log in there first (duet --server {self.args.server} login "
                              f"{acc.get('username')})")
        expires = acc.get("token_expires")
        if expires is not None and int(expires) <= time.time():
            raise ConfigError(f"the session of {acc.get('username')} on this device expired: "
                              f"run `duet login {acc.get('username')}`")
        return server

    async def client(self, *, device: bool) -> Client:
        """The SDK client of a logged-in device; with device=True its keys unlocked."""
        url = self.logged_in_url()
        client = Client(url, home=self.home,
                        passphrase=self.passphrase() if device else None)
        if device:
            try:
                await asyncio.to_thread(lambda: client.device)
            except BaseException:
                await client.close()
                raise
        return client

    async def friend(self, client: Client, name: str, *, accepted: bool = True
                     ) -> dict[str, Any]:
        """A friend by username (any case) or user id; with accepted=True, only a friend."""
        for f in await self.friends(client):
            if name in (f["user_id"], f["username"]) or f["username"].lower() == name.lower():
                if accepted and f["status"] == "outgoing":
                    raise ConfigError(f"{f['username']} has not accepted your friend request "
                                      "yet")
                if accepted and f["status"] == "incoming":
                    raise ConfigError(f"{f['username']} asked to be your friend: run "
                                      f"`duet friends accept {f['username']}` first")
                return f
        raise ConfigError(f"{name!r} is not among your friends: run `duet friends add "
                          f"{name}` and wait for them to accept")

    async def friends(self, client: Client) -> list[dict[str, Any]]:
        """Friends and requests; remembers every name, to show them in alerts."""
        friends = await client.friends()
        self.names.update({f["user_id"]: f["username"] for f in friends})
        if client.user_id and client.username:
            self.names[client.user_id] = client.username
        return friends

    # Events ----------------------------------------------------------------------------
    def show_alert(self, alert: Alert) -> None:
        name = self.names.get(alert.sender, alert.sender)
        about = f" (message {alert.id})" if alert.id else ""
        self.out.emit({"type": "alert", "kind": alert.kind, "sender": alert.sender,
                       "sender_name": name, "detail": alert.detail, "id": alert.id,
                       "cursor": alert.cursor},
                      f"WARNING: {alert.kind} from {name}: {printable(alert.detail)}{about}")

    async def show(self, event: Event, save_dir: Path) -> None:
        if isinstance(event, Alert):
            self.show_alert(event)
            return
        who = f"{event.sender_name} (you)" if event.own else event.sender_name
        obj: dict[str, Any] = {"type": "message", "id": event.id, "sender": event.sender,
                               "sender_name": event.sender_name, "kind": event.kind,
                               "ts": event.ts, "cursor": event.cursor, "own": event.own}
        if event.kind == "text":
            obj["text"] = event.text
            self.out.emit(obj, f"[{clock(event.ts)}] {who}: {printable(event.text)}")
            return
        path = await asyncio.to_thread(save_attachment, save_dir, event)
        obj.update(path=str(path), mime=event.content.mime, bytes=len(event.content.data))
        if "name" in event.content.meta:
            obj["name"] = str(event.content.meta["name"])
        self.out.emit(obj, f"[{clock(event.ts)}] {who}: [{event.kind} "
                           f"{printable(event.content.mime)}, {len(event.content.data)} bytes] "
                           f"saved to {path}")

    def save_dir(self) -> Path:
        return Path(self.args.save_dir).expanduser() if self.args.save_dir else (
            self.home / "images")


def save_attachment(directory: Path, message: Message) -> Path:
    """Write an image under a name made only of safe characters (never the sender's path)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ext = _EXTENSIONS.get(message.content.mime.split(";")[0].strip().lower(), ".bin")
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", f"{message.sender_name}-{message.id}")[:120]
    path = directory / f"{stem}{ext}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(message.content.data)
    return path


def sniff_image(path: Path, head: bytes) -> str:
    for magic, mime in _IMAGE_MAGIC:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    guessed = mimetypes.guess_type(path.name)[0]
    if guessed and guessed.startswith("image/"):
        return guessed
    raise ConfigError(f"{path} does not look like an image (PNG, JPEG, GIF or WebP)")


# -- commands ----------------------------------------------------------------------------
async def cmd_register(s: Session) -> int:
    username = s.args.username
    url = s.new_login_url(username)
    password = s.password(username, new=True)
    passphrase = s.passphrase(new=not s.profile.has_device())
    async with Client(url, home=s.home, passphrase=passphrase) as client:
        if s.profile.has_device():
            await asyncio.to_thread(lambda: client.device)  # a wrong passphrase fails here
        user_id = await client.register(username, password)
        s.keep(client.api.token or "")
        kid = client.device.kid
    s.out.emit({"type": "registered", "user_id": user_id, "username": username,
                "device": kid, "server": url, "home": str(s.home)},
               f"registered {username} on {url}; this device ({s.home}) has key {kid[:12]}")
    return 0


async def cmd_login(s: Session) -> int:
    username = s.args.username
    url = s.new_login_url(username)
    password = s.password(username)
    new_device = not s.profile.has_device()
    passphrase = s.passphrase(new=new_device)
    async with Client(url, home=s.home, passphrase=passphrase) as client:
        if not new_device:
            await asyncio.to_thread(lambda: client.device)  # a wrong passphrase fails here
        await client.login(username, password)
        s.keep(client.api.token or "")
        kid = client.device.kid
    what = "new device, keys published" if new_device else "keys republished"
    s.out.emit({"type": "logged_in", "user_id": client.user_id, "username": username,
                "device": kid, "new_device": new_device, "server": url, "home": str(s.home)},
               f"logged in as {username} on {url} ({what}: {kid[:12]})")
    return 0


def _friend_line(f: dict[str, Any]) -> str:
    name = f["username"]
    return {"accepted": f"{name}: friends",
            "outgoing": f"{name}: request sent, waiting for {name} to accept",
            "incoming": f"{name}: wants to be your friend (duet friends accept {name})",
            }.get(f["status"], f"{name}: {f['status']}")


async def cmd_friends_add(s: Session) -> int:
    async with await s.client(device=False) as client:
        f = await client.add_friend(s.args.username)
    human = (f"you and {f['username']} are now friends" if f["status"] == "accepted" else
             f"friend request sent to {f['username']}; once they accept "
             f"(duet friends accept {client.username}) you can chat")
    s.out.emit({"type": "friend", **f}, human)
    return 0


async def cmd_friends_accept(s: Session) -> int:
    async with await s.client(device=False) as client:
        f = await client.accept_friend(s.args.username)
    s.out.emit({"type": "friend", **f}, f"you and {f['username']} are now friends")
    return 0


async def cmd_friends_list(s: Session) -> int:
    async with await s.client(device=False) as client:
        friends = await client.friends()
    for f in sorted(friends, key=lambda f: (f["status"] != "accepted", f["username"].lower())):
        s.out.emit({"type": "friend", **f}, _friend_line(f))
    if not friends and not s.out.json:
        print("no friends yet: duet friends add USERNAME", flush=True)
    return 0


def _peer_keys(client: Client, peer: str) -> Any:
    return client.profile.state().get("peers", {}).get(peer)


def _warn_key_change(s: Session, client: Client, f: dict[str, Any], before: Any) -> None:
    """Keys first seen changed by this send: say so, since no listener will now."""
    after = _peer_keys(client, f["user_id"])
    if before is not None and after is not None and before != after:
        s.show_alert(Alert("key_changed", f["user_id"],
                           f"{f['username']}'s devices changed: compare safety numbers "
                           f"(duet verify {f['username']})"))


async def cmd_send(s: Session) -> int:
    text = " ".join(s.args.text)
    async with await s.client(device=True) as client:
        if len(text.encode()) > client.max_text:
            raise ConfigError(f"the text is longer than {client.max_text} bytes")
        if not text:
            raise ConfigError("nothing to send: the text is empty")
        f = await s.friend(client, s.args.friend)
        before = _peer_keys(client, f["user_id"])
        ack = await client.send_text(f["username"], text)
        _warn_key_change(s, client, f, before)
    s.out.emit({"type": "sent", "id": ack["id"], "kind": "text", "to": f["username"],
                "ts": ack["ts"]}, f"[{clock(ack['ts'])}] sent to {f['username']}")
    return 0


async def _read(path: Path, size: int, bar: Bar) -> bytes:
    chunks, done = [], 0
    with path.open("rb") as fh:
        while chunk := await asyncio.to_thread(fh.read, READ_CHUNK):
            chunks.append(chunk)
            done += len(chunk)
            bar.update("read", done / size if size else 1.0)
    return b"".join(chunks)


async def cmd_send_image(s: Session) -> int:
    path = Path(s.args.path).expanduser()
    async with await s.client(device=True) as client:
        try:
            size = path.stat().st_size
            with path.open("rb") as fh:
                head = fh.read(16)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        if not path.is_file():
            raise ConfigError(f"{path} is not a file")
        if size > client.max_image:
            raise ConfigError(f"{path} is {size} bytes; images may be at most "
                              f"{client.max_image} bytes")
        mime = sniff_image(path, head)
        f = await s.friend(client, s.args.friend)
        before = _peer_keys(client, f["user_id"])
        bar = Bar(sys.stderr, [("read", 0.3), ("encrypt", 0.3), ("send", 0.4)],
                  label=path.name[:40], enabled=not s.out.json and sys.stderr.isatty())
        try:
            data = await _read(path, size, bar)
            ack = await client.send_image(f["username"], data, mime=mime, name=path.name,
                                          progress=bar.update)
        except BaseException:
            bar.close(ok=False)
            raise
        bar.close()
        _warn_key_change(s, client, f, before)
    s.out.emit({"type": "sent", "id": ack["id"], "kind": "image", "to": f["username"],
                "ts": ack["ts"], "mime": mime, "bytes": len(data)},
               f"[{clock(ack['ts'])}] sent {path.name} ({len(data)} bytes) to {f['username']}")
    return 0


async def cmd_listen(s: Session) -> int:
    args, save_dir = s.args, s.save_dir()
    async with await s.client(device=True) as client:
        friend = None
        if args.friend:
            friend = (await s.friend(client, args.friend))["username"]
        elif not [f for f in await s.friends(client) if f["status"] == "accepted"]:
            raise ConfigError("no friends to listen to yet: duet friends add USERNAME")
        events = client.listen(friend, from_start=args.from_start)
        received = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.timeout if args.timeout else None
        try:
            while not args.count or received < args.count:
                # Only the wait is timed: an event taken is always shown (and saved) whole.
                timer = asyncio.timeout_at(deadline)
                try:
                    async with timer:
                        event = await anext(events)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    if not timer.expired():
                        raise  # a connection that timed out, not the --timeout
                    break
                if not isinstance(event, Message | Alert):
                    continue  # receipts, typing, presence: for interactive clients
                await s.show(event, save_dir)
                if isinstance(event, Message) and not event.own:
                    received += 1
                    # Printed is read: the position (all this user's devices) and, unless
                    # read receipts are off, a receipt to the friend.
                    await client.mark_read(event.sender, event.cursor)
        finally:
            await events.aclose()  # type: ignore[attr-defined]
    if args.count and received < args.count:
        raise ConfigError(f"--timeout {args.timeout:g}s passed with {received} of "
                          f"{args.count} messages")
    return 0


async def cmd_inbox(s: Session) -> int:
    async with await s.client(device=True) as client:
        await s.friends(client)
        items = await client.conversations()
    if not items and not s.out.json:
        print("no conversations yet: duet friends add USERNAME", flush=True)
    for item in items:
        preview = item["preview"]
        text = None
        if isinstance(preview, Message):
            text = preview.text
        elif isinstance(preview, Alert):
            text = f"[{preview.kind}: {preview.detail}]"
        elif item["last"] is not None:
            text = f"[{item['last']['kind']}]"
        s.out.emit({"type": "conversation", "friend": item["username"],
                    "friend_id": item["user_id"], "room": item["room"],
                    "unread": item["unread"], "online": item["online"],
                    "last_activity": item["last_activity"], "preview": text},
                   f"{'●' if item['online'] else ' '} {item['username']:<20} "
                   f"{item['unread']:>4} unread  {clock(item['last_activity'])}  "
                   f"{printable(text or '')[:60]}")
    return 0


async def cmd_history(s: Session) -> int:
    async with await s.client(device=True) as client:
        f = await s.friend(client, s.args.friend)
        events = await client.history(f["username"])
        for event in events:
            await s.show(event, s.save_dir())
    if not events and not s.out.json:
        print(f"no messages with {f['username']} yet", flush=True)
    return 0


async def cmd_verify(s: Session) -> int:
    async with await s.client(device=False) as client:
        f = await s.friend(client, s.args.friend, accepted=False)
        number = await client.safety_number(f["username"])
        me = client.username
    groups = number.split()
    rows = "\n".join("    " + " ".join(groups[i:i + 4]) for i in range(0, len(groups), 4))
    name = f["username"]
    s.out.emit({"type": "safety_number", "friend": name, "friend_id": f["user_id"],
                "safety_number": number},
               f"Safety number for {me} and {name}:\n\n{rows}\n\n"
               f"Compare it with {name} in person, or on a call where you know each other's\n"
               f"voices ({name} runs `duet verify {me}`). If both of you see the same number,\n"
               f"your messages are encrypted for your own devices and no one else's. If it\n"
               f"differs, someone may be intercepting: send nothing sensitive. The number\n"
               f"changes when either of you adds or removes a device: compare again then.")
    return 0


# -- audit (operators: the broker and MongoDB, never a device or a server URL) -----------
def _audit_broker(s: Session) -> tuple[str, str]:
    """The broker URL and name prefix; the AMQP libraries' own logs only with --verbose
    (their connection errors are reported once, as a `duet: error:` line)."""
    args = s.args
    if not args.verbose:
        for name in ("aio_pika", "aiormq"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    amqp_url = args.amqp_url or os.environ.get("DUET_AMQP_URL") or audit.DEFAULT_AMQP_URL
    prefix = args.prefix if args.prefix is not None else os.environ.get("DUET_PREFIX", "")
    return amqp_url, prefix


def _json_line(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


async def cmd_audit_tail(s: Session) -> int:
    amqp_url, prefix = _audit_broker(s)
    await audit.tail(_json_line, amqp_url, prefix, since=s.args.since, offset=s.args.offset,
                     rooms=s.args.room, follow=s.args.follow, limit=s.args.limit)
    return 0


async def cmd_audit_verify(s: Session) -> int:
    args = s.args
    amqp_url, prefix = _audit_broker(s)
    mongo_url = args.mongo_url or os.environ.get("DUET_MONGO_URL") or audit.DEFAULT_MONGO_URL
    db_name = args.mongo_db or os.environ.get("DUET_MONGO_DB") or "duet"
    if args.until is not None and args.until <= args.since:
        raise ConfigError("--until must be later than --since")
    differences = await audit.verify(
        _json_line, amqp_url, prefix, mongo_url, audit.database_name(prefix, db_name),
        since=args.since, until=args.until, rooms=args.room, grace_s=args.grace)
    return 1 if differences else 0


# -- arguments ---------------------------------------------------------------------------
def _username(value: str) -> str:
    if not _USERNAME.match(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a username (3 to 32 of A-Z, a-z, 0-9 and _)")
    return value


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return n


def _positive_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        x = 0.0
    if not 0 < x < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return x


def _time(value: str) -> datetime:
    try:
        return audit.parse_time(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rooms(value: str) -> audit.RoomFilter:
    try:
        return audit.RoomFilter.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        x = -1.0
    if not 0 <= x < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds (0 or more)")
    return x


def _offset(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a stream offset (0, 1, 2, ...)")
    return int(value)


def _audit_command(where: Any, name: str, handler: Handler, help: str
                   ) -> argparse.ArgumentParser:
    """An audit command: no device options (it reads the broker and MongoDB, not a
    profile); where the stream is comes from the services' own environment names."""
    p: argparse.ArgumentParser = where.add_parser(name, help=help, description=help)
    p.set_defaults(handler=handler)
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="log what the client does on stderr")
    p.add_argument("--amqp-url", metavar="URL",
                   help="RabbitMQ (default: $DUET_AMQP_URL, else "
                        f"{audit.redact(audit.DEFAULT_AMQP_URL)})")
    p.add_argument("--prefix", metavar="PREFIX",
                   help="the services' name prefix (default: $DUET_PREFIX, else none); the "
                        "stream is PREFIXduet.audit")
    p.add_argument("--room", metavar="A,B", type=_rooms,
                   help="only these rooms (<user id>.<user id>, either order) and rooms with "
                        "these users (a user id): comma-separated, any mix")
    return p


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes, before or after its name."""
    default = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
    parser.add_argument("--server", metavar="URL", default=default(None),
                        help="the gateway (default: this device's server, else $DUET_SERVER, "
                             f"else {DEFAULT_SERVER})")
    parser.add_argument("--home", metavar="DIR", default=default(None),
                        help="this device's profile (default: $DUET_HOME or ~/.duet)")
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="machine output: one JSON object per line on stdout")
    parser.add_argument("--passphrase-file", metavar="PATH", default=default(None),
                        help="read the device passphrase from PATH (else $DUET_PASSPHRASE, "
                             "else a prompt)")
    parser.add_argument("--password-stdin", action="store_true", default=default(False),
                        help="read the account password from the first line of stdin "
                             "(else $DUET_PASSWORD, else a prompt)")
    parser.add_argument("-v", "--verbose", action="store_true", default=default(False),
                        help="log what the client does on stderr")


Handler = Callable[[Session], Awaitable[int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="duet", description="End-to-end-encrypted 1:1 chat.",
        epilog="Exit codes: 0 done, 1 error, 2 usage, 130 interrupted.")
    _global_options(parser, top=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, top=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Handler, help: str,
                where: Any = commands) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = where.add_parser(name, parents=[common], help=help,
                                                      description=help)
        p.set_defaults(handler=handler)
        return p

    p = command("register", cmd_register, "create an account; this home is its first device")
    p.add_argument("username", metavar="USERNAME", type=_username)
    p = command("login", cmd_login,
                "log in; a new --home is a new device (its keys are made and published)")
    p.add_argument("username", metavar="USERNAME", type=_username)

    friends = commands.add_parser("friends", help="add, accept and list friends",
                                  description="Add, accept and list friends.")
    sub = friends.add_subparsers(dest="friends_command", metavar="ACTION", required=True)
    p = command("add", cmd_friends_add, "ask USERNAME to be friends", sub)
    p.add_argument("username", metavar="USERNAME", type=_username)
    p = command("accept", cmd_friends_accept, "accept USERNAME's friend request", sub)
    p.add_argument("username", metavar="USERNAME", type=_username)
    command("list", cmd_friends_list, "friends and pending requests", sub)

    p = command("send", cmd_send, "send a text message")
    p.add_argument("friend", metavar="FRIEND")
    p.add_argument("text", metavar="TEXT", nargs="+", help="the words of the message")
    p = command("send-image", cmd_send_image, "send an image (PNG, JPEG, GIF or WebP)")
    p.add_argument("friend", metavar="FRIEND")
    p.add_argument("path", metavar="PATH")

    p = command("listen", cmd_listen,
                "print verified messages: what was missed since the last run, then live ones")
    p.add_argument("friend", metavar="FRIEND", nargs="?",
                   help="one friend (default: every friend)")
    p.add_argument("--count", type=_positive_int, metavar="N",
                   help="stop after N messages from friends (yours are shown, not counted); "
                        "with --timeout, fewer is an error")
    p.add_argument("--timeout", type=_positive_float, metavar="SECONDS",
                   help="stop after SECONDS")
    p.add_argument("--from-start", action="store_true",
                   help="replay the whole conversation first, not only what is new")
    p.add_argument("--save-dir", metavar="DIR", help="where images go (default: HOME/images)")

    command("inbox", cmd_inbox,
            "every conversation: unread messages, last activity, online, the newest text")

    p = command("history", cmd_history,
                "every stored message with FRIEND, verified and decrypted, oldest first")
    p.add_argument("friend", metavar="FRIEND")
    p.add_argument("--save-dir", metavar="DIR", help="where images go (default: HOME/images)")
    p = command("verify", cmd_verify, "show the safety number to compare with FRIEND")
    p.add_argument("friend", metavar="FRIEND")

    audits = commands.add_parser(
        "audit", help="read the broker's audit stream; check it against MongoDB",
        description="Read the broker's audit stream of every message (ciphertext "
                    "fingerprints only: nothing is decrypted) and check it against MongoDB. "
                    "Output: one JSON object per line.")
    sub = audits.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    p = _audit_command(sub, "tail", cmd_audit_tail,
                       "one JSON line per message in the audit stream: id, room, sender, "
                       "kind, size, sha256, ts, cursor, offset, published")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--since", metavar="TIME", type=_time,
                       help="messages from TIME on (ISO 8601, no zone = UTC; or 90s, 15m, 2h, "
                            "7d ago); default: the oldest the stream holds")
    start.add_argument("--offset", metavar="N", type=_offset,
                       help="from stream offset N (the `offset` of an earlier line)")
    p.add_argument("--follow", action="store_true",
                   help="keep printing new messages until interrupted (else stop once none "
                        "arrived for a second)")
    p.add_argument("--limit", metavar="N", type=_positive_int, help="stop after N lines")
    p = _audit_command(sub, "verify", cmd_audit_verify,
                       "compare the audit stream with MongoDB's messages over a time window: "
                       "one JSON line per message in one but not the other, then a summary; "
                       "exit 1 if there is any difference")
    p.add_argument("--since", metavar="TIME", type=_time, required=True,
                   help="start of the window, on the messages' ts (ISO 8601 or 15m, 2h, 7d "
                        "ago); keep it within the stream's retention")
    p.add_argument("--until", metavar="TIME", type=_time,
                   help="end of the window (default: now)")
    p.add_argument("--mongo-url", metavar="URL",
                   help=f"MongoDB (default: $DUET_MONGO_URL, else {audit.DEFAULT_MONGO_URL})")
    p.add_argument("--mongo-db", metavar="NAME",
                   help="database name before the prefix (default: $DUET_MONGO_DB, else duet)")
    p.add_argument("--grace", metavar="SECONDS", type=_seconds, default=5.0,
                   help="how long a message missing from MongoDB is looked for again, as "
                        "the persister may be a moment behind (default: 5)")
    return parser


# -- errors and main ---------------------------------------------------------------------
def describe(exc: BaseException, session: Session) -> str | None:
    """One readable line for an error a user can meet; None for a bug."""
    server = (session.args.server or session.account.get("server")
              or os.environ.get("DUET_SERVER") or DEFAULT_SERVER)
    if isinstance(exc, ApiError):
        hint = ""
        if exc.status == 401 and session.args.handler not in (cmd_login, cmd_register):
            hint = ": log in again (duet login USERNAME)"
        return f"{exc}{hint}"
    if isinstance(exc, SendError) and exc.message_id in ("", "?"):
        return f"not sent: {exc.detail} ({exc.code})"
    if isinstance(exc, DuetError):
        return str(exc)
    if isinstance(exc, httpx.TimeoutException):
        return f"the server at {server} did not answer in time"
    if isinstance(exc, httpx.TransportError | httpx.InvalidURL):
        return f"cannot reach the server at {server}: {exc or type(exc).__name__}"
    if isinstance(exc, TimeoutError):
        return f"timed out talking to the server at {server}"
    if isinstance(exc, WebSocketException | OSError):
        return f"connection to the server at {server} failed: {exc or type(exc).__name__}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="duet: %(levelname)s: %(message)s", stream=sys.stderr)
    if not args.verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        session = Session(args)
    except (OSError, ValueError) as exc:  # an unreadable or corrupt profile.json
        print(f"duet: error: cannot read the device profile: {exc}", file=sys.stderr)
        return 1
    try:
        code: int = asyncio.run(args.handler(session))
        return code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        message = describe(exc, session)
        if message is None:
            if args.verbose:
                log.exception("unexpected error")
            message = f"unexpected {type(exc).__name__}: {exc} (--verbose shows more)"
        print(f"duet: error: {session.redact(message)}", file=sys.stderr, flush=True)
        return 1
