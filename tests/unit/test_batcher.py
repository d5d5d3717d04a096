"""gateway.batcher: what is submitted while a flush runs goes with the next flush, a key
asked twice in a batch is asked once, and a failed flush fails its callers only."""

from __future__ import annotations

import asyncio

import pytest

from gateway.batcher import Batcher


async def test_requests_during_a_flush_go_together_and_a_failure_stays_in_its_batch() -> None:
    batches: list[dict[str, int]] = []
    release = asyncio.Event()

    async def flush(batch: dict[str, int]) -> dict[str, int]:
        batches.append(batch)
        if len(batches) == 1:
            await release.wait()  # the first flush is slow: the rest queue behind it
        if "bad" in batch:
            raise RuntimeError("storage said no")
        return {k: v * 10 for k, v in batch.items() if k != "lost"}

    batcher: Batcher[str, int, int] = Batcher(flush, max, max_batch=3)
    first = batcher.submit("a", 1)
    await asyncio.sleep(0)  # the first flush starts alone
    queued = [batcher.submit("b", 2), batcher.submit("b", 5), batcher.submit("c", 3),
              batcher.submit("lost", 4), batcher.submit("bad", 1)]
    release.set()
    assert await first == 10
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert batches == [{"a": 1}, {"b": 5, "c": 3, "lost": 4}, {"bad": 1}]
    assert results[:3] == [50, 50, 30]
    assert isinstance(results[3], KeyError) and isinstance(results[4], RuntimeError)
    assert await batcher.submit("d", 7) == 70  # the flusher goes on after a failure
    await batcher.close()


async def test_close_cancels_the_flush_and_what_waits() -> None:
    started = asyncio.Event()

    async def flush(batch: dict[str, int]) -> dict[str, int]:
        started.set()
        await asyncio.Event().wait()
        return batch

    batcher: Batcher[str, int, int] = Batcher(flush, max, max_batch=10)
    flushing = batcher.submit("a", 1)
    await started.wait()
    queued = batcher.submit("b", 2)
    await batcher.close()
    for future in (flushing, queued):  # whoever waited hears it, nobody hangs
        with pytest.raises(asyncio.CancelledError):
            await future
