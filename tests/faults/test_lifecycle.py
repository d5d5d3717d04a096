"""Gateway shutdown: SIGTERM closes sockets with 1012 within a deadline, nothing acked lost."""

from __future__ import annotations

import asyncio
import signal
import time

import pymongo
import pytest
from reliability import record
from support import Stack, friends, open_socket, stream, wait_stored
from websockets.exceptions import ConnectionClosed

from contracts import room_id


async def test_gateway_sigterm_closes_sockets_1012_and_loses_nothing(
        stack: Stack, mongo: pymongo.MongoClient) -> None:
    """SIGTERM during a stream: sockets are closed with 1012 within the deadline, the
    process exits, and every acked message is stored."""
    stack.persister()
    gw, other = stack.gateway(), stack.gateway()
    a, b = await friends(gw)
    room = room_id(a.user_id, b.user_id)
    async with open_socket(gw, b, a) as sb, open_socket(gw, a, b) as sa:
        sender = asyncio.create_task(stream(sa, a, b, [f"t{i}" for i in range(3000)]))
        await sb.collect("message", 100)  # the stream is flowing
        t0 = time.monotonic()
        # SIGTERM by PID, reaped in a thread: the loop keeps reading both sockets meanwhile.
        await asyncio.to_thread(gw.kill, signal.SIGTERM, 15)
        exited_s = time.monotonic() - t0
        result = await sender
        with pytest.raises(ConnectionClosed):
            while True:
                await sb.recv(15)
    assert sa.ws.close_code == 1012 and sb.ws.close_code == 1012
    assert exited_s < 10  # docs/operations.md: exits within 10 s
    assert result.unanswered, "the stream should have been cut by the shutdown"
    stored = await wait_stored(mongo, stack.db_name, room, len(result.acked))
    assert set(result.acked) <= set(stored)
    async with open_socket(other, a, b) as again:  # clients move to another replica
        assert (await stream(again, a, b, ["after"])).acked == ["after"]
    record("test_gateway_sigterm_closes_sockets_1012_and_loses_nothing",
           "SIGTERM to a gateway during a stream",
           "sockets closed with 1012; the process exited; every acked message stored; "
           "the client continued on another gateway", acked=len(result.acked),
           unanswered=len(result.unanswered), exited_in_s=round(exited_s, 2),
           close_code=sa.ws.close_code)
