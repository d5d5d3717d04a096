"""REST bodies under /api (JSON). Errors are RFC 9457 problem objects."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .frames import Cursor, MessageFrame
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
    """A user's public profile: live device keys, and revoked ones (to check old messages)."""

    user_id: str
    username: str
    keys: list[DeviceKey] = Field(default_factory=list)
    revoked: list[RevokedKey] = Field(default_factory=list)


class Registered(BaseModel):
    user_id: str
    username: str


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user_id: str


class FriendRequest(_Body):
    username: Username


class Friend(BaseModel):
    user_id: str
    username: str
    status: Literal["accepted", "incoming", "outgoing"]


class Friends(BaseModel):
    friends: list[Friend]


class HistoryPage(BaseModel):
    messages: list[MessageFrame]
    next: Cursor | None


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str | None = None
