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
SESSIONS = "sessions"
BLOCKS = "blocks"
FRIEND_REQUEST_DAYS = "friend_request_days"
HISTORY_SHARES = "history_shares"
PREKEYS = "prekeys"  # one document per device: its bundle and one-time prekeys
FETCHED = "fetched"  # per device and room: the cursor up to which the device holds it


def message_doc_id(sender: str, message_id: str) -> str:
    """One document per (sender, id): a re-delivery or a retry hits the same _id."""
    return f"{sender}:{message_id}"


def read_doc_id(user: str, room: str) -> str:
    return f"{user}/{room}"


def presence_doc_id(user: str, node: str) -> str:
    return f"{user}/{node}"


def prekey_doc_id(user: str, kid: str) -> str:
    return f"{user}/{kid}"


def fetched_doc_id(kid: str, room: str) -> str:
    return f"{kid}/{room}"


def block_doc_id(blocker: str, blocked: str) -> str:
    return f"{blocker}/{blocked}"


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
    fetched_at: int | None = Field(None, description="When the retention sweep found that "
                                   "every device the message is for had fetched it.")


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


class SessionDocument(BaseModel):
    """A device login: every access token names one (its `sid` claim). Logout, revocation
    and a password change set `revoked`; account deletion removes the document. Either
    way, or once `expires_at` passes, the session's tokens and sockets stop working."""

    model_config = ConfigDict(populate_by_name=True)

    session_id: str = Field(alias="_id")
    user: str
    created_at: int  # ms since the epoch
    last_seen: int  # ms; coarse: written at most once a minute
    expires_at: int  # ms; pushed forward by POST /api/sessions/renew
    label: str  # the client's User-Agent, cut to 80 characters
    revoked: bool = False


class BlockDocument(BaseModel):
    """`blocker` blocked `blocked`: no friendship, request or room between them."""

    model_config = ConfigDict(populate_by_name=True)

    doc_id: str = Field(alias="_id")  # block_doc_id
    blocker: str
    blocked: str
    created_at: int


class FriendRequestDayDocument(BaseModel):
    """How many friend requests a user made on one UTC day (DUET_FRIEND_REQUESTS_PER_DAY);
    MongoDB's TTL monitor removes it after `expires_at`."""

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    doc_id: str = Field(alias="_id")  # "<user>/<YYYY-MM-DD>"
    user: str
    count: int
    expires_at: Any  # a BSON date: the end of the day, plus a day


# (collection, keys, options): created idempotently by the service that owns the queries.
IndexSpec = tuple[str, list[tuple[str, int]], dict[str, Any]]
MESSAGE_INDEXES: list[IndexSpec] = [
    (MESSAGES, [("room", 1), ("cursor", 1)], {"name": "room_cursor", "unique": True}),
    (MESSAGES, [("fetched_at", 1)], {"name": "fetched_at"}),  # the retention sweep
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
BLOCK_INDEXES: list[IndexSpec] = [
    (BLOCKS, [("blocker", 1)], {"name": "blocker"}),
    (BLOCKS, [("blocked", 1)], {"name": "blocked"}),
    (FRIEND_REQUEST_DAYS, [("expires_at", 1)], {"name": "expires", "expireAfterSeconds": 0}),
]
SESSION_INDEXES: list[IndexSpec] = [
    (SESSIONS, [("user", 1)], {"name": "user"}),
    (HISTORY_SHARES, [("user", 1), ("to", 1)], {"name": "user_to"}),
    (PREKEYS, [("user", 1)], {"name": "user"}),
    (FETCHED, [("user", 1)], {"name": "user"}),
    (FETCHED, [("room", 1)], {"name": "room"}),
]
