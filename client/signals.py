"""Receipts and typing signals: their plaintext, and what a client keeps of them.

Both travel in envelope v1 (kind `receipt` / `typing`, seq 0, outside the message chain),
signed by the sending device and encrypted to the room's devices like a message, so the
server can neither read nor forge one. Their plaintext is canonical JSON:

    receipt  {"delivered": <cursor>|null, "read": <cursor>|null}
             mime application/vnd.duet.receipt+json: this device decrypted the friend's
             messages up to `delivered` and showed them up to `read` ("up to": one receipt
             covers everything before it). `read` is null with read receipts off.
    typing   {"typing": true|false, "at": <ms since the epoch>}
             mime application/vnd.duet.typing+json: refused when `at` is more than
             FRESH_MS from the receiver's clock (a replayed old signal), shown for
             TYPING_SHOWN_S after the last `true`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from .crypto import canonical
from .envelope import Content
from .errors import CryptoError

RECEIPT_MIME = "application/vnd.duet.receipt+json"
TYPING_MIME = "application/vnd.duet.typing+json"
FRESH_MS = 30_000
TYPING_SHOWN_S = 5.0
_CURSOR = re.compile(r"^[0-9a-f]{32}$")


def receipt_content(delivered: str | None, read: str | None) -> Content:
    return Content({"mime": RECEIPT_MIME}, canonical({"delivered": delivered, "read": read}))


def typing_content(typing: bool, at_ms: int | None = None) -> Content:
    at = at_ms if at_ms is not None else int(time.time() * 1000)
    return Content({"mime": TYPING_MIME}, canonical({"typing": typing, "at": at}))


def _json(content: Content, mime: str) -> dict[str, Any]:
    if content.mime != mime:
        raise CryptoError(f"a signal of type {content.mime!r}, not {mime}")
    try:
        data = json.loads(content.data)
    except ValueError as exc:
        raise CryptoError("a signal that is not JSON") from exc
    if not isinstance(data, dict):
        raise CryptoError("a signal that is not a JSON object")
    return data


def parse_receipt(content: Content) -> tuple[str | None, str | None]:
    data = _json(content, RECEIPT_MIME)
    marks = data.get("delivered"), data.get("read")
    if set(data) != {"delivered", "read"} or not all(
            m is None or (isinstance(m, str) and _CURSOR.match(m)) for m in marks):
        raise CryptoError("a receipt out of shape")
    return marks


def parse_typing(content: Content, now_ms: int | None = None) -> bool:
    """Whether the friend is typing; raises CryptoError for a stale or malformed one."""
    data = _json(content, TYPING_MIME)
    typing, at = data.get("typing"), data.get("at")
    if set(data) != {"typing", "at"} or not isinstance(typing, bool) or not isinstance(at, int):
        raise CryptoError("a typing signal out of shape")
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if abs(now - at) > FRESH_MS:
        raise CryptoError("a typing signal from another time (replayed?)")
    return typing


def later(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    return a if b is None or a >= b else b


@dataclass
class Ticks:
    """Where this user's own messages stand: sent (the broker confirmed), stored, then
    delivered and read by the friend (their receipts, the newest per room)."""

    cursors: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (room, cursor)
    stored: set[str] = field(default_factory=set)
    marks: dict[str, dict[str, str | None]] = field(default_factory=dict)  # room -> marks

    def acked(self, message_id: str, room: str, cursor: str) -> None:
        self.cursors[message_id] = (room, cursor)

    def receipt(self, room: str, delivered: str | None, read: str | None) -> None:
        mark = self.marks.setdefault(room, {"delivered": None, "read": None})
        mark["delivered"] = later(later(mark["delivered"], delivered), read)
        mark["read"] = later(mark["read"], read)

    def status(self, message_id: str) -> str | None:
        """None (not sent yet), "sent", "stored", "delivered" or "read"."""
        if message_id not in self.cursors:
            return None
        room, cursor = self.cursors[message_id]
        mark = self.marks.get(room, {})
        if (mark.get("read") or "") >= cursor:
            return "read"
        if (mark.get("delivered") or "") >= cursor:
            return "delivered"
        return "stored" if message_id in self.stored else "sent"
