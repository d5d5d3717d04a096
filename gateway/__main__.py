"""`python -m gateway`: parse settings, run uvicorn."""

from __future__ import annotations

import sys

import uvicorn

from service.crash import exit_status, stop_with
from service.logs import configure
from service.runtime import tune_gc

from .app import create_app
from .handshake import DeadlineHttpProtocol
from .settings import GatewaySettings
from .wsprotocol import LeanWebSocketProtocol


def main() -> None:
    settings = GatewaySettings()
    configure(settings.log_level, settings.log_format)
    DeadlineHttpProtocol.deadline_s = settings.handshake_timeout_s
    app = create_app(settings)
    tune_gc()
    config = uvicorn.Config(
        app,
        http=DeadlineHttpProtocol,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        ws=LeanWebSocketProtocol if settings.ws_impl == "websockets-sansio" else settings.ws_impl,
        ws_max_size=settings.max_frame_bytes,
        # Ciphertext does not compress; deflate would only cost CPU and memory per socket.
        ws_per_message_deflate=False,
        log_level=settings.log_level.lower(),
        log_config=None,  # our handlers (service.logs) format uvicorn's lines too
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    stop_with(lambda: setattr(server, "should_exit", True))
    server.run()
    sys.exit(exit_status())


if __name__ == "__main__":
    main()
