"""A browser added to an account later sees the history it was never given a key for (its
approving device shared none) as one explained line, not a warning per message."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser, expect
from support import Gateway, conversation_before, unique_name
from webclient import (
    PASSWORD,
    approve_browser,
    conversation_item,
    log_in,
    message,
    open_chat,
    open_tab,
    warnings,
)

from client import Client

PASS = "sdk passphrase"
LINE = "{} earlier messages were sent before this device was added and cannot be read here"


async def test_open_conversation_second_browser_one_line_for_earlier_messages(
        gw: Gateway, browser: Browser, tmp_path: Path) -> None:
    """Alice's second device, a browser her SDK device approves without sharing the history,
    opens a conversation of N messages sent before it existed: one quiet line names N, no
    warning; Bob's next message reads."""
    na, nb, n = unique_name("ua"), unique_name("ub"), 5
    async with Client(gw.http, home=tmp_path / "a", passphrase=PASS) as a, \
            Client(gw.http, home=tmp_path / "b", passphrase=PASS) as b:
        await conversation_before(a, b, na, nb, PASSWORD, n)

        tab = await open_tab(browser, gw.http)
        await log_in(tab, na)
        await approve_browser(tab, a, share_history=False)
        # The list's preview of the newest message says so quietly, not as a failure.
        preview = conversation_item(tab, nb).locator(".preview")
        await expect(preview).to_contain_text("a message this device cannot read")
        await expect(preview).not_to_have_class(re.compile(r"\balert\b"))
        await open_chat(tab, nb)
        line = tab.locator("#messages li.unreadable")
        await expect(line).to_have_count(1)
        await expect(line).to_have_text(LINE.format(n))
        await expect(line).to_have_attribute("data-count", str(n))
        assert await warnings(tab) == []

        await b.send_text(na, "after the browser joined")
        await expect(message(tab, "after the browser joined")).to_be_visible()
        await expect(line).to_have_count(1)
        await expect(line).to_have_text(LINE.format(n))
        assert await warnings(tab) == [] and tab.errors == []
