"""The web client trusts no directory (docs/protocol.md "Device lists"): a device slipped
into a directory entry gets no key and is named in a warning; a friend's new approved
device changes nothing; a changed identity key blocks sending behind a banner until
accepted, and only then changes the safety number."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest
from playwright.async_api import Browser, expect
from support import Gateway, Stack, eventually, signup, unique_name
from webclient import (
    PASSWORD,
    Inbox,
    Tab,
    accept_friend,
    message,
    open_chat,
    open_tab,
    own_message,
    screenshot,
    send_text,
    session_token,
    sign_up,
    warnings,
)

from client import Client, crypto

PASS = "sdk passphrase"
SAFETY_NUMBER = re.compile(r"^(\d{5} ){11}\d{5}$")
Mongo = pymongo.MongoClient[dict[str, Any]]


def inject_device(mongo: Mongo, stack: Stack, user_id: str, label: str) -> str:
    """What a malicious server (or anyone writing to MongoDB) can do: add a device key to a
    user's directory entry, beside the signed list. Its kid."""
    keys = crypto.DeviceKeys.generate()
    mongo[stack.db_name].users.update_one({"_id": user_id}, {"$push": {"keys": {
        "kid": keys.kid, "sid": keys.sid, "enc": keys.enc_spki, "sig": keys.sig_spki,
        "label": label, "created_at": int(time.time() * 1000)}}})
    return keys.kid


async def wrapped_for(mongo: Mongo, stack: Stack, sender: str, text_id: str) -> set[str]:
    """The kids the stored envelope of message `text_id` wraps a key for (once stored)."""
    doc = await eventually(lambda: mongo[stack.db_name].messages.find_one(
        {"sender": sender, "id": text_id}), what="the message stored")
    return {k["kid"] for k in doc["body"]["keys"]}


async def user_id(tab: Tab) -> str:
    uid: str = await tab.page.evaluate("JSON.parse(localStorage.getItem('duet.session')).userId")
    return uid


async def chat_with_sdk(browser: Browser, gw: Gateway, sdk: Client) -> tuple[Tab, str, str]:
    """A browser user and an SDK user, friends, the browser's chat with them open."""
    tab = await open_tab(browser, gw.http)
    na, nb = unique_name("wa"), unique_name("sb")
    await sign_up(tab, na)
    await sdk.register(nb, PASSWORD)
    await sdk.add_friend(na)
    await accept_friend(tab, nb)
    await open_chat(tab, nb)
    return tab, na, nb


async def safety_number(tab: Tab) -> str:
    await tab.locator("#show-safety").click()
    await expect(tab.locator("#safety-number")).to_have_text(SAFETY_NUMBER)
    number = await tab.locator("#safety-number").text_content()
    assert number is not None
    return number


@pytest.mark.parametrize("whose", ["friend", "own"])
async def test_send_with_injected_device_wraps_no_key_and_names_it(
        gw: Gateway, stack: Stack, mongo: Mongo, browser: Browser, tmp_path: Path,
        whose: str) -> None:
    """Acceptance 2 and 3 (web): a device pushed straight into MongoDB, into Bob's entry or
    into Alice's own, gets no wrapped key in what Alice's browser sends, and her page shows
    a warning naming its label and kid."""
    async with Client(gw.http, home=tmp_path / "b", passphrase=PASS) as b:
        tab, na, nb = await chat_with_sdk(browser, gw, b)
        alice = await user_id(tab)
        target = b.user_id if whose == "friend" else alice
        assert target is not None
        kid = inject_device(mongo, stack, target, "evil tablet")
        async with Inbox(b, na) as inbox:
            await send_text(tab, "after the injection")
            await inbox.wait_texts("after the injection")
        item = own_message(tab, "after the injection")
        wrapped = await wrapped_for(mongo, stack, alice, await item.get_attribute("data-id"))
        # Envelope v3: the sending browser has no entry (it keeps what it sent), so Bob's
        # device is the only one.
        assert kid not in wrapped and wrapped == {b.device.kid}
        warning = tab.locator('#messages li.warning[data-kind="unapproved_device"]')
        await expect(warning).to_have_count(1)
        await expect(warning).to_contain_text("evil tablet")
        await expect(warning).to_contain_text(kid[:12])
        await expect(warning).to_contain_text("Your account" if whose == "own" else nb)
        await send_text(tab, "once more")  # warned once per device, not per message
        await expect(warning).to_have_count(1)
        assert tab.errors == []


async def test_friend_identity_change_blocks_send_until_accepted(
        gw: Gateway, browser: Browser, tmp_path: Path) -> None:
    """Acceptance 1 and 5 (web): Bob's approved second device changes no safety number and
    warns of nothing; after Bob resets his identity key from a new device, Alice's send is
    refused behind a banner (which says she had verified him) and the safety number stays
    the pinned one until she accepts; then it changes and her message reaches Bob."""
    async with Client(gw.http, home=tmp_path / "b", passphrase=PASS) as b, \
            Client(gw.http, home=tmp_path / "b2", passphrase=PASS) as b2, \
            Client(gw.http, home=tmp_path / "b3", passphrase=PASS) as b3:
        tab, na, nb = await chat_with_sdk(browser, gw, b)
        await send_text(tab, "hello bob")
        before = await safety_number(tab)
        assert before == await b.safety_number(na)
        await tab.locator("#safety-mark").click()
        await expect(tab.locator("#safety-verified")).to_contain_text("verified")

        # Acceptance 1: a device Bob approves is one more recipient, and nothing else.
        await b2.login(nb, PASSWORD)
        await b.approve_device(b2.link_code)
        async with Inbox(b2, na) as inbox:
            await send_text(tab, "to both of bob's devices")
            await inbox.wait_texts("to both of bob's devices")
        assert await safety_number(tab) == before
        assert await warnings(tab) == []
        await expect(tab.locator("#banner")).to_be_hidden()

        # Bob lost his devices: a new one resets his identity key.
        await b3.login(nb, PASSWORD)
        assert b3.device_state == "pending"
        await b3.reset_identity()
        await tab.locator("#text").fill("blocked")
        await tab.locator("#text").press("Enter")
        await expect(tab.locator("#composer-error")).to_contain_text(
            f"{nb}’s identity key changed")
        banner = tab.locator("#banner")
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text(
            f"You had verified {nb}: {nb}’s identity key changed. Compare safety numbers, "
            "then Accept to send again.")
        await expect(own_message(tab, "blocked")).to_have_count(0)
        await expect(tab.locator('#messages li.warning[data-kind="identity_changed"]')
                     ).to_have_count(1)
        assert await safety_number(tab) == before
        new = await b3.safety_number(na)
        await expect(tab.locator("#safety-new")).to_contain_text(new)
        await screenshot(tab, "identity-changed.png")

        await tab.locator("#banner-ok").click()
        await expect(banner).to_be_hidden()
        after = await safety_number(tab)
        assert after == new != before
        await expect(tab.locator("#safety-verified")).to_have_text("")
        async with Inbox(b3, na) as inbox:
            await tab.locator("#send").click()  # the text stayed in the composer
            await expect(own_message(tab, "blocked")).to_be_visible()
            await inbox.wait_texts("blocked")
        assert tab.errors == []


async def test_send_to_friend_without_identity_key_refused(gw: Gateway,
                                                           browser: Browser) -> None:
    """A friend whose account has no signed device list yet gets nothing: the send is
    refused with a reason, not encrypted to whatever keys the directory holds."""
    tab = await open_tab(browser, gw.http)
    name = unique_name("wn")
    await sign_up(tab, name)
    async with httpx.AsyncClient(timeout=10) as http:
        bare = await signup(http, gw.http, "bare")
        auth = {"Authorization": f"Bearer {await session_token(tab)}"}
        r = await http.post(f"{gw.http}/api/friends", json={"username": bare.username},
                            headers=auth)
        assert r.status_code == 201, r.text
        r = await http.post(f"{gw.http}/api/friends/{await user_id(tab)}/accept",
                            headers=bare.auth)
        assert r.status_code == 200, r.text
    await open_chat(tab, bare.username)
    await tab.locator("#text").fill("into the void")
    await tab.locator("#text").press("Enter")
    await expect(tab.locator("#composer-error")).to_have_text(
        f"Not sent: {bare.username} has not set up an identity key yet")
    await expect(message(tab, "into the void")).to_have_count(0)
    assert tab.errors == []
