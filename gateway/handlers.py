"""What each client frame does, for both protocols: `send`, `sync`, and on v2 `typing`,
`read` and `fetched`. Answers go to the socket's outbox (gateway.outbox); the codes are
contracts.codes'.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from pymongo.errors import PyMongoError

from broker import PublishError
from contracts import (
    MESSAGES,
    USERS,
    DeviceSendFrame,
    DeviceSyncFrame,
    ReadFrame,
    ReadState,
    SendFrame,
    SyncFrame,
    TypingFrame,
    message_doc_id,
    room_id,
)
from contracts.codes import error_frame
from contracts.documents import FETCHED, fetched_doc_id
from contracts.envelope import MESSAGE_KINDS, Envelope
from contracts.frames import FetchedFrame
from contracts.routing import typing_key

from .deps import Services
from .friendship import accepted_friends, are_friends
from .history import replay_after_rooms
from .outbox import Connection
from .publisher import Outgoing
from .quotas import TOO_MANY_BYTES, TOO_MANY_MESSAGES
from .throttle import TokenBucket

log = logging.getLogger(__name__)

QUOTA_KINDS = frozenset({"text", "image"})  # receipts are bounded per socket instead
QUOTA_DETAILS = {
    TOO_MANY_MESSAGES: "too many messages this minute; send it again next minute",
    TOO_MANY_BYTES: "too many bytes sent today",
}
V1_TYPES: dict[str, type[BaseModel]] = {"send": SendFrame, "sync": SyncFrame}
V2_TYPES: dict[str, type[BaseModel]] = {
    "send": DeviceSendFrame, "sync": DeviceSyncFrame, "typing": TypingFrame, "read": ReadFrame,
    "fetched": FetchedFrame}


def _validation_detail(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "frame"
    return f"{where}: {first.get('msg', 'invalid')}"


async def handle(text: str, conn: Connection, svc: Services) -> None:
    """Parse one frame and do what it asks; every problem is an error frame."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        svc.metrics.frame_in("other")
        conn.send(error_frame("bad_json", "the frame is not valid JSON"))
        return
    if not isinstance(data, dict):
        svc.metrics.frame_in("other")
        conn.send(error_frame("invalid_frame", "a frame is a JSON object"))
        return
    kind = data.get("type")
    model = (V2_TYPES if conn.device else V1_TYPES).get(kind) if isinstance(kind, str) else None
    if model is None:
        svc.metrics.frame_in("other")
        conn.send(error_frame("unknown_type", f"unknown frame type {str(kind)[:40]!r}",
                        data.get("id")))
        return
    svc.metrics.frame_in(str(kind))
    try:
        frame = model.model_validate(data)
    except ValidationError as exc:
        conn.send(error_frame("invalid_frame", _validation_detail(exc), data.get("id")))
        return
    if isinstance(frame, SendFrame):
        assert conn.peer is not None and conn.room is not None
        await _send(frame, conn.peer, conn.room, conn, svc)
    elif isinstance(frame, DeviceSendFrame):
        if await _friend(frame.peer, conn, svc, frame.id):
            await _send(frame, frame.peer, room_id(conn.user, frame.peer), conn, svc)
    elif isinstance(frame, SyncFrame):
        assert conn.room is not None
        await sync(conn, svc, {conn.room: frame.after}, MESSAGE_KINDS, v1_cursor=True)
    elif isinstance(frame, DeviceSyncFrame):
        await _device_sync(frame, conn, svc)
    elif isinstance(frame, TypingFrame):
        if await _friend(frame.peer, conn, svc):
            await _typing(frame, conn, svc)
    elif isinstance(frame, ReadFrame):
        if await _friend(frame.peer, conn, svc):
            await _read(frame, conn, svc)
    elif isinstance(frame, FetchedFrame):
        if await _friend(frame.peer, conn, svc):
            await _fetched(frame, conn, svc)


async def _friend(peer: str, conn: Connection, svc: Services, frame_id: str | None = None
                  ) -> bool:
    """Is `peer` an accepted friend of the socket's user? (Remembered while the user has
    a socket here; refusals are asked again.)"""
    if peer == conn.user:
        conn.send(error_frame("not_friends", "that is you", frame_id))
        return False
    if svc.hub.knows_friend(conn.user, peer):
        return True
    epoch = svc.hub.friend_epoch(conn.user)  # an unfriend during the query wins
    try:
        ok = await are_friends(svc.db, conn.user, peer)
    except PyMongoError:
        conn.send(error_frame("unavailable", "storage did not answer; send it again", frame_id))
        return False
    if not ok:
        conn.send(error_frame("not_friends", "not an accepted friend", frame_id))
        return False
    svc.hub.remember_friend(conn.user, peer, epoch)
    return True


def _envelope_problem(env: Envelope, kind: str, room: str, conn: Connection, svc: Services,
                      frame_id: str | None) -> dict[str, Any] | None:
    """The envelope must be for this room, from this user, of this kind, within its size."""
    if env.room != room or env.sender != conn.user or env.kind != kind:
        return error_frame("envelope_mismatch",
                     "the envelope's room, sender and kind must match the room and frame",
                     frame_id)
    if len(env.ct) > svc.limits[kind]:
        return error_frame("too_large", f"{kind} larger than this server accepts", frame_id)
    return None


# -- send --------------------------------------------------------------------------------
async def _send(frame: SendFrame | DeviceSendFrame, peer: str, room: str, conn: Connection,
                svc: Services) -> None:
    problem = _envelope_problem(frame.body, frame.kind, room, conn, svc, frame.id)
    if problem is not None:
        conn.send(problem)
        return
    if frame.retry and await _answer_retry(frame.id, room, conn, svc):
        return
    if frame.kind in QUOTA_KINDS:  # per user across gateways, counted in memory
        refused = svc.quotas.charge(conn.user, len(frame.body.ct))
        if refused is not None:
            conn.send(error_frame(refused, QUOTA_DETAILS[refused], frame.id))
            return
    # Pipelined: the ack (or publish_failed) follows the broker's confirm; the reader goes
    # on unless this socket already has its limit of messages awaiting one. Stamped after
    # that wait, so cursors follow the order messages reach the broker.
    await conn.begin_send()
    cursor, ts = svc.clock.next()
    # The sender is the token's user, whatever the frame claimed.
    message = {"type": "message", "id": frame.id, "sender": conn.user, "room": room,
               "kind": frame.kind, "body": frame.body.model_dump(by_alias=True), "ts": ts,
               "cursor": cursor}
    svc.publisher.submit(Outgoing(room, orjson.dumps(message), cursor, ts, frame.id, conn,
                                  frame.kind))


async def _answer_retry(frame_id: str, room: str, conn: Connection, svc: Services) -> bool:
    """A resend of a stored message is acknowledged from storage, not published again."""
    try:
        doc = await svc.db[MESSAGES].find_one({"_id": message_doc_id(conn.user, frame_id)},
                                              projection={"ts": 1, "cursor": 1})
    except PyMongoError:
        return False  # publish again: storage and clients de-duplicate by (sender, id)
    if doc is None:
        return False
    conn.send({"type": "ack", "id": frame_id, "ts": doc["ts"], "cursor": doc["cursor"],
               "room": room})
    conn.send({"type": "stored", "id": frame_id, "cursor": doc["cursor"], "room": room})
    return True


# -- sync --------------------------------------------------------------------------------
async def _device_sync(frame: DeviceSyncFrame, conn: Connection, svc: Services) -> None:
    """Every room of the user's (accepted friends), or those of them in `rooms`: after the
    given cursor, or from the start when the map does not name it. Rooms of others, in
    the map or the list, are ignored."""
    try:
        rooms = [room_id(conn.user, f) for f in await accepted_friends(svc.db, conn.user)]
    except PyMongoError:
        conn.send(error_frame("sync_failed", "history is unavailable; retry the sync"))
        return
    if frame.rooms is not None:
        only = set(frame.rooms)
        rooms = [r for r in rooms if r in only]
    given = frame.after or {}
    await sync(conn, svc, {room: given.get(room) for room in rooms}, None, v1_cursor=False)


async def sync(conn: Connection, svc: Services, positions: dict[str, str | None],
               kinds: tuple[str, ...] | None, *, v1_cursor: bool) -> None:
    """Replay the stored messages after each room's position, holding live frames
    meanwhile, then let through those the replay did not send (gateway.resume)."""
    conn.resume.begin(positions)
    count, last = 0, positions.get(conn.room) if conn.room is not None else None
    try:
        # Read a message at a time, in queries of about DUET_MAX_READ_BYTES; each waits
        # for room in the outbox (the socket drains it) before the next is read.
        messages = replay_after_rooms(svc.db, positions, svc.settings.max_read_bytes, kinds,
                                      max(svc.limits.values()))
        async with aclosing(messages):
            async for cursor, text in messages:
                if conn.closed:
                    break
                if not conn.resume.already_sent(cursor):
                    await conn.replay(text, cursor)
                    count += 1
                last = cursor
    except PyMongoError as exc:
        log.warning("sync failed: %s", type(exc).__name__, extra={"conn": conn.id})
        conn.release()
        conn.send(error_frame("sync_failed", "history is unavailable; retry the sync"))
        return
    await conn.replay(orjson.dumps({"type": "synced", "count": count,
                                    "cursor": last if v1_cursor else None}).decode())
    svc.hub.check_missed(conn, conn.release())


# -- typing and read (v2) ------------------------------------------------------------------
async def _typing(frame: TypingFrame, conn: Connection, svc: Services) -> None:
    """Checked like a send, limited per socket, then published transient: routed to the
    peer's gateways only (never stored, never audited)."""
    room = room_id(conn.user, frame.peer)
    problem = _envelope_problem(frame.body, "typing", room, conn, svc, None)
    if problem is not None:
        conn.send(problem)
        return
    if conn.typing is None:
        conn.typing = TokenBucket(svc.settings.typing_per_s, svc.settings.typing_burst)
    if not conn.typing.take():
        conn.send(error_frame("rate_limited", "typing signals come too fast; this one was dropped"))
        return
    event = {"type": "typing", "room": room, "sender": conn.user,
             "body": frame.body.model_dump(by_alias=True)}
    try:
        await svc.broker.notify(orjson.dumps(event), typing_key(room))
    except PublishError as exc:  # a typing signal is best effort
        log.info("typing signal dropped: %s", exc.reason, extra={"conn": conn.id})


async def _fetched(frame: FetchedFrame, conn: Connection, svc: Services) -> None:
    """Keep how far this device of the user holds the room (only forward): retention
    waits for it (docs/sessions.md "Retention")."""
    room = room_id(conn.user, frame.peer)
    try:
        mine = await svc.db[USERS].find_one({"_id": conn.user, "keys.kid": frame.device},
                                            projection={"_id": 1})
        if mine is None:
            conn.send(error_frame("not_your_device", f"no live device {frame.device[:12]} "
                                  "of this user"))
            return
        await svc.db[FETCHED].update_one(
            {"_id": fetched_doc_id(frame.device, room)},
            {"$max": {"cursor": frame.cursor},
             "$set": {"user": conn.user, "kid": frame.device, "room": room}}, upsert=True)
    except PyMongoError:
        conn.send(error_frame("unavailable", "the fetched position was not kept; send it "
                              "again"))


async def _read(frame: ReadFrame, conn: Connection, svc: Services) -> None:
    """Move the user's read position; every device of theirs hears it (a `read` event). The
    socket does not wait for the write (batched with other moves, gateway.readmarks):
    positions only move forward, so a later frame cannot be undone by an earlier one."""
    def written(move: asyncio.Future[ReadState]) -> None:
        if move.cancelled():
            return
        exc = move.exception()
        if isinstance(exc, PyMongoError):
            conn.send(error_frame("unavailable", "the read position was not kept; send it "
                                  "again"))
        elif exc is not None:
            log.error("read position not moved", exc_info=exc, extra={"conn": conn.id})

    svc.reads.submit(conn.user, room_id(conn.user, frame.peer), frame.cursor
                     ).add_done_callback(written)
