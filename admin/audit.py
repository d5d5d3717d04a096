"""`duet-admin audit`: the broker's audit stream, read back and checked against MongoDB.

Every chat message a gateway publishes goes to the RabbitMQ stream `<prefix>duet.audit`
as well as to `duet.persist` (broker/topology.py): an append-only second record of
everything sent, kept for its retention (DUET_AUDIT_MAX_AGE / _MAX_BYTES). Nothing here
decrypts anything. A `Record` names one message and fingerprints its envelope:

    id, room, sender, kind, ts, cursor   from the `message` frame
    size      bytes of the canonical JSON of the body (the envelope)
    sha256    hex SHA-256 of those same bytes
    offset    the offset of the stream entry that carried it (None for a MongoDB document);
              a gateway's batch is one entry, so its messages share one offset
    published when the broker took it, ms since the epoch: the `timestamp_in_ms` header
              RabbitMQ's timestamp interceptor adds (deploy/rabbitmq/rabbitmq.conf), else the
              AMQP timestamp property, else None

Canonical JSON is envelope v1's rule (client.crypto.canonical): keys sorted, separators
(",", ":"), non-ASCII not escaped, UTF-8. The same message therefore gives the same size and
sha256 from the stream and from MongoDB, which is what `diff` compares.

Time windows are on `ts`, the publishing gateway's clock, which the stream and MongoDB
share. The broker can only seek the stream by its own clock and a chunk at a time, so a
read starts SKEW_S earlier than asked and drops what is before the window itself.

    AuditError   the broker, the stream or MongoDB cannot be read (this package's one error)
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from contextlib import aclosing, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelNotFoundEntity

from broker.failover import connect_failover
from client.crypto import canonical
from contracts import MESSAGES, Names, is_user_id, message_doc_id, room_id
from contracts.batch import split_frames

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_MONGO_URL = "mongodb://127.0.0.1:27017"
OFFSET_HEADER = "x-stream-offset"
BROKER_TIME_HEADER = "timestamp_in_ms"
SKEW_S = 60.0  # gateway vs broker clocks, and stream chunks: how much earlier a read seeks
PREFETCH = 512  # a stream consumer must have a prefetch; this many unacked at once
IDLE_S = 1.0  # a read without --follow ends after this long without a message

Start = str | int | datetime  # x-stream-offset: "first", an offset, or a point in time
Emit = Callable[[dict[str, Any]], None]


class AuditError(Exception):
    """The audit stream or MongoDB cannot be read; the message says what to check."""


# -- records ---------------------------------------------------------------------------
def digest(body: Any) -> tuple[int, str]:
    """(size, sha256 hex) of the canonical JSON of a message body."""
    data = canonical(body)
    return len(data), hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Record:
    id: str | None
    room: str | None
    sender: str | None
    kind: str | None
    size: int | None
    sha256: str | None
    ts: int | None
    cursor: str | None
    offset: int | None = None
    published: int | None = None
    error: str | None = None  # a stream entry that is not a message frame

    @property
    def key(self) -> str:
        """The message's identity, as MongoDB's `_id`: `<sender>:<id>`."""
        return message_doc_id(self.sender or "", self.id or "")

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "room": self.room, "sender": self.sender, "kind": self.kind,
            "size": self.size, "sha256": self.sha256, "ts": self.ts, "cursor": self.cursor,
            "offset": self.offset, "published": self.published}
        if self.error is not None:
            out["error"] = self.error
        return out


def _published(headers: Mapping[str, Any], timestamp: datetime | None) -> int | None:
    value = headers.get(BROKER_TIME_HEADER)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if timestamp is not None:
        return int(timestamp.timestamp() * 1000)
    return None


def from_delivery(body: bytes, headers: Mapping[str, Any],
                  timestamp: datetime | None = None) -> list[Record]:
    """The records of one stream entry: one per `message` frame (one per line)."""
    offset = headers.get(OFFSET_HEADER)
    offset = offset if isinstance(offset, int) else None
    published = _published(headers, timestamp)
    return [_record(line, offset, published) for line in split_frames(body)]


def _record(line: bytes, offset: int | None, published: int | None) -> Record:
    try:
        frame = orjson.loads(line)
        if not isinstance(frame, dict) or frame.get("type") != "message" or "body" not in frame:
            raise ValueError("not a message frame")
        size, sha = digest(frame["body"])
        return Record(id=frame.get("id"), room=frame.get("room"), sender=frame.get("sender"),
                      kind=frame.get("kind"), size=size, sha256=sha, ts=frame.get("ts"),
                      cursor=frame.get("cursor"), offset=offset, published=published)
    except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
        return Record(None, None, None, None, len(line), hashlib.sha256(line).hexdigest(),
                      None, None, offset, published, error=f"unreadable entry: {exc}")


def from_document(doc: Mapping[str, Any]) -> Record:
    """The record of one MongoDB `messages` document."""
    size, sha = digest(doc.get("body"))
    return Record(id=doc.get("id"), room=doc.get("room"), sender=doc.get("sender"),
                  kind=doc.get("kind"), size=size, sha256=sha, ts=doc.get("ts"),
                  cursor=doc.get("cursor"))


# -- what to read ------------------------------------------------------------------------
@dataclass(frozen=True)
class RoomFilter:
    """`--room A,B`: each item a room (`<lo>.<hi>`, either order) or a user id; a message
    matches when its room is one of the rooms or has one of the users in it."""

    rooms: frozenset[str]
    users: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> RoomFilter:
        rooms: set[str] = set()
        users: set[str] = set()
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            a, dot, b = item.partition(".")
            if dot and is_user_id(a) and is_user_id(b) and a != b:
                rooms.add(room_id(a, b))
            elif not dot and is_user_id(item):
                users.add(item)
            else:
                raise ValueError(f"{item!r} is neither a room (<user id>.<user id>) nor a "
                                 "user id (24 hex digits)")
        if not rooms and not users:
            raise ValueError("no room or user id given")
        return cls(frozenset(rooms), frozenset(users))

    def matches(self, room: str | None) -> bool:
        if not room:
            return False
        return room in self.rooms or any(u in self.users for u in room.split("."))

    def mongo_query(self) -> dict[str, Any]:
        either: list[dict[str, Any]] = [{"room": {"$in": sorted(self.rooms)}}]
        for user in sorted(self.users):  # user ids are hex: nothing to escape in the regex
            either += [{"room": {"$regex": f"^{user}\\."}}, {"room": {"$regex": f"\\.{user}$"}}]
        return {"$or": either}


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (`2025-06-01T12:00:00Z`, `2025-06-01`; no zone means UTC) or a time ago
    (`90s`, `15m`, `2h`, `7d`)."""
    now = now or datetime.now(UTC)
    text = text.strip()
    if m := _RELATIVE.match(text):
        return now - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give ISO 8601 (2025-06-01T12:00:00Z) or "
                         "a time ago (90s, 15m, 2h, 7d)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def to_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def stream_name(prefix: str) -> str:
    return Names(prefix=prefix).audit_stream


def database_name(prefix: str, db_name: str) -> str:
    return Names(prefix=prefix, db_name=db_name).database


def redact(url: str) -> str:
    """A URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


# -- reading the stream ------------------------------------------------------------------
async def read_stream(amqp_url: str, stream: str, start: Start = "first", *,
                      follow: bool = False, idle_s: float = IDLE_S,
                      stop_after_ts: int | None = None) -> AsyncGenerator[Record, None]:
    """Every entry of the stream from `start`, oldest first.

    Without `follow` the read ends once no entry arrived for `idle_s`, or at the first entry
    whose `ts` is past `stop_after_ts` (not yielded): a busy stream is never idle. Entries
    are acked as they are read; on a stream that is only flow control, nothing is removed.
    """
    try:
        connection = await connect_failover(amqp_url, "duet-admin audit")
    except (AMQPError, OSError) as exc:
        raise AuditError(f"cannot reach RabbitMQ at {redact(amqp_url)}: "
                         f"{exc or type(exc).__name__}") from None
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)  # required to consume a stream
        try:
            queue = await channel.get_queue(stream, ensure=True)  # passive: never creates it
        except ChannelNotFoundEntity:
            raise AuditError(f"RabbitMQ has no stream {stream!r}: check --prefix "
                             "(DUET_PREFIX); the services declare it when they start") from None
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        tag = await queue.consume(inbox.put, no_ack=False,
                                  arguments={"x-stream-offset": start})
        try:
            while True:
                try:
                    message = await asyncio.wait_for(inbox.get(), None if follow else idle_s)
                except TimeoutError:
                    return
                headers = message.headers or {}
                if OFFSET_HEADER not in headers:
                    # A classic queue under that name would be consumed destructively:
                    # stop before acking anything (the channel's close returns it).
                    raise AuditError(f"{stream!r} is not a stream (no {OFFSET_HEADER} on its "
                                     "messages); nothing was taken from it")
                records = from_delivery(message.body, headers, message.timestamp)
                await message.ack()
                for record in records:
                    if stop_after_ts is not None and (record.ts or 0) > stop_after_ts:
                        return
                    yield record
        finally:
            with suppress(AMQPError, OSError, RuntimeError):
                await queue.cancel(tag)


def start_of(since: datetime | None, offset: int | None) -> Start:
    """The x-stream-offset for a read from `since` or `offset` (else the first entry)."""
    if offset is not None:
        return offset
    if since is not None:
        return since - timedelta(seconds=SKEW_S)
    return "first"


async def tail(emit: Emit, amqp_url: str, prefix: str, *, since: datetime | None = None,
               offset: int | None = None, rooms: RoomFilter | None = None,
               follow: bool = False, limit: int | None = None) -> int:
    """Emit the record of every message in the stream (in the window, of the rooms);
    return how many."""
    since_ms = to_ms(since) if since else None
    stop = None if follow else int(time.time() * 1000) + int(SKEW_S * 1000)
    shown = 0
    if limit is not None and limit <= 0:
        return 0
    records = read_stream(amqp_url, stream_name(prefix), start_of(since, offset),
                          follow=follow, stop_after_ts=stop)
    async with aclosing(records):
        async for record in records:
            if record.error is None:
                if since_ms is not None and (record.ts or 0) < since_ms:
                    continue
                if rooms is not None and not rooms.matches(record.room):
                    continue
            emit(record.as_json())
            shown += 1
            if limit is not None and shown >= limit:
                break
    return shown


# -- MongoDB -----------------------------------------------------------------------------
async def read_documents(mongo_url: str, database: str, since_ms: int, until_ms: int,
                         rooms: RoomFilter | None = None,
                         keys: Iterable[str] | None = None) -> list[Record]:
    """Records of the stored messages with since_ms <= ts <= until_ms (and in `rooms`), or
    of the documents whose `_id` is in `keys`."""
    from pymongo import AsyncMongoClient
    from pymongo.errors import PyMongoError

    query: dict[str, Any]
    if keys is not None:
        query = {"_id": {"$in": list(keys)}}
    else:
        query = {"ts": {"$gte": since_ms, "$lte": until_ms}}
        if rooms is not None:
            query.update(rooms.mongo_query())
    projection = {"id": 1, "room": 1, "sender": 1, "kind": 1, "body": 1, "ts": 1, "cursor": 1}
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, serverSelectionTimeoutMS=5000)
    try:
        cursor = client[database][MESSAGES].find(query, projection)
        return [from_document(doc) async for doc in cursor]
    except PyMongoError as exc:
        raise AuditError(f"cannot read {database}.{MESSAGES} at {redact(mongo_url)}: "
                         f"{exc}") from None
    finally:
        await client.close()


# -- comparing ---------------------------------------------------------------------------
def diff(stream: Iterable[Record], stored: Iterable[Record]) -> list[dict[str, Any]]:
    """What the stream and MongoDB disagree on, oldest first:

    missing_in_mongo    in the stream, not stored
    missing_in_stream   stored, not in the stream
    mismatch            stored with a body no stream copy of it has
    unreadable          a stream entry that is not a message frame

    A message may be in the stream more than once (a retried publish); it is one message.
    """
    published: dict[str, list[Record]] = {}
    out: list[dict[str, Any]] = []
    for record in stream:
        if record.error is not None:
            out.append({"type": "unreadable", **record.as_json()})
        else:
            published.setdefault(record.key, []).append(record)
    documents = {doc.key: doc for doc in stored}
    for key, copies in published.items():
        doc = documents.get(key)
        if doc is None:
            out.append({"type": "missing_in_mongo", **copies[0].as_json()})
        elif all(copy.sha256 != doc.sha256 for copy in copies):
            out.append({"type": "mismatch", **doc.as_json(), "offset": copies[0].offset,
                        "published": copies[0].published, "stream_size": copies[0].size,
                        "stream_sha256": copies[0].sha256})
    out += [{"type": "missing_in_stream", **doc.as_json()}
            for key, doc in documents.items() if key not in published]
    out.sort(key=lambda d: (d.get("ts") or 0, d.get("offset") or 0))
    return out


async def verify(emit: Emit, amqp_url: str, prefix: str, mongo_url: str, database: str, *,
                 since: datetime, until: datetime | None = None,
                 rooms: RoomFilter | None = None, grace_s: float = 5.0) -> int:
    """Compare the stream with MongoDB over [since, until]; emit every difference, then a
    summary. Returns the number of differences.

    `until` defaults to now. A message published just before is in the stream but may not
    be stored yet: the ones missing from MongoDB are looked up again for `grace_s` seconds
    before they are reported.
    """
    since_ms = to_ms(since)
    until_ms = to_ms(until) if until else int(time.time() * 1000)
    in_window: list[Record] = []
    records = read_stream(amqp_url, stream_name(prefix), start_of(since, None),
                          idle_s=2 * IDLE_S, stop_after_ts=until_ms + int(SKEW_S * 1000))
    async with aclosing(records):
        async for record in records:
            if record.error is not None or (
                    since_ms <= (record.ts or 0) <= until_ms
                    and (rooms is None or rooms.matches(record.room))):
                in_window.append(record)
    stored = await read_documents(mongo_url, database, since_ms, until_ms, rooms)
    differences = diff(in_window, stored)
    deadline = time.monotonic() + grace_s
    while any(d["type"] == "missing_in_mongo" for d in differences):
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.5)
        missing = [message_doc_id(d["sender"], d["id"]) for d in differences
                   if d["type"] == "missing_in_mongo"]
        late = await read_documents(mongo_url, database, since_ms, until_ms, keys=missing)
        if late:
            stored += late
            differences = diff(in_window, stored)
    for difference in differences:
        emit(difference)
    counts = {kind: sum(d["type"] == kind for d in differences)
              for kind in ("missing_in_mongo", "missing_in_stream", "mismatch", "unreadable")}
    emit({"type": "summary", "since": since_ms, "until": until_ms, "stream": stream_name(prefix),
          "database": database,
          "stream_messages": len({r.key for r in in_window if r.error is None}),
          "stored_messages": len({d.key for d in stored}), **counts,
          "differences": len(differences)})
    return len(differences)
