"""`python -m bench --profile [gateway|persister]`: where a service spends its CPU.

`gateway` (the default):
A closed-loop run of 10 pairs over two gateways (as in (a)) while `py-spy record` samples
gateway-0 twice, 15 s each: once as raw collapsed stacks per thread, turned here into the
top functions of the event-loop thread by own time, by inclusive time, and own time by
package (results/gateway-profile.txt), and once as a flame graph of the samples that
hold the GIL (results/gateway-profile.svg).

Only the main (event-loop) thread is counted: the gateway's idle worker threads (anyio's
pool for sync dependencies, the executor that hashes passwords) each leak a few percent
of "active" samples through py-spy's idle detection, and there are dozens of them. Time
in C extensions (orjson, pydantic-core, uvloop's socket writes) counts to the Python
caller; the loop waiting in epoll shows as `Runner.run`.

`persister`: the drain of (d), a backlog of `--frames` frames per broker message (default
1: a backlog built under light traffic) queued with no persister running, then one
persister started and sampled from its start until the collection holds the backlog
(results/persister-profile.txt, and the raw stacks beside it).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import drain
from .loadgen import Load
from .plan import Plan
from .scenarios import Context, placed, prepare
from .stack import BenchError, BenchStack, Child

log = logging.getLogger(__name__)

SECONDS = 15
PAIRS = 10
_MAIN = "_run_module_as_main "  # the bottom frame of `python -m gateway`'s main thread
_THREAD_LABEL = "thread ("  # what --threads puts first in each stack
_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>.*?)(?::\d+)?\)$")


def _short(path: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _name(frame: str) -> str:
    m = _FRAME.match(frame)
    return f"{m['func']} ({_short(m['path'])})" if m else frame


def _package(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = _short(m["path"])
    return path.split("/", 1)[0].removesuffix(".py") if "/" in path else path


def top_functions(raw: str, n: int = 15) -> str:
    """Own, inclusive and per-package sample shares of py-spy's raw collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    samples = other_threads = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count, frames = int(count_text), stack.split(";")
        if not any(f.startswith(_MAIN) for f in frames):
            other_threads += count
            continue
        frames = [f for f in frames if not f.startswith(_THREAD_LABEL)]
        samples += count
        own[_name(frames[-1])] += count
        packages[_package(frames[-1])] += count
        for name in {_name(f) for f in frames}:
            total[name] += count
    if not samples:
        return "no samples\n"

    def block(title: str, counter: Counter[str]) -> list[str]:
        rows = [f"{title}", f"{'share':>7}  {'samples':>7}  function (file)"]
        rows += [f"{100 * c / samples:6.1f}%  {c:7d}  {name}" for name, c in counter.most_common(n)]
        return rows + [""]

    # Frames on every stack (runpy → uvicorn → asyncio.Runner) say nothing: leave them out.
    inner = Counter({name: c for name, c in total.items() if c < samples})
    out = [f"{samples} samples of the event-loop thread ({other_threads} of other threads "
           "left out)", ""]
    out += block(f"Top {n} by own time (the function itself, C calls included)", own)
    out += block(f"Top {n} by inclusive time (the function and what it calls; frames on "
                 "every stack left out)", inner)
    out += block(f"Own time by package (top {n})", packages)
    return "\n".join(out)


@asynccontextmanager
async def _sampling(exe: str, pid: int, dest: Path, fmt: str = "raw",
                    flag: str = "--threads") -> AsyncIterator[None]:
    """py-spy on `pid` for as long as the block runs (Ctrl-C makes it write its file)."""
    proc = await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(pid), "--rate", "100", "--format", fmt, flag,
        "-o", str(dest), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        yield
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        out, _ = await proc.communicate()
    if not dest.exists():
        raise BenchError(f"py-spy failed ({proc.returncode}): {out.decode()[-800:]}")


def _py_spy() -> str:
    exe = shutil.which("py-spy")
    if exe is None:
        raise BenchError("py-spy is not installed: pip install py-spy")
    return exe


async def run_persister(plan: Plan, out: Path, keep_logs: bool, frames: int = 1) -> int:
    """Sample the persister while it drains (d)'s backlog of `frames` frames per message."""
    exe = _py_spy()
    out.mkdir(parents=True, exist_ok=True)
    raw_path, txt_path = out / "persister-profile.raw.txt", out / "persister-profile.txt"

    def watch(persister: Child) -> Any:
        return _sampling(exe, persister.pid, raw_path)

    async with BenchStack(keep_dir=keep_logs) as stack:
        ctx = Context(stack, plan)
        result = await drain.drain_once(
            ctx, drain.backlog(plan.drain_messages, plan.drain_rooms), frames, watch)
    summary = (f"persister profile: drain of {result['messages']} messages, {frames} frames "
               f"per broker message, {result['docs_s']} docs/s while sampled (py-spy slows "
               f"the target, so this rate is below (d)'s); sampled from the process's start, "
               f"so its imports are in\n\n")
    txt_path.write_text(summary + top_functions(raw_path.read_text()))
    log.info("wrote %s and %s", txt_path, raw_path)
    print(txt_path.read_text())
    return 0


async def run(plan: Plan, out: Path, keep_logs: bool, rate: float | None = None,
              signals: str | None = None, pairs: int = PAIRS) -> int:
    """Sample gateway-0 during a closed loop of `pairs` (or an open loop at `rate`), with
    receipts and typing when `signals` names how they are sent (loadgen.SIGNAL_MODES)."""
    exe = _py_spy()
    out.mkdir(parents=True, exist_ok=True)
    raw_path, svg_path = out / "gateway-profile.raw.txt", out / "gateway-profile.svg"
    txt_path = out / "gateway-profile.txt"
    plan = replace(plan, pairs=(pairs,))
    async with BenchStack(keep_dir=keep_logs) as stack:
        ctx = Context(stack, plan)
        await prepare(ctx)
        gw = ctx.gateways[0]
        async with Load(placed(ctx.pairs, [g.ws for g in ctx.gateways]),
                        window=plan.window, protocol=2, signals=signals) as load:
            measured = asyncio.create_task(load.closed_loop(
                warmup_s=2.0, duration_s=2 * SECONDS + 4, meter=ctx.meter(*ctx.services()),
                drain_s=plan.drain_s) if rate is None else load.open_loop(
                rate=rate, warmup_s=2.0, duration_s=2 * SECONDS + 4,
                meter=ctx.meter(*ctx.services()), drain_s=plan.drain_s))
            try:
                await asyncio.sleep(2.0)
                async with _sampling(exe, gw.pid, raw_path):
                    await asyncio.sleep(SECONDS)
                async with _sampling(exe, gw.pid, svg_path, "flamegraph", "--gil"):
                    await asyncio.sleep(SECONDS)
                result: dict[str, Any] = await measured
            finally:
                if not measured.done():
                    measured.cancel()
                    await asyncio.gather(measured, return_exceptions=True)
    mode = f"window {plan.window}" if rate is None else f"open loop at {rate:g} msg/s"
    if signals:
        mode += f", receipts and typing {signals}"
    summary = (f"gateway-0 profile: {pairs} pairs over 2 gateways, {mode}, "
               f"{result['delivered_msgs_s']} msg/s delivered while sampled (py-spy slows "
               f"the target, so this rate is below (a)'s)\n\n")
    txt_path.write_text(summary + top_functions(raw_path.read_text()))
    log.info("wrote %s, %s and %s", txt_path, svg_path, raw_path)
    print(txt_path.read_text())
    return 0
