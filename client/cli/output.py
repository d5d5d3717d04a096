"""What `duet` prints: human lines or JSON lines on stdout, notes on stderr.

A friend's words reach the terminal only through `printable`: they must not be able to move
the cursor, recolour the screen or forge a line of their own.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from ..events import Alert, Message

# C0/C1 controls (but tab and newline) and bidi overrides: a friend's text must not be able
# to drive the terminal or disguise itself.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """Text safe for a terminal; each continuation line indented, so no line is forged."""
    text = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                            else f"\\u{ord(m.group()):04x}", text)
    return text.replace("\n", "\n    ")


def clock(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


class Output:
    """Human lines or JSON lines on stdout, flushed one by one (output is often piped)."""

    def __init__(self, as_json: bool) -> None:
        self.json = as_json

    def emit(self, obj: dict[str, Any], human: str | None) -> None:
        if self.json:
            print(json.dumps(obj), flush=True)
        elif human is not None:
            print(human, flush=True)

    def hint(self, human: str) -> None:
        """A line for people only (an empty list's next step): nothing with --json."""
        if not self.json:
            print(human, flush=True)

    def note(self, human: str) -> None:
        """A status line on stderr, with or without --json: stdout stays the data."""
        print(human, file=sys.stderr, flush=True)

    def alert(self, alert: Alert, name: str) -> None:
        about = f" (message {alert.id})" if alert.id else ""
        self.emit({"type": "alert", "kind": alert.kind, "sender": alert.sender,
                   "sender_name": name, "detail": alert.detail, "id": alert.id,
                   "cursor": alert.cursor},
                  f"WARNING: {alert.kind} from {name}: {printable(alert.detail)}{about}")

    def message(self, event: Message, saved: Path | None) -> None:
        """A verified message: its text, or where its image was saved."""
        who = f"{event.sender_name} (you)" if event.own else event.sender_name
        obj: dict[str, Any] = {"type": "message", "id": event.id, "sender": event.sender,
                               "sender_name": event.sender_name, "kind": event.kind,
                               "ts": event.ts, "cursor": event.cursor, "own": event.own}
        if saved is None:
            obj["text"] = event.text
            self.emit(obj, f"[{clock(event.ts)}] {who}: {printable(event.text)}")
            return
        content = event.content
        obj.update(path=str(saved), mime=content.mime, bytes=len(content.data))
        if "name" in content.meta:
            obj["name"] = str(content.meta["name"])
        self.emit(obj, f"[{clock(event.ts)}] {who}: [{event.kind} {printable(content.mime)}, "
                       f"{len(content.data)} bytes] saved to {saved}")
