"""A connection that says nothing, or dribbles its headers, is cut off at the deadline."""

from __future__ import annotations

import asyncio
import time

from support import Stack, befriend, envelope, friends, open_socket, signup  # noqa: F401


async def silent_for(port: int, first: bytes) -> float:
    """Seconds until the gateway closes a connection that sent only `first`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    writer.write(first)
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(1024), 20)
    finally:
        writer.close()
    assert data == b"", data[:80]
    return time.monotonic() - t0


async def test_silent_and_slow_handshakes_closed_at_deadline(stack: Stack) -> None:
    """With DUET_HANDSHAKE_TIMEOUT_S=2: a silent connection and one that stops mid-headers
    are closed after about 2 s, while normal requests and sockets work."""
    gw = stack.gateway(DUET_HANDSHAKE_TIMEOUT_S="2")
    silent = await silent_for(gw.port, b"")
    partial = await silent_for(gw.port, b"GET /ws/x HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    # Closed at the deadline (docs/configuration.md), give or take the loop's scheduling.
    assert 1.9 < silent < 2.5 and 1.9 < partial < 2.5, (silent, partial)
    a, b = await friends(gw)
    async with open_socket(gw, a, b) as sa:
        await asyncio.sleep(3)  # the point: an open socket is past the deadline, stays up
        await sa.send({"type": "send", "id": "late", "kind": "text", "body": envelope(a, b)})
        assert (await sa.recv_type("ack"))["id"] == "late"
