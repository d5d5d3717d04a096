"""The gateway's group-commit publisher, against a broker that answers when told to."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from broker import PublishError
from contracts.batch import CC_HEADER, CURSOR_HEADER, ROOM_HEADER, header_list, split_frames
from contracts.routing import persist_partition
from gateway.metrics import GatewayMetrics
from gateway.publisher import Outgoing, Publisher


class HeldBroker:
    """Each publish waits until `release()` (confirmed) or its timeout (PublishError)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, list[bytes], dict[str, Any]]] = []
        self.notices: list[tuple[str, dict[str, Any]]] = []
        self._gate = asyncio.Event()

    async def notify(self, body: bytes, routing_key: str) -> None:
        self.notices.append((routing_key, orjson.loads(body)))

    async def publish(self, body: bytes, routing_key: str, *, headers: dict[str, Any],
                      timeout: float) -> None:
        self.published.append((routing_key, split_frames(body), headers))
        try:
            await asyncio.wait_for(self._gate.wait(), timeout)
        except TimeoutError:
            raise PublishError(routing_key, "timeout") from None

    def release(self) -> None:
        self._gate.set()


class Sender:
    def __init__(self, name: str) -> None:
        self.id = name
        self.user = f"user-{name}"
        self.answers: list[tuple[str, str]] = []

    def confirmed(self, frame_id: str, ts: int, cursor: str, room: str) -> None:
        self.answers.append(("ack", frame_id))

    def failed(self, frame_id: str) -> None:
        self.answers.append(("failed", frame_id))


def item(room: str, frame_id: str, sender: Sender) -> Outgoing:
    return Outgoing(room, frame_id.encode(), f"c-{frame_id}", 1, frame_id, sender)


def publisher(broker: HeldBroker, **kwargs: Any) -> Publisher:
    return Publisher(broker, GatewayMetrics(), **kwargs)  # type: ignore[arg-type]


async def test_what_waits_for_a_confirm_leaves_together_under_every_room_key() -> None:
    """One in flight: the next three, of two rooms, leave as one broker message under the
    first one's room with the other in CC, in submission order, and are confirmed."""
    broker, s1, s2 = HeldBroker(), Sender("s1"), Sender("s2")
    pub = publisher(broker, timeout_s=5, in_flight=1)
    pub.submit(item("a.b", "m1", s1))
    await asyncio.sleep(0)
    for room, fid, sender in (("c.d", "n1", s2), ("a.b", "m2", s1), ("c.d", "n2", s2)):
        pub.submit(item(room, fid, sender))
    await asyncio.sleep(0.01)
    assert len(broker.published) == 1  # the rest wait for the first confirm
    broker.release()
    await pub.close()
    key, frames, headers = broker.published[1]
    assert (key, frames) == ("room.c.d", [b"n1", b"m2", b"n2"])
    assert [k for k in headers[CC_HEADER] if k.startswith("room.")] == ["room.a.b"]
    assert header_list(headers[ROOM_HEADER]) == ["c.d", "a.b", "c.d"]
    assert header_list(headers[CURSOR_HEADER]) == ["c-n1", "c-m2", "c-n2"]
    assert ROOM_HEADER not in broker.published[0][2]  # one room: no room lines
    assert s1.answers == [("ack", "m1"), ("ack", "m2")]
    assert s2.answers == [("ack", "n1"), ("ack", "n2")]


async def test_in_an_outage_every_send_fails_within_its_own_timeout() -> None:
    """Sends queued behind a publish that never confirms fail within one timeout of their
    arrival (most of them unpublished), not one timeout after another."""
    broker, sender = HeldBroker(), Sender("s")
    pub = publisher(broker, timeout_s=0.2, in_flight=1, max_batch=2)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for n in range(10):
        pub.submit(item("a.b", f"m{n}", sender))
        await asyncio.sleep(0.01)
    await pub.close()
    assert sender.answers == [("failed", f"m{n}") for n in range(10)]
    assert loop.time() - t0 < 0.2 + 0.1 + 0.15  # the last arrived at ~0.1 s
    assert len(broker.published) < 5  # five batches of two, had each waited its turn
    # What was published and not confirmed, and only that, is said to be unsent.
    published = [f.decode() for _, frames, _ in broker.published for f in frames]
    assert [(key, n["ids"]) for key, n in broker.notices] == [
        ("unsent.a.b", frames) for frames in ([f.decode() for f in p[1]]
                                              for p in broker.published)]
    assert all(n["sender"] == "user-s" and n["cursors"] == [f"c-{i}" for i in n["ids"]]
               for _, n in broker.notices) and published


async def test_publishes_start_an_interval_apart_and_what_comes_meanwhile_leaves_as_one() -> None:
    """After an idle spell a message leaves at once; what follows within the interval
    waits (its confirm notwithstanding) and leaves together when the interval is up."""
    broker, sender = HeldBroker(), Sender("s")
    broker.release()  # every publish is confirmed at once
    pub = publisher(broker, timeout_s=5, in_flight=1, interval_s=0.2)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    pub.submit(item("a.b", "m1", sender))
    await asyncio.sleep(0.02)
    assert [frames for _, frames, _ in broker.published] == [[b"m1"]]
    for fid in ("m2", "m3"):
        pub.submit(item("a.b", fid, sender))
        await asyncio.sleep(0.02)
    assert len(broker.published) == 1  # m1 is confirmed, but it started under 0.2 s ago
    while len(broker.published) < 2:
        await asyncio.sleep(0.01)
    assert loop.time() - t0 >= 0.2
    assert broker.published[1][1] == [b"m2", b"m3"]
    await asyncio.sleep(0.3)  # idle again: the next one leaves at once
    pub.submit(item("a.b", "m4", sender))
    await asyncio.sleep(0.02)
    assert broker.published[2][1] == [b"m4"]
    pub.submit(item("a.b", "m5", sender))  # close sends what waits without the wait
    t1 = loop.time()
    await pub.close()
    assert loop.time() - t1 < 0.1 and broker.published[3][1] == [b"m5"]
    assert sender.answers == [("ack", f"m{i}") for i in range(1, 6)]


async def test_partitioned_a_batch_leaves_as_one_broker_message_per_partition() -> None:
    """With persist partitions, what waits is split by the partition of its rooms (each
    broker message then reaches one persist queue); a room's messages stay together and
    in order, and every send is confirmed."""
    rooms = [f"{i:024x}.{i + 1:024x}" for i in range(12)]
    by_partition = {r: persist_partition(r, 4) for r in rooms}
    assert len(set(by_partition.values())) > 1  # the rooms fall in several partitions
    broker, sender = HeldBroker(), Sender("s")
    broker.release()
    pub = publisher(broker, timeout_s=5, in_flight=1, partitions=4)
    pub.submit(item(rooms[0], "first", sender))
    await asyncio.sleep(0)
    sent = [(room, f"{room[:4]}-{n}") for n in range(3) for room in rooms]
    for room, fid in sent:
        pub.submit(item(room, fid, sender))
    await pub.close()
    for key, frames, headers in broker.published:
        lines = header_list(headers.get(ROOM_HEADER)) or [key.removeprefix("room.")] * len(frames)
        assert len({by_partition[r] for r in lines}) == 1, lines
    later = [(r, f.decode()) for key, frames, headers in broker.published[1:]
             for r, f in zip(header_list(headers.get(ROOM_HEADER))
                             or [key.removeprefix("room.")] * len(frames), frames, strict=True)]
    for room in rooms:
        assert [f for r, f in later if r == room] == [f for r, f in sent if r == room]
    assert len(broker.published) == 1 + len(set(by_partition.values()))
    assert sorted(a for _, a in sender.answers) == sorted(["first", *(f for _, f in sent)])
    assert {kind for kind, _ in sender.answers} == {"ack"}
