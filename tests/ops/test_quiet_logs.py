"""Quiet, honest output: an idle stack logs nothing over and over, and nothing ordinary
is labelled an error (the URL `make run` prints stays visible)."""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson
from support import Stack


async def test_an_idle_stack_repeats_no_log_line(stack: Stack) -> None:
    persister = stack.persister()
    gw = stack.gateway()
    # The point is time passing idle: two periods of anything that ran every 5 s.
    await asyncio.sleep(11)
    for svc in (gw, persister):
        lines = [orjson.loads(x) for x in svc.log().splitlines() if x.startswith("{")]
        assert lines, f"{svc.name} logged nothing"
        repeated = {m: n for m, n in Counter(x["msg"] for x in lines).items() if n > 1}
        assert repeated == {}, f"{svc.name} repeats: {repeated}"
        assert not [x for x in lines if x["logger"] == "uvicorn.error"]
        assert not [x for x in lines if x["level"] in ("ERROR", "CRITICAL")]
