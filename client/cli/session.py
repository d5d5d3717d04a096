"""One run of a `duet` command: its arguments, the device profile, the server, the secrets.

Secrets never come from arguments. The account password: DUET_PASSWORD, or one line on
stdin with --password-stdin, else a prompt. A new password (`duet password`, after the
current one): DUET_NEW_PASSWORD, or the second line of stdin with --password-stdin, else a
prompt (typed twice). The passphrase that unlocks this device's private keys:
--passphrase-file, or DUET_PASSPHRASE, else a prompt. Without a terminal and without them a
command fails at once, it never waits.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..profile import Profile, default_home
from ..sdk import Client
from ..transport import check_server_url
from .output import Output

DEFAULT_SERVER = "http://127.0.0.1:8000"
# Only text from outside the CLI is redacted (a server's problem detail, a library's exception
# message), and only of secrets at least this long. The CLI's own messages never carry a
# secret (they name where one came from, never its value), so they are not scanned: scanning
# them turned "(wrong passphrase?)" with the passphrase "wrong" into "(*** passphrase?)",
# mangled and, worse, pointing at the secret for anyone who reads the screen. A shorter secret
# is as word-like in a server's text. 8 is the shortest password the server accepts
# (contracts.api.Password) and access tokens run to hundreds of characters, so every secret
# sent to a server, the only kind that can come back in its text, is still redacted.
MIN_SECRET = 8


def interactive() -> bool:
    return sys.stdin.isatty()


def ask(prompt: str, *, again: str | None = None, what: str = "") -> str:
    """A secret typed at the terminal, never echoed; with `again`, typed twice alike."""
    try:
        value = getpass.getpass(prompt)
        if again is not None and getpass.getpass(again) != value:
            raise ConfigError(f"the two {what} differ")
    except EOFError:
        raise ConfigError("nothing was typed") from None
    return value


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
        """Remember a secret this run holds, so that it is redacted wherever it comes back."""
        self.secrets.append(secret)
        return secret

    def password(self, username: str, *, new: bool = False) -> str:
        if self.args.password_stdin:
            value = sys.stdin.readline().rstrip("\r\n")
            source = "the first line of stdin"
        elif os.environ.get("DUET_PASSWORD"):
            value, source = os.environ["DUET_PASSWORD"], "DUET_PASSWORD"
        elif interactive():
            value = ask(f"Password for {username}: ", what="passwords",
                        again="Repeat the password: " if new else None)
            source = "the prompt"
        else:
            raise ConfigError("a password is needed: set DUET_PASSWORD or use --password-stdin "
                              "(no terminal to ask on)")
        if not value:
            raise ConfigError(f"the password from {source} is empty")
        if new and not 8 <= len(value) <= 256:
            raise ConfigError("the password must be 8 to 256 characters long")
        return self.keep(value)

    def new_password(self) -> str:
        """The new account password of `duet password`, read after the current one."""
        if self.args.password_stdin:
            value = sys.stdin.readline().rstrip("\r\n")
            source = "the second line of stdin"
        elif os.environ.get("DUET_NEW_PASSWORD"):
            value, source = os.environ["DUET_NEW_PASSWORD"], "DUET_NEW_PASSWORD"
        elif interactive():
            value = ask("New password: ", what="passwords", again="Repeat the new password: ")
            source = "the prompt"
        else:
            raise ConfigError("a new password is needed: set DUET_NEW_PASSWORD or use "
                              "--password-stdin (no terminal to ask on)")
        if not 8 <= len(value) <= 256:
            raise ConfigError(f"the new password from {source} must be 8 to 256 characters "
                              "long")
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
            value = ask("New passphrase for this device's keys: " if new
                        else f"Passphrase for the device keys in {self.home}: ",
                        what="passphrases", again="Repeat the passphrase: " if new else None)
            source = "the prompt"
        else:
            raise ConfigError("the passphrase of this device's keys is needed: set "
                              "DUET_PASSPHRASE or use --passphrase-file (no terminal to ask on)")
        if not value:
            raise ConfigError(f"the passphrase from {source} is empty")
        return self.keep(value)

    def redact(self, outside: str) -> str:
        """Text that came from outside the CLI with every secret of this run (MIN_SECRET
        characters or more) replaced by ***; the longest first, as one may hold another."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= MIN_SECRET:
                outside = outside.replace(secret, "***")
        return outside

    # Account ---------------------------------------------------------------------------
    def server(self) -> str:
        """The server a command talks to, as the user would name it."""
        return str(self.args.server or self.account.get("server")
                   or os.environ.get("DUET_SERVER") or DEFAULT_SERVER).rstrip("/")

    def new_login_url(self, username: str) -> str:
        """The server to register or log in on; refuses a home that is another user's."""
        owner = self.account.get("username")
        if owner and owner.lower() != username.lower():
            raise ConfigError(f"{self.home} is {owner}'s device: use another --home for "
                              f"{username}")
        return self.secure(self.server())

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
        return self.secure(server)

    @property
    def insecure(self) -> bool:
        return bool(getattr(self.args, "insecure", False))

    def secure(self, url: str) -> str:
        """url, unless it is plain http to a host off this machine without --insecure."""
        return check_server_url(url, insecure=self.insecure, flag="--insecure")

    async def client(self, *, device: bool) -> Client:
        """The SDK client of a logged-in device; with device=True its keys unlocked."""
        url = self.logged_in_url()
        client = Client(url, home=self.home, insecure=self.insecure,
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

    def save_dir(self) -> Path:
        """Where received images go: --save-dir, else HOME/images."""
        return Path(self.args.save_dir).expanduser() if self.args.save_dir else (
            self.home / "images")
