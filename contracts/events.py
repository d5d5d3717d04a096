"""What travels on the broker.

A chat message travels under `room.<lo>.<hi>` (JSON, persistent) in a broker message
that carries one or more `message` frames, one per line (orjson never writes a raw
newline). A gateway batches what it is given while its earlier broker messages await their
confirm; the frames are byte for byte the `message` frames the gateways push, so they
forward them without parsing. Headers travel beside them, each a string with one line per
frame: ORIGIN_HEADER, the publishing connection (so its own socket is not echoed), and
CURSOR_HEADER, the frame's cursor (so fan-out need not parse the body). Strings, not AMQP
arrays: the client library decodes an array element by element, which was a tenth of a
consumer's CPU. Frames of several rooms in one broker message: the routing key is the
first room's, CC_HEADER (RabbitMQ's sender-selected distribution) lists the other rooms'
keys, and ROOM_HEADER gives each frame's room. KIND_HEADER gives each frame's kind when
any of them is a receipt (which v1 sockets are not sent); without it all are messages.

Typing signals, presence and read-position events travel apart (contracts.routing), one
frame per broker message, transient and unconfirmed: they matter only to who listens now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from .frames import Cursor, MessageFrame, MessageId, StoredKind
from .routing import MESSAGE_NS

ORIGIN_HEADER = "x-duet-origin"
CURSOR_HEADER = "x-duet-cursor"
ROOM_HEADER = "x-duet-room"  # only when the frames are of more than one room
KIND_HEADER = "x-duet-kind"  # only when a frame is a receipt
CC_HEADER = "CC"  # RabbitMQ routes the message under these keys as well
FRAME_SEPARATOR = b"\n"


def join_frames(frames: Sequence[bytes]) -> bytes:
    """The body of a broker message carrying these frames (compact JSON, no newlines)."""
    return frames[0] if len(frames) == 1 else FRAME_SEPARATOR.join(frames)


def frame_count(body: bytes) -> int:
    """How many frames a broker message's body holds (its lines)."""
    return body.count(FRAME_SEPARATOR) + 1


def split_frames(body: bytes) -> list[bytes]:
    """The frames of a broker message's body, in order."""
    return body.split(FRAME_SEPARATOR)


def join_lines(values: Sequence[str]) -> str:
    """A per-frame header's value: one line per frame (the values hold no newline)."""
    return "\n".join(values)


def header_list(value: object) -> list[str]:
    """A per-frame header's values, one per frame (also the AMQP array form)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        return value.split("\n")
    if isinstance(value, list | tuple):
        return [v.decode() if isinstance(v, bytes) else str(v) for v in value]
    return []


def line_rooms(key_room: str, headers: Mapping[str, object], lines: int) -> list[str]:
    """Each line's room: ROOM_HEADER's lines, or else the routing key's room for all."""
    rooms = header_list(headers.get(ROOM_HEADER))
    return rooms if rooms else [key_room] * lines


def line_kinds(headers: Mapping[str, object], lines: int) -> list[str] | None:
    """Each line's kind, or None when all are messages (no KIND_HEADER)."""
    kinds = header_list(headers.get(KIND_HEADER))
    return kinds if len(kinds) == lines else None


def routed_rooms(key_room: str, headers: Mapping[str, object],
                 namespace: str = MESSAGE_NS) -> set[str]:
    """The rooms a broker message was routed under: its routing key's and CC_HEADER's
    (those of the key's namespace)."""
    rooms = {key_room}
    for key in header_list(headers.get(CC_HEADER)):
        ns, _, room = key.partition(".")
        if ns == namespace:
            rooms.add(room)
    return rooms


class RoomMessage(MessageFrame):
    """One `message` frame (one line) of a broker message (exported as its JSON Schema)."""


@with_config(ConfigDict(extra="allow", strict=True))
class StorableFrame(TypedDict):
    """What the persister checks of each frame before storing it: the fields storage,
    its unique indexes and history rely on, and that the body is an object. The envelope's
    inner shape is the publishing gateway's check (the servers treat it as opaque);
    checking it again per document took a fifth of the persister's CPU. A TypedDict: the
    validated dict is the document to store (other fields kept), in one parse; strict, so
    it is what was published (no "5" read as 5)."""

    type: Literal["message"]
    id: MessageId
    sender: str
    room: str
    kind: StoredKind
    body: dict[str, Any]
    ts: int
    cursor: Cursor


_STORABLE_FRAMES = TypeAdapter(list[StorableFrame])


def storable_frames(body: bytes, lines: int) -> list[StorableFrame]:
    """Each of the body's `lines` frames (frame_count), parsed and checked in one pass (the
    lines read as one JSON array). Raises ValidationError if a line is not one such frame."""
    frames = _STORABLE_FRAMES.validate_json(b"[" + body.replace(FRAME_SEPARATOR, b",") + b"]")
    if len(frames) != lines:  # a line held two values
        raise ValidationError.from_exception_data("frames", [
            {"type": "value_error", "loc": (), "input": len(frames),
             "ctx": {"error": "one frame per line"}}])
    return frames


class StoredItem(BaseModel):
    room: str
    sender: str
    id: MessageId
    cursor: Cursor
    kind: StoredKind = "text"
    origin: str = ""  # the publishing connection (never sent to clients)


class StoredNotice(BaseModel):
    """Published by the persister under `stored` after a batch is written: one notice for
    the batch's rooms (transient), which every gateway receives and reads for its own."""

    items: list[StoredItem]
