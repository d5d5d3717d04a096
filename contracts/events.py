"""What travels on the broker.

The chat frames of a room travel in batches (contracts.batch, the one codec); this module
holds what the servers check of a frame and the persister's `stored` notice.

Typing signals, presence and read-position events travel apart (contracts.routing), one
frame per broker message, transient and unconfirmed: they matter only to who listens now.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from .batch import FRAME_SEPARATOR
from .frames import Cursor, MessageFrame, MessageId, StoredKind


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
