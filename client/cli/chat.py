"""The user's commands: one coroutine each, from a Session to an exit code.

    register, login                 an account and this home as one of its devices
    friends add|accept|list         friendship, asked and accepted
    send, send-image                a text or an image to a friend
    listen, inbox, history          what friends sent, verified and decrypted
    verify                          the safety number of a friendship
    logout, sessions, password      this device's session, the user's others, the password
    devices [approve|revoke|...]    the signed device list: approve, revoke, reset identity
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..events import NOT_FOR_DEVICE, Alert, Event, Message, Unsent
from ..progress import Bar
from ..sdk import Client
from . import images
from .output import clock, printable
from .session import Session, interactive


# -- showing what arrived ----------------------------------------------------------------
def show_alert(s: Session, alert: Alert) -> None:
    s.out.alert(alert, s.names.get(alert.sender, alert.sender))


def unreadable_line(count: int) -> str:
    if count == 1:
        return "1 earlier message was sent before this device was added and cannot be read here"
    return (f"{count} earlier messages were sent before this device was added and cannot be "
            "read here")


class Shown:
    """Shows events in order; a run of messages that hold no key for this device is one
    line (`unreadable`, with their count), printed when the run ends: at the next message or
    alert, or by flush() at the end."""

    def __init__(self, s: Session, save_dir: Path) -> None:
        self.s, self.save_dir = s, save_dir
        self.run: list[Alert] = []

    async def show(self, event: Event) -> None:
        if isinstance(event, Alert) and event.kind == NOT_FOR_DEVICE:
            self.run.append(event)
            return
        if isinstance(event, Alert | Message | Unsent):
            self.flush()
        await show(self.s, event, self.save_dir)

    def flush(self) -> None:
        run, self.run = self.run, []
        if run:
            self.s.out.emit({"type": "unreadable", "count": len(run),
                             "ids": [a.id for a in run], "cursors": [a.cursor for a in run]},
                            unreadable_line(len(run)))


async def show(s: Session, event: Event, save_dir: Path) -> None:
    """A message (its image saved first), an alert, or a message unsent; other events are
    not shown."""
    if isinstance(event, Alert):
        show_alert(s, event)
    elif isinstance(event, Unsent):
        s.out.emit({"type": "unsent", "room": event.room, "sender": event.sender,
                    "id": event.id},
                   f"(not sent: {s.names.get(event.sender, event.sender)}'s message "
                   f"{event.id} was not confirmed by the server; it comes again if resent)")
    elif isinstance(event, Message):
        saved = None
        if event.kind != "text":
            saved = await asyncio.to_thread(images.save, save_dir, event)
        s.out.message(event, saved)


# -- account -----------------------------------------------------------------------------
async def cmd_register(s: Session) -> int:
    username = s.args.username
    url = s.new_login_url(username)
    password = s.password(username, new=True)
    passphrase = s.passphrase(new=not s.profile.has_device())
    async with Client(url, home=s.home, passphrase=passphrase,
                      insecure=s.insecure) as client:
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
    async with Client(url, home=s.home, passphrase=passphrase,
                      insecure=s.insecure) as client:
        if not new_device:
            await asyncio.to_thread(lambda: client.device)  # a wrong passphrase fails here
        await client.login(username, password)
        s.keep(client.api.token or "")
        kid, state, code = client.device.kid, client.device_state, client.link_code
    what = "new device, keys published" if new_device else "keys republished"
    s.out.emit({"type": "logged_in", "user_id": client.user_id, "username": username,
                "device": kid, "new_device": new_device, "server": url, "home": str(s.home),
                "device_state": state, "link_code": code},
               f"logged in as {username} on {url} ({what}: {kid[:12]})")
    if state == "pending":
        s.out.hint(f"This device waits for approval. Its link code: {code}\n"
                   "On your device that holds your identity key, compare the code and run "
                   f"`duet devices approve {code.replace(' ', '')}` (or, in the web client, "
                   "Settings → Devices → Approve). Until then it can neither read nor send.")
    return 0


# -- sessions ----------------------------------------------------------------------------
async def cmd_logout(s: Session) -> int:
    everywhere = s.args.everywhere
    async with await s.client(device=False) as client:
        await client.logout(everywhere=everywhere)
    what = "every session of this account ended" if everywhere else "this session ended"
    s.out.emit({"type": "logged_out", "everywhere": everywhere},
               f"logged out ({what}); the device keys stay in {s.home}")
    return 0


async def cmd_sessions(s: Session) -> int:
    async with await s.client(device=False) as client:
        sessions = await client.sessions()
    for x in sessions:
        mark = " (this device)" if x["current"] else ""
        s.out.emit({"type": "session", **x},
                   f"{x['id']}  since {clock(x['created_at'])}, last seen "
                   f"{clock(x['last_seen'])}  {printable(x['label']) or '-'}{mark}")
    return 0


async def cmd_sessions_revoke(s: Session) -> int:
    async with await s.client(device=False) as client:
        await client.revoke_session(s.args.session_id)
    s.out.emit({"type": "session_revoked", "id": s.args.session_id},
               f"session {s.args.session_id} ended")
    return 0


async def cmd_devices(s: Session) -> int:
    async with await s.client(device=True) as client:
        devices = await client.devices()
        state = await client.refresh_device_state()
    for d in devices:
        mark = " (this device)" if d["current"] else ""
        how = f"PENDING, code {d['code']}" if d["state"] == "pending" else "approved"
        s.out.emit({"type": "device", **d},
                   f"{d['kid']}  {how}  added {clock(d['created_at'])}  "
                   f"{printable(d['label'] or '') or '-'}{mark}")
    if any(d["state"] == "pending" for d in devices):
        s.out.hint("a pending device gets no message key until approved: compare its code "
                   "with the one it shows, then `duet devices approve CODE`; a device you do "
                   "not know: `duet devices revoke KID`" if state == "identity" else
                   "approve pending devices from the device that holds your identity key")
    return 0


async def cmd_devices_approve(s: Session) -> int:
    async with await s.client(device=True) as client:
        kid = await client.approve_device(s.args.code, share_history=not s.args.no_history)
    shared = "" if s.args.no_history else ", with the history this device can read"
    s.out.emit({"type": "device_approved", "kid": kid},
               f"device {kid} approved: it is in your signed device list now{shared}")
    return 0


async def cmd_devices_reset_identity(s: Session) -> int:
    if not s.args.yes:
        raise ConfigError("a new identity key makes every friend see a changed identity and "
                          "stop sending to you until they accept it; your other devices "
                          "leave the list: add --yes to go ahead")
    async with await s.client(device=True) as client:
        await client.reset_identity()
    s.out.emit({"type": "identity_reset"},
               "a new identity key now signs your device list (this device alone); "
               "friends will see that it changed")
    return 0


async def cmd_devices_revoke(s: Session) -> int:
    kid = s.args.kid
    async with await s.client(device=True) as client:
        if kid == client.device.kid and not s.args.yes:
            raise ConfigError("that is this device: new messages would no longer reach it "
                              "(add --yes to revoke it all the same)")
        await client.revoke_device(kid)
    s.out.emit({"type": "device_revoked", "kid": kid},
               f"device {kid} revoked: new messages wrap no key for it")
    return 0


async def cmd_password(s: Session) -> int:
    async with await s.client(device=False) as client:
        current = s.password(client.username or "this account")
        new = s.new_password()
        await client.change_password(current, new)
    s.out.emit({"type": "password_changed"},
               "password changed; every other session of this account ended")
    return 0


# -- friends -----------------------------------------------------------------------------
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
    if not friends:
        s.out.hint("no friends yet: duet friends add USERNAME")
    return 0


async def cmd_unfriend(s: Session) -> int:
    async with await s.client(device=False) as client:
        await client.unfriend(s.args.friend)
    s.out.emit({"type": "unfriended", "friend": s.args.friend},
               f"{s.args.friend} and you are no longer friends (or the request is gone)")
    return 0


async def cmd_block(s: Session) -> int:
    async with await s.client(device=False) as client:
        b = await client.block(s.args.username)
    s.out.emit({"type": "blocked", **b},
               f"{b['username']} is blocked: no friendship, request, room or message from "
               f"them (duet unblock {b['username']} lifts it)")
    return 0


async def cmd_unblock(s: Session) -> int:
    async with await s.client(device=False) as client:
        await client.unblock(s.args.username)
    s.out.emit({"type": "unblocked", "username": s.args.username},
               f"{s.args.username} is no longer blocked (no friendship came back)")
    return 0


async def cmd_blocks(s: Session) -> int:
    async with await s.client(device=False) as client:
        blocks = await client.blocks()
    for b in blocks:
        s.out.emit({"type": "blocked", **b}, f"{b['username']}  since {clock(b['since'])}")
    if not blocks:
        s.out.hint("you have blocked nobody")
    return 0


async def cmd_delete_account(s: Session) -> int:
    """Confirmed by --yes, or by typing the username at the terminal; then the password is
    read as `duet login` reads it."""
    async with await s.client(device=False) as client:
        name = client.username or ""
        if not s.args.yes:
            if not interactive() or s.args.password_stdin:
                raise ConfigError("deleting the account cannot be undone: add --yes to confirm "
                                  "(no terminal to ask on)")
            typed = input(f"This deletes {name} and every conversation of it, for good. "
                          f"Type {name} to confirm: ")
            if typed.strip() != name:
                raise ConfigError("not confirmed: nothing was deleted")
        await client.delete_account(s.password(name))
    s.out.emit({"type": "account_deleted", "username": name},
               f"account {name} deleted; the local key files stay in {s.home} until you "
               "remove that directory")
    return 0


# -- sending -----------------------------------------------------------------------------
def _show_warnings(s: Session, client: Client) -> None:
    """Trust alerts heard while sending (an unapproved device, a changed identity)."""
    for alert in client.warnings:
        show_alert(s, alert)
    client.warnings.clear()


async def cmd_send(s: Session) -> int:
    text = " ".join(s.args.text)
    async with await s.client(device=True) as client:
        if len(text.encode()) > client.max_text:
            raise ConfigError(f"the text is longer than {client.max_text} bytes")
        if not text:
            raise ConfigError("nothing to send: the text is empty")
        f = await s.friend(client, s.args.friend)
        try:
            ack = await client.send_text(f["username"], text)
        finally:
            _show_warnings(s, client)
    s.out.emit({"type": "sent", "id": ack["id"], "kind": "text", "to": f["username"],
                "ts": ack["ts"]}, f"[{clock(ack['ts'])}] sent to {f['username']}")
    return 0


async def cmd_send_image(s: Session) -> int:
    path = Path(s.args.path).expanduser()
    async with await s.client(device=True) as client:
        size, mime = images.check(path, client.max_image)
        f = await s.friend(client, s.args.friend)
        bar = Bar(sys.stderr, [("read", 0.3), ("encrypt", 0.3), ("send", 0.4)],
                  label=path.name[:40], enabled=not s.out.json and sys.stderr.isatty())
        try:
            data = await images.read(path, size, bar)
            ack = await client.send_image(f["username"], data, mime=mime, name=path.name,
                                          progress=bar.update)
        except BaseException:
            bar.close(ok=False)
            raise
        finally:
            _show_warnings(s, client)
        bar.close()
    s.out.emit({"type": "sent", "id": ack["id"], "kind": "image", "to": f["username"],
                "ts": ack["ts"], "mime": mime, "bytes": len(data)},
               f"[{clock(ack['ts'])}] sent {path.name} ({len(data)} bytes) to {f['username']}")
    return 0


# -- receiving ---------------------------------------------------------------------------
async def cmd_listen(s: Session) -> int:
    args, save_dir = s.args, s.save_dir()
    async with await s.client(device=True) as client:
        friend = None
        if args.friend:
            friend = (await s.friend(client, args.friend))["username"]
        elif not [f for f in await s.friends(client) if f["status"] == "accepted"]:
            raise ConfigError("no friends to listen to yet: duet friends add USERNAME")
        what = friend or "all conversations"
        events = client.listen(friend, from_start=args.from_start,
                               on_ready=lambda: s.out.note(f"listening to {what} "
                                                           "(Ctrl-C to stop)"))
        received = 0
        shown = Shown(s, save_dir)
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
                await shown.show(event)
                if isinstance(event, Message) and not event.own:
                    received += 1
                    # Printed is read: the position (all this user's devices) and, unless
                    # read receipts are off, a receipt to the friend.
                    await client.mark_read(event.sender, event.cursor)
        finally:
            shown.flush()
            await events.aclose()  # type: ignore[attr-defined]
    if args.count and received < args.count:
        raise ConfigError(f"--timeout {args.timeout:g}s passed with {received} of "
                          f"{args.count} messages")
    return 0


async def cmd_inbox(s: Session) -> int:
    async with await s.client(device=True) as client:
        await s.friends(client)
        items = await client.conversations()
    if not items:
        s.out.hint("no conversations yet: duet friends add USERNAME")
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
        shown = Shown(s, s.save_dir())
        for event in events:
            await shown.show(event)
        shown.flush()
    if not events:
        s.out.hint(f"no messages with {f['username']} yet")
    return 0


async def cmd_verify(s: Session) -> int:
    async with await s.client(device=True) as client:
        f = await s.friend(client, s.args.friend, accepted=False)
        name, me = f["username"], client.username
        if s.args.accept:
            await client.accept_identity(name)
        if s.args.mark:
            await client.mark_verified(name)
        number = await client.safety_number(name)
        verified = client.verified(f["user_id"])
        without = await client.without_session(name)
        _show_warnings(s, client)
    groups = number.split()
    rows = "\n".join("    " + " ".join(groups[i:i + 4]) for i in range(0, len(groups), 4))
    mark = (f"You marked {name} verified." if verified else
            f"Once you have compared it, run `duet verify {name} --mark`.")
    scheme = ("Forward secret: every device of this conversation has a session with this "
              "one." if not without else
              f"Not forward secret yet: {len(without)} device(s) of this conversation have no "
              "session with this one\n(they get RSA-wrapped keys until they publish prekeys "
              "and a message goes each way).")
    s.out.emit({"type": "safety_number", "friend": name, "friend_id": f["user_id"],
                "safety_number": number, "verified": verified,
                "forward_secret": not without, "without_session": without},
               f"Safety number for {me} and {name}:\n\n{rows}\n\n"
               f"Compare it with {name} in person, or on a call where you know each other's\n"
               f"voices ({name} runs `duet verify {me}`). If both of you see the same number,\n"
               f"your messages are encrypted for the devices your identity keys approved and\n"
               f"no one else's. If it differs, someone may be intercepting: send nothing\n"
               f"sensitive. It changes only when one of you resets the identity key, never\n"
               f"when a device is added or revoked. {mark}\n\n{scheme}")
    return 0
