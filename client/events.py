"""What `Client.listen()` yields: messages, alerts, and the signals around them."""

from __future__ import annotations

from dataclasses import dataclass

from .envelope import Content


@dataclass(frozen=True)
class Message:
    id: str
    room: str
    sender: str
    sender_name: str
    kind: str
    content: Content
    ts: int
    cursor: str
    own: bool

    @property
    def text(self) -> str:
        return self.content.as_text() if self.kind == "text" else f"[image {self.content.mime}]"


NOT_FOR_DEVICE = "not_for_device"


@dataclass(frozen=True)
class Alert:
    """A message or signal that did not verify, or a change the user must see."""

    kind: str  # bad_signature | unknown_key | undecryptable | mismatch | gap | replay | fork
    #            | key_changed | malformed | stale | not_for_device (NOT_FOR_DEVICE: no key
    #            for this device, e.g. sent before it was added; explained, not a failure)
    sender: str
    detail: str
    id: str | None = None
    cursor: str | None = None


@dataclass(frozen=True)
class Receipt:
    """A friend's device says it decrypted (`delivered`) and showed (`read`, None when
    they keep read receipts off) this user's messages in `room` up to these cursors."""

    room: str
    sender: str
    delivered: str | None
    read: str | None


@dataclass(frozen=True)
class Typing:
    room: str
    sender: str
    typing: bool


@dataclass(frozen=True)
class Presence:
    user: str
    online: bool
    at: int


@dataclass(frozen=True)
class ReadPosition:
    """This user's read position in `room` moved (on any of their devices)."""

    room: str
    cursor: str
    unread: int


@dataclass(frozen=True)
class Unsent:
    """A message yielded earlier was not confirmed by the server (its sender was told
    publish_failed): show it as not sent. Its sender's client sends it again under the
    same id, and it is yielded again as a Message."""

    room: str
    sender: str
    id: str


Event = Message | Alert | Receipt | Typing | Presence | ReadPosition | Unsent
