"""What this device has read or sent, kept by the device (docs/sessions.md "History a
device keeps"): per room, a journal (client.vault) of every message frame it opened or
sent, by envelope hash, with the message's content key. A forward-secret message opens
once: after that, this is where the device reads it from, whether or not the server still
holds it. Adding a message appends one sealed line; reading again reads only what was
added since (by this process or another of the same home).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contracts.envelope import MESSAGE_KINDS

from .crypto import b64u, unb64u
from .vault import Journal


class LocalHistory:
    def __init__(self, home: Path, passphrase: str | None) -> None:
        self._home, self._passphrase = home, passphrase
        self._journals: dict[str, Journal] = {}
        self._rooms: dict[str, tuple[int, dict[str, dict[str, Any]]]] = {}  # offset, kept

    def _journal(self, room: str) -> Journal:
        if room not in self._journals:
            self._journals[room] = Journal(self._home / "history", room, self._passphrase)
        return self._journals[room]

    def room(self, room: str) -> dict[str, dict[str, Any]]:
        """Envelope hash -> {"frame", "key"} for every message kept of the room (a later
        record of the same hash, with the server's cursor, replaces the first)."""
        offset, kept = self._rooms.get(room, (0, {}))
        records, offset = self._journal(room).read(offset)
        for record in records:
            kept[record["hash"]] = {"frame": record["frame"], "key": record["key"]}
        self._rooms[room] = (offset, kept)
        return kept

    def entry(self, room: str, envelope_hash: str) -> dict[str, Any] | None:
        return self.room(room).get(envelope_hash)

    def key(self, room: str, envelope_hash: str) -> bytes | None:
        entry = self.room(room).get(envelope_hash)
        return unb64u(entry["key"]) if entry else None

    def add(self, frame: dict[str, Any], envelope_hash: str, key: bytes) -> None:
        self._journal(frame["room"]).append({"hash": envelope_hash, "frame": frame,
                                             "key": b64u(key)})

    def keys(self) -> dict[str, bytes]:
        """Every kept message's content key, by envelope hash (for a history share; signals
        are left out: their moment has passed)."""
        out: dict[str, bytes] = {}
        folder = self._home / "history"
        for path in sorted(folder.glob("*.journal")) if folder.exists() else ():
            for h, entry in self.room(path.stem).items():
                if entry["frame"].get("kind") in MESSAGE_KINDS:
                    out[h] = unb64u(entry["key"])
        return out
