"""The web client shows a message the broker did not confirm as not sent (`unsent`),
until its sender's resend is confirmed and it comes again (the refusal is real: a full
duet.persist that rejects publishes, support.declare_small_persist_queue)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import Browser, expect
from support import Stack, declare_small_persist_queue, drop_broker_names, purge, unique_name
from webclient import message, open_chat, open_tab, sdk_friend

from contracts import Names


async def test_a_refused_message_shows_as_not_sent_until_it_comes_again(
        amqp_url: str, mongo_url: str, browser: Browser, tmp_path: Path) -> None:
    stack = Stack(amqp_url, mongo_url, tmp_path / "logs")
    names = Names(prefix=stack.prefix)
    await declare_small_persist_queue(amqp_url, names)
    try:
        gw = stack.gateway(DUET_DECLARE_TOPOLOGY="false")
        tab = await open_tab(browser, gw.http)
        web_name, sdk_name = unique_name("wu"), unique_name("su")
        async with sdk_friend(tab, gw.http, tmp_path / "sdk", web_name, sdk_name,
                              "unsent pass") as sdk:
            await open_chat(tab, sdk_name)
            sending = asyncio.create_task(sdk.send_text(web_name, "refused by the broker"))
            shown = message(tab, "refused by the broker")
            await expect(shown).to_have_class("msg theirs unsent", timeout=15_000)
            assert not sending.done()
            await purge(amqp_url, names.persist_queue)
            await asyncio.wait_for(sending, 30)
            await expect(shown).to_have_class("msg theirs", timeout=15_000)
            await expect(shown).to_have_count(1)
        assert tab.errors == []
    finally:
        stack.stop()
        await asyncio.to_thread(drop_broker_names, stack)
