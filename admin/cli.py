"""`duet-admin`: the operators' command line, run beside the services.

    duet-admin [-v] audit tail [--room A,B] [--since TIME | --offset N] [--follow] [--limit N]
                                 one JSON line per message in the broker's audit stream
    duet-admin [-v] audit verify --since TIME [--until TIME] [--room A,B] [--grace SECONDS]
                                 the audit stream against MongoDB: every message in one only

It reads the broker and MongoDB, never a device profile, a server URL or a user's secret.
Where they are: --amqp-url (else DUET_AMQP_URL), --prefix (else DUET_PREFIX), --mongo-url
(else DUET_MONGO_URL), --mongo-db (else DUET_MONGO_DB): in compose the `admin` service sets
the URLs from the ops account's secrets, so `docker compose run --rm admin audit tail`
needs no option at all.

Output: one JSON object per line on stdout. Errors: one line `duet-admin: error: ...` on
stderr, URLs without their passwords. Exit codes: 0 done, 1 error (and `audit verify`: a
difference found), 2 usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from . import audit

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], Awaitable[int]]
_T = TypeVar("_T")


# -- commands ----------------------------------------------------------------------------
def _broker(args: argparse.Namespace) -> tuple[str, str]:
    """The broker URL and the services' name prefix."""
    amqp_url = args.amqp_url or os.environ.get("DUET_AMQP_URL") or audit.DEFAULT_AMQP_URL
    prefix = args.prefix if args.prefix is not None else os.environ.get("DUET_PREFIX", "")
    return amqp_url, prefix


def _mongo(args: argparse.Namespace) -> tuple[str, str]:
    """MongoDB's URL and the database name before the prefix."""
    mongo_url = args.mongo_url or os.environ.get("DUET_MONGO_URL") or audit.DEFAULT_MONGO_URL
    return mongo_url, args.mongo_db or os.environ.get("DUET_MONGO_DB") or "duet"


def _json_line(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


async def cmd_audit_tail(args: argparse.Namespace) -> int:
    amqp_url, prefix = _broker(args)
    await audit.tail(_json_line, amqp_url, prefix, since=args.since, offset=args.offset,
                     rooms=args.room, follow=args.follow, limit=args.limit)
    return 0


async def cmd_audit_verify(args: argparse.Namespace) -> int:
    amqp_url, prefix = _broker(args)
    mongo_url, db_name = _mongo(args)
    if args.until is not None and args.until <= args.since:
        raise audit.AuditError("--until must be later than --since")
    differences = await audit.verify(
        _json_line, amqp_url, prefix, mongo_url, audit.database_name(prefix, db_name),
        since=args.since, until=args.until, rooms=args.room, grace_s=args.grace)
    return 1 if differences else 0


# -- arguments ---------------------------------------------------------------------------
def _argument(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """An argument type from a parser whose ValueError says what is wrong."""
    def convert(value: str) -> _T:
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def _whole(value: str, *, least: int, what: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = least - 1
    if n < least:
        raise ValueError(f"{value!r} is not {what}")
    return n


def _seconds(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        x = -1.0
    if not 0 <= x < float("inf"):
        raise ValueError(f"{value!r} is not a number of seconds (0 or more)")
    return x


def _audit_command(where: Any, name: str, handler: Handler, help: str
                   ) -> argparse.ArgumentParser:
    """An audit command, with what every one of them takes: where the stream is."""
    p: argparse.ArgumentParser = where.add_parser(name, help=help, description=help)
    p.set_defaults(handler=handler)
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="log what the tool does on stderr")
    p.add_argument("--amqp-url", metavar="URL",
                   help="RabbitMQ (default: $DUET_AMQP_URL, else "
                        f"{audit.redact(audit.DEFAULT_AMQP_URL)})")
    p.add_argument("--prefix", metavar="PREFIX",
                   help="the services' name prefix (default: $DUET_PREFIX, else none); the "
                        "stream is PREFIXduet.audit")
    p.add_argument("--room", metavar="A,B", type=_argument(audit.RoomFilter.parse),
                   help="only these rooms (<user id>.<user id>, either order) and rooms with "
                        "these users (a user id): comma-separated, any mix")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="duet-admin", description="duet's operator tools: they read the broker and "
                                       "MongoDB, never a user's device or messages.",
        epilog="Exit codes: 0 done, 1 error or a difference found, 2 usage, 130 interrupted.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log what the tool does on stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    audits = commands.add_parser(
        "audit", help="read the broker's audit stream; check it against MongoDB",
        description="Read the broker's audit stream of every message (ciphertext "
                    "fingerprints only: nothing is decrypted) and check it against MongoDB. "
                    "Output: one JSON object per line.")
    sub = audits.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    time = _argument(audit.parse_time)

    p = _audit_command(sub, "tail", cmd_audit_tail,
                       "one JSON line per message in the audit stream: id, room, sender, "
                       "kind, size, sha256, ts, cursor, offset, published")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--since", metavar="TIME", type=time,
                       help="messages from TIME on (ISO 8601, no zone = UTC; or 90s, 15m, 2h, "
                            "7d ago); default: the oldest the stream holds")
    start.add_argument("--offset", metavar="N", help="from stream offset N (the `offset` of "
                                                     "an earlier line)",
                       type=_argument(lambda v: _whole(
                           v, least=0, what="a stream offset (0, 1, 2, ...)")))
    p.add_argument("--follow", action="store_true",
                   help="keep printing new messages until interrupted (else stop once none "
                        "arrived for a second)")
    p.add_argument("--limit", metavar="N", help="stop after N lines",
                   type=_argument(lambda v: _whole(v, least=1,
                                                    what="a positive whole number")))

    p = _audit_command(sub, "verify", cmd_audit_verify,
                       "compare the audit stream with MongoDB's messages over a time window: "
                       "one JSON line per message in one but not the other, then a summary; "
                       "exit 1 if there is any difference")
    p.add_argument("--since", metavar="TIME", type=time, required=True,
                   help="start of the window, on the messages' ts (ISO 8601 or 15m, 2h, 7d "
                        "ago); keep it within the stream's retention")
    p.add_argument("--until", metavar="TIME", type=time, help="end of the window (default: now)")
    p.add_argument("--mongo-url", metavar="URL",
                   help=f"MongoDB (default: $DUET_MONGO_URL, else {audit.DEFAULT_MONGO_URL})")
    p.add_argument("--mongo-db", metavar="NAME",
                   help="database name before the prefix (default: $DUET_MONGO_DB, else duet)")
    p.add_argument("--grace", metavar="SECONDS", type=_argument(_seconds), default=5.0,
                   help="how long a message missing from MongoDB is looked for again, as "
                        "the persister may be a moment behind (default: 5)")
    return parser


# -- main --------------------------------------------------------------------------------
def _without_passwords(text: str, args: argparse.Namespace) -> str:
    """A library's message may quote a URL whole: never with its password."""
    urls = [_broker(args)[0]] + ([_mongo(args)[0]] if "mongo_url" in args else [])
    for url in urls:
        text = text.replace(url, audit.redact(url))
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="duet-admin: %(levelname)s: %(message)s", stream=sys.stderr)
    if not args.verbose:
        # The AMQP libraries' own logs only with --verbose: their connection errors are
        # reported once, as the `duet-admin: error:` line.
        for name in ("aio_pika", "aiormq"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        code: int = asyncio.run(args.handler(args))
        return code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except audit.AuditError as exc:
        message = str(exc)
    except Exception as exc:
        if args.verbose:
            log.exception("unexpected error")
        message = f"unexpected {type(exc).__name__}: {exc} (--verbose shows more)"
    print(f"duet-admin: error: {_without_passwords(message, args)}", file=sys.stderr,
          flush=True)
    return 1
