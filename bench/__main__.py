"""`python -m bench [--quick] [--only a,b,c,d,e,f,g] [--profile [gateway|persister|broker]]
[--cluster]`: run the benchmark.

Starts its own stack (see stack.py) under a unique prefix, runs the scenarios in the order
e → a (v1 room sockets, then v2 device sockets) → b → g → f → c (v1, then v2) → d, writes
bench/results/latest.json and latest.md (also after a failure, with what was measured),
and cleans up everything it started, also on Ctrl-C or SIGTERM.
A scenario that fails is reported and the next one still runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import bindings, brokercost, cluster, drain, idle, profile, report, scenarios
from .envelopes import SendFrames
from .loadgen import SIGNAL_MODES
from .plan import FULL, QUICK, Plan
from .procs import machine, wait_quiet
from .stack import BenchStack, raise_nofile

log = logging.getLogger("bench")
RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = "abcdefg"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes: the whole run in < 3 min")
    p.add_argument("--only", default=SCENARIOS, metavar="LETTERS",
                   help="scenarios to run, e.g. 'ae' (b needs a; default: all)")
    p.add_argument("--rate", type=float, default=None, metavar="MSGS_S",
                   help="with --profile gateway: an open loop at this offered rate instead")
    p.add_argument("--signals", choices=SIGNAL_MODES, default=None,
                   help="with --profile gateway: the load also sends receipts, read "
                        "positions and typing, so (scenario g)")
    p.add_argument("--pairs", type=int, default=profile.PAIRS, metavar="N",
                   help="with --profile gateway: this many pairs (default %(default)s)")
    p.add_argument("--frames", type=int, default=1, metavar="N",
                   help="with --profile persister: frames per queued broker message")
    p.add_argument("--profile", nargs="?", const="gateway",
                   choices=("gateway", "persister", "broker", "bindings"),
                   help="instead: py-spy on gateway-0 during a 10-pair throughput run, or on "
                        "the persister while it drains (d)'s backlog; or the broker's CPU "
                        "per published message for each part of the topology; or gateway "
                        "bindings per room against per user")
    p.add_argument("--cluster", action="store_true",
                   help="instead: (a) on one RabbitMQ node and on three, with 1 and 4 persist "
                        "partitions and 1 and 2 persisters (bench/cluster.py)")
    p.add_argument("--series", type=int, default=0, metavar="RUNS",
                   help="instead: (b) at its highest and lowest fixed rates only, RUNS "
                        "times in a row (issue 21's target 3)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument("--keep-logs", action="store_true", help="keep the children's logs")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each scenario, wait up to this long for other programs to "
                        "use < 0.2 cores (for shared machines; default: do not wait)")
    args = p.parse_args(argv)
    if set(args.only) - set(SCENARIOS):
        p.error(f"--only takes letters of {SCENARIOS!r}")
    if "b" in args.only and "a" not in args.only:
        p.error("b runs at fractions of a's rate: add a")
    return args


def _setup(ctx: scenarios.Context) -> dict[str, Any]:
    pair = ctx.pairs[0]
    frame_bytes = len(SendFrames(pair.a.user_id, pair.b.user_id).frame("abcdef-1", 1))
    return {
        "prefix": ctx.stack.prefix,
        "gateways": len(ctx.gateways),
        "frame_bytes": frame_bytes,
        "description": (
            f"{len(ctx.gateways)} gateways (`python -m gateway`, uvicorn, one process each) "
            "and 1 persister (`python -m persister`) on the local RabbitMQ and mongod; "
            f"`send` frames of {frame_bytes} bytes: a shape-valid envelope v1 with two "
            "RSA-2048-sized wrapped keys and a fresh random 256-byte ciphertext. The load "
            "generator is one process (websockets client on uvloop) on the same machine, "
            "so every figure shares the same cores."),
    }


async def _step(results: dict[str, Any], name: str, run: Callable[[], Awaitable[Any]],
                wait_quiet_s: float = 0.0) -> Any:
    if wait_quiet_s > 0:
        load = await wait_quiet(wait_quiet_s)
        log.info("other programs use %.2f cores before %s", load, name)
    t = time.monotonic()
    try:
        results[name] = await run()
    except Exception as exc:
        log.exception("scenario %s failed", name)
        results.setdefault("failed", {})[name] = f"{type(exc).__name__}: {exc}"[:500]
        return None
    log.info("scenario %s took %.1f s", name, time.monotonic() - t)
    return results[name]


async def run(plan: Plan, only: str, out: Path, keep_logs: bool, wait_s: float,
              series: int = 0) -> int:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    t0 = time.monotonic()
    results: dict[str, Any] = {"plan": plan.as_dict(),
                               "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    try:
        async with BenchStack(keep_dir=keep_logs) as stack:
            results["machine"] = machine(stack.versions["rabbitmq"], stack.versions["mongod"])
            ctx = scenarios.Context(stack, plan)
            await scenarios.prepare(ctx)
            results["setup"] = _setup(ctx)
            if series:
                only = ""
                await _step(results, "latency_series",
                            lambda: scenarios.latency_series(ctx, series, max(plan.pairs)))
            relay_rate = None
            if "e" in only:  # first: (b) scales a rate by it
                relays = await _step(results, "relay", lambda: scenarios.relay(ctx), wait_s)
                relay_rate = relays[0]["delivered_msgs_s"] if relays else None
            if "a" in only:
                runs = await _step(results, "throughput", lambda: scenarios.throughput(ctx), wait_s)
                await _step(results, "throughput_v2",
                            lambda: scenarios.throughput(ctx, protocol=2), wait_s)
                if runs and "b" in only:
                    best = max(runs, key=lambda r: r["delivered_msgs_s"])
                    await _step(results, "latency",
                                lambda: scenarios.latency(ctx, best, relay_rate), wait_s)
            if "g" in only:
                await _step(results, "signals", lambda: scenarios.signals(ctx), wait_s)
            if "f" in only:
                await _step(results, "socketio", lambda: scenarios.socketio(ctx), wait_s)
            if "c" in only:
                await _step(results, "idle_relay", lambda: idle.idle_relay(ctx), wait_s)
                await _step(results, "idle", lambda: idle.idle_sockets(ctx), wait_s)
                await _step(results, "idle_v2", lambda: idle.idle_sockets(ctx, protocol=2),
                            wait_s)
            if "d" in only:
                await _step(results, "drain", lambda: drain.drain(ctx), wait_s)
    finally:
        results["elapsed_s"] = round(time.monotonic() - t0, 1)
        if "machine" in results:
            js, md = report.write(results, out)
            log.info("wrote %s and %s", js, md)
    return 1 if results.get("failed") else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    raise_nofile()  # (c) holds 10,000 sockets in this one process
    try:
        import uvloop
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    plan = QUICK if args.quick else FULL
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        try:
            if args.cluster:
                return runner.run(cluster.run(plan, args.out))
            if args.profile == "broker":
                return runner.run(brokercost.run(args.out))
            if args.profile == "bindings":
                return runner.run(bindings.run(args.out))
            if args.profile == "persister":
                return runner.run(profile.run_persister(plan, args.out, args.keep_logs,
                                                        args.frames))
            if args.profile:
                return runner.run(profile.run(plan, args.out, args.keep_logs, args.rate,
                                              args.signals, args.pairs))
            return runner.run(run(plan, args.only, args.out, args.keep_logs, args.wait_quiet,
                                  args.series))
        except (KeyboardInterrupt, asyncio.CancelledError):
            log.warning("interrupted; everything started was stopped and cleaned up")
            return 130


if __name__ == "__main__":
    sys.exit(main())
