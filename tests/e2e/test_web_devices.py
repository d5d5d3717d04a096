"""The settings panel lists the account's devices, marks this browser's, revokes another."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect
from support import Gateway, unique_name
from webclient import PASSWORD, open_tab

from client import Client


async def test_revoke_device_from_settings_leaves_this_browser(gw: Gateway, browser: Browser,
                                                               tmp_path: Path) -> None:
    """A browser logged in beside an SDK device sees both, this one marked and without a
    revoke button; revoking the other removes it from the directory."""
    name = unique_name("wd")
    async with Client(gw.http, home=tmp_path / "a", passphrase="sdk passphrase") as sdk:
        await sdk.register(name, PASSWORD)
        tab = await open_tab(browser, gw.http)
        await tab.locator("#auth-username").fill(name)
        await tab.locator("#auth-password").fill(PASSWORD)
        await tab.locator("#login").click()
        await expect(tab.locator("#me-name")).to_have_text(name, timeout=30_000)
        await tab.locator("#settings-open").click()
        rows = tab.locator("#devices li.device")
        await expect(rows).to_have_count(2)
        mine = tab.locator('#devices li.device[data-current="true"]')
        await expect(mine).to_contain_text("this browser")
        await expect(mine.locator("button.revoke")).to_have_count(0)
        other = tab.locator(f'#devices li.device[data-kid="{sdk.device.kid}"]')
        await other.locator("button.revoke").click()
        await expect(rows).to_have_count(1)
        await expect(tab.locator("#devices-status")).to_contain_text("Revoked")
        assert [d["current"] for d in await sdk.devices()] == [False]
        assert tab.errors == []
