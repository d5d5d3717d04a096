"""A deadline for a connection's first request: a client that connects and says nothing,
or sends its request headers a byte at a time, is cut off instead of holding a socket.

Authentication happens in the WebSocket handshake (a header or a subprotocol), so this
is also the authentication deadline: no unauthenticated socket outlives it.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class DeadlineHttpProtocol(HttpToolsProtocol):
    deadline_s = 10.0  # set from DUET_HANDSHAKE_TIMEOUT_S before the server starts

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = self.loop.call_later(
            self.deadline_s, self._expire)

    def on_headers_complete(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()
