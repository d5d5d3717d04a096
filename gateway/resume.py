"""The gapless-resume rule: what one socket remembers so that a `sync` brings every message
it missed, then live ones, with nothing twice — messages in flight during the resume
included. No I/O: the socket (gateway.outbox) and the fan-out (gateway.hub) call it.

How a resume goes. The socket's user is bound on this gateway's queue before `ready`, so
every message published from then on reaches the socket live. On `sync` the live frames
are held; the history after the socket's position in each room is replayed from MongoDB;
then the held frames go out, less those the replay already sent.

The in-flight race. A message published before the binding existed (and so never routed
here) and stored after the history read (and so not replayed) would be lost. The
persister's `stored` notice for it does reach every gateway: an item the socket may have
missed — not sent by this socket, stamped before `until` (the join plus a margin for
clocks and publishes in flight), after the socket's position in its room, and not sent to
it already — is read from MongoDB and sent (`missed`).

Nothing twice. Cursors sent to the socket that are old enough to have been in flight when
it joined (stamped before `until`) are remembered, so neither a held frame nor a catch-up
repeats one. Later cursors cannot be in the race, and are not remembered: an idle or
long-lived socket's memory does not grow.

Positions. v1: the cursor of the one room (`{room: cursor}`). v2: a cursor per room; a room
not in the map, like a null cursor, is replayed from its start; `None` is every room from
its start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Cursors a socket remembers, at most: past it the socket may be sent a duplicate, which
# clients drop by (sender, id), but is never left with a gap.
MAX_TRACKED = 20_000

Positions = Mapping[str, str | None]


def cursor_us(cursor: str) -> int:
    """The publish time (µs since the epoch) a cursor begins with (gateway.cursors)."""
    return int(cursor[:16], 16)


class Resume:
    """One socket's resume state. Items are stored-notice entries (contracts.StoredItem as
    dicts: room, sender, id, cursor, origin)."""

    __slots__ = ("until_us", "margin_us", "sent", "held", "held_bytes", "held_items",
                 "positions", "synced")

    def __init__(self, joined_us: int, margin_us: int) -> None:
        self.until_us = joined_us + margin_us
        self.margin_us = margin_us
        self.sent: set[str] | None = set()
        self.held: list[tuple[str, str]] | None = None  # (cursor, frame text) while replaying
        self.held_bytes = 0
        self.held_items: list[dict[str, Any]] = []
        self.positions: Positions | None = None
        self.synced = False

    def reopen(self, now_us: int) -> None:
        """The socket may have missed live frames (its gateway's queue was lost and made
        again) and is asked to sync: the in-flight race opens again, as at a join."""
        self.until_us = now_us + self.margin_us
        if self.sent is None:
            self.sent = set()

    # -- what was sent -----------------------------------------------------------------
    def track(self, cursor: str) -> None:
        """A message frame with this cursor is on its way to the socket."""
        if self.sent is not None and cursor_us(cursor) < self.until_us:
            self.sent.add(cursor)
            if len(self.sent) > MAX_TRACKED:
                self.sent = None

    def already_sent(self, cursor: str) -> bool:
        return self.sent is not None and cursor in self.sent

    def beyond(self, room: str, cursor: str) -> bool:
        """True when the cursor is after the socket's position in the room."""
        if self.positions is None:
            return True
        position = self.positions.get(room)
        return position is None or cursor > position

    # -- a sync --------------------------------------------------------------------------
    @property
    def holding(self) -> bool:
        return self.held is not None

    def begin(self, positions: Positions | None) -> None:
        """A replay starts: live frames and stored items wait until `end`."""
        self.held = []
        self.held_bytes = 0
        self.positions = positions

    def hold(self, cursor: str, text: str) -> tuple[int, int]:
        """Keep a live frame for after the replay; returns how many are held, and their
        characters (the outbox's bound applies to them too)."""
        assert self.held is not None, "not replaying"
        self.held.append((cursor, text))
        self.held_bytes += len(text)
        return len(self.held), self.held_bytes

    def end(self) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
        """The replay is over: the held frames to send now (those it did not send), and
        the held stored items, to pass through `missed`."""
        held, self.held = self.held or [], None
        self.held_bytes = 0
        items, self.held_items = self.held_items, []
        self.synced = True
        return [(c, t) for c, t in held if not c or not self.already_sent(c)], items

    # -- the in-flight race ---------------------------------------------------------------
    def missed(self, items: Iterable[dict[str, Any]], conn_id: str) -> list[dict[str, Any]]:
        """Of a stored notice's items (of rooms this socket is sent), those it may never
        have been sent; while replaying they wait, and before any sync there are none."""
        if self.held is not None:
            self.held_items.extend(items)
            return []
        if not self.synced:
            return []
        return [
            i for i in items
            if i.get("origin") != conn_id
            and cursor_us(i["cursor"]) < self.until_us
            and self.beyond(i["room"], i["cursor"])
            and not self.already_sent(i["cursor"])
        ]
