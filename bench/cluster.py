"""`python -m bench --cluster`: (a)'s closed loop on one RabbitMQ node and on three.

Each configuration is a fresh stack (bench.stack) of two gateways and one or two
persisters, with 1 or 4 persist partitions (DUET_PERSIST_PARTITIONS), on RabbitMQ nodes
this run starts itself (devstack.cluster: one node, or three clustered, with the same
config; the machine's own broker is not used) and one mongod. The load is (a)'s: device
sockets (v2), 10 pairs, 10 in flight per sender, members of a pair on different gateways.
It writes bench/results/cluster.json and cluster.md: delivered msgs/s, and the CPU per
delivered message of every process (each broker node apart).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.cluster import RabbitCluster

from .accounts import sign_up_pairs
from .loadgen import Load
from .plan import Plan
from .procs import CpuMeter, machine
from .scenarios import placed
from .stack import BenchStack

log = logging.getLogger(__name__)

# (nodes, partitions, persisters)
CONFIGS = [(1, 1, 1), (1, 4, 1), (1, 4, 2), (3, 1, 1), (3, 4, 1), (3, 4, 2)]
PAIRS = 10


async def one(url: str, nodes: int, partitions: int, persisters: int,
              plan: Plan) -> dict[str, Any]:
    env = {"DUET_PERSIST_PARTITIONS": str(partitions)}
    async with BenchStack(amqp_url=url, extra_env=env) as stack:
        started = [await stack.persister(f"persister-{i}") for i in range(persisters)]
        gateways = [await stack.gateway(f"gateway-{i}") for i in range(plan.gateways)]
        pairs = await sign_up_pairs([g.http for g in gateways], PAIRS)
        pids = {c.name: c.pid for c in [*gateways, *started]} | stack.infra_pids()
        pids["loadgen"] = os.getpid()
        async with Load(placed(pairs, [g.ws for g in gateways]), window=plan.window,
                        protocol=2) as load:
            r = await load.closed_loop(warmup_s=plan.warmup_s, duration_s=plan.duration_s,
                                       meter=CpuMeter(pids), drain_s=plan.drain_s,
                                       wait_stored=True)
        r.update(nodes=nodes, partitions=partitions, persisters=persisters, pairs=PAIRS,
                 rabbitmq=stack.versions["rabbitmq"], mongod=stack.versions["mongod"])
        log.info("%s node(s), %s partition(s), %s persister(s): %s msg/s, %s µs/msg servers",
                 nodes, partitions, persisters, r["delivered_msgs_s"],
                 r.get("cpu_us_per_msg_servers"))
        return r


async def run(plan: Plan, out: Path) -> int:
    results: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "plan": plan.as_dict(),
        "runs": []}
    with tempfile.TemporaryDirectory(prefix="duet-bench-cluster-") as tmp:
        for size in sorted({n for n, _, _ in CONFIGS}):
            with RabbitCluster(Path(tmp) / f"rabbit{size}", nodes=size) as rabbit:
                for nodes, partitions, persisters in CONFIGS:
                    if nodes == size:
                        results["runs"].append(await one(rabbit.amqp_url, nodes, partitions,
                                                         persisters, plan))
    rabbitmq = results["runs"][0]["rabbitmq"] if results["runs"] else "?"
    mongod = results["runs"][0]["mongod"] if results["runs"] else "?"
    results["machine"] = machine(rabbitmq, mongod)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster.json").write_text(json.dumps(results, indent=1))
    (out / "cluster.md").write_text(render(results))
    log.info("wrote %s", out / "cluster.md")
    bad = [r for r in results["runs"] if r["lost"] or r["duplicates"] or r["reordered"]]
    return 1 if bad else 0


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Cluster benchmark",
        "",
        f"`python -m bench --cluster`, {results['started']}; {m['cpu']}, {m['cores']} cores, "
        f"RabbitMQ {m['rabbitmq']}, mongod {m['mongod']}, {m['python']}.",
        f"(a)'s closed loop on device sockets: {PAIRS} pairs, "
        f"{results['plan']['window']} in flight per sender, 2 gateways, "
        f"{results['plan']['duration_s']:g} s measured; RabbitMQ nodes started by the run, "
        "one mongod. CPU: µs per delivered (and stored) message, by process.",
        "",
        "| nodes | partitions | persisters | delivered msgs/s | servers µs/msg | gateways | "
        "persisters | broker nodes | mongod | load generator | checks |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        per = r.get("cpu_us_per_msg", {})

        def total(prefix: str, per: dict[str, float] = per) -> str:
            parts = [v for k, v in per.items() if k.startswith(prefix)]
            return f"{sum(parts):.0f}" + (f" ({' + '.join(f'{v:.0f}' for v in parts)})"
                                          if len(parts) > 1 else "")

        checks = f"lost {r['lost']}, dup {r['duplicates']}, reordered {r['reordered']}"
        lines.append(
            f"| {r['nodes']} | {r['partitions']} | {r['persisters']} | "
            f"{r['delivered_msgs_s']:,.0f} | {r.get('cpu_us_per_msg_servers')} | "
            f"{total('gateway')} | {total('persister')} | {total('broker')} | "
            f"{total('mongod')} | {total('loadgen')} | {checks} |")
    return "\n".join(lines) + "\n"
