"""CPU seconds and memory of the processes under test, and the machine's description.

A process is followed by PID: our children (gateways, persister, relay, mongod), the
already-running broker (the beam.smp that listens on the AMQP port) and this process.
CPU seconds are user + system of all the process's threads, children excluded.
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
from importlib import metadata

import psutil

CpuTimes = dict[str, float]
OTHER = "other"  # user + system CPU of the machine that none of the named processes used
SOFTIRQ = "softirq"  # kernel interrupt work (loopback TCP is mostly ours), in no process
UNNAMED = (OTHER, SOFTIRQ)
_TASKS, _IRQ = "_tasks", "_irq"


def _machine() -> tuple[float, float]:
    """(user + nice + system, irq + softirq) seconds of the whole machine so far."""
    t = psutil.cpu_times()
    return (float(t.user + t.nice + t.system),
            float(getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)))


class CpuMeter:
    """Named processes whose CPU seconds can be read together: `delta(before, after)`.

    The delta also has OTHER: what the rest of the machine's processes burnt meanwhile
    (other test runs...), so a noisy measurement can be told from a quiet one; and SOFTIRQ,
    the kernel's interrupt work, which is where loopback TCP is processed and so mostly ours.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self._procs: dict[str, psutil.Process] = {}
        for name, pid in pids.items():
            try:
                self._procs[name] = psutil.Process(pid)
            except psutil.Error:
                continue  # gone already: it simply will not be reported

    def snapshot(self) -> CpuTimes:
        out: CpuTimes = {}
        for name, proc in self._procs.items():
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            out[name] = t.user + t.system
        out[_TASKS], out[_IRQ] = _machine()
        return out

    @staticmethod
    def delta(before: CpuTimes, after: CpuTimes) -> CpuTimes:
        out = {name: round(after[name] - before[name], 3)
               for name in after if name in before and not name.startswith("_")}
        if _TASKS in before and _TASKS in after:
            ours = sum(out.values())
            out[OTHER] = round(max(0.0, after[_TASKS] - before[_TASKS] - ours), 3)
            out[SOFTIRQ] = round(after[_IRQ] - before[_IRQ], 3)
        return out


async def wait_quiet(max_s: float, cores: float = 0.2, probe_s: float = 2.0) -> float:
    """Wait (at most `max_s`) until the rest of the machine uses under `cores` CPU cores.

    Returns the other programs' load seen last, in cores. Runs no load itself.
    """
    deadline = time.monotonic() + max_s
    meter = CpuMeter({})
    while True:
        before = meter.snapshot()
        await asyncio.sleep(probe_s)
        load = CpuMeter.delta(before, meter.snapshot()).get(OTHER, 0.0) / probe_s
        if load < cores or time.monotonic() + probe_s > deadline:
            return load


def rss_bytes(pid: int) -> int:
    """Resident set size of one process, in bytes."""
    return int(psutil.Process(pid).memory_info().rss)


def listening_pid(port: int, host: str = "127.0.0.1") -> int | None:
    """PID of the process listening on host:port (needs to see other users' sockets)."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    for c in conns:
        if (c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                and c.laddr.ip in {host, "0.0.0.0", "::"} and c.pid):
            return int(c.pid)
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def machine(rabbitmq: str, mongod: str) -> dict[str, object]:
    """What the figures were measured on."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "rabbitmq": rabbitmq,
        "mongod": mongod,
        "libraries": {d: _version(d) for d in (
            "websockets", "uvicorn", "uvloop", "fastapi", "aio-pika", "pymongo", "orjson",
            "python-socketio")},
    }
