"""`duet`'s arguments: every command, its options, and the handler that runs it."""

from __future__ import annotations

import argparse
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from . import chat
from .session import DEFAULT_SERVER, Session

Handler = Callable[[Session], Awaitable[int]]
# `duet audit` became `duet-admin audit`: the name is still parsed, to say so.
MOVED = {"audit": "duet-admin audit"}

_USERNAME = re.compile(r"^[A-Za-z0-9_]{3,32}$")  # contracts.api.Username
_N = TypeVar("_N", int, float)


def _username(value: str) -> str:
    if not _USERNAME.match(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a username (3 to 32 of A-Z, a-z, 0-9 and _)")
    return value


def _positive(kind: Callable[[str], _N], what: str) -> Callable[[str], _N]:
    """An argument type for a finite number above zero; `what` names it in the error."""
    def parse(value: str) -> _N:
        try:
            n = kind(value)
        except ValueError:
            n = kind("0")
        if not 0 < n < float("inf"):
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}")
        return n
    return parse


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
    parser.add_argument("--insecure", action="store_true", default=default(False),
                        help="allow plain http:// to a server that is not this machine "
                             "(loopback): anyone on the network can then read the password "
                             "and the token")
    parser.add_argument("-v", "--verbose", action="store_true", default=default(False),
                        help="log what the client does on stderr")


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

    p = command("register", chat.cmd_register, "create an account; this home is its first device")
    p.add_argument("username", metavar="USERNAME", type=_username)
    p = command("login", chat.cmd_login,
                "log in; a new --home is a new device (its keys are made and published)")
    p.add_argument("username", metavar="USERNAME", type=_username)

    p = command("logout", chat.cmd_logout, "end this device's session (the keys stay)")
    p.add_argument("--everywhere", action="store_true",
                   help="end every session of this account, on every device")
    p = command("sessions", chat.cmd_sessions, "this account's sessions (device logins)")
    sub = p.add_subparsers(dest="sessions_command", metavar="ACTION")
    p = command("revoke", chat.cmd_sessions_revoke, "end the session ID", sub)
    p.add_argument("session_id", metavar="ID")
    p = command("devices", chat.cmd_devices,
                "this account's devices (device keys): label, added, this one marked")
    sub = p.add_subparsers(dest="devices_command", metavar="ACTION")
    p = command("approve", chat.cmd_devices_approve,
                "approve the pending device showing CODE (compare it first)", sub)
    p.add_argument("code", metavar="CODE")
    p.add_argument("--no-history", action="store_true",
                   help="do not give it the content keys of the earlier conversations")
    p = command("revoke", chat.cmd_devices_revoke,
                "revoke the device KID (or decline it, if pending): new messages wrap no "
                "key for it, and what it signs from now on is refused", sub)
    p.add_argument("kid", metavar="KID")
    p.add_argument("--yes", action="store_true", help="revoke even this device")
    p = command("reset-identity", chat.cmd_devices_reset_identity,
                "a new identity key for the account, if the device holding it is lost "
                "(friends see it change)", sub)
    p.add_argument("--yes", action="store_true", help="confirm without asking")
    command("password", chat.cmd_password,
            "change the account password (every other session ends); the current and the "
            "new one are read as `duet login` reads one")

    friends = commands.add_parser("friends", help="add, accept and list friends",
                                  description="Add, accept and list friends.")
    sub = friends.add_subparsers(dest="friends_command", metavar="ACTION", required=True)
    p = command("add", chat.cmd_friends_add, "ask USERNAME to be friends", sub)
    p.add_argument("username", metavar="USERNAME", type=_username)
    p = command("accept", chat.cmd_friends_accept, "accept USERNAME's friend request", sub)
    p.add_argument("username", metavar="USERNAME", type=_username)
    command("list", chat.cmd_friends_list, "friends and pending requests", sub)
    p = command("unfriend", chat.cmd_unfriend,
                "end the friendship with FRIEND, or withdraw or decline a request")
    p.add_argument("friend", metavar="FRIEND")
    p = command("block", chat.cmd_block, "block USERNAME: no friendship, request, room or "
                                         "message from them (they are not told)")
    p.add_argument("username", metavar="USERNAME", type=_username)
    p = command("unblock", chat.cmd_unblock, "lift the block on USERNAME")
    p.add_argument("username", metavar="USERNAME", type=_username)
    command("blocks", chat.cmd_blocks, "the users you blocked")
    p = command("delete-account", chat.cmd_delete_account,
                "delete this account and the conversations it was in, for good (asks to "
                "confirm, then the password as `duet login` does)")
    p.add_argument("--yes", action="store_true", help="confirm without asking")

    p = command("send", chat.cmd_send, "send a text message")
    p.add_argument("friend", metavar="FRIEND")
    p.add_argument("text", metavar="TEXT", nargs="+", help="the words of the message")
    p = command("send-image", chat.cmd_send_image, "send an image (PNG, JPEG, GIF or WebP)")
    p.add_argument("friend", metavar="FRIEND")
    p.add_argument("path", metavar="PATH")

    p = command("listen", chat.cmd_listen,
                "print verified messages: what was missed since the last run, then live ones")
    p.add_argument("friend", metavar="FRIEND", nargs="?",
                   help="one friend (default: every friend)")
    p.add_argument("--count", type=_positive(int, "a positive whole number"), metavar="N",
                   help="stop after N messages from friends (yours are shown, not counted); "
                        "with --timeout, fewer is an error")
    p.add_argument("--timeout", type=_positive(float, "a positive number of seconds"),
                   metavar="SECONDS", help="stop after SECONDS")
    p.add_argument("--from-start", action="store_true",
                   help="replay the whole conversation first, not only what is new")
    p.add_argument("--save-dir", metavar="DIR", help="where images go (default: HOME/images)")

    command("inbox", chat.cmd_inbox,
            "every conversation: unread messages, last activity, online, the newest text")

    p = command("history", chat.cmd_history,
                "every stored message with FRIEND, verified and decrypted, oldest first")
    p.add_argument("friend", metavar="FRIEND")
    p.add_argument("--save-dir", metavar="DIR", help="where images go (default: HOME/images)")
    p = command("verify", chat.cmd_verify, "show the safety number to compare with FRIEND")
    p.add_argument("friend", metavar="FRIEND")
    p.add_argument("--mark", action="store_true",
                   help="you compared it: mark FRIEND verified")
    p.add_argument("--accept", action="store_true",
                   help="trust FRIEND's new identity key (after comparing): sending works again")

    for name in MOVED:
        # No help: left out of the list. Every word after it is taken as it is (no option of
        # its own, not even -h), so any old command line reaches main() and its pointer.
        p = commands.add_parser(name, add_help=False, prefix_chars="\0")
        p.add_argument("rest", nargs=argparse.REMAINDER)
    return parser
