"""duet's wire, broker and storage contracts. No I/O; depends on nothing of ours."""

from .api import (
    Credentials,
    Friend,
    FriendRequest,
    Friends,
    HistoryPage,
    Problem,
    Registered,
    Token,
    UserOut,
)
from .documents import (
    FRIENDSHIPS,
    MESSAGES,
    USERS,
    FriendshipDocument,
    MessageDocument,
    UserDocument,
    message_doc_id,
)
from .events import RoomMessage, StoredItem, StoredNotice
from .frames import (
    AckFrame,
    ClientFrame,
    ErrorFrame,
    MessageFrame,
    ReadyFrame,
    SendFrame,
    ServerFrame,
    StoredFrame,
    SyncedFrame,
    SyncFrame,
    client_frame,
    server_frame,
)
from .routing import Names, is_user_id, room_binding, room_id, room_key, room_members

__all__ = [
    "AckFrame", "ClientFrame", "Credentials", "ErrorFrame", "FRIENDSHIPS", "Friend",
    "FriendRequest", "Friends", "FriendshipDocument", "HistoryPage", "MESSAGES",
    "MessageDocument", "MessageFrame", "Names", "Problem", "ReadyFrame", "Registered",
    "RoomMessage", "SendFrame", "ServerFrame", "StoredFrame", "StoredItem", "StoredNotice",
    "SyncFrame", "SyncedFrame", "Token", "USERS", "UserDocument", "UserOut", "client_frame",
    "is_user_id", "message_doc_id", "room_binding", "room_id", "room_key", "room_members",
    "server_frame",
]
