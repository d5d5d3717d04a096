"""Group commit for MongoDB work asked by many sockets at once.

On this machine a MongoDB command costs the gateway ~300 µs of CPU whatever it carries
(most of it the loopback write), so work that many sockets ask for at about the same time
(read positions, the presence snapshot of a connect) goes as one command for all of them.
A `Batcher` runs one flush at a time: what is submitted while it runs waits and goes with
the next, so a lone request is flushed at once and a busy gateway pays per batch, not per
request. Requests for the same key within one batch merge into one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
A = TypeVar("A")
R = TypeVar("R")


def first(a: A, _: A) -> A:
    """A merge for requests that carry nothing but their key."""
    return a


class Batcher(Generic[K, A, R]):
    def __init__(self, flush: Callable[[dict[K, A]], Awaitable[dict[K, R]]],
                 merge: Callable[[A, A], A], max_batch: int) -> None:
        """`flush` answers every key of a batch (a missing key fails its callers with
        KeyError); `merge` folds a key's second request into its first."""
        self._flush, self._merge, self._max = flush, merge, max_batch
        self._queued: dict[K, tuple[A, list[asyncio.Future[R]]]] = {}
        self._flusher: asyncio.Task[None] | None = None

    def submit(self, key: K, arg: A) -> asyncio.Future[R]:
        """A future done once the batch that takes this request is flushed (or failed)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        queued = self._queued.get(key)
        if queued is None:
            self._queued[key] = (arg, [future])
        else:
            self._queued[key] = (self._merge(queued[0], arg), [*queued[1], future])
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._run())
        return future

    async def close(self) -> None:
        """Stop flushing; whoever still waits is cancelled."""
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        for _, waiting in self._queued.values():
            for future in waiting:
                future.cancel()
        self._queued.clear()

    async def _run(self) -> None:
        while self._queued:
            keys = list(self._queued)[:self._max]
            batch = {key: self._queued.pop(key) for key in keys}
            try:
                results = await self._flush({key: arg for key, (arg, _) in batch.items()})
            except asyncio.CancelledError:
                for _, waiting in batch.values():
                    for future in waiting:
                        future.cancel()
                raise
            except Exception as exc:  # every caller hears it; the next batch still goes
                for _, waiting in batch.values():
                    for future in waiting:
                        if not future.done():
                            future.set_exception(exc)
                continue
            for key, (_, waiting) in batch.items():
                for future in waiting:
                    if future.done():
                        continue
                    if key in results:
                        future.set_result(results[key])
                    else:
                        future.set_exception(KeyError(key))
