"""(c) Idle authenticated sockets on one fresh gateway: memory per socket, connect rate.

The sockets belong to the users of (a), several per user (a user may hold many sockets,
one per device or tab), each to its friend: N sockets over the pairs' rooms. Each one is
a full v1 connect: TCP, the WebSocket upgrade with the Bearer header, the token check,
the friendship lookup in MongoDB, joining the room (a binding on the first join), and
the `ready` frame. Then they sit idle while CPU is measured, and are closed.

The same against the bare relay (`idle_relay`, (e)'s server: TCP, the upgrade and a
`ready` frame, no check): the reference for memory per socket and connect rate.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

from .accounts import User, synthetic_pairs
from .loadgen import open_socket, percentiles
from .procs import rss_bytes
from .scenarios import Context
from .stack import Child

log = logging.getLogger(__name__)
MIB = 2**20


def _targets(ctx: Context, count: int) -> list[tuple[User, User]]:
    ends = [(p.a, p.b) for p in ctx.pairs] + [(p.b, p.a) for p in ctx.pairs]
    return [ends[i % len(ends)] for i in range(count)]


async def idle_sockets(ctx: Context, protocol: int = 1) -> dict[str, Any]:
    """v1 room sockets, or (protocol 2) device sockets: the same users, as many sockets."""
    gw = await ctx.stack.gateway(f"gateway-idle-v{protocol}")
    return await _hold(ctx, gw, _targets(ctx, ctx.plan.idle_sockets), protocol)


async def idle_relay(ctx: Context) -> dict[str, Any]:
    """As many sockets on the bare relay, one per random user."""
    relay = await ctx.stack.relay("relay-idle")
    ends = [(p.a, p.b) for p in synthetic_pairs((ctx.plan.idle_sockets + 1) // 2)]
    ends += [(b, a) for a, b in ends]
    result = await _hold(ctx, relay, ends[:ctx.plan.idle_sockets], 1)
    return {**result, "protocol": "relay"}


async def _hold(ctx: Context, gw: Child, targets: list[tuple[User, User]],
                protocol: int) -> dict[str, Any]:
    """Open the sockets on `gw` (a fresh server), measure, hold them idle, close; stop it."""
    plan = ctx.plan
    sockets: list[ClientConnection] = []
    try:
        await asyncio.sleep(1.0)  # let the fresh gateway settle before the baseline
        meter = ctx.meter(gw)
        rss_gw0, rss_me0 = rss_bytes(gw.pid), rss_bytes(os.getpid())
        gate = asyncio.Semaphore(plan.idle_connect_concurrency)
        connect_ns: list[int] = []
        failures: list[str] = []
        early: list[dict[str, Any]] = []

        async def one(user: User, peer: User) -> None:
            async with gate:
                t = time.monotonic_ns()
                try:
                    sockets.append(await open_socket(gw.ws, user, peer, early=early,
                                                     protocol=protocol))
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}"[:200])
                    return
                connect_ns.append(time.monotonic_ns() - t)

        cpu0, t0 = meter.snapshot(), time.monotonic()
        await asyncio.gather(*(one(u, p) for u, p in targets))
        t1, cpu1 = time.monotonic(), meter.snapshot()
        opened = len(sockets)
        log.info("(c) %s sockets open in %.1f s (%s failed)", opened, t1 - t0, len(failures))
        await asyncio.sleep(1.0)
        rss_gw1, rss_me1 = rss_bytes(gw.pid), rss_bytes(os.getpid())
        cpu2 = meter.snapshot()
        await asyncio.sleep(plan.idle_hold_s)
        cpu3 = meter.snapshot()
        still_open = sum(1 for ws in sockets if ws.state is State.OPEN)
        t2 = time.monotonic()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        t3 = time.monotonic()
        sockets.clear()
        await asyncio.sleep(1.0)
        rss_gw2 = rss_bytes(gw.pid)
        connect_cpu = meter.delta(cpu0, cpu1)
        return {
            "protocol": protocol,
            "sockets": plan.idle_sockets,
            "opened": opened,
            "failed": len(failures),
            "failure_samples": failures[:5],
            "still_open_after_idle": still_open,
            "frames_before_ready": len(early),
            "rooms": len({frozenset((u.user_id, p.user_id)) for u, p in targets}),
            "connect_concurrency": plan.idle_connect_concurrency,
            "connect_s": round(t1 - t0, 2),
            "connect_rate_s": round(opened / (t1 - t0), 1) if t1 > t0 else None,
            "connect_latency": percentiles(connect_ns),
            "gateway_rss_mib": {"before": round(rss_gw0 / MIB, 1),
                                "open": round(rss_gw1 / MIB, 1),
                                "after_close": round(rss_gw2 / MIB, 1)},
            "gateway_kib_per_socket": round((rss_gw1 - rss_gw0) / 1024 / max(opened, 1), 1),
            "loadgen_kib_per_socket": round((rss_me1 - rss_me0) / 1024 / max(opened, 1), 1),
            "connect_cpu_s": connect_cpu,
            "gateway_cpu_us_per_connect": round(
                connect_cpu.get(gw.name, 0) * 1e6 / max(opened, 1), 1),
            "idle_s": plan.idle_hold_s,
            "idle_cpu_s": meter.delta(cpu2, cpu3),
            "close_s": round(t3 - t2, 2),
        }
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        await gw.stop_async()
