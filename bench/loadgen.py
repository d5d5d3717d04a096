"""The load generator: one WebSocket per user, both members of every pair sending.

A `Lane` is one direction of a pair (sender socket → receiver socket). It remembers
when each of its messages was sent and which came back: the `ack` and `stored` frames on
the sender's socket, the `message` frame on the receiver's. From that it counts loss,
duplicates and per-sender reordering, and gives the latency send → peer receives.

Two ways to drive it:

- closed loop: each sender keeps `window` messages in flight; a message leaves flight
  when it is both acked and delivered (delivered only, against the relay, which acks
  nothing). Measures the most the stack delivers.
- open loop: each sender sends at a fixed rate whatever comes back; latency is measured
  from the scheduled send time, so a stall shows up in the figures instead of hiding.

Message ids are `<tag>-<seq>` with a tag per run, so late frames of an earlier run on the
same users (a `stored` receipt) are recognised and ignored.

With `signals` (device sockets only), each socket also does what a client does while its
user reads along and types: on messages it sends a `read` frame and a receipt (kind
`receipt`, id `<tag>r-<n>`) covering the newest one, "paced" as the SDK paces them (one
per room every RECEIPT_DELAY_S, for a burst) or "eager" (as soon as the previous receipt
is acked: one in flight per room); and a typing signal every TYPING_EVERY_S while it sends.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from client.sdk import RECEIPT_DELAY_S

from .accounts import Pair, User
from .envelopes import SIGNAL_CT_BYTES, SendFrames, typing_frame
from .procs import UNNAMED, CpuMeter, CpuTimes
from .stack import BenchError

log = logging.getLogger(__name__)

ACKED, DELIVERED, STORED = 1, 2, 4
SIGNAL_MODES = ("paced", "eager")
TYPING_EVERY_S = 1.0  # the gateway's default DUET_TYPING_PER_S: the most it takes


class Lane:
    """One sender → one receiver; see the module docstring."""

    __slots__ = ("frames", "sent_ns", "flags", "acked", "delivered", "stored", "complete",
                 "duplicates", "duplicate_acks", "reordered", "unknown", "highest", "window",
                 "needs_ack")

    def __init__(self, frames: SendFrames, window: int, needs_ack: bool) -> None:
        self.frames = frames
        self.sent_ns: list[int] = []
        self.flags = bytearray()
        self.acked = self.delivered = self.stored = self.complete = 0
        self.duplicates = self.duplicate_acks = self.reordered = self.unknown = 0
        self.highest = 0
        self.window = asyncio.Semaphore(window)
        self.needs_ack = needs_ack

    @property
    def sent(self) -> int:
        return len(self.sent_ns)

    def record_send(self, at_ns: int) -> int:
        self.sent_ns.append(at_ns)
        self.flags.append(0)
        return len(self.sent_ns)

    def _valid(self, seq: int) -> bool:
        if 1 <= seq <= len(self.sent_ns):
            return True
        self.unknown += 1
        return False

    def on_ack(self, seq: int) -> None:
        if not self._valid(seq):
            return
        f = self.flags[seq - 1]
        if f & ACKED:
            self.duplicate_acks += 1
            return
        self.flags[seq - 1] = f | ACKED
        self.acked += 1
        if f & DELIVERED:
            self._done()

    def on_stored(self, seq: int) -> None:
        if self._valid(seq) and not self.flags[seq - 1] & STORED:
            self.flags[seq - 1] |= STORED
            self.stored += 1

    def on_delivery(self, seq: int, now_ns: int) -> int | None:
        """Latency in ns of a first delivery; None for a duplicate or an unknown one."""
        if not self._valid(seq):
            return None
        f = self.flags[seq - 1]
        if f & DELIVERED:
            self.duplicates += 1
            return None
        self.flags[seq - 1] = f | DELIVERED
        self.delivered += 1
        if seq < self.highest:
            self.reordered += 1  # an earlier message of this sender after a later one
        else:
            self.highest = seq
        if f & ACKED or not self.needs_ack:
            self._done()
        return now_ns - self.sent_ns[seq - 1]

    def _done(self) -> None:
        self.complete += 1
        self.window.release()


@dataclass(eq=False)
class Socket:
    url: str
    user: User
    peer: User
    out: Lane
    inbound: Lane | None = None
    ws: ClientConnection | None = None
    reader: asyncio.Task[None] | None = None
    # with signals: the newest peer message's cursor, and the last one a receipt covered
    newest: str | None = None
    told: str | None = None
    receipts: SendFrames | None = None
    receipt_task: asyncio.Task[None] | None = None
    receipt_acked: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Window:
    """What happened between the end of the warm-up and the end of the measurement."""

    start_ns: int = 0
    end_ns: int = 0
    latencies: list[int] = field(default_factory=list)


def percentiles(samples_ns: list[int]) -> dict[str, float | int]:
    """p50/p95/p99/max in milliseconds (nearest rank)."""
    if not samples_ns:
        return {"count": 0}
    s = sorted(samples_ns)

    def rank(q: float) -> float:
        return round(s[max(0, math.ceil(q * len(s)) - 1)] / 1e6, 2)

    return {"count": len(s), "p50_ms": rank(0.50), "p95_ms": rank(0.95),
            "p99_ms": rank(0.99), "max_ms": round(s[-1] / 1e6, 2)}


class Load:
    """Sockets for `pairs`, member a on `urls[0]`, member b on `urls[1]` of each triple.

    `async with Load(...) as load:` connects every socket and waits for its `ready`
    frame; leaving the block closes them all.
    """

    def __init__(self, placed: Sequence[tuple[str, str, Pair]], *, window: int = 1,
                 needs_ack: bool = True, connect_concurrency: int = 64,
                 protocol: int = 1, signals: str | None = None) -> None:
        if signals is not None and (signals not in SIGNAL_MODES or protocol != 2):
            raise BenchError(f"signals are {SIGNAL_MODES}, on device sockets only")
        self.tag = uuid.uuid4().hex[:6]
        self.signals = signals
        self.signal_tag = f"{self.tag}r"
        self.signal_counts = dict.fromkeys(
            ("receipts_sent", "reads_sent", "typing_sent", "receipts_acked",
             "receipts_received", "typing_received"), 0)
        self._receipt_ids = itertools.count(1)
        self.needs_ack = needs_ack
        self.protocol = protocol  # 1: /ws/{peer}; 2: the device socket /ws
        self.sockets: list[Socket] = []
        self.lanes: list[Lane] = []
        for url_a, url_b, pair in placed:
            ab = Lane(SendFrames(pair.a.user_id, pair.b.user_id, protocol=protocol), window,
                      needs_ack)
            ba = Lane(SendFrames(pair.b.user_id, pair.a.user_id, protocol=protocol), window,
                      needs_ack)
            self.lanes += [ab, ba]
            self.sockets += [Socket(url_a, pair.a, pair.b, ab, ba),
                             Socket(url_b, pair.b, pair.a, ba, ab)]
        if signals:
            for sock in self.sockets:
                sock.receipts = SendFrames(sock.user.user_id, sock.peer.user_id,
                                           kind="receipt", ct_bytes=SIGNAL_CT_BYTES, protocol=2)
        self._concurrency = connect_concurrency
        self._window = Window()
        self._stopping = False
        self.errors: list[dict[str, Any]] = []
        self.error_count = 0
        self.misattributed = 0  # `message` frames whose sender is not the socket's peer
        self.closed_early: list[str] = []
        self.before_ready: list[dict[str, Any]] = []  # frames a gateway sent before `ready`

    async def __aenter__(self) -> Load:
        gate = asyncio.Semaphore(self._concurrency)

        async def open_one(sock: Socket) -> None:
            async with gate:
                sock.ws = await self._open(sock)
            sock.reader = asyncio.create_task(self._read(sock))

        try:
            await asyncio.gather(*(open_one(s) for s in self.sockets))
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping = True
        await asyncio.gather(*(s.ws.close() for s in self.sockets if s.ws is not None),
                             return_exceptions=True)
        readers = [t for s in self.sockets for t in (s.reader, s.receipt_task) if t is not None]
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)

    # -- the wire (SioLoad speaks Socket.IO instead) -----------------------------------
    async def _open(self, sock: Socket) -> ClientConnection:
        return await open_socket(sock.url, sock.user, sock.peer, early=self.before_ready,
                                 protocol=self.protocol)

    def _encode(self, frame: str) -> str:
        return frame

    def _decode(self, sock: Socket, raw: str | bytes) -> dict[str, Any] | None:
        frame: dict[str, Any] = orjson.loads(raw)
        return frame

    # -- receiving -------------------------------------------------------------------
    async def _read(self, sock: Socket) -> None:
        assert sock.ws is not None and sock.inbound is not None
        tag, inbound, out, window = self.tag, sock.inbound, sock.out, self._window
        peer_id = sock.peer.user_id
        try:
            async for raw in sock.ws:
                frame = self._decode(sock, raw)
                if frame is None:
                    continue
                kind = frame.get("type")
                mid = frame.get("id")
                if kind == "error":
                    self.error_count += 1
                    if len(self.errors) < 5:
                        self.errors.append(frame)
                    continue
                if not isinstance(mid, str):
                    if kind == "typing":
                        self.signal_counts["typing_received"] += 1
                    continue
                run, _, seq_text = mid.rpartition("-")
                if run != tag:
                    if run == self.signal_tag:
                        self._on_signal(sock, kind)
                    continue  # a late frame of an earlier run on these users
                seq = int(seq_text)
                if kind == "message" or kind == "send":  # "send": relayed verbatim
                    now = time.monotonic_ns()
                    if kind == "message" and frame.get("sender") != peer_id:
                        self.misattributed += 1
                    latency = inbound.on_delivery(seq, now)
                    if latency is not None and window.start_ns <= now <= window.end_ns:
                        window.latencies.append(latency)
                    if self.signals:
                        sock.newest = frame["cursor"]
                        self._receipt_soon(sock)
                elif kind == "ack":
                    out.on_ack(seq)
                elif kind == "stored":
                    out.on_stored(seq)
        except ConnectionClosed:
            pass
        if not self._stopping:
            self.closed_early.append(f"{sock.ws.close_code} {sock.ws.close_reason}")

    # -- signals (receipts, read positions, typing) --------------------------------------
    def _on_signal(self, sock: Socket, kind: str | None) -> None:
        if kind == "ack":
            self.signal_counts["receipts_acked"] += 1
            sock.receipt_acked.set()
        elif kind == "message":
            self.signal_counts["receipts_received"] += 1

    def _receipt_soon(self, sock: Socket) -> None:
        if sock.receipt_task is None or sock.receipt_task.done():
            sock.receipt_task = asyncio.create_task(self._receipt(sock))

    async def _receipt(self, sock: Socket) -> None:
        """As the SDK's _send_receipt: the read position, then one receipt up to the newest
        message; "eager" goes on while newer ones came, one receipt in flight."""
        ws, frames, counts = sock.ws, sock.receipts, self.signal_counts
        assert ws is not None and frames is not None
        if self.signals == "paced":
            await asyncio.sleep(RECEIPT_DELAY_S)
        while sock.newest != sock.told and not self._stopping:
            sock.told = cursor = sock.newest
            sock.receipt_acked.clear()
            peer = sock.peer.user_id
            await ws.send(f'{{"type":"read","peer":"{peer}","cursor":"{cursor}"}}')
            await ws.send(frames.frame(f"{self.signal_tag}-{next(self._receipt_ids)}", 0))
            counts["reads_sent"] += 1
            counts["receipts_sent"] += 1
            if self.signals == "paced":
                return
            await sock.receipt_acked.wait()

    async def _typist(self, sock: Socket) -> None:
        ws, user, peer = sock.ws, sock.user.user_id, sock.peer.user_id
        assert ws is not None
        while not self._stopping:
            await ws.send(typing_frame(user, peer))
            self.signal_counts["typing_sent"] += 1
            await asyncio.sleep(TYPING_EVERY_S)

    # -- sending ---------------------------------------------------------------------
    async def _closed_sender(self, sock: Socket) -> None:
        lane, ws, tag = sock.out, sock.ws, self.tag
        assert ws is not None
        while True:
            await lane.window.acquire()
            if self._stopping:
                return
            seq = lane.record_send(time.monotonic_ns())
            await ws.send(self._encode(lane.frames.frame(f"{tag}-{seq}", seq)))

    async def _open_sender(self, sock: Socket, interval_ns: int, phase_ns: int,
                           end_ns: int) -> None:
        lane, ws, tag = sock.out, sock.ws, self.tag
        assert ws is not None
        due = time.monotonic_ns() + phase_ns
        while due < end_ns and not self._stopping:
            wait = due - time.monotonic_ns()
            if wait > 0:
                await asyncio.sleep(wait / 1e9)
            # Latency counts from when the message was due, not from when it got out.
            seq = lane.record_send(due)
            await ws.send(self._encode(lane.frames.frame(f"{tag}-{seq}", seq)))
            due += interval_ns

    # -- runs ------------------------------------------------------------------------
    async def closed_loop(self, *, warmup_s: float, duration_s: float, meter: CpuMeter,
                          drain_s: float = 15.0, wait_stored: bool = False) -> dict[str, Any]:
        def start() -> list[asyncio.Task[None]]:
            typists = [self._typist(s) for s in self.sockets] if self.signals else []
            return [asyncio.create_task(c) for c in
                    [*(self._closed_sender(s) for s in self.sockets), *typists]]

        def stop() -> None:
            self._stopping = True
            for lane in self.lanes:  # wake the sender that waits for a window slot
                lane.window.release()

        return await self._measure(start, stop, warmup_s, duration_s, meter, drain_s,
                                   wait_stored)

    async def open_loop(self, *, rate: float, warmup_s: float, duration_s: float,
                        meter: CpuMeter, drain_s: float = 15.0,
                        wait_stored: bool = False) -> dict[str, Any]:
        per_lane = rate / len(self.lanes)
        interval_ns = int(1e9 / per_lane)
        end_ns = time.monotonic_ns() + int((warmup_s + duration_s) * 1e9)

        def start() -> list[asyncio.Task[None]]:
            # Spread the senders' phases so they do not all fire on the same tick.
            n = len(self.sockets)
            return [asyncio.create_task(self._open_sender(s, interval_ns, interval_ns * i // n,
                                                          end_ns))
                    for i, s in enumerate(self.sockets)]

        def stop() -> None:
            self._stopping = True

        result = await self._measure(start, stop, warmup_s, duration_s, meter, drain_s,
                                     wait_stored)
        result["offered_msgs_s"] = round(rate, 1)
        return result

    async def _measure(self, start: Callable[[], list[asyncio.Task[None]]],
                       stop: Callable[[], None], warmup_s: float, duration_s: float,
                       meter: CpuMeter, drain_s: float, wait_stored: bool) -> dict[str, Any]:
        if self._window.start_ns:
            raise BenchError("a Load measures once; open a new one")
        senders = start()
        try:
            await asyncio.sleep(warmup_s)
            cpu_before = meter.snapshot()
            sent_before = self._sent()
            self._window.start_ns = time.monotonic_ns()
            self._window.end_ns = self._window.start_ns + int(duration_s * 1e9)
            await asyncio.sleep(duration_s)
            cpu_after = meter.snapshot()
            sent_in_window = self._sent() - sent_before
        finally:
            stop()
            await _settle(senders)
        # Drain: stop sending, let everything in flight arrive (or time out as lost).
        drained = await _until(lambda: all(
            lane.delivered >= lane.sent and (lane.acked >= lane.sent or not self.needs_ack)
            for lane in self.lanes), drain_s)
        if wait_stored:
            await _until(lambda: all(lane.stored >= lane.acked for lane in self.lanes), drain_s)
        return self._result(duration_s, sent_in_window, CpuMeter.delta(cpu_before, cpu_after),
                            drained)

    def _sent(self) -> int:
        return sum(lane.sent for lane in self.lanes)

    def _result(self, duration_s: float, sent_in_window: int, cpu: CpuTimes,
                drained: bool) -> dict[str, Any]:
        lanes, w = self.lanes, self._window
        delivered_in_window = len(w.latencies)
        total = {k: sum(getattr(lane, k) for lane in lanes)
                 for k in ("sent", "acked", "delivered", "stored", "duplicates",
                           "duplicate_acks", "reordered", "unknown")}
        per_msg = {name: round(sec * 1e6 / delivered_in_window, 1)
                   for name, sec in cpu.items()} if delivered_in_window else {}
        servers = sum(sec for name, sec in cpu.items() if name != "loadgen" and name not in UNNAMED)
        return {
            "sockets": len(self.sockets),
            "senders": len(lanes),
            "duration_s": duration_s,
            "sent_msgs_s": round(sent_in_window / duration_s, 1),
            "delivered_msgs_s": round(delivered_in_window / duration_s, 1),
            "latency": percentiles(w.latencies),
            **total,
            "lost": total["sent"] - total["delivered"],
            "unacked": (total["sent"] - total["acked"]) if self.needs_ack else None,
            "drained": drained,
            "misattributed": self.misattributed,
            "errors": self.error_count,
            "error_samples": self.errors,
            "closed_early": self.closed_early[:5],
            "frames_before_ready": len(self.before_ready),
            "frames_before_ready_samples": self.before_ready[:3],
            "cpu_s": cpu,
            "cpu_us_per_msg": per_msg,
            "cpu_us_per_msg_servers": (round(servers * 1e6 / delivered_in_window, 1)
                                       if delivered_in_window else None),
            **({"signals": self.signals, **self.signal_counts} if self.signals else {}),
        }


class SioLoad(Load):
    """The same lanes and checks over Socket.IO 5 (Engine.IO 4 on a WebSocket), against
    bench.sio_server: `42<ack id>["send", frame]` out; `42["message", frame]` and the ack
    `43<ack id>[{"type": "ack", ...}]` in; the server's ping `2` answered with `3`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ack_ids = itertools.count(1)
        self._pongs: set[asyncio.Task[None]] = set()

    async def _open(self, sock: Socket) -> ClientConnection:
        ws = await connect(f"{sock.url}/socket.io/?EIO=4&transport=websocket",
                           compression=None, max_size=None, open_timeout=30)
        opening = await asyncio.wait_for(ws.recv(), 30)
        if not str(opening).startswith("0"):
            raise BenchError(f"expected an Engine.IO open packet, got {opening!r:.200}")
        auth = orjson.dumps({"user": sock.user.user_id, "peer": sock.peer.user_id}).decode()
        await ws.send(f"40{auth}")
        joined = await asyncio.wait_for(ws.recv(), 30)
        if not str(joined).startswith("40"):
            raise BenchError(f"expected a Socket.IO connect, got {joined!r:.200}")
        return ws

    def _encode(self, frame: str) -> str:
        return f'42{next(self._ack_ids)}["send",{frame}]'

    def _decode(self, sock: Socket, raw: str | bytes) -> dict[str, Any] | None:
        text = raw if isinstance(raw, str) else raw.decode()
        if text == "2" and sock.ws is not None:
            task = asyncio.create_task(sock.ws.send("3"))
            self._pongs.add(task)
            task.add_done_callback(self._pongs.discard)
            return None
        if text.startswith("42"):
            event = orjson.loads(text[2:])
            return event[1] if event and event[0] == "message" else None
        if text.startswith("43"):
            result = orjson.loads(text[2:].lstrip("0123456789"))
            return result[0] if result else None
        return None


async def open_socket(url: str, user: User, peer: User, *, timeout: float = 30.0,
                      early: list[dict[str, Any]] | None = None,
                      protocol: int = 1) -> ClientConnection:
    """Connect to /ws/{peer} (protocol 2: the device socket /ws) with the Bearer header
    and wait for the `ready` frame.

    Frames that come before `ready` break the contract ("the first server frame is
    ready"); up to 100 are tolerated and appended to `early` so the run reports them.
    """
    path = f"/ws/{peer.user_id}" if protocol == 1 else "/ws"
    ws = await connect(f"{url}{path}",
                       additional_headers={"Authorization": f"Bearer {user.token}"},
                       subprotocols=[Subprotocol(f"duet.v{protocol}")],
                       compression=None, max_size=None, open_timeout=timeout)
    try:
        deadline = time.monotonic() + timeout
        for _ in range(101):
            frame = orjson.loads(await asyncio.wait_for(ws.recv(),
                                                        max(0.01, deadline - time.monotonic())))
            if frame.get("type") == "ready":
                return ws
            if early is None or frame.get("type") == "error":
                raise BenchError(f"expected a ready frame first, got {frame!r:.200}")
            early.append(frame)
        raise BenchError("no ready frame among the first 100")
    except BaseException:
        await ws.close()
        raise


async def _settle(tasks: list[asyncio.Task[None]]) -> None:
    """Let stopped senders finish their current send; cancel what still waits after 5 s."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=5.0)
    for task in pending:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(
                r, asyncio.CancelledError | ConnectionClosed):
            log.warning("a sender failed: %r", r)


async def _until(done: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True

