"""Readiness follows the broker and MongoDB; metrics move by the right amounts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from support import (
    Stack,
    befriend,
    drop_broker_names,
    eventually,
    friends,
    open_socket,
    signup,
    stream,
)

from devstack.mongo import Mongod
from devstack.ports import free_port, port_answers

PROXY = Path(__file__).resolve().parents[1] / "tcp_proxy.py"


async def start_proxy(port: int, target: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(PROXY), str(port), str(target)])
    await eventually(lambda: asyncio.to_thread(port_answers, "127.0.0.1", port, 0.2), 10,
                     "the TCP proxy listening")
    return proc


async def readiness(urls: list[str]) -> list[int]:
    async with httpx.AsyncClient(timeout=5) as http:
        return [(await http.get(f"{u}/readyz")).status_code for u in urls]


async def wait_for(urls: list[str], status: int, within: float) -> float:
    """Seconds until every URL's /readyz answers `status`; fails after `within`."""
    t0 = time.monotonic()

    async def answers() -> bool:
        return await readiness(urls) == [status] * len(urls)

    await eventually(answers, within, f"/readyz {status}", 0.2)
    return time.monotonic() - t0


@pytest.mark.mongod  # starts its own, to stop it
async def test_readyz_follows_broker_and_mongod(amqp_url: str, tmp_path: Path) -> None:
    """Broker unreachable, then mongod stopped: gateway and persister turn unready within
    5 s and ready again once each returns."""
    rabbit_port = urlparse(amqp_url).port or 5672
    proxy_port, mongo_port = free_port(), free_port()
    proxy = await start_proxy(proxy_port, rabbit_port)
    mongod = Mongod(tmp_path / "db", mongo_port).start()
    via_proxy = amqp_url.replace(f":{rabbit_port}/", f":{proxy_port}/")
    stack = Stack(via_proxy, mongod.url, tmp_path)
    try:
        persister = stack.persister()
        gw = stack.gateway()
        urls = [gw.http, persister.http]
        await wait_for(urls, 200, 10)
        proxy.kill()
        proxy.wait()
        down_broker = await wait_for(urls, 503, 5)
        proxy = await start_proxy(proxy_port, rabbit_port)
        up_broker = await wait_for(urls, 200, 30)
        await asyncio.to_thread(mongod.stop)
        down_mongo = await wait_for(urls, 503, 5)
        mongod = Mongod(tmp_path / "db", mongo_port).start()
        up_mongo = await wait_for(urls, 200, 30)
        # And it still works end to end.
        a, b = await friends(gw)
        async with open_socket(gw, a, b) as sa:
            assert (await stream(sa, a, b, ["after"])).acked == ["after"]
        print(f"unready after {down_broker:.1f}/{down_mongo:.1f} s, "
              f"ready after {up_broker:.1f}/{up_mongo:.1f} s")
    finally:
        stack.stop()
        proxy.kill()
        mongod.stop()
        await asyncio.to_thread(drop_broker_names, Stack(amqp_url, "", tmp_path,
                                                         prefix=stack.prefix))


def metric(text: str, name: str, **labels: str) -> float:
    want = "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
    for line in text.splitlines():
        if line.startswith(name + want + " "):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture(scope="module")
def pair_stack(stack: Stack):  # type: ignore[no-untyped-def]
    return stack.persister(), stack.gateway()


async def test_metrics_move_by_the_right_amounts(pair_stack) -> None:  # type: ignore[no-untyped-def]
    """After 10 sends, one bad frame and one refused socket, the counters moved by exactly
    those amounts, and the persister counted 10 stored messages."""
    persister, gw = pair_stack
    async with httpx.AsyncClient() as http:
        a, b, c = [await signup(http, gw.http) for _ in range(3)]
        await befriend(http, gw.http, a, b)
        before = (await http.get(f"{gw.http}/metrics")).text
        p_before = (await http.get(f"{persister.http}/metrics")).text
        async with open_socket(gw, b, a) as sb, open_socket(gw, a, b) as sa:
            open_now = metric((await http.get(f"{gw.http}/metrics")).text,
                              "duet_gateway_sockets_open")
            assert open_now == metric(before, "duet_gateway_sockets_open") + 2
            assert metric((await http.get(f"{gw.http}/metrics")).text,
                          "duet_gateway_users_bound") == 2
            result = await stream(sa, a, b, [f"m{i}" for i in range(10)])
            await sa.send("{oops")
            await sa.recv_type("error")
            await sb.collect("message", 10)

            async def stored_receipts() -> bool:  # they follow the batch write
                now = (await http.get(f"{gw.http}/metrics")).text
                kind = "duet_gateway_frames_out_total"
                return metric(now, kind, type="stored") - metric(before, kind, type="stored") >= 10

            await eventually(stored_receipts, 10, "10 stored receipts", 0.1)
        async with open_socket(gw, a, c, ready=False) as refused:
            with pytest.raises(Exception):  # noqa: B017 - closed with 4403
                await refused.recv(5)

        async def closed() -> str | None:  # a closed socket leaves the hub (unbinds) first
            now = (await http.get(f"{gw.http}/metrics")).text
            gauge = "duet_gateway_sockets_open"
            return now if metric(now, gauge) == metric(before, gauge) else None

        after = await eventually(closed, 10, "sockets no longer counted open")
        p_after = (await http.get(f"{persister.http}/metrics")).text
    assert result.acked == [f"m{i}" for i in range(10)]

    def moved(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert moved("duet_gateway_frames_in_total", type="send") == 10
    assert moved("duet_gateway_frames_in_total", type="other") == 1
    assert moved("duet_gateway_frames_out_total", type="ack") == 10
    assert moved("duet_gateway_frames_out_total", type="message") == 10
    assert moved("duet_gateway_frames_out_total", type="stored") == 10
    assert moved("duet_gateway_errors_total", code="bad_json") == 1
    assert moved("duet_gateway_errors_total", code="4403") == 1
    assert moved("duet_gateway_publish_confirm_seconds_count") == 10
    assert metric(after, "duet_gateway_sockets_open") == metric(before,
                                                                "duet_gateway_sockets_open")
    assert (metric(p_after, "duet_persister_stored_total")
            - metric(p_before, "duet_persister_stored_total")) == 10
    assert metric(p_after, "duet_persister_batch_size_count") > metric(
        p_before, "duet_persister_batch_size_count")
