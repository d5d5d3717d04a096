"""A reader that never reads is cut off with bounded memory, and nobody else slows down."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx
from reliability import record
from support import (
    Socket,
    Stack,
    befriend,
    envelope,
    open_socket,
    proc_rss_kib,
    signup,
    stream,
)
from websockets.asyncio.client import connect


async def probe_latency(sock_a: Socket, sock_b: Socket, a, b, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Send n messages one by one; the time each takes to reach the peer, in ms."""
    out = []
    for i in range(n):
        t = time.perf_counter()
        await sock_a.send({"type": "send", "id": f"l{time.monotonic_ns()}", "kind": "text",
                           "body": envelope(a, b, i)})
        await sock_b.recv_type("message")
        out.append((time.perf_counter() - t) * 1000)
    return out


async def test_reader_that_never_reads_is_closed_with_bounded_memory(stack: Stack) -> None:
    """B never reads while A sends 5,000 messages: the gateway closes B (1013), its memory
    stays bounded, and another room's latency is unaffected."""
    stack.persister()
    gw = stack.gateway(DUET_OUTBOX_FRAMES="256")
    async with httpx.AsyncClient() as http:
        a, b, c, d = [await signup(http, gw.http) for _ in range(4)]
        await befriend(http, gw.http, a, b)
        await befriend(http, gw.http, c, d)
    async with open_socket(gw, c, d) as sc, open_socket(gw, d, c) as sd:
        baseline = await probe_latency(sc, sd, c, d, 50)
        rss0 = proc_rss_kib(gw.pid)
        # max_queue=1: the client library stops reading from TCP after one frame.
        async with connect(f"{gw.ws}/ws/{a.user_id}", additional_headers=b.auth,
                           max_queue=1, max_size=None) as slow:
            async with open_socket(gw, a, b) as sa:
                sender = asyncio.create_task(stream(sa, a, b, [f"s{i}" for i in range(5000)]))
                during: list[float] = []
                while not sender.done():
                    during += await probe_latency(sc, sd, c, d, 10)
                    await asyncio.sleep(0.05)  # paces the probe rounds: sampling, not waiting
                result = await sender
            rss_peak = proc_rss_kib(gw.pid)
            # Drain what the client library buffered until the close frame shows.
            t0 = time.monotonic()
            while slow.close_code is None and time.monotonic() - t0 < 20:
                try:
                    await asyncio.wait_for(slow.recv(), 1)
                except Exception:  # noqa: BLE001 - closed or idle: either ends the wait
                    pass
            code = slow.close_code
    assert len(result.acked) == 5000  # the sender never noticed
    assert code == 1013, code
    grew_mib = (rss_peak - rss0) / 1024
    assert grew_mib < 40, f"gateway grew {grew_mib:.1f} MiB"
    p95 = lambda xs: statistics.quantiles(xs, n=20)[18]  # noqa: E731
    assert p95(during) < p95(baseline) + 50, (p95(baseline), p95(during))
    record("test_reader_that_never_reads_is_closed_with_bounded_memory",
           "a reader that never reads while its peer sends 5,000 messages",
           "closed with 1013 once its outbox (256 frames) filled; the sender and another "
           "room carried on", sent=5000, acked=len(result.acked), close_code=code,
           gateway_rss_growth_mib=round(grew_mib, 1),
           other_room_p95_ms_before=round(p95(baseline), 1),
           other_room_p95_ms_during=round(p95(during), 1))
