"""The batch codec round-trips, and refuses headers that do not describe the body."""

from __future__ import annotations

import orjson
import pytest

from contracts.batch import (
    CC_HEADER,
    KIND_HEADER,
    ROOM_HEADER,
    BatchError,
    Line,
    decode,
    decode_headers,
    encode,
    frame_count,
)
from contracts.routing import message_key, persist_key, persist_slot


def line(n: int, room: str = "a.b", kind: str = "text") -> Line:
    frame = orjson.dumps({"type": "message", "id": f"m{n}", "room": room, "kind": kind})
    return Line(frame, room, f"conn-{n % 2}", f"{n:032x}", kind)


def round_trip(lines: list[Line]) -> list[Line]:
    m = encode(lines)
    batch = decode(m.routing_key.partition(".")[2], m.body, m.headers)
    kinds = batch.kinds or ["text"] * len(batch.frames)
    return [Line(*x) for x in zip(batch.frames, batch.rooms, batch.origins, batch.cursors,
                                  kinds, strict=True)]


@pytest.mark.parametrize("lines", [
    [line(0)],
    [line(i) for i in range(5)],
    [line(0, "c.d"), line(1), line(2, "c.d"), line(3, "e.f")],
    [line(0), line(1, kind="receipt"), line(2, "c.d", kind="image")],
], ids=["one", "one room", "three rooms", "kinds"])
def test_encode_then_decode_gives_the_lines_back(lines: list[Line]) -> None:
    assert round_trip(lines) == lines


def test_one_room_of_messages_travels_without_the_optional_headers() -> None:
    m = encode([line(0), line(1, kind="image")])
    assert m.routing_key == message_key("a.b") and frame_count(m.body) == 2
    assert not {ROOM_HEADER, KIND_HEADER} & set(m.headers)
    assert m.headers[CC_HEADER] == [persist_key(persist_slot("a.b"))]  # its persist slot
    assert decode("a.b", m.body, m.headers).kinds is None


def test_other_rooms_travel_in_cc_once_each_and_the_key_is_the_first_room() -> None:
    """CC: the other rooms' keys, then each room's persist slot once."""
    m = encode([line(0, "c.d"), line(1), line(2, "c.d"), line(3)])
    slots = list(dict.fromkeys(persist_key(persist_slot(r)) for r in ("c.d", "a.b")))
    assert m.routing_key == message_key("c.d")
    assert m.headers[CC_HEADER] == [message_key("a.b"), *slots]


def bad(headers: dict[str, object], lines: int = 2) -> None:
    with pytest.raises(BatchError):
        decode_headers("a.b", headers, lines)


def test_headers_that_do_not_describe_the_body_are_refused() -> None:
    m = encode([line(0), line(1, "c.d", kind="receipt")])
    good = dict(m.headers)
    decode_headers("a.b", good, 2)
    bad({k: v for k, v in good.items() if k != "x-duet-cursor"})  # no cursors
    bad(good, lines=3)  # a line more than the headers name
    bad({**good, KIND_HEADER: "text"})  # one kind for two lines
    bad({**good, CC_HEADER: []})  # a frame of a room it was not routed under
    with pytest.raises(BatchError):
        decode("a.b", m.body + b"\n{}", good)
