"""Frames between a client and the gateway (WebSocket, JSON text).

Protocol v1, `/ws/{peer_id}` (subprotocol `duet.v1`): one socket per room.
    client → server: `send`, `sync`
    server → client: `ready`, `ack`, `message`, `stored`, `synced`, `error`

Protocol v2, `/ws` (subprotocol `duet.v2`): one socket per device, every room of its user.
    client → server: `send` (names its `peer`), `sync` (a cursor per room), `typing`, `read`
    server → client: `ready`, `ack`, `message`, `stored`, `synced`, `error`, `typing`,
                     `presence`, `read`

The error and close codes of both are in contracts.codes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from .envelope import Envelope, Fingerprint

MessageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Cursor = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
UserId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{24}$")]
RoomId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{24}\.[0-9a-f]{24}$")]
# What v1 sockets send and are sent: messages. v2 adds receipts, which are stored too.
Kind = Literal["text", "image"]
StoredKind = Literal["text", "image", "receipt"]
# The envelope is opaque to the servers: only its outer shape and size count.
Body = Envelope
MAX_SYNC_ROOMS = 10_000


class _Frame(BaseModel):
    # Unknown fields are ignored, so a frame's own `sender` claim never reaches the broker.
    model_config = ConfigDict(extra="ignore", frozen=True)


# -- v1, client → server -----------------------------------------------------------------
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


# -- v2, client → server -----------------------------------------------------------------
class DeviceSendFrame(_Frame):
    """Send a message or a receipt to `peer`, in the room of the two."""

    type: Literal["send"]
    id: MessageId = Field(description="Unique per sender; a retry reuses it.")
    peer: UserId
    kind: StoredKind
    body: Body
    retry: bool = False


class DeviceSyncFrame(_Frame):
    """Replay what the device missed in every room of its user, then continue live.

    `after` maps a room to the last cursor the device holds of it (null: from its start);
    a room of the user's not in the map is replayed from its start. `after: null` is
    every room from its start. `rooms` limits the replay to these rooms (live frames of
    every room flow all the same).
    """

    type: Literal["sync"]
    after: dict[RoomId, Cursor | None] | None = Field(None, max_length=MAX_SYNC_ROOMS)
    rooms: list[RoomId] | None = Field(None, max_length=MAX_SYNC_ROOMS)


class TypingFrame(_Frame):
    """An encrypted typing signal (envelope kind `typing`) for `peer`; never stored."""

    type: Literal["typing"]
    peer: UserId
    body: Body


class ReadFrame(_Frame):
    """This user has read the room with `peer` up to `cursor` (kept server-side)."""

    type: Literal["read"]
    peer: UserId
    cursor: Cursor


class FetchedFrame(_Frame):
    """This device (`device`, its kid) holds the room with `peer` up to `cursor`: the
    server's retention keeps a message's ciphertext until every device it was for has
    said so (docs/sessions.md "Retention")."""

    type: Literal["fetched"]
    device: Fingerprint
    peer: UserId
    cursor: Cursor


DeviceClientFrame = Annotated[
    DeviceSendFrame | DeviceSyncFrame | TypingFrame | ReadFrame | FetchedFrame,
    Field(discriminator="type")]
device_client_frame: TypeAdapter[
    DeviceSendFrame | DeviceSyncFrame | TypingFrame | ReadFrame | FetchedFrame
] = TypeAdapter(DeviceClientFrame)


# -- server → client ---------------------------------------------------------------------
class ReadyFrame(_Frame):
    """v1: the socket joined the room; live messages flow from now on."""

    type: Literal["ready"] = "ready"
    room: str
    user: str
    peer: str


class DeviceReadyFrame(_Frame):
    """v2: the socket receives every room of `user` live from now on."""

    type: Literal["ready"] = "ready"
    user: str
    protocol: Literal[2] = 2


class AckFrame(_Frame):
    """The broker confirmed the publish: the message is durable."""

    type: Literal["ack"] = "ack"
    id: MessageId
    ts: int = Field(description="Server time, milliseconds since the epoch.")
    cursor: Cursor
    room: str | None = None


class MessageFrame(_Frame):
    type: Literal["message"] = "message"
    id: MessageId
    sender: str
    room: str
    kind: StoredKind = Field(description="`receipt` only on v2 sockets.")
    body: Body
    ts: int
    cursor: Cursor


class StoredFrame(_Frame):
    """The persister wrote the message to MongoDB (sent to the sender's sockets)."""

    type: Literal["stored"] = "stored"
    id: MessageId
    cursor: Cursor
    room: str | None = None


class SyncedFrame(_Frame):
    """End of a sync replay: `count` messages were replayed; v1: `cursor` is the last one
    (null on a v2 socket, whose positions are per room)."""

    type: Literal["synced"] = "synced"
    count: int
    cursor: Cursor | None


class ErrorFrame(_Frame):
    type: Literal["error"] = "error"
    code: str = Field(description="Machine-readable: contracts.codes.ERRORS.")
    detail: str
    id: str | None = None


class TypingEvent(_Frame):
    """v2: a friend's typing signal, as they sent it (never stored)."""

    type: Literal["typing"] = "typing"
    room: str
    sender: str
    body: Body


class UnsentEvent(_Frame):
    """v2: these messages of `sender` in `room` were pushed live, but the broker did not
    confirm them (their sender was told publish_failed): show them as not sent. The
    sender's client sends each again under the same id, and it comes again as a
    `message` (the same envelope)."""

    type: Literal["unsent"] = "unsent"
    room: str
    sender: str
    ids: list[MessageId]
    cursors: list[Cursor] = Field(description="Each id's cursor, as it was pushed.")


class PresenceEvent(_Frame):
    """v2: a friend is online (a socket on any gateway) or went offline; `at` (ms, the
    deciding gateway's clock) orders events about one user."""

    type: Literal["presence"] = "presence"
    user: str
    online: bool
    at: int


class ReadEvent(_Frame):
    """v2: this user's read position in `room` moved (from any of their devices)."""

    type: Literal["read"] = "read"
    room: str
    cursor: Cursor
    unread: int = Field(description="The peer's messages after `cursor` (at most 1000).")
    newest: Cursor | None = Field(None, description="The newest message `unread` counted.")


ServerFrame = Annotated[
    ReadyFrame | AckFrame | MessageFrame | StoredFrame | SyncedFrame | ErrorFrame,
    Field(discriminator="type"),
]
server_frame: TypeAdapter[
    ReadyFrame | AckFrame | MessageFrame | StoredFrame | SyncedFrame | ErrorFrame
] = TypeAdapter(ServerFrame)

DeviceServerFrame = Annotated[
    DeviceReadyFrame | AckFrame | MessageFrame | StoredFrame | SyncedFrame | ErrorFrame
    | TypingEvent | PresenceEvent | ReadEvent | UnsentEvent,
    Field(discriminator="type"),
]
device_server_frame: TypeAdapter[
    DeviceReadyFrame | AckFrame | MessageFrame | StoredFrame | SyncedFrame | ErrorFrame
    | TypingEvent | PresenceEvent | ReadEvent | UnsentEvent
] = TypeAdapter(DeviceServerFrame)
