"""`python -m persister`: parse settings, consume until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

import uvicorn
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from broker import Broker
from service.crash import exit_status, stop_with
from service.logs import configure
from service.runtime import tune_gc

from .health import health_app, health_server
from .metrics import PersisterMetrics
from .service import Persister
from .settings import PersisterSettings
from .store import MessageStore

log = logging.getLogger("persister")


async def _serve_health(server: uvicorn.Server, port: int) -> None:
    """Run the health port; if it cannot bind, say so and keep persisting without it."""
    try:
        await server.serve()
    except SystemExit:  # uvicorn exits when the port is taken
        log.error("health port %s unavailable: running without /healthz, /readyz, /metrics",
                  port)


async def serve(settings: PersisterSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stop_with(stop.set)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongo_url, serverSelectionTimeoutMS=5000)
    metrics = PersisterMetrics()
    db = mongo[settings.names.database]
    server = None
    try:
        store = MessageStore(db)
        await store.ensure_indexes()
        async with Broker(settings, "persister") as broker:
            persister = Persister(settings, broker, store, metrics)

            async def readiness() -> dict[str, bool]:
                checks = {"broker": broker.ready,
                          "consuming": persister.consuming, "mongo": True}
                try:
                    await asyncio.wait_for(db.command("ping"), 1.5)
                except (PyMongoError, TimeoutError):
                    checks["mongo"] = False
                return checks

            if settings.health_port:
                server = health_server(health_app(metrics, readiness), settings.health_host,
                                       settings.health_port)
                serving = asyncio.create_task(_serve_health(server, settings.health_port))
            await persister.run(stop)
    finally:
        if server is not None:
            server.should_exit = True
            await asyncio.gather(serving, return_exceptions=True)
        await mongo.close()


def main() -> None:
    settings = PersisterSettings()
    configure(settings.log_level, settings.log_format)
    tune_gc()
    try:
        import uvloop  # the gateway runs on it too (uvicorn picks it when installed)
    except ImportError:
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))
    sys.exit(exit_status())


if __name__ == "__main__":
    main()
