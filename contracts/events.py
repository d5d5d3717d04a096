"""What travels on the broker.

A chat message travels under `room.<lo>.<hi>` (JSON, persistent) in a broker message
that carries one or more `message` frames of that room, one per line (orjson never writes
a raw newline). A gateway batches what one event-loop turn sent to a room; the frames are
byte for byte the `message` frames the gateways push, so they forward them without
parsing. Two AMQP headers travel beside them, each a list with one entry per line:
ORIGIN_HEADER, the publishing connection (so its own socket is not echoed), and
CURSOR_HEADER, the frame's cursor (so fan-out need not parse the body).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .frames import Cursor, Kind, MessageFrame, MessageId

ORIGIN_HEADER = "x-duet-origin"
CURSOR_HEADER = "x-duet-cursor"
FRAME_SEPARATOR = b"\n"


def join_frames(frames: Sequence[bytes]) -> bytes:
    """The body of a broker message carrying these frames (compact JSON, no newlines)."""
    return frames[0] if len(frames) == 1 else FRAME_SEPARATOR.join(frames)


def split_frames(body: bytes) -> list[bytes]:
    """The frames of a broker message's body, in order."""
    return body.split(FRAME_SEPARATOR)


def header_list(value: object) -> list[str]:
    """A per-frame header as a list of strings (a lone string: one frame)."""
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [] if value is None else [str(value)]


class RoomMessage(MessageFrame):
    """One `message` frame (one line) of a broker message under `room.<lo>.<hi>`."""


class StorableFrame(BaseModel):
    """What the persister checks of each frame before storing it: the fields storage,
    its unique indexes and history rely on, and that the body is an object. The envelope's
    inner shape is the publishing gateway's check (the servers treat it as opaque);
    checking it again per document took a fifth of the persister's CPU."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["message"]
    id: MessageId
    sender: str
    room: str
    kind: Kind
    body: dict[str, Any]
    ts: int
    cursor: Cursor


class StoredItem(BaseModel):
    room: str
    sender: str
    id: MessageId
    cursor: Cursor
    origin: str = ""  # the publishing connection (never sent to clients)


class StoredNotice(BaseModel):
    """Published by the persister under `stored` after a batch is written: one notice for
    the batch's rooms (transient), which every gateway receives and reads for its own."""

    items: list[StoredItem]
