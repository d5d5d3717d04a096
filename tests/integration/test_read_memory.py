"""Reads are bounded in bytes as well as in messages: history pages and sync replays of
large images keep the gateway's memory under the bound docs/operations.md states."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pymongo
import pytest
from support import (
    Stack,
    User,
    envelope,
    eventually,
    friends,
    open_device,
    open_socket,
    proc_rss_kib,
)

from contracts import MESSAGES, message_doc_id, room_id
from contracts.codes import TRY_AGAIN_LATER
from contracts.envelope import ct_limit
from gateway.metrics import GatewayMetrics
from gateway.outbox import Connection

MIB = 1024 * 1024
IMAGES = 500
# docs/operations.md, "Memory of reads": one read (a history page, or a sync replay with
# its socket's outbox) grows a gateway's RSS by less than 2 × DUET_MAX_READ_BYTES +
# DUET_OUTBOX_BYTES + 8 × the largest frame; at the defaults (16 MiB each, images of
# 5 MiB: frames of ~6.7 MiB) about 101 MiB.
READ_BYTES = OUTBOX_BYTES = 16 * MIB
LARGEST_FRAME = ct_limit(5 * MIB) + 4096  # the ct and the rest of a message frame
BOUND_MIB = (2 * READ_BYTES + OUTBOX_BYTES + 8 * LARGEST_FRAME) / MIB


def _ct(size: int) -> str:
    """A base64url `ct` of this length that MongoDB compresses well (the gateway only
    forwards it: its bytes need not be random)."""
    chunk = base64.urlsafe_b64encode(os.urandom(3 * 1024)).decode()
    return (chunk * (size // len(chunk) + 1))[:size]


def store(mongo: pymongo.MongoClient[Any], db: str, sender: User, peer: User, count: int,
          kind: str, size: int, stem: str) -> list[str]:
    """Write `count` messages of this room straight into MongoDB, as the persister stores
    them; returns their cursors, oldest first."""
    body = envelope(sender, peer, kind=kind, size=1)
    body["ct"] = _ct(size)
    room = room_id(sender.user_id, peer.user_id)
    now_us = time.time_ns() // 1000 - 60_000_000
    cursors = [f"{now_us + i:016x}{i:016x}" for i in range(count)]
    coll = mongo[db][MESSAGES]
    for start in range(0, count, 8):  # a few messages per insert: bounded test memory
        coll.insert_many([
            {"_id": message_doc_id(sender.user_id, f"{stem}{i}"), "room": room,
             "sender": sender.user_id, "id": f"{stem}{i}", "kind": kind, "body": body,
             "ts": (now_us + i) // 1000, "cursor": cursors[i], "stored_at": now_us // 1000}
            for i in range(start, min(start + 8, count))])
    return cursors


@contextmanager
def peak_rss(pid: int) -> Iterator[dict[str, int]]:
    """Sample a process's RSS every 10 ms while the block runs: {"peak": KiB}."""
    out = {"peak": proc_rss_kib(pid)}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            out["peak"] = max(out["peak"], proc_rss_kib(pid))
            done.wait(0.01)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        done.set()
        thread.join()


async def page(http: httpx.AsyncClient, base: str, me: User, peer: User,
               **params: Any) -> dict[str, Any]:
    r = await http.get(f"{base}/api/rooms/{peer.user_id}/messages", params=params,
                       headers=me.auth, timeout=60)
    assert r.status_code == 200, r.text[:300]
    result: dict[str, Any] = orjson.loads(r.content)
    return result


@pytest.mark.timeout(120)  # ~25 s here: 3.3 GiB stored, read twice over loopback
async def test_read_large_images_gateway_memory_bounded(stack: Stack, mongo: Any) -> None:
    """500 images of 5 MiB: a history page holds two (the byte budget), and a replay to a
    slow reader sends all 500 in order while the gateway's RSS stays under the bound."""
    gw = stack.gateway()
    a, b = await friends(gw)
    size = ct_limit(5 * MIB)  # the largest image the gateway accepts
    async with httpx.AsyncClient() as http:
        await page(http, gw.http, a, b)  # warm: the route, the driver, the pool
    base_kib = proc_rss_kib(gw.pid)
    t0 = time.monotonic()
    cursors = store(mongo, stack.db_name, a, b, IMAGES, "image", size, "img")
    store_s = time.monotonic() - t0

    async with httpx.AsyncClient() as http:
        with peak_rss(gw.pid) as history_rss:
            first = await page(http, gw.http, b, a, limit=500)
            newest = await page(http, gw.http, b, a, limit=500, before="latest")
    frame_len = len(orjson.dumps(first["messages"][0]))
    fit = max(1, READ_BYTES // frame_len)  # two frames of ~6.7 MiB in 16 MiB
    assert [m["cursor"] for m in first["messages"]] == cursors[:fit]
    assert first["next"] == cursors[fit - 1]
    assert [m["cursor"] for m in newest["messages"]] == cursors[-fit:]
    assert newest["next"] == cursors[-fit]

    # max_queue=1: the client library takes frames off TCP only as the test reads them;
    # the test reads the first 60 slowly.
    got: list[str] = []
    started = time.monotonic()
    with peak_rss(gw.pid) as sync_rss:
        async with open_socket(gw, b, a, max_queue=1) as sock:
            await sock.send({"type": "sync", "after": None})
            while True:
                text = await asyncio.wait_for(sock.ws.recv(), 30)
                if len(got) < 60:
                    await asyncio.sleep(0.05)
                if text.startswith('{"type":"synced"'):
                    synced = orjson.loads(text)
                    break
                got.append(text[-34:-2])  # the cursor closes a message frame
    replay_s = time.monotonic() - started
    assert got == cursors and synced["count"] == IMAGES

    history_mib = (history_rss["peak"] - base_kib) / 1024
    sync_mib = (sync_rss["peak"] - base_kib) / 1024
    print(f"\nstored in {store_s:.1f} s; baseline {base_kib / 1024:.1f} MiB; "
          f"history pages +{history_mib:.1f} MiB; "
          f"replay of {IMAGES} x {frame_len / MIB:.1f} MiB frames in {replay_s:.1f} s "
          f"+{sync_mib:.1f} MiB; bound {BOUND_MIB:.0f} MiB")
    assert history_mib < BOUND_MIB, history_mib
    assert sync_mib < BOUND_MIB, sync_mib


async def test_history_page_byte_budget_pages_without_gaps(stack: Stack, mongo: Any) -> None:
    """With a 64 KiB budget, pages of 10 KiB messages hold six, and paging by `next`
    forward and backward (as the SDK and the web client do) returns every message once,
    in order; a v2 sync replays them all in budget-sized batches."""
    gw = stack.gateway(DUET_MAX_READ_BYTES=str(64 * 1024))
    a, b = await friends(gw)
    cursors = store(mongo, stack.db_name, a, b, 40, "text", 10 * 1024, "t")
    async with httpx.AsyncClient() as http:
        forward: list[str] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100} | ({"after": after} if after else {})
            got = await page(http, gw.http, a, b, **params)
            assert 1 <= len(got["messages"]) <= 6, len(got["messages"])
            forward += [m["cursor"] for m in got["messages"]]
            after = got["next"]
            if after is None:
                break
        backward: list[str] = []
        before = "latest"
        while before is not None:
            got = await page(http, gw.http, a, b, limit=100, before=before)
            backward = [m["cursor"] for m in got["messages"]] + backward
            before = got["next"]
        small = await page(http, gw.http, a, b, limit=3)
    assert forward == cursors and backward == cursors
    assert len(small["messages"]) == 3 and small["next"] == cursors[2]  # count still bounds
    async with open_device(gw, b) as sock:
        await sock.send({"type": "sync", "after": None})
        frames = await sock.collect("message", 40)
        synced = await sock.recv_type("synced")
    assert [f["cursor"] for f in frames] == cursors and synced["count"] == 40


# -- the outbox's byte bound, without I/O -----------------------------------------------
def connection(outbox_bytes: int) -> Connection:
    return Connection("n-1", "a" * 24, "b" * 24, "room", 1024, GatewayMetrics(),
                      outbox_bytes=outbox_bytes)


class SlowSocket:
    """Stands in for the ASGI WebSocket: takes a frame only when the test lets it."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.go = asyncio.Semaphore(0)

    async def send_text(self, text: str) -> None:
        await self.go.acquire()
        self.sent.append(text)


async def test_outbox_over_bytes_closes_live_frames_with_1013() -> None:
    """Live frames past the outbox's bytes close the socket though its frame count is
    far from full; one frame larger than the bound still fits an empty outbox."""
    conn = connection(outbox_bytes=100)
    conn.push("x" * 150)  # alone: it goes
    assert not conn.closed and conn.queued_bytes == 150
    conn.push("y")
    assert conn.closed and conn.close_code == TRY_AGAIN_LATER


async def test_outbox_holds_live_frames_during_replay_within_bytes() -> None:
    """While a replay runs, held live frames count against the bytes too."""
    conn = connection(outbox_bytes=100)
    conn.resume.begin({"room": None})
    conn.push("a" * 60, "0" * 32)
    assert not conn.closed
    conn.push("b" * 60, "1" * 32)
    assert conn.closed and conn.close_code == TRY_AGAIN_LATER


async def test_replay_waits_for_the_socket_to_drain_bytes() -> None:
    """A replay queues frames only while they fit the outbox's bytes; the rest wait for
    the slow socket to take frames, and all leave in order."""
    conn = connection(outbox_bytes=100)
    ws = SlowSocket()
    writer = asyncio.create_task(conn.write_loop(ws))  # type: ignore[arg-type]
    frames = [f"{i}" * 40 for i in range(6)]

    async def replay() -> None:
        for text in frames:
            await conn.replay(text)

    task = asyncio.create_task(replay())
    await asyncio.sleep(0.02)
    # One frame is with the socket (unsent), two fill the outbox (80 of 100): the rest wait.
    assert not task.done() and conn.queued_bytes == 80
    for _ in frames:
        ws.go.release()
    await asyncio.wait_for(task, 1)
    await eventually(lambda: len(ws.sent) == len(frames), 2)
    conn.stop()
    ws.go.release()
    await asyncio.wait_for(writer, 1)
    assert ws.sent == frames
