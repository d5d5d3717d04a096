"""What MongoDB stores, and the indexes the queries need."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .frames import Body, Cursor, Kind, MessageId

MESSAGES = "messages"
USERS = "users"
FRIENDSHIPS = "friendships"


def message_doc_id(sender: str, message_id: str) -> str:
    """One document per (sender, id): a re-delivery or a retry hits the same _id."""
    return f"{sender}:{message_id}"


class MessageDocument(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    doc_id: str = Field(alias="_id")
    room: str
    sender: str
    id: MessageId
    kind: Kind
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


class FriendshipDocument(BaseModel):
    """One per room; `requester` asked `addressee`."""

    model_config = ConfigDict(populate_by_name=True)

    room: str = Field(alias="_id")
    requester: str
    addressee: str
    status: Literal["pending", "accepted"]
    created_at: int


# (collection, keys, options): created idempotently by the service that owns the queries.
IndexSpec = tuple[str, list[tuple[str, int]], dict[str, Any]]
MESSAGE_INDEXES: list[IndexSpec] = [
    (MESSAGES, [("room", 1), ("cursor", 1)], {"name": "room_cursor", "unique": True}),
]
USER_INDEXES: list[IndexSpec] = [
    (USERS, [("username_key", 1)], {"name": "username_key", "unique": True}),
]
FRIENDSHIP_INDEXES: list[IndexSpec] = [
    (FRIENDSHIPS, [("requester", 1)], {"name": "requester"}),
    (FRIENDSHIPS, [("addressee", 1)], {"name": "addressee"}),
]
