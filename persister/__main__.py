"""`python -m persister`: parse settings, consume until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from pymongo import AsyncMongoClient

from broker import Broker

from .service import Persister
from .settings import PersisterSettings
from .store import MessageStore

log = logging.getLogger("persister")


async def serve(settings: PersisterSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongo_url, serverSelectionTimeoutMS=5000)
    try:
        store = MessageStore(mongo[settings.names.database])
        await store.ensure_indexes()
        async with Broker(settings, "persister") as broker:
            await Persister(settings, broker, store).run(stop)
    finally:
        await mongo.close()


def main() -> None:
    settings = PersisterSettings()
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
