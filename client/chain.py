"""Per-device, per-room hash chains: tell a dropped, replayed or forked message apart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_RECENT = 512  # links remembered per chain to recognise re-deliveries and replays


@dataclass
class Link:
    seq: int
    hash: str
    recent: dict[int, str] = field(default_factory=dict)  # seq -> "<hash> <message id>"

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash,
                "recent": {str(k): v for k, v in self.recent.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Link:
        return cls(int(data["seq"]), str(data["hash"]),
                   {int(k): str(v) for k, v in data.get("recent", {}).items()})


@dataclass(frozen=True)
class Verdict:
    """ok: show it. duplicate: already shown, drop silently. Otherwise an alert kind."""

    kind: str  # "ok" | "duplicate" | "late" | "gap" | "replay" | "fork"
    detail: str = ""
    show: bool = True


class Chains:
    """What a receiver has seen of each (room, sending device) chain."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self._links: dict[str, Link] = {
            k: Link.from_json(v) for k, v in (state or {}).items()}

    def to_json(self) -> dict[str, Any]:
        return {k: v.to_json() for k, v in self._links.items()}

    def check(self, room: str, device: str, seq: int, prev: str, own_hash: str,
              message_id: str) -> Verdict:
        """Record the envelope (seq, prev, hash, id) and say what it means."""
        key = f"{room}/{device}"
        link = self._links.get(key)
        stamp = f"{own_hash} {message_id}"
        if link is None:
            self._links[key] = Link(seq, own_hash, {seq: stamp})
            if seq != 1:
                return Verdict("gap", f"first message seen from this device is #{seq}")
            return Verdict("ok")
        if seq <= link.seq:
            # The same envelope under the same id is a re-delivery; a number seen before
            # under anything else a replay; a number never seen arrives late (after the gap
            # it left was reported), which happens to messages in flight across a resume.
            known = link.recent.get(seq)
            if known == stamp:
                return Verdict("duplicate", show=False)
            if known is not None or seq <= link.seq - _RECENT:
                return Verdict("replay", f"#{seq} arrived again after #{link.seq}", show=False)
            link.recent[seq] = stamp
            return Verdict("late", f"#{seq} arrived after #{link.seq}")
        verdict = Verdict("ok")
        if seq > link.seq + 1:
            verdict = Verdict("gap", f"messages #{link.seq + 1}..#{seq - 1} are missing")
        elif prev != link.hash:
            verdict = Verdict("fork", f"#{seq} does not follow the #{link.seq} this device saw")
        link.seq, link.hash = seq, own_hash
        link.recent[seq] = stamp
        if len(link.recent) > _RECENT:
            for old in sorted(link.recent)[: len(link.recent) - _RECENT]:
                del link.recent[old]
        return verdict
