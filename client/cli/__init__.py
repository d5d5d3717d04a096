"""The `duet` command line, over the SDK: one device profile per home directory.

    duet [--server URL] [--insecure] [--home DIR] [--json] [--passphrase-file PATH]
         [--password-stdin] COMMAND ...

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

The operators' audit of the broker's stream is another command, `duet-admin audit`
(admin/): nothing here talks to RabbitMQ or MongoDB.

Secrets never come from arguments (session.py says where they do come from) and no secret
is ever printed. A plain http:// server that is not this machine is refused (exit 1) unless
--insecure is given (client/transport.py).

Output: human lines, or with --json one JSON object per line on stdout;
notes such as "listening to ..." on stderr. Errors: one line `duet: error: ...` on stderr.
Exit codes: 0 done, 1 error, 2 usage, 130 interrupted.

    parser.py   the arguments            session.py  profile, server, secrets, redaction
    chat.py     the commands             output.py   printing; images.py  image files
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sys
from collections.abc import Sequence

import httpx
from websockets.exceptions import WebSocketException

from ..errors import ApiError, DuetError, SendError
from .parser import MOVED, build_parser
from .session import Session

__all__ = ["main"]

log = logging.getLogger(__name__)


def describe(exc: BaseException, session: Session) -> str | None:
    """One readable line for an error a user can meet; None for a bug.

    Words from outside the CLI (a server's problem detail, a library's message) pass
    through session.redact; the CLI's and the SDK's own words hold no secret and do not.
    """
    server = session.server()
    if isinstance(exc, SendError) and exc.message_id in ("", "?"):
        return f"not sent: {session.redact(f'{exc.detail} ({exc.code})')}"
    if isinstance(exc, ApiError | SendError):  # the server's words
        hint = ""
        if (isinstance(exc, ApiError) and exc.status == 401
                and session.args.command not in ("login", "register")):
            hint = ": log in again (duet login USERNAME)"
        return f"{session.redact(str(exc))}{hint}"
    if isinstance(exc, DuetError):
        return str(exc)
    if isinstance(exc, httpx.TimeoutException):
        return f"the server at {server} did not answer in time"
    if isinstance(exc, TimeoutError):
        return f"timed out talking to the server at {server}"
    reason = session.redact(str(exc) or type(exc).__name__)
    if isinstance(exc, httpx.TransportError | httpx.InvalidURL):
        return f"cannot reach the server at {server}: {reason}"
    if isinstance(exc, WebSocketException | OSError):
        return f"connection to the server at {server} failed: {reason}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in MOVED:
        print(f"duet: error: `duet {args.command}` moved to the operators' command: "
              f"{shlex.join([*MOVED[args.command].split(), *args.rest])}", file=sys.stderr)
        return 2
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
            message = (f"unexpected {type(exc).__name__}: "
                       f"{session.redact(str(exc))} (--verbose shows more)")
        print(f"duet: error: {message}", file=sys.stderr, flush=True)
        return 1
