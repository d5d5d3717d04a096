"""uvicorn's websockets-sansio protocol, trimmed for many idle sockets, and writing
several frames with one system call.

Two things it keeps per socket that an idle socket does not need (measured with
tracemalloc; together ~5 KiB of the ~28 KiB a socket cost):

- the upgrade request and the 101 response, with all their headers, for the connection's
  whole life (uvicorn, and a local in websockets' parser): emptied once accepted;
- an asyncio.Queue for the frames the app has not read yet: three deques and an Event
  (four more). `Inbox` is what the protocol uses of it, a list and one waiting future.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState


class Inbox:
    """put_nowait / get / empty for one reader (the ASGI app's receive)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []  # short: uvicorn pauses reading until it is drained
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Read only while accepting (the ASGI scope has its own copy of the headers).
            # websockets' parser keeps the request in a local for the connection's life,
            # so empty the headers rather than only dropping our references.
            for handshake in (self.request, self.response):
                if handshake is not None:
                    handshake.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]

    async def send_texts(self, texts: list[str]) -> None:
        """Text frames, in order, in one transport write: uvicorn's `websocket.send` makes
        a write (a system call on uvloop) per frame, and a busy socket is sent frames in
        bursts (a batch's messages, a window's acks). As `send` for one frame."""
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if not self.handshake_complete or self.close_sent or self.initial_response is not None:
            raise RuntimeError("text frames are sent only on an accepted, open socket")
        try:
            for text in texts:
                self.conn.send_text(text.encode())
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(self.conn.data_to_send()))


TextWriter = Callable[[list[str]], Awaitable[None]]


def text_writer(ws: WebSocket) -> TextWriter | None:
    """The protocol's `send_texts` under this socket, when it runs on ours (the ASGI send
    callable is the protocol's bound method); None elsewhere (a test client)."""
    protocol = getattr(getattr(ws, "_send", None), "__self__", None)
    return protocol.send_texts if isinstance(protocol, LeanWebSocketProtocol) else None
