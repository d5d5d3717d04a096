"""REST bodies under /api (JSON). Errors are RFC 9457 problem objects."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .devicelist import SignedDeviceList
from .frames import Cursor, MessageFrame, StoredKind
from .keys import DeviceKey, RevokedKey

# ASCII only: no look-alike (homoglyph) or invisible characters in names people compare.
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{3,32}$")]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Credentials(_Body):
    username: Username
    password: Password


class UserOut(BaseModel):
    """A user's public profile: the device keys uploaded (live, and revoked ones), and the
    device list the user's identity key signed: clients trust only the list."""

    user_id: str
    username: str
    keys: list[DeviceKey] = Field(default_factory=list)
    revoked: list[RevokedKey] = Field(default_factory=list)
    device_list: SignedDeviceList | None = None


class Registered(BaseModel):
    user_id: str
    username: str


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user_id: str


class SessionOut(BaseModel):
    """One of the user's live sessions (GET /api/sessions)."""

    id: str
    created_at: int
    last_seen: int
    expires_at: int
    label: str
    current: bool = Field(description="The session of the token that asked.")


class Sessions(BaseModel):
    sessions: list[SessionOut]


class PasswordChange(_Body):
    """POST /api/password: ends every other session of the user."""

    current: Password
    new: Password


class FriendRequest(_Body):
    username: Username


class Friend(BaseModel):
    user_id: str
    username: str
    status: Literal["accepted", "incoming", "outgoing"]


class Friends(BaseModel):
    friends: list[Friend]


class BlockRequest(_Body):
    """POST /api/blocks: block a user by name (a stranger as well as a friend)."""

    username: Username


class Blocked(BaseModel):
    user_id: str
    username: str
    since: int = Field(description="When the block was made, ms since the epoch.")


class Blocks(BaseModel):
    blocks: list[Blocked]


class AccountDeletion(_Body):
    """DELETE /api/account: the account's current password, to prove it is the owner."""

    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class HistoryPage(BaseModel):
    messages: list[MessageFrame]
    next: Cursor | None


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str | None = None


class ReadPosition(_Body):
    """POST /api/conversations/{peer_id}/read: read up to this cursor."""

    cursor: Cursor


class ReadState(BaseModel):
    room: str
    cursor: Cursor | None
    unread: int
    newest: Cursor | None = Field(
        None, description="The newest of the friend's messages `unread` counted (a client "
                          "adds those it holds past it, stored after the count).")


class LastMessage(BaseModel):
    """A conversation's newest message (text or image) for its preview: the whole frame
    for text, so the client can verify and decrypt it; an image's without its body."""

    id: str
    sender: str
    kind: StoredKind
    ts: int
    cursor: Cursor
    body: dict[str, object] | None = None


class Conversation(BaseModel):
    user_id: str
    username: str
    room: str
    last_activity: int = Field(description="ms: the newest message, else the friendship.")
    last: LastMessage | None
    unread: int = Field(description="The friend's messages after `read` (at most 1000).")
    read: Cursor | None = Field(description="This user's read position in the room.")
    online: bool
    peer_receipt: MessageFrame | None = Field(
        None, description="The friend's newest receipt in the room (for ticks).")


class Conversations(BaseModel):
    conversations: list[Conversation]


class Settings(BaseModel):
    read_receipts: bool = Field(True, description="Send read receipts (clients honour it).")
    hide_presence: bool = Field(False, description="Never shown online to friends.")


class SettingsUpdate(_Body):
    model_config = ConfigDict(extra="forbid", strict=True)  # true or false, not "yes"

    read_receipts: bool | None = None
    hide_presence: bool | None = None
