"""History for a linked device in the web client (docs/protocol.md "History for a linked
device"), acceptance 1 both ways: an SDK device that approves a browser shares the content
keys of the history, and so does a browser approving an SDK device in Settings → Devices;
a share signed by a device the account's list revoked is not used."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Route, expect
from support import Gateway, conversation_before, unique_name
from webclient import (
    PASSWORD,
    STORED,
    accept_friend,
    approve_browser,
    approve_in_settings,
    link_code,
    log_in,
    logged_in,
    message,
    open_chat,
    open_tab,
    own_message,
    send_text,
    sign_up,
    warnings,
)

from client import Client, Message

PASS = "sdk passphrase"
LINE = "{} earlier messages were sent before this device was added and cannot be read here"


async def test_browser_approved_by_sdk_reads_earlier_messages(
        gw: Gateway, browser: Browser, tmp_path: Path) -> None:
    """Acceptance 1, browser linked: the SDK device holding the identity key, with N messages
    of history, approves a new browser and shares the history; the browser's conversation
    shows all N as messages (the own one as own), no unreadable line, no warning."""
    na, nb, n = unique_name("ha"), unique_name("hb"), 5
    async with Client(gw.http, home=tmp_path / "a", passphrase=PASS) as a, \
            Client(gw.http, home=tmp_path / "b", passphrase=PASS) as b:
        await conversation_before(a, b, na, nb, PASSWORD, n)
        # Envelope v3: a device shares what it read (forward-secret messages open once, and
        # are kept by the device that opened them), so Alice's SDK device reads them first.
        assert all(isinstance(e, Message) for e in await a.history(nb))
        tab = await open_tab(browser, gw.http)
        await log_in(tab, na)
        await approve_browser(tab, a)  # approve_device shares the history by default

        await open_chat(tab, nb)
        earlier = [f"before {i}" for i in range(n - 1)] + ["before, from alice"]
        await expect(tab.locator("#messages li.msg .text")).to_have_text(earlier)
        await expect(own_message(tab, "before, from alice")).to_be_visible()
        await expect(tab.locator("#messages li.unreadable")).to_have_count(0)
        assert await warnings(tab) == []

        await b.send_text(na, "after the browser joined")
        await expect(message(tab, "after the browser joined")).to_be_visible()
        assert await warnings(tab) == [] and b.warnings == [] and tab.errors == []


async def test_sdk_device_approved_in_browser_reads_earlier_messages(
        gw: Gateway, browser: Browser, tmp_path: Path) -> None:
    """Acceptance 1, SDK device linked: the account's identity is the browser's, with N
    messages of history; an SDK device logs in, the browser approves it in Settings →
    Devices and says it shared N earlier messages; the SDK's history is N Messages, no
    not_for_device."""
    na, nb, n = unique_name("wa"), unique_name("wb"), 5
    tab = await open_tab(browser, gw.http)
    await sign_up(tab, na)
    async with Client(gw.http, home=tmp_path / "a2", passphrase=PASS) as a2, \
            Client(gw.http, home=tmp_path / "b", passphrase=PASS) as b:
        await b.register(nb, PASSWORD)
        await b.add_friend(na)
        await accept_friend(tab, nb)
        for i in range(n - 1):
            sent = await b.send_text(na, f"before {i}")
        await b.wait_stored(na, sent["id"])
        await open_chat(tab, nb)
        await send_text(tab, "before, from the browser")
        await expect(own_message(tab, "before, from the browser")).to_have_attribute(
            "data-state", STORED)

        await a2.login(na, PASSWORD)
        assert a2.device_state == "pending"
        await approve_in_settings(tab, a2.link_code)
        await expect(tab.locator("#devices-status")).to_contain_text(
            f"({a2.link_code}); {n} earlier messages shared.")
        assert await a2.refresh_device_state() == "linked"

        events = await a2.history(nb)
        assert all(isinstance(e, Message) for e in events), events
        messages = [e for e in events if isinstance(e, Message)]
        assert [m.text for m in messages] == [f"before {i}" for i in range(n - 1)] + [
            "before, from the browser"]
        assert [m.own for m in messages] == [False] * (n - 1) + [True]
        assert tab.errors == []


async def test_approval_stands_when_sharing_history_fails(
        gw: Gateway, browser: Browser, tmp_path: Path) -> None:
    """The browser's upload of the history share fails (the server answers 503): Settings →
    Devices says so, and the SDK device is approved all the same."""
    na, nb = unique_name("fa"), unique_name("fb")
    tab = await open_tab(browser, gw.http)
    await sign_up(tab, na)

    async def refuse(route: Route) -> None:
        await route.fulfill(status=503, json={"code": "unavailable", "detail": "try later"})

    await tab.page.route("**/api/history-shares", refuse)
    async with Client(gw.http, home=tmp_path / "a2", passphrase=PASS) as a2, \
            Client(gw.http, home=tmp_path / "b", passphrase=PASS) as b:
        await b.register(nb, PASSWORD)
        await b.add_friend(na)
        await accept_friend(tab, nb)
        sent = await b.send_text(na, "before")
        await b.wait_stored(na, sent["id"])
        await a2.login(na, PASSWORD)
        await approve_in_settings(tab, a2.link_code)
        await expect(tab.locator("#devices-status")).to_contain_text(
            f"({a2.link_code}), but sharing earlier messages with it failed: try later")
        assert await a2.refresh_device_state() == "linked"
        assert tab.errors == []


async def test_browser_refuses_history_shared_by_revoked_device(
        gw: Gateway, browser: Browser, tmp_path: Path) -> None:
    """A share signed by a device the account's list has revoked opens nothing: the messages
    it names stay the one quiet unreadable line, with no warning."""
    na, nb, n = unique_name("ra"), unique_name("rb"), 3
    async with Client(gw.http, home=tmp_path / "a", passphrase=PASS) as a, \
            Client(gw.http, home=tmp_path / "a2", passphrase=PASS) as a2, \
            Client(gw.http, home=tmp_path / "b", passphrase=PASS) as b:
        await a.register(na, PASSWORD)
        await b.register(nb, PASSWORD)
        await a.add_friend(nb)
        await b.accept_friend(na)
        await a2.login(na, PASSWORD)
        await a.approve_device(a2.link_code)
        for i in range(n):
            sent = await b.send_text(na, f"before {i}")
        await b.wait_stored(na, sent["id"])
        assert all(isinstance(e, Message) for e in await a2.history(nb))  # a2 holds the keys

        tab = await open_tab(browser, gw.http)
        await log_in(tab, na)
        code = await link_code(tab)
        [waiting] = await a.pending_devices()
        await a.revoke_device(a2.device.kid)
        await a.approve_device(code, share_history=False)
        await logged_in(tab)
        # What a revoked device can still do with the session it has: sign a share and
        # upload it for the new device.
        [key] = [k for k in (await a2.api.user(na))["keys"] if k["kid"] == waiting["kid"]]
        await a2._share_history(key)
        shared = await a2.api.call("GET", "/api/history-shares", params={"to": key["kid"]})
        assert [s["from"] for s in shared["shares"]] == [a2.device.kid]

        await open_chat(tab, nb)
        line = tab.locator("#messages li.unreadable")
        await expect(line).to_have_text(LINE.format(n))
        await expect(tab.locator("#messages li.msg")).to_have_count(0)
        assert await warnings(tab) == [] and tab.errors == []
