"""A browser behind a relay survives the death of its gateway, losing and doubling nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pymongo
import pytest
from playwright.async_api import Browser, expect
from support import Gateway, Stack, unique_name
from webclient import (
    PASSWORD,
    STORED,
    Inbox,
    Relay,
    accept_friend,
    message,
    open_chat,
    open_tab,
    own_message,
    send_text,
    sign_up,
    texts,
    warnings,
)

from client import Client


@pytest.fixture(scope="module")
def gateways(stack: Stack) -> tuple[Gateway, Gateway]:
    """A persister and two gateways: A (to be killed) and B."""
    stack.persister()
    return stack.gateway(), stack.gateway()


async def test_kill_gateway_reconnects_browser_without_loss_or_duplicates(
        gateways: tuple[Gateway, Gateway], stack: Stack, browser: Browser,
        mongo: pymongo.MongoClient[dict[str, object]], tmp_path: Path) -> None:
    """SIGKILL of the browser's gateway shows "reconnecting…"; once the relay reaches the
    other gateway the conversation resumes with every message exactly once on both ends."""
    gw_a, gw_b = gateways
    async with Relay([gw_a.port]) as relay, \
            Client(gw_b.http, home=tmp_path / "sdk", passphrase="sdk passphrase") as sdk:
        tab = await open_tab(browser, relay.url)
        web_name, sdk_name = unique_name("web"), unique_name("sdk")
        await sign_up(tab, web_name)
        await sdk.register(sdk_name, PASSWORD)
        await sdk.add_friend(web_name)
        await accept_friend(tab, sdk_name)
        await open_chat(tab, sdk_name)

        async with Inbox(sdk, web_name) as inbox:
            await sdk.send_text(web_name, "before 1")
            await expect(message(tab, "before 1")).to_be_visible()
            await send_text(tab, "before 2")
            await inbox.wait_texts("before 2")
            await expect(own_message(tab, "before 2")).to_have_attribute("data-state", STORED)

            # Gateway A dies; while the relay has nowhere to go, the page says so.
            await asyncio.to_thread(gw_a.kill)
            state = tab.locator("#conn-state")
            await expect(state).to_have_attribute("data-state", "lost")
            await expect(state).to_contain_text("reconnecting…")

            # Meanwhile the SDK (on B) writes, and so does the browser (queued, not lost).
            for i in (1, 2, 3):
                await sdk.send_text(web_name, f"during {i}")
            await send_text(tab, "offline 1")
            await expect(own_message(tab, "offline 1")).to_have_attribute("data-state", "pending")
            await asyncio.sleep(1.0)
            await expect(state).to_contain_text("reconnecting…")

            # The relay now reaches gateway B: resume from the last cursor, resend the queue.
            relay.upstreams = [gw_b.port]
            await expect(state).to_have_attribute("data-state", "connected", timeout=30_000)
            await expect(message(tab, "during 3")).to_be_visible()
            await expect(own_message(tab, "offline 1")).to_have_attribute("data-state", STORED)
            await inbox.wait_texts("offline 1")

            await sdk.send_text(web_name, "after 1")
            await expect(message(tab, "after 1")).to_be_visible()
            await send_text(tab, "after 2")
            await inbox.wait_texts("after 2")
            await asyncio.sleep(1.0)  # room for a duplicate to show up, if one were coming

            assert await texts(tab) == ["before 1", "before 2", "during 1", "during 2",
                                        "during 3", "offline 1", "after 1", "after 2"]
            assert [m.text for m in inbox.received] == ["before 2", "offline 1", "after 2"]
            assert inbox.alerts == []

        # A reload (on B) shows the same history, and storage holds each message once.
        await tab.page.reload()
        await expect(message(tab, "after 2")).to_be_visible()
        assert await texts(tab) == ["before 1", "before 2", "during 1", "during 2", "during 3",
                                    "offline 1", "after 1", "after 2"]
        assert await warnings(tab) == []
        assert tab.errors == [] and tab.dialogs == []
    db = mongo[stack.db_name]
    assert db["messages"].count_documents({"kind": {"$in": ["text", "image"]}}) == 8
