"""Linking devices between the web client and the SDK (docs/protocol.md "Linking a device"):
Settings → Devices approves, declines and revokes on the browser holding the identity key,
and a browser waits with its link code until the SDK device holding it approves."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, expect
from support import Gateway, unique_name
from webclient import (
    PASSWORD,
    Inbox,
    Tab,
    accept_friend,
    approve_browser,
    device_row,
    link_code,
    log_in,
    message,
    open_chat,
    open_devices,
    open_tab,
    screenshot,
    send_text,
    sign_up,
)

from client import Client

PASS = "sdk passphrase"
REPO = Path(__file__).resolve().parents[2]


async def served_list(sdk: Client, name: str) -> dict[str, Any]:
    """The account's device list as GET /api/users serves it."""
    profile = await sdk.api.user(name)
    body: dict[str, Any] = profile["device_list"]["list"]
    return body


async def befriend(tab: Tab, sdk: Client, web_name: str, sdk_name: str) -> None:
    await sdk.add_friend(web_name)
    await accept_friend(tab, sdk_name)


async def test_approve_sdk_device_from_web_settings_reads_new_messages(
        gw: Gateway, browser: Browser, tmp_path: Path) -> None:
    """Acceptance 4a: the account's first device is a browser; an SDK device logging in
    waits, the browser's Settings → Devices lists it with the SDK's own link code, Approve
    grows the list by one version, and the SDK device then reads new messages."""
    tab = await open_tab(browser, gw.http)
    na, nb = unique_name("wa"), unique_name("wb")
    await sign_up(tab, na)
    async with Client(gw.http, home=tmp_path / "a2", passphrase=PASS) as a2, \
            Client(gw.http, home=tmp_path / "b", passphrase=PASS) as b:
        await b.register(nb, PASSWORD)
        await befriend(tab, b, na, nb)
        await a2.login(na, PASSWORD)
        assert a2.device_state == "pending"
        version = (await served_list(a2, na))["version"]

        await open_devices(tab)
        mine = tab.locator('#devices li.device[data-current="true"]')
        await expect(mine).to_contain_text("this browser · holds your identity key")
        waiting = device_row(tab, kid=a2.device.kid)
        await expect(waiting).to_have_attribute("data-state", "pending")
        await expect(waiting.locator(".code")).to_have_text(a2.link_code)
        await screenshot(tab, "devices.png")
        await waiting.locator("button.approve").click()
        await expect(tab.locator("#devices-status")).to_contain_text(f"({a2.link_code})")
        await expect(waiting).to_have_attribute("data-state", "approved")
        await expect(waiting.locator("button.revoke")).to_have_count(1)

        assert (await served_list(a2, na))["version"] == version + 1
        assert await a2.refresh_device_state() == "linked"
        async with Inbox(a2, nb) as inbox:
            await b.send_text(na, "to every device of alice")
            await inbox.wait_texts("to every device of alice")
            assert inbox.alerts == []
        await open_chat(tab, nb)
        await expect(message(tab, "to every device of alice")).to_be_visible()
        assert b.warnings == [] and tab.errors == []


async def test_browser_waits_with_link_code_until_sdk_approves(
        gw: Gateway, browser: Browser, tmp_path: Path) -> None:
    """Acceptance 4b: on an account the SDK made, a browser logging in shows its link code
    and nothing else; the SDK approves that code, and the browser reads new messages, sees
    both devices and, holding no identity key, no button that would change the list."""
    na, nb = unique_name("sa"), unique_name("sb")
    async with Client(gw.http, home=tmp_path / "a", passphrase=PASS) as a, \
            Client(gw.http, home=tmp_path / "b", passphrase=PASS) as b:
        await a.register(na, PASSWORD)
        await b.register(nb, PASSWORD)
        await a.add_friend(nb)
        await b.accept_friend(na)
        tab = await open_tab(browser, gw.http)
        await log_in(tab, na)
        code = await link_code(tab)
        await expect(tab.locator("#app")).to_be_hidden()
        await screenshot(tab, "pending.png")
        assert [p["code"] for p in await a.pending_devices()] == [code]

        await approve_browser(tab, a)
        await b.send_text(na, "for the new browser")
        await open_chat(tab, nb)
        await expect(message(tab, "for the new browser")).to_be_visible()
        async with Inbox(b, na) as inbox:
            await send_text(tab, "from the linked browser")
            await inbox.wait_texts("from the linked browser")
        await open_devices(tab)
        await expect(device_row(tab)).to_have_count(2)
        await expect(device_row(tab, kid=a.device.kid)).to_have_attribute("data-state",
                                                                          "approved")
        await expect(tab.locator("#devices button")).to_have_count(0)
        assert b.warnings == [] and tab.errors == []


async def test_decline_and_revoke_devices_from_web_settings(
        gw: Gateway, browser: Browser, tmp_path: Path) -> None:
    """Decline removes a waiting device's keys for good; Revoke signs the next list with an
    approved device moved to the revoked ones, which the SDK then no longer counts."""
    tab = await open_tab(browser, gw.http)
    name = unique_name("wd")
    await sign_up(tab, name)
    async with Client(gw.http, home=tmp_path / "a2", passphrase=PASS) as a2, \
            Client(gw.http, home=tmp_path / "a3", passphrase=PASS) as a3:
        await a2.login(name, PASSWORD)
        await a3.login(name, PASSWORD)
        await open_devices(tab)
        await device_row(tab, kid=a2.device.kid).locator("button.decline").click()
        await expect(tab.locator("#devices-status")).to_contain_text("Declined")
        await expect(device_row(tab, kid=a2.device.kid)).to_have_count(0)
        profile = await a3.api.user(name)
        assert a2.device.kid in {k["kid"] for k in profile["revoked"]}
        assert a2.device.kid not in {k["kid"] for k in profile["keys"]}

        await device_row(tab, kid=a3.device.kid).locator("button.approve").click()
        await expect(device_row(tab, kid=a3.device.kid)).to_have_attribute("data-state",
                                                                           "approved")
        assert await a3.refresh_device_state() == "linked"
        await device_row(tab, kid=a3.device.kid).locator("button.revoke").click()
        await expect(tab.locator("#devices-status")).to_contain_text("Revoked")
        await expect(device_row(tab, kid=a3.device.kid)).to_have_count(0)
        mine = await tab.locator('#devices li[data-current="true"]').get_attribute("data-kid")
        body = await served_list(a3, name)
        assert [d["kid"] for d in body["devices"]] == [mine]
        assert [d["kid"] for d in body["revoked"]] == [a3.device.kid]
        assert body["version"] == 3
        assert await a3.refresh_device_state() == "pending"
        assert tab.errors == [] and tab.dialogs == []


async def test_identity_browser_whose_keys_were_removed_lists_its_new_keys(
        gw: Gateway, browser: Browser, tmp_path: Path) -> None:
    """The browser holding the identity key, its device keys removed on the server (from
    another device): after a reload it makes new keys and signs a list naming them, with
    the old ones revoked, and the other device still linked."""
    tab = await open_tab(browser, gw.http)
    name = unique_name("wk")
    await sign_up(tab, name)
    old = await tab.locator("#me-device").text_content()
    async with Client(gw.http, home=tmp_path / "a2", passphrase=PASS) as a2:
        await a2.login(name, PASSWORD)
        await open_devices(tab)
        await device_row(tab, kid=a2.device.kid).locator("button.approve").click()
        await expect(device_row(tab, kid=a2.device.kid)).to_have_attribute("data-state",
                                                                           "approved")
        before = await served_list(a2, name)
        [gone] = [d["kid"] for d in before["devices"] if d["kid"] != a2.device.kid]
        await a2.decline_device(gone)  # DELETE /api/keys/{kid}: any session may

        await tab.page.reload()
        await expect(tab.locator("#me-device")).to_have_text(re.compile(r"^device "),
                                                              timeout=30_000)
        assert await tab.locator("#me-device").text_content() != old
        after = await served_list(a2, name)
        assert after["identity"] == before["identity"]
        assert after["version"] == before["version"] + 1
        assert [d["kid"] for d in after["revoked"]] == [gone]
        assert a2.device.kid in {d["kid"] for d in after["devices"]} and len(after["devices"]) == 2
        assert await a2.refresh_device_state() == "linked"
        await open_devices(tab)
        await expect(tab.locator('#devices li[data-current="true"]')).to_contain_text(
            "holds your identity key")
        assert tab.errors == []


async def test_waiting_browser_declined_says_so(gw: Gateway, browser: Browser,
                                                 tmp_path: Path) -> None:
    """A browser whose link request the identity key's device declines stops waiting and
    says so; logging in again asks again, with new keys and a new code."""
    name = unique_name("dw")
    async with Client(gw.http, home=tmp_path / "a", passphrase=PASS) as a:
        await a.register(name, PASSWORD)
        tab = await open_tab(browser, gw.http)
        await log_in(tab, name)
        code = await link_code(tab)
        [waiting] = await a.pending_devices()
        await a.decline_device(waiting["kid"])
        await expect(tab.locator("#pending-status")).to_contain_text("declined")
        await tab.locator("#pending-logout").click()
        await expect(tab.locator("#auth")).to_be_visible()
        await log_in(tab, name)
        assert await link_code(tab) != code
        assert [p["code"] for p in await a.pending_devices()] == [
            await tab.locator("#link-code").text_content()]
        assert tab.errors == []


def duet(gw: Gateway, home: Path, *args: str) -> list[dict[str, Any]]:
    """The `duet` CLI itself (a subprocess), its --json lines; it must succeed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUET_")}
    env.update(DUET_PASSWORD=PASSWORD, DUET_PASSPHRASE=PASS)
    done = subprocess.run([sys.executable, "-m", "client", "--server", gw.http, "--home",
                           str(home), "--json", *args], cwd=REPO, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"duet {' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


async def test_cli_home_approved_in_the_browser_and_a_browser_approved_by_the_cli(
        gw: Gateway, browser: Browser, tmp_path: Path) -> None:
    """Acceptance 4 with the `duet` CLI on both sides: a CLI home logging in to a browser's
    account waits with a code the browser's Devices panel shows and approves, and then
    reads new messages with `duet history`; on an account the CLI made, a browser shows its
    code, `duet devices approve CODE` approves it, and it reads new messages. Each list
    version grows by one."""
    tab = await open_tab(browser, gw.http)
    na, nb = unique_name("wa"), unique_name("wb")
    await sign_up(tab, na)
    cli_a, cli_b = tmp_path / "cli-a", tmp_path / "cli-b"
    duet(gw, cli_b, "register", nb)
    duet(gw, cli_b, "friends", "add", na)
    await accept_friend(tab, nb)
    [login] = duet(gw, cli_a, "login", na)
    assert login["device_state"] == "pending"
    async with Client(gw.http, home=cli_b, passphrase=PASS) as b:
        version = (await served_list(b, na))["version"]
        await open_devices(tab)
        waiting = device_row(tab, kid=login["device"])
        await expect(waiting.locator(".code")).to_have_text(login["link_code"])
        await waiting.locator("button.approve").click()
        await expect(waiting).to_have_attribute("data-state", "approved")
        assert (await served_list(b, na))["version"] == version + 1
    duet(gw, cli_b, "send", na, "to the cli home")
    texts = [e.get("text") for e in duet(gw, cli_a, "history", nb) if e["type"] == "message"]
    assert "to the cli home" in texts

    # The other way round: the CLI holds the identity of bob's account.
    tab_b = await open_tab(browser, gw.http)
    await log_in(tab_b, nb)
    code = await link_code(tab_b)
    before = duet(gw, cli_b, "devices")
    duet(gw, cli_b, "devices", "approve", code)
    assert len(duet(gw, cli_b, "devices")) == len(before)  # pending became approved
    await expect(tab_b.locator("#app")).to_be_visible(timeout=20_000)
    await open_chat(tab, nb)
    await send_text(tab, "to bob's new browser")
    await open_chat(tab_b, na)
    await expect(message(tab_b, "to bob's new browser")).to_be_visible()
    assert tab.errors == [] and tab_b.errors == []
