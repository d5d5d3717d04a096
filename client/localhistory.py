"""What this device has read or sent, kept by the device (docs/sessions.md "History"): per
room, a vault (client.vault) of every message frame it opened or sent, by envelope hash,
with the message's content key. A forward-secret message opens once: after that, this is
where the device reads it from, whether or not the server still holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contracts.envelope import MESSAGE_KINDS

from .crypto import b64u, unb64u
from .vault import Vault


class LocalHistory:
    def __init__(self, home: Path, passphrase: str | None) -> None:
        self._home, self._passphrase = home, passphrase
        self._vaults: dict[str, Vault] = {}
        self._cache: dict[str, tuple[tuple[int, int], dict[str, dict[str, Any]]]] = {}

    def _vault(self, room: str) -> Vault:
        if room not in self._vaults:
            self._vaults[room] = Vault(self._home / "history", room, self._passphrase)
        return self._vaults[room]

    def room(self, room: str) -> dict[str, dict[str, Any]]:
        """Envelope hash -> {"frame", "key"} for every message kept of the room. Read again
        only when the file changed (another process of this home may have written it)."""
        path = self._home / "history" / f"{room}.vault"
        if not path.exists():
            return {}
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(room)
        if cached is None or cached[0] != stamp:
            cached = (stamp, self._vault(room).read())
            self._cache[room] = cached
        return cached[1]

    def key(self, room: str, envelope_hash: str) -> bytes | None:
        entry = self.room(room).get(envelope_hash)
        return unb64u(entry["key"]) if entry else None

    def add(self, frame: dict[str, Any], envelope_hash: str, key: bytes) -> None:
        with self._vault(frame["room"]).open() as kept:
            kept[envelope_hash] = {"frame": frame, "key": b64u(key)}

    def keys(self) -> dict[str, bytes]:
        """Every kept message's content key, by envelope hash (for a history share; signals
        are left out: their moment has passed)."""
        out: dict[str, bytes] = {}
        folder = self._home / "history"
        for path in sorted(folder.glob("*.vault")) if folder.exists() else ():
            for h, entry in self._vault(path.stem).read().items():
                if entry["frame"].get("kind") in MESSAGE_KINDS:
                    out[h] = unb64u(entry["key"])
        return out
