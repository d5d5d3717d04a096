"""A socket's send window and outbox, the broker batch format and the services' GC
settings, without I/O."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from admin.audit import from_delivery
from contracts.batch import frame_count, header_list, join_frames, join_lines, split_frames
from contracts.codes import TRY_AGAIN_LATER
from contracts.events import storable_frames
from gateway.metrics import GatewayMetrics
from gateway.outbox import Connection
from service.runtime import GC_YOUNG_THRESHOLD, tune_gc


def connection(**kwargs: Any) -> Connection:
    return Connection("n-1", "a" * 24, "b" * 24, "room", metrics=GatewayMetrics(), **kwargs)


class FakeSocket:
    """Stands in for the ASGI WebSocket: records what the writer sends."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(text)


async def test_begin_send_waits_at_max_in_flight_until_a_confirm() -> None:
    """The third send of a window of two waits until one of the first two is answered."""
    conn = connection(outbox_frames=16, max_in_flight=2)
    await conn.begin_send()
    await conn.begin_send()
    third = asyncio.create_task(conn.begin_send())
    await asyncio.sleep(0.01)
    assert not third.done()
    conn.confirmed("m1", 1, "0" * 32, "room")
    await asyncio.wait_for(third, 1)
    conn.failed("m2")
    frames = [orjson.loads(conn._outbox[i]) for i in range(len(conn._outbox))]
    assert [(f["type"], f["id"]) for f in frames] == [("ack", "m1"), ("error", "m2")]
    assert frames[1]["code"] == "publish_failed"


async def test_full_outbox_closes_with_1013_and_writer_stops() -> None:
    """A reader that falls behind by a whole outbox is closed, and the writer ends."""
    conn = connection(outbox_frames=3)
    for i in range(4):
        conn.push(f"f{i}")
    assert conn.closed and conn.close_code == TRY_AGAIN_LATER
    ws = FakeSocket()
    await asyncio.wait_for(conn.write_loop(ws), 1)  # type: ignore[arg-type]
    assert ws.sent == []


async def test_writer_drains_in_order_and_replay_waits_for_room() -> None:
    """Frames leave in the order pushed; a replay into a full outbox waits, then goes."""
    conn = connection(outbox_frames=2)
    conn.push("a")
    conn.push("b")
    replay = asyncio.create_task(conn.replay("c"))
    await asyncio.sleep(0.01)
    assert not replay.done()
    ws = FakeSocket()
    writer = asyncio.create_task(conn.write_loop(ws))  # type: ignore[arg-type]
    await asyncio.wait_for(replay, 1)
    await asyncio.sleep(0.01)
    conn.stop()
    await asyncio.wait_for(writer, 1)
    assert ws.sent == ["a", "b", "c"]


def test_broker_batch_round_trips_and_audit_reads_each_frame() -> None:
    """Frames joined into one broker body split back out, and the audit reads each."""
    frames = [orjson.dumps({"type": "message", "id": f"m{i}", "room": "r", "sender": "s",
                            "kind": "text", "body": {"ct": "x\ny"}, "ts": i,
                            "cursor": f"{i:032x}"}) for i in range(3)]
    body = join_frames(frames)
    assert split_frames(body) == frames
    assert join_frames(frames[:1]) == frames[0]
    records = from_delivery(body, {"x-stream-offset": 7})
    assert [r.id for r in records] == ["m0", "m1", "m2"]
    assert {r.offset for r in records} == {7}
    assert header_list(join_lines(["a", "b"])) == ["a", "b"] and header_list("a") == ["a"]
    assert header_list(b"a\nb") == ["a", "b"] and header_list(["a", "b"]) == ["a", "b"]
    assert header_list(None) == []


def test_persister_reads_each_line_as_one_checked_frame() -> None:
    """storable_frames: every line one valid frame (other fields kept), else an error."""
    def frame(i: int, **change: Any) -> bytes:
        return orjson.dumps({"type": "message", "id": f"m{i}", "room": "r", "sender": "s",
                             "kind": "text", "body": {"ct": "x\ny"}, "ts": i,
                             "cursor": f"{i:032x}", "extra": i, **change})
    body = join_frames([frame(0), frame(1)])
    frames = storable_frames(body, frame_count(body))
    assert [(f["id"], f["extra"], f["body"]) for f in frames] == [
        ("m0", 0, {"ct": "x\ny"}), ("m1", 1, {"ct": "x\ny"})]
    for bad in (frame(0) + b"," + frame(1),  # two values on one line
                frame(0) + b"\n",  # an empty line
                b"not json", frame(0, kind="video"), frame(0, body="text"),
                frame(0, cursor="short"), frame(0, type="send")):
        with pytest.raises(ValidationError):
            storable_frames(bad, frame_count(bad))


def test_services_tune_the_garbage_collector() -> None:
    """tune_gc: young collections 20,000 allocations apart, startup objects frozen."""
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_persister_refuses_a_line_pushed_to_another_room_than_its_own() -> None:
    """x-duet-room (where the gateways pushed each line live) must match the frame's room."""
    from types import SimpleNamespace

    from persister.service import _documents

    lo, hi, other = "a" * 24, "b" * 24, "c" * 24
    room, room2 = f"{lo}.{hi}", f"{lo}.{other}"
    line = orjson.dumps({"type": "message", "id": "m1", "room": room, "sender": lo,
                         "kind": "text", "body": {}, "ts": 1, "cursor": "0" * 32})

    def delivery(props: dict[str, Any]) -> Any:
        return SimpleNamespace(routing_key=f"room.{room}", body=line,
                               header=SimpleNamespace(properties=SimpleNamespace(
                                   headers=props, message_id=None)))

    honest = {"x-duet-origin": "conn", "x-duet-cursor": "0" * 32}
    assert _documents(delivery(honest), 1, 1) is not None
    assert _documents(delivery({**honest, "x-duet-room": room}), 1, 1) is not None
    assert _documents(delivery({**honest, "x-duet-room": room2, "CC": [f"room.{room2}"]}),
                      1, 1) is None
    assert _documents(delivery({}), 1, 1) is None  # headers that do not describe the body
