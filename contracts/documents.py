"""What MongoDB stores, and the indexes the queries need."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .frames import Body, Cursor, MessageId, StoredKind

MESSAGES = "messages"
USERS = "users"
FRIENDSHIPS = "friendships"
READS = "reads"
PRESENCE = "presence"


def message_doc_id(sender: str, message_id: str) -> str:
    """One document per (sender, id): a re-delivery or a retry hits the same _id."""
    return f"{sender}:{message_id}"


def read_doc_id(user: str, room: str) -> str:
    return f"{user}/{room}"


def presence_doc_id(user: str, node: str) -> str:
    return f"{user}/{node}"


class MessageDocument(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    doc_id: str = Field(alias="_id")
    room: str
    sender: str
    id: MessageId
    kind: StoredKind
    body: Body
    ts: int
    cursor: Cursor
    stored_at: int


class UserDocument(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    user_id: str = Field(alias="_id")
    username: str
    username_key: str  # lower-cased, unique
    password_hash: str
    created_at: int
    settings: dict[str, bool] = Field(default_factory=dict)  # contracts.api.Settings


class FriendshipDocument(BaseModel):
    """One per room; `requester` asked `addressee`."""

    model_config = ConfigDict(populate_by_name=True)

    room: str = Field(alias="_id")
    requester: str
    addressee: str
    status: Literal["pending", "accepted"]
    created_at: int


class ReadDocument(BaseModel):
    """A user's read position in a room: a cursor, never content."""

    model_config = ConfigDict(populate_by_name=True)

    doc_id: str = Field(alias="_id")  # read_doc_id
    user: str
    room: str
    cursor: Cursor
    at: int


class PresenceDocument(BaseModel):
    """A user has a socket on this gateway (`node`) until `expires_at`, which the gateway
    pushes forward while it lives: a gateway that dies leaves documents that expire."""

    model_config = ConfigDict(populate_by_name=True)

    doc_id: str = Field(alias="_id")  # presence_doc_id
    user: str
    node: str
    expires_at: int  # ms since the epoch


# (collection, keys, options): created idempotently by the service that owns the queries.
IndexSpec = tuple[str, list[tuple[str, int]], dict[str, Any]]
MESSAGE_INDEXES: list[IndexSpec] = [
    (MESSAGES, [("room", 1), ("cursor", 1)], {"name": "room_cursor", "unique": True}),
]
USER_INDEXES: list[IndexSpec] = [
    (USERS, [("username_key", 1)], {"name": "username_key", "unique": True}),
]
READ_INDEXES: list[IndexSpec] = [
    (READS, [("user", 1)], {"name": "user"}),
]
PRESENCE_INDEXES: list[IndexSpec] = [
    (PRESENCE, [("user", 1), ("expires_at", 1)], {"name": "user_expires"}),
    (PRESENCE, [("expires_at", 1)], {"name": "expires"}),
]
FRIENDSHIP_INDEXES: list[IndexSpec] = [
    (FRIENDSHIPS, [("requester", 1)], {"name": "requester"}),
    (FRIENDSHIPS, [("addressee", 1)], {"name": "addressee"}),
]
