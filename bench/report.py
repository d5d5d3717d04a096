"""bench/results/latest.json (everything measured) and latest.md (the tables)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

PROCS = ("gateway-0", "gateway-1", "persister", "sio-0", "sio-1", "broker", "mongod", "relay",
         "loadgen", "softirq", "other")


def write(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "latest.json", out_dir / "latest.md"
    js.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    md.write_text(markdown(results))
    return js, md


def _socket_label(protocol: int | str) -> str:
    return protocol if isinstance(protocol, str) else f"v{protocol}"


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        return "–" if v is None else str(v)

    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _lat(r: dict[str, Any]) -> list[object]:
    lat = r.get("latency", {})
    return [lat.get("p50_ms"), lat.get("p95_ms"), lat.get("p99_ms"), lat.get("max_ms")]


def _checks(r: dict[str, Any]) -> str:
    bad = [f"{r[k]} {k}" for k in ("lost", "unacked", "duplicates", "duplicate_acks", "reordered",
                                    "misattributed", "unknown", "errors") if r.get(k)]
    if r.get("frames_before_ready"):
        bad.append(f"{r['frames_before_ready']} frames before ready")
    if r.get("closed_early"):
        bad.append(f"closed: {r['closed_early'][0]}")
    return "ok" if not bad else ", ".join(bad)


def _cpu_cells(r: dict[str, Any], procs: Sequence[str]) -> list[object]:
    cpu, per = r.get("cpu_s", {}), r.get("cpu_us_per_msg", {})
    return [f"{cpu[p]:.2f} s ({per.get(p, '–')})" if p in cpu else None for p in procs]


def _present(runs: Sequence[dict[str, Any]]) -> list[str]:
    return [p for p in PROCS if any(p in r.get("cpu_s", {}) for r in runs)]


def _machine(m: dict[str, Any]) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in m.get("libraries", {}).items())
    return (f"**Machine:** {m.get('cpu')}, {m.get('cores')} cores, {m.get('ram_gib')} GiB RAM; "
            f"{m.get('os')}; Python {m.get('python')}; RabbitMQ {m.get('rabbitmq')}; "
            f"mongod {m.get('mongod')}.  \n**Libraries:** {libs}.")


def _disturbed(res: dict[str, Any], threshold: float = 0.2) -> str | None:
    """A warning when other programs used more than `threshold` cores during a measurement."""
    spans: list[tuple[str, dict[str, float], float]] = []
    for r in res.get("throughput") or []:
        spans.append((f"(a) {r['pairs']} pairs", r["cpu_s"], r["duration_s"]))
    for r in res.get("latency") or []:
        spans.append((f"(b) {r['load']}", r["cpu_s"], r["duration_s"]))
    for r in res.get("relay") or []:
        spans.append((f"(e) {r['pairs']} pairs", r["cpu_s"], r["duration_s"]))
    for r in res.get("socketio") or []:
        spans.append((f"(f) {r['pairs']} pairs", r["cpu_s"], r["duration_s"]))
    if idle := res.get("idle"):
        spans.append(("(c) connect", idle["connect_cpu_s"], idle["connect_s"]))
        spans.append(("(c) idle", idle["idle_cpu_s"], idle["idle_s"]))
    if d := res.get("drain"):
        spans.append(("(d) drain", d["cpu_s"], d["drain_s"]))
    busy = [f"{label} {cpu.get('other', 0.0) / seconds:.2f}" for label, cpu, seconds in spans
            if seconds > 0 and cpu.get("other", 0.0) / seconds > threshold]
    if not busy:
        return None
    return ("**Warning:** other programs on this machine used CPU during some measurements "
            "(cores, on average): " + ", ".join(busy) + ". Those figures are understated.")


def markdown(res: dict[str, Any]) -> str:
    plan, setup = res.get("plan", {}), res.get("setup", {})
    out = [f"# duet benchmark ({plan.get('name')}), {res.get('started')}", "",
           _machine(res.get("machine", {})), "",
           f"**Setup:** {setup.get('description', '')}", ""]
    if warning := _disturbed(res):
        out += [warning, ""]

    if runs := [*(res.get("throughput") or []), *(res.get("throughput_v2") or [])]:
        procs = _present(runs)
        out += ["## (a) Throughput: closed loop, persister on", "",
                f"Both members of each pair send, {plan.get('window')} messages in flight per "
                f"sender; {plan.get('duration_s')} s measured after {plan.get('warmup_s')} s "
                "warm-up. Latency: send → peer receives. Socket: v1 `/ws/{peer}` (one per "
                "conversation) or v2 `/ws` (the device socket), the same users.", "",
                _table(["socket", "pairs", "delivered msg/s", "p50 ms", "p95 ms", "p99 ms",
                        "max ms", "stored/acked", "checks", "server CPU µs/msg",
                        "msgs per publish", "frames per write"],
                       [[f"v{r.get('protocol', 1)}", r["pairs"], r["delivered_msgs_s"],
                         *_lat(r), f"{r['stored']}/{r['acked']}", _checks(r),
                         r.get("cpu_us_per_msg_servers"), r.get("messages_per_publish"),
                         r.get("frames_per_write")]
                        for r in runs]), "",
                "CPU seconds in the window (µs per delivered message):", "",
                _table(["socket", "pairs", *procs],
                       [[f"v{r.get('protocol', 1)}", r["pairs"], *_cpu_cells(r, procs)]
                        for r in runs]),
                ""]
    if runs := res.get("latency"):
        procs = _present(runs)
        out += ["## (b) Latency: open loop at fractions of (a)'s best and at fixed rates", "",
                "Latency from each message's scheduled send time (no coordinated omission).", "",
                _table(["load", "offered msg/s", "sent msg/s", "delivered msg/s", "p50 ms",
                        "p95 ms", "p99 ms", "max ms", "checks", "server CPU µs/msg",
                        "msgs per publish", "frames per write"],
                       [[r["load"], r["offered_msgs_s"], r["sent_msgs_s"],
                         r["delivered_msgs_s"], *_lat(r), _checks(r),
                         r.get("cpu_us_per_msg_servers"), r.get("messages_per_publish"),
                         r.get("frames_per_write")]
                        for r in runs]), "",
                _table(["load", *procs], [[r["load"], *_cpu_cells(r, procs)] for r in runs]),
                ""]
    if runs := res.get("relay"):
        procs = _present(runs)
        out += ["## (e) Reference ceiling: bare websockets relay, same load generator", "",
                "No broker, no storage, no acks: a message leaves flight when delivered.", "",
                _table(["pairs", "delivered msg/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
                        "checks", *procs],
                       [[r["pairs"], r["delivered_msgs_s"], *_lat(r), _checks(r),
                         *_cpu_cells(r, procs)] for r in runs]), ""]
    if runs := res.get("latency_series"):
        out += ["## (b) series: the fixed rates, run after run", "",
                "`--series`: each fixed rate of (b) in turn, the whole set repeated; "
                "latency from each message's scheduled send time.", "",
                _table(["run", "load", "delivered msg/s", "p50 ms", "p95 ms", "p99 ms",
                        "max ms", "checks", "server CPU µs/msg"],
                       [[r["run"], r["load"], r["delivered_msgs_s"], *_lat(r), _checks(r),
                         r.get("cpu_us_per_msg_servers")] for r in runs]), ""]
    if runs := res.get("signals"):
        out += ["## (g) Receipts, read positions and typing on device sockets", "",
                "(a) on v2 sockets in alternating rounds: no signals; `paced`, as the SDK "
                "sends them (per room, a `read` frame and a receipt for the newest message "
                "0.3 s after a burst); `eager` (a `read` and a receipt as soon as the previous "
                "receipt is acked); with both, every socket sends a typing signal each second "
                "(the most the gateway takes). Receipts are stored and audited like messages. "
                "Median round; cost = rate lost, and server CPU per chat message added, "
                "against no signals.", "",
                _table(["pairs", "signals", "delivered msg/s (rounds)", "rate cost", "p50 ms",
                        "p99 ms", "server CPU µs/msg", "CPU cost", "receipts sent/received",
                        "typing sent/received", "checks"],
                       [[r["pairs"], r["signals"],
                         f"{r['median_msgs_s']} ({', '.join(str(x) for x in r['rates'])})",
                         _percent(r.get("rate_cost")), r["latency"].get("p50_ms"),
                         r["latency"].get("p99_ms"), r["median_cpu_us_per_msg"],
                         _percent(r.get("cpu_cost")),
                         f"{r.get('receipts_sent', 0)}/{r.get('receipts_received', 0)}",
                         f"{r.get('typing_sent', 0)}/{r.get('typing_received', 0)}",
                         _checks(r)] for r in runs]), ""]
    if runs := res.get("socketio"):
        procs = _present(runs)
        ours = {r["pairs"]: r for r in res.get("throughput") or []}
        out += ["## (f) Reference: python-socketio over RabbitMQ, same load generator", "",
                "Two `bench.sio_server` processes (python-socketio `AsyncServer` on uvicorn with "
                "`AsyncAioPikaManager`), the same pairs and window as (a); acked once the emit "
                "is published (no confirm, no storage). Server CPU µs/msg: the two servers and "
                "the broker; (a)'s figure, with storage and confirms, beside it.", "",
                _table(["pairs", "delivered msg/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
                        "checks", "server CPU µs/msg", "(a) server CPU µs/msg"],
                       [[r["pairs"], r["delivered_msgs_s"], *_lat(r), _checks(r),
                         r.get("cpu_us_per_msg_servers"),
                         ours.get(r["pairs"], {}).get("cpu_us_per_msg_servers")]
                        for r in runs]), "",
                _table(["pairs", *procs], [[r["pairs"], *_cpu_cells(r, procs)] for r in runs]),
                ""]
    if idles := [i for i in (res.get("idle_relay"), res.get("idle"), res.get("idle_v2"))
                 if i]:
        out += ["## (c) Idle authenticated sockets on one gateway", "",
                "Each on a fresh server: the bare relay (the reference: no check, no broker), "
                "then a gateway with v1 room sockets, then one with v2 device sockets of the "
                "same users.", "",
                _table(["socket", "sockets open", "rooms", "connect rate /s",
                        "connect p50/p99 ms", "gateway RSS MiB before → open → closed",
                        "gateway KiB/socket", "gateway CPU µs/connect",
                        f"idle CPU s over {idles[0]['idle_s']} s", "loadgen KiB/socket"],
                       [[_socket_label(idle.get("protocol", 1)),
                         f"{idle['opened']}/{idle['sockets']}"
                         + (f" ({idle['frames_before_ready']} frames before ready)"
                            if idle.get("frames_before_ready") else ""), idle["rooms"],
                         idle["connect_rate_s"],
                         f"{idle['connect_latency'].get('p50_ms')}/"
                         f"{idle['connect_latency'].get('p99_ms')}",
                         f"{idle['gateway_rss_mib']['before']} → "
                         f"{idle['gateway_rss_mib']['open']} → "
                         f"{idle['gateway_rss_mib']['after_close']}",
                         idle["gateway_kib_per_socket"], idle["gateway_cpu_us_per_connect"],
                         ", ".join(f"{k} {v}" for k, v in idle["idle_cpu_s"].items()),
                         idle["loadgen_kib_per_socket"]] for idle in idles]), ""]
    if d := res.get("drain"):
        ps = d["persister_settings"]
        out += ["## (d) Persister drain", "",
                f"{d['messages']} messages over {d['rooms']} rooms pre-loaded in the persist "
                f"queue ({d['publish_msgs_s']} msg/s published with confirms), then one "
                f"persister (prefetch {ps['prefetch']}, batch {ps['batch_size']}, "
                f"{ps['batch_ms']} ms) started.", "",
                _table(["writer", "docs", "seconds", "docs/s", "CPU s (µs/doc)"],
                       [["persister (first → last doc)", d["stored"], d["drain_s"], d["docs_s"],
                         ", ".join(f"{k} {v:.2f} ({d['cpu_us_per_doc'][k]})"
                                   for k, v in d["cpu_s"].items())],
                        ["persister incl. process start", d["stored"], None,
                         d["docs_s_from_spawn"], None],
                        *[[_drain_label(b), b["stored"], b["drain_s"], b["docs_s"],
                           ", ".join(f"{k} {v:.2f} ({b['cpu_us_per_doc'][k]})"
                                     for k, v in b["cpu_s"].items())]
                          for b in [*d.get("batched", []), *d.get("scaled", [])]],
                        *[[f"raw insert_many, batch {r['batch']}, unordered", r["docs"],
                           r["seconds"], r["docs_s"],
                           ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_s"].items())]
                          for r in d["raw_insert_many"]]]), ""]
    if errors := res.get("failed"):
        out += ["## Scenarios that failed", ""]
        out += [f"- {name}: {msg}" for name, msg in errors.items()] + [""]
    out += [f"Total bench time {res.get('elapsed_s')} s. CPU is user + system seconds per "
            "process; `softirq` is the kernel's interrupt work (where loopback TCP is processed, "
            "so mostly ours, in no process); `other` is every other process's CPU in the same "
            "interval (not ours: a high value means the figures were disturbed). `broker` is "
            "the whole RabbitMQ node's: anything else using that broker meanwhile counts too. "
            "Server CPU µs/msg sums the named services (not the load generator, `softirq` or "
            "`other`).", ""]
    return "\n".join(out)


def _percent(x: float | None) -> str | None:
    return None if x is None else f"{x:+.1%}"


def _drain_label(run: dict[str, Any]) -> str:
    frames, persisters = run["frames_per_message"], run.get("persisters", 1)
    who = "persister" if persisters == 1 else f"{persisters} persisters"
    return f"{who}, {frames} frame{'s' if frames > 1 else ''} per broker message"
