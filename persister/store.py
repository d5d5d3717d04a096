"""Writing message documents: batched, unordered, idempotent."""

from __future__ import annotations

import logging
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from contracts import MESSAGES
from contracts.documents import MESSAGE_INDEXES

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000


class MessageStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._messages = db[MESSAGES]
        self._db = db

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        return self._db

    async def ensure_indexes(self) -> None:
        for collection, keys, options in MESSAGE_INDEXES:
            await self._db[collection].create_index(keys, **options)

    async def insert(self, docs: list[dict[str, Any]]) -> set[int]:
        """Insert docs; return the indexes of those MongoDB refused for good.

        A document already there (same _id: a re-delivery or a retried send) counts as
        written. Connection failures raise, so the caller can retry the whole batch.
        """
        try:
            await self._messages.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            refused = {e["index"] for e in exc.details.get("writeErrors", [])
                       if e.get("code") != DUPLICATE_KEY}
            if exc.details.get("writeConcernErrors"):
                raise
            return refused
        return set()
