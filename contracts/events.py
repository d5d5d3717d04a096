"""What travels on the broker."""

from __future__ import annotations

from pydantic import BaseModel

from .frames import Cursor, MessageFrame, MessageId

# AMQP headers of a RoomMessage: the publishing connection (so its own socket is not
# echoed) and the message's cursor (so fan-out need not parse the body).
ORIGIN_HEADER = "x-duet-origin"
CURSOR_HEADER = "x-duet-cursor"


class RoomMessage(MessageFrame):
    """A chat message published under `room.<lo>.<hi>` (JSON, persistent).

    Its body is byte for byte the `message` frame the gateways push, so they forward it
    without parsing it again; ORIGIN_HEADER and CURSOR_HEADER travel beside it.
    """


class StoredItem(BaseModel):
    sender: str
    id: MessageId
    cursor: Cursor
    origin: str = ""  # the publishing connection (never sent to clients)


class StoredNotice(BaseModel):
    """Published by the persister under `stored.<lo>.<hi>` after a batch is written."""

    room: str
    items: list[StoredItem]
