"""Scenarios (a) throughput, (b) latency and (e) the relay ceiling; (c) and (d) live in
idle.py and drain.py. Each returns plain dicts for the report.

Placement: member a of pair i connects to gateway i mod G and member b to gateway
(i + 1) mod G, so with two gateways every message crosses from one gateway to the other
through the broker (the general case: with G gateways behind a balancer, (G-1)/G of pairs
are split).
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from .accounts import Pair, sign_up_pairs, synthetic_pairs
from .loadgen import SIGNAL_MODES, Load, SioLoad
from .plan import Plan
from .procs import CpuMeter
from .stack import BenchError, BenchStack, Child

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What the scenarios share: the stack, the plan, the running services, the users."""

    stack: BenchStack
    plan: Plan
    gateways: list[Child] = field(default_factory=list)
    persister: Child | None = None
    pairs: list[Pair] = field(default_factory=list)

    def meter(self, *children: Child, infra: bool = True) -> CpuMeter:
        """CPU of these children, the broker and mongod (with `infra`), and this process."""
        pids = {c.name: c.pid for c in children}
        if infra:
            pids.update(self.stack.infra_pids())
        pids["loadgen"] = os.getpid()
        return CpuMeter(pids)

    def services(self) -> list[Child]:
        return [*self.gateways, *([self.persister] if self.persister else [])]


def placed(pairs: Sequence[Pair], urls: Sequence[str]) -> list[tuple[str, str, Pair]]:
    g = len(urls)
    return [(urls[i % g], urls[(i + 1) % g], p) for i, p in enumerate(pairs)]


async def prepare(ctx: Context) -> None:
    """Start the persister and the gateways, then sign up the largest number of pairs."""
    ctx.persister = await ctx.stack.persister()
    for i in range(ctx.plan.gateways):
        ctx.gateways.append(await ctx.stack.gateway(f"gateway-{i}"))
    ctx.pairs = await sign_up_pairs([g.http for g in ctx.gateways], max(ctx.plan.pairs))
    log.info("signed up %s pairs over %s gateways", len(ctx.pairs), len(ctx.gateways))


_COUNTERS = ("duet_gateway_publish_batch_messages_sum", "duet_gateway_publish_batch_messages_count",
             "duet_gateway_socket_write_frames_total", "duet_gateway_socket_writes_total")


async def gateway_counters(gateways: Sequence[Child]) -> tuple[float, ...]:
    """What the gateways have done so far, from /metrics: (chat messages, broker messages
    published; frames, writes to client sockets)."""
    sums = dict.fromkeys(_COUNTERS, 0.0)
    async with httpx.AsyncClient(timeout=10) as http:
        for g in gateways:
            text = (await http.get(f"{g.http}/metrics")).text
            for line in text.splitlines():
                name, _, value = line.partition(" ")
                if name in sums:
                    sums[name] += float(value)
    return tuple(sums[name] for name in _COUNTERS)


def batching(before: tuple[float, ...], after: tuple[float, ...]) -> dict[str, float]:
    """Chat messages per broker message, and frames per client socket write, meanwhile."""
    d = [a - b for a, b in zip(after, before, strict=True)]
    return {"messages_per_publish": round(d[0] / max(d[1], 1), 2),
            "frames_per_write": round(d[2] / max(d[3], 1), 2)}


def _summary(label: str, r: dict[str, Any]) -> None:
    lat = r["latency"]
    log.info("%s: %s msg/s delivered, p50 %s ms, p99 %s ms, lost %s, dup %s, reordered %s",
             label, r["delivered_msgs_s"], lat.get("p50_ms"), lat.get("p99_ms"), r["lost"],
             r["duplicates"], r["reordered"])


async def throughput(ctx: Context, protocol: int = 1) -> list[dict[str, Any]]:
    """(a) Closed loop, W in flight per sender, through the gateways, broker and persister;
    on v1 room sockets or (protocol 2) on device sockets."""
    results = []
    for n in ctx.plan.pairs:
        r = await _closed_loop(ctx, n, protocol)
        _summary(f"(a) v{protocol} {n} pairs", r)
        results.append(r)
    return results


async def _closed_loop(ctx: Context, n: int, protocol: int,
                       signals: str | None = None) -> dict[str, Any]:
    """(a)'s closed loop over `n` pairs, once the persister has caught up."""
    plan, urls = ctx.plan, [g.ws for g in ctx.gateways]
    await ctx.stack.wait_persisted()
    before = await gateway_counters(ctx.gateways)
    async with Load(placed(ctx.pairs[:n], urls), window=plan.window, protocol=protocol,
                    signals=signals) as load:
        r = await load.closed_loop(warmup_s=plan.warmup_s, duration_s=plan.duration_s,
                                   meter=ctx.meter(*ctx.services()), drain_s=plan.drain_s,
                                   wait_stored=True)
    r.update(pairs=n, window=plan.window, gateways=len(urls), protocol=protocol,
             **batching(before, await gateway_counters(ctx.gateways)))
    return r


async def signals(ctx: Context) -> list[dict[str, Any]]:
    """(g) What receipts, read positions and typing cost: (a) on device sockets without
    them, then with them paced as the SDK sends them, then eager; in alternating rounds, so
    a drift of the machine's speed falls on every mode alike. One row per pairs and mode:
    the median round, and its rate and server CPU per chat message against no signals."""
    plan = ctx.plan
    modes: tuple[str | None, ...] = (None, *SIGNAL_MODES)
    rows = []
    for n in plan.pairs:
        rounds: dict[str | None, list[dict[str, Any]]] = {m: [] for m in modes}
        for _ in range(plan.signal_rounds):
            for mode in modes:
                r = await _closed_loop(ctx, n, 2, mode)
                r.update(signals=mode or "none", rounds=plan.signal_rounds)
                _summary(f"(g) {n} pairs, signals {mode}", r)
                rounds[mode].append(r)
        rate = {m: statistics.median(r["delivered_msgs_s"] for r in rs)
                for m, rs in rounds.items()}
        cpu = {m: statistics.median(r["cpu_us_per_msg_servers"] or 0.0 for r in rs)
               for m, rs in rounds.items()}
        for mode, rs in rounds.items():
            median = sorted(rs, key=lambda r: r["delivered_msgs_s"])[(len(rs) - 1) // 2]
            median.update(
                rates=[r["delivered_msgs_s"] for r in rs],
                median_msgs_s=rate[mode], median_cpu_us_per_msg=cpu[mode],
                rate_cost=round(1 - rate[mode] / rate[None], 3) if rate[None] else None,
                cpu_cost=round(cpu[mode] / cpu[None] - 1, 3) if cpu[None] else None)
            rows.append(median)
    return rows


async def latency(ctx: Context, best: dict[str, Any],
                  relay_msgs_s: float | None = None) -> list[dict[str, Any]]:
    """(b) Open loop at fractions of (a)'s best delivered rate and at fixed rates, with
    that run's pairs; with (e)'s relay rate, also at the largest fixed rate scaled to this
    machine (a slower box gets a proportionally lower rate)."""
    plan = ctx.plan
    n, top = best["pairs"], best["delivered_msgs_s"]
    if top <= 0:
        raise BenchError("(a) delivered nothing; no rate to take fractions of")
    loads = [(f"{f:.0%} of {top}", top * f, f) for f in plan.load_fractions]
    loads += [(f"{rate:g} msg/s", rate, None) for rate in plan.load_rates]
    if relay_msgs_s and plan.load_rates:
        rate = max(plan.load_rates) * relay_msgs_s / plan.target_relay_msgs_s
        loads.append((f"{rate:.0f} msg/s = {max(plan.load_rates):g} × relay "
                      f"{relay_msgs_s:.0f} / {plan.target_relay_msgs_s:.0f}", rate, None))
    results = []
    for label, rate, fraction in loads:
        r = await _open_loop(ctx, n, rate)
        r.update(load=label, load_fraction=fraction, reference_msgs_s=top)
        _summary(f"(b) {label}", r)
        results.append(r)
    return results


async def _open_loop(ctx: Context, n: int, rate: float) -> dict[str, Any]:
    plan, urls = ctx.plan, [g.ws for g in ctx.gateways]
    # An overloaded run leaves a backlog in the broker: let it be written first, so each
    # load is measured on a quiet stack.
    await ctx.stack.wait_persisted()
    await asyncio.sleep(1.0)
    before = await gateway_counters(ctx.gateways)
    async with Load(placed(ctx.pairs[:n], urls)) as load:
        r = await load.open_loop(rate=rate, warmup_s=plan.warmup_s, duration_s=plan.duration_s,
                                 meter=ctx.meter(*ctx.services()), drain_s=plan.drain_s,
                                 wait_stored=True)
    r.update(pairs=n, **batching(before, await gateway_counters(ctx.gateways)))
    return r


async def latency_series(ctx: Context, runs: int, pairs: int = 100) -> list[dict[str, Any]]:
    """(b) at the plan's highest and lowest fixed rates, `runs` times in a row (issue 21's
    target 3: 10 consecutive runs at 1,000 msg/s, and 200 msg/s), with (a)'s larger set of
    pairs."""
    rates = sorted({max(ctx.plan.load_rates), min(ctx.plan.load_rates)}, reverse=True)
    results = []
    for i in range(1, runs + 1):
        for rate in rates:
            r = await _open_loop(ctx, pairs, rate)
            r.update(load=f"{rate:g} msg/s", run=i)
            _summary(f"(b) series run {i}, {rate:g} msg/s", r)
            results.append(r)
    return results


async def relay(ctx: Context) -> list[dict[str, Any]]:
    """(e) The same closed loop against a bare websockets relay: the ceiling of the sockets."""
    plan = ctx.plan
    server = await ctx.stack.relay()
    results = []
    try:
        for n in plan.pairs:
            pairs = synthetic_pairs(n)
            async with Load(placed(pairs, [server.ws]), window=plan.window,
                            needs_ack=False) as load:
                r = await load.closed_loop(
                    warmup_s=plan.warmup_s, duration_s=plan.duration_s,
                    meter=ctx.meter(server, infra=False), drain_s=plan.drain_s)
            r.update(pairs=n, window=plan.window)
            _summary(f"(e) relay {n} pairs", r)
            results.append(r)
    finally:
        await server.stop_async()
    return results


async def socketio(ctx: Context) -> list[dict[str, Any]]:
    """(f) The same closed loop against python-socketio over RabbitMQ (bench.sio_server,
    two processes, no storage): the issue's reference for CPU per message."""
    plan, stack = ctx.plan, ctx.stack
    channel = f"{stack.prefix}socketio"
    servers = [await stack.sio_server(f"sio-{i}", channel) for i in range(plan.gateways)]
    results = []
    try:
        # python-socketio starts a server's listener (its queue on the fanout exchange) at
        # its first connection, and emits before the other server's queue is bound are
        # dropped: a short unmeasured run first, so the reference is not charged with its
        # own start-up.
        async with SioLoad(placed(synthetic_pairs(1), [s.ws for s in servers])) as load:
            await load.closed_loop(warmup_s=0.5, duration_s=1.0, meter=ctx.meter(*servers),
                                   drain_s=2.0)
        for n in plan.pairs:
            async with SioLoad(placed(synthetic_pairs(n), [s.ws for s in servers]),
                               window=plan.window) as load:
                r = await load.closed_loop(
                    warmup_s=plan.warmup_s, duration_s=plan.duration_s,
                    meter=ctx.meter(*servers), drain_s=plan.drain_s)
            r.update(pairs=n, window=plan.window, servers=len(servers))
            _summary(f"(f) socketio {n} pairs", r)
            results.append(r)
    finally:
        for server in servers:
            await server.stop_async()
        # The servers' own queues expire by themselves (x-expires, 5 minutes).
        async with await stack.amqp.channel() as ch:
            await ch.exchange_delete(channel)
    return results
