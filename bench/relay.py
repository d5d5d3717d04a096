"""The reference ceiling: a bare `websockets` relay, no broker, no storage, no checks.

    python -m bench.relay --port 8765

It speaks just enough of the v1 socket for the load generator: `GET /ws/{peer_id}` with
`Authorization: Bearer <user id>` (any id is trusted), a `ready` frame first, then every
text frame from one member of a pair is forwarded verbatim to the other member's sockets.
`GET /readyz` answers 200. SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

NOT_AUTHENTICATED = 4401


def _bearer(headers: Headers) -> str | None:
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class Relay:
    """Sockets by (user, peer); a frame from (u, p) goes to every socket of (p, u)."""

    def __init__(self) -> None:
        self._sockets: dict[tuple[str, str], set[ServerConnection]] = {}

    async def handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        user = _bearer(ws.request.headers)
        peer = ws.request.path.rsplit("/", 1)[-1]
        if user is None or not peer or peer == user:
            await ws.close(NOT_AUTHENTICATED, "missing token")
            return
        key = (user, peer)
        self._sockets.setdefault(key, set()).add(ws)
        try:
            await ws.send(orjson.dumps({"type": "ready", "user": user, "peer": peer}).decode())
            async for text in ws:
                for other in tuple(self._sockets.get((peer, user), ())):
                    with contextlib.suppress(ConnectionClosed):
                        await other.send(text)
        finally:
            members = self._sockets.get(key)
            if members is not None:
                members.discard(ws)
                if not members:
                    del self._sockets[key]


def _health(conn: ServerConnection, request: Request) -> Response | None:
    if request.path == "/readyz":
        return conn.respond(200, "ok\n")
    return None


async def run(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    relay = Relay()
    # Like the gateway: no per-message deflate (ciphertext does not compress).
    async with serve(relay.handle, host, port, compression=None, max_size=8 * 1024 * 1024,
                     process_request=_health):
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(args.host, args.port))
    else:  # the gateway runs on uvloop too (uvicorn picks it when installed)
        uvloop.run(run(args.host, args.port))


if __name__ == "__main__":
    main()
