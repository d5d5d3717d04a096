"""Frames between a client and the gateway (WebSocket, JSON text).

client → server: `send`, `sync`
server → client: `ready`, `ack`, `message`, `stored`, `synced`, `error`
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from .envelope import Envelope

MessageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Cursor = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Kind = Literal["text", "image"]
# The envelope is opaque to the servers: only its outer shape and size count.
Body = Envelope


class _Frame(BaseModel):
    # Unknown fields are ignored, so a frame's own `sender` claim never reaches the broker.
    model_config = ConfigDict(extra="ignore", frozen=True)


class SendFrame(_Frame):
    """Send one message to the room's other member."""

    type: Literal["send"]
    id: MessageId = Field(description="Unique per sender; a retry reuses it.")
    kind: Kind
    body: Body
    retry: bool = Field(False, description="A resend after a lost ack: the gateway answers "
                        "from storage when the message is already there.")


class SyncFrame(_Frame):
    """Replay stored messages after a cursor (all when null), then continue live."""

    type: Literal["sync"]
    after: Cursor | None = None


ClientFrame = Annotated[SendFrame | SyncFrame, Field(discriminator="type")]
client_frame: TypeAdapter[SendFrame | SyncFrame] = TypeAdapter(ClientFrame)


class ReadyFrame(_Frame):
    """The socket joined the room; live messages flow from now on."""

    type: Literal["ready"] = "ready"
    room: str
    user: str
    peer: str


class AckFrame(_Frame):
    """The broker confirmed the publish: the message is durable."""

    type: Literal["ack"] = "ack"
    id: MessageId
    ts: int = Field(description="Server time, milliseconds since the epoch.")
    cursor: Cursor


class MessageFrame(_Frame):
    type: Literal["message"] = "message"
    id: MessageId
    sender: str
    room: str
    kind: Kind
    body: Body
    ts: int
    cursor: Cursor


class StoredFrame(_Frame):
    """The persister wrote the message to MongoDB (sent to the sender's sockets)."""

    type: Literal["stored"] = "stored"
    id: MessageId
    cursor: Cursor


class SyncedFrame(_Frame):
    """End of a sync replay: `count` messages were replayed, `cursor` is the last one."""

    type: Literal["synced"] = "synced"
    count: int
    cursor: Cursor | None


class ErrorFrame(_Frame):
    type: Literal["error"] = "error"
    code: str = Field(description="Machine-readable; see the README's error catalogue.")
    detail: str
    id: str | None = None


ServerFrame = Annotated[
    ReadyFrame | AckFrame | MessageFrame | StoredFrame | SyncedFrame | ErrorFrame,
    Field(discriminator="type"),
]
server_frame: TypeAdapter[
    ReadyFrame | AckFrame | MessageFrame | StoredFrame | SyncedFrame | ErrorFrame
] = TypeAdapter(ServerFrame)
