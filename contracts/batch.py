"""The batch codec: the chat frames of one broker message, and the headers beside them.

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
keys, and ROOM_HEADER gives each frame's room. CC_HEADER also names every room's persist
slot (contracts.routing), which partitioned persistence binds. KIND_HEADER gives each
frame's kind when any of them is a receipt (which v1 sockets are not sent); without it all
are messages.

`encode` is the one writer (the gateway's publisher); `decode` and `decode_headers` the
one reader (the gateways' fan-out, the persister, the audit tool).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from .envelope import MESSAGE_KINDS
from .routing import MESSAGE_NS, message_key, persist_key, persist_slot

ORIGIN_HEADER = "x-duet-origin"
CURSOR_HEADER = "x-duet-cursor"
ROOM_HEADER = "x-duet-room"  # only when the frames are of more than one room
KIND_HEADER = "x-duet-kind"  # only when a frame is not a message (a receipt)
CC_HEADER = "CC"  # RabbitMQ routes the message under these keys as well
FRAME_SEPARATOR = b"\n"


class Line(NamedTuple):
    """One frame of a batch and what travels beside it."""

    frame: bytes  # a `message` frame, compact JSON
    room: str
    origin: str  # the publishing connection
    cursor: str
    kind: str = "text"


class Encoded(NamedTuple):
    routing_key: str
    body: bytes
    headers: dict[str, object]


class Batch(NamedTuple):
    """A decoded broker message: per-frame lists, all of the same length."""

    frames: list[bytes]
    rooms: list[str]
    origins: list[str]
    cursors: list[str]
    kinds: list[str] | None  # None: every frame is a message


class BatchError(ValueError):
    """The headers do not describe the body (a broker message no gateway published)."""


def encode(lines: Sequence[Line]) -> Encoded:
    """One broker message carrying these frames, in order."""
    rooms = list(dict.fromkeys(line.room for line in lines))
    headers: dict[str, object] = {ORIGIN_HEADER: join_lines([x.origin for x in lines]),
                                  CURSOR_HEADER: join_lines([x.cursor for x in lines])}
    # Each room's persist slot too (contracts.routing): partitioned persistence binds them.
    cc = [message_key(r) for r in rooms[1:]]
    cc.extend(dict.fromkeys(persist_key(persist_slot(r)) for r in rooms))
    headers[CC_HEADER] = cc
    if len(rooms) > 1:
        headers[ROOM_HEADER] = join_lines([x.room for x in lines])
    if any(x.kind not in MESSAGE_KINDS for x in lines):
        headers[KIND_HEADER] = join_lines([x.kind for x in lines])
    return Encoded(message_key(rooms[0]), join_frames([x.frame for x in lines]), headers)


def decode(key_room: str, body: bytes, headers: Mapping[str, object]) -> Batch:
    """The frames of a broker message routed under `room.<key_room>`, with their rooms,
    origins, cursors and kinds. Raises BatchError when the headers do not match the body."""
    lines = frame_count(body)
    frames = split_frames(body) if lines > 1 else [body]
    return Batch(frames, *decode_headers(key_room, headers, lines))


def decode_headers(key_room: str, headers: Mapping[str, object], lines: int,
                   ) -> tuple[list[str], list[str], list[str], list[str] | None]:
    """`decode` without splitting the body (for a reader that parses it whole): each
    line's room, origin, cursor and kind (None: all messages)."""
    rooms = header_list(headers.get(ROOM_HEADER)) or [key_room] * lines
    origins = header_list(headers.get(ORIGIN_HEADER))
    cursors = header_list(headers.get(CURSOR_HEADER))
    kinds = header_list(headers.get(KIND_HEADER)) if KIND_HEADER in headers else None
    if not (len(rooms) == len(origins) == len(cursors) == lines) or (
            kinds is not None and len(kinds) != lines):
        raise BatchError(f"{lines} frames, but headers for a different count")
    if not routed_rooms(key_room, headers).issuperset(rooms):
        raise BatchError("a frame of a room the message was not routed under")
    return rooms, origins, cursors, kinds


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
