"""Idle authenticated sockets stay small on the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from typing import Any

import pytest
from support import Gateway, Stack, User, friends, open_device, open_socket, proc_rss_kib

SOCKETS = 2000


def opener(protocol: int) -> Any:
    def v1(gw: Gateway, user: User, peer: User) -> Any:
        return open_socket(gw, user, peer)

    def v2(gw: Gateway, user: User, peer: User) -> Any:
        return open_device(gw, user)

    return v1 if protocol == 1 else v2


@pytest.mark.parametrize("protocol", [1, 2])
async def test_idle_authenticated_sockets_cost_under_24_kib_each(stack: Stack,
                                                                  protocol: int) -> None:
    """2,000 idle authenticated sockets on a fresh gateway, room sockets (v1) or device
    sockets (v2), grow its RSS by < 24 KiB each (the benchmark's 10,000 measure ~18 KiB
    for either; the gateway before the trim took ~46)."""
    open_one = opener(protocol)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the gateway inherits it
    gw = stack.gateway(DUET_MAX_CONNECTIONS_PER_IP=str(SOCKETS + 100))
    a, b = await friends(gw)
    async with contextlib.AsyncExitStack() as sockets:
        # Warm up: the first sockets allocate the room, pools and caches.
        for _ in range(20):
            await sockets.enter_async_context(open_one(gw, a, b))
        await asyncio.sleep(0.5)
        before = proc_rss_kib(gw.pid)
        gate = asyncio.Semaphore(50)

        async def one(n: int) -> None:
            async with gate:
                user, peer = (a, b) if n % 2 else (b, a)
                await sockets.enter_async_context(open_one(gw, user, peer))

        await asyncio.gather(*(one(n) for n in range(SOCKETS)))
        await asyncio.sleep(1.0)
        per_socket = (proc_rss_kib(gw.pid) - before) / SOCKETS
    print(f"v{protocol}: {per_socket:.1f} KiB per idle socket")
    assert per_socket < 24, f"{per_socket:.1f} KiB per idle socket"
