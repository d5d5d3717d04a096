"""The gapless-resume rule (gateway.resume), without I/O."""

from __future__ import annotations

from gateway import resume
from gateway.resume import Resume

JOINED_US = 1_700_000_000_000_000
MARGIN_US = 5_000_000
R1, R2 = "a" * 24 + "." + "b" * 24, "a" * 24 + "." + "c" * 24


def cursor(us: int, n: int = 0) -> str:
    return f"{us:016x}{0:08x}{n:08x}"


def item(room: str, us: int, n: int = 0, origin: str = "other") -> dict[str, str]:
    return {"room": room, "sender": "s", "id": f"m{n}", "cursor": cursor(us, n),
            "origin": origin}


def fresh() -> Resume:
    return Resume(JOINED_US, MARGIN_US)


def test_only_cursors_that_could_be_in_flight_are_remembered() -> None:
    """Cursors stamped before the join plus the margin are tracked; later ones are not,
    so a long-lived socket's memory does not grow."""
    r = fresh()
    early, late = cursor(JOINED_US + 1), cursor(JOINED_US + MARGIN_US + 1)
    r.track(early)
    r.track(late)
    assert r.already_sent(early) and not r.already_sent(late)


def test_replay_holds_live_frames_and_sends_those_it_did_not_replay() -> None:
    """While a replay runs live frames wait; at its end, the ones it replayed are dropped
    and the rest keep their order (frames without a cursor always go)."""
    r = fresh()
    r.begin({R1: None})
    assert r.holding
    a, b = cursor(JOINED_US - 10, 1), cursor(JOINED_US + 10, 2)
    r.hold(a, "A")
    r.hold("", "notice")
    r.hold(b, "B")
    r.track(a)  # the replay sent A
    frames, items = r.end()
    assert frames == [("", "notice"), (b, "B")] and items == []
    assert not r.holding and r.synced


def test_no_catch_up_before_a_sync() -> None:
    """A socket that never asked to resume is sent only what is live."""
    r = fresh()
    assert r.missed([item(R1, JOINED_US - 1)], "me") == []


def test_missed_items_are_those_in_the_race_after_the_position() -> None:
    """After a sync: items sent by another socket, stamped before join+margin, after the
    room's position and not already sent are missed; the rest are not."""
    r = fresh()
    position = cursor(JOINED_US - 1000)
    r.begin({R1: position})
    r.end()
    sent = item(R1, JOINED_US - 20, 5)
    r.track(sent["cursor"])
    items = [
        item(R1, JOINED_US - 10, 1),  # missed
        item(R1, JOINED_US - 2000, 2),  # before the position: the client has it
        item(R1, JOINED_US + MARGIN_US + 1, 3),  # too new to have been in flight: live
        item(R1, JOINED_US - 10, 4, origin="me"),  # this socket sent it
        sent,
    ]
    assert [i["id"] for i in r.missed(items, "me")] == ["m1"]


def test_items_during_a_replay_wait_for_its_end() -> None:
    """Stored items that arrive while replaying are handed back by `end`."""
    r = fresh()
    r.begin({R1: None})
    held = [item(R1, JOINED_US - 10, 1)]
    assert r.missed(held, "me") == []
    _, items = r.end()
    assert items == held and [i["id"] for i in r.missed(items, "me")] == ["m1"]


def test_device_positions_per_room_unnamed_rooms_from_the_start() -> None:
    """v2: each room's own position counts; a room the map does not name, like a null
    cursor, is resumed from its start; no map at all is every room from its start."""
    r = fresh()
    r.begin({R1: cursor(JOINED_US - 100)})
    r.end()
    assert not r.beyond(R1, cursor(JOINED_US - 200))
    assert r.beyond(R1, cursor(JOINED_US - 50))
    assert r.beyond(R2, cursor(1))
    r.begin(None)
    r.end()
    assert r.beyond(R1, cursor(1))


def test_tracking_stops_past_its_bound_and_never_hides_a_message() -> None:
    """Past MAX_TRACKED the socket forgets what it sent: it may get a duplicate (clients
    drop them by sender and id) but no item is withheld."""
    r = fresh()
    r.begin(None)
    r.end()
    for n in range(resume.MAX_TRACKED + 1):
        r.track(cursor(JOINED_US - 1, n))
    assert not r.already_sent(cursor(JOINED_US - 1, 0))
    assert r.missed([item(R1, JOINED_US - 1, 0)], "me") != []
