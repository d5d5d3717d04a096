"""The web client's sessions: the settings panel lists them and ends one, and "Log out"
ends this browser's session on the server, not only in the browser."""

from __future__ import annotations

import httpx
import jwt
from playwright.async_api import Browser, expect
from support import Gateway, eventually, unique_name
from webclient import PASSWORD, open_tab, session_token, sign_up


async def test_web_lists_and_ends_sessions_and_logout_ends_the_token(
        gw: Gateway, browser: Browser) -> None:
    """Another login shows in the sessions list and "End" ends it; "Log out" makes this
    browser's token refused by the server; the page raises no error."""
    tab = await open_tab(browser, gw.http)
    name = unique_name("web")
    await sign_up(tab, name)
    mine = await session_token(tab)
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{gw.http}/api/login", json={"username": name, "password": PASSWORD})
        other = {"Authorization": f"Bearer {r.json()['access_token']}"}
        await tab.locator("#settings-open").click()
        items = tab.locator("#sessions li.session")
        await expect(items).to_have_count(2)
        await expect(tab.locator('#sessions li[data-current="true"]')).to_contain_text(
            "this browser")
        await tab.locator('#sessions li[data-current="false"] button.revoke').click()
        await expect(items).to_have_count(1)
        assert (await http.get(f"{gw.http}/api/friends", headers=other)).status_code == 401
        assert (await http.get(f"{gw.http}/api/friends",
                               headers={"Authorization": f"Bearer {mine}"})).status_code == 200
        await tab.locator("#logout").click()
        await expect(tab.locator("#auth")).to_be_visible()

        async def refused() -> bool:
            r = await http.get(f"{gw.http}/api/friends",
                               headers={"Authorization": f"Bearer {mine}"})
            return r.status_code == 401

        await eventually(refused, timeout=5, what="the logged-out token refused")
    assert tab.errors == []


async def test_web_renews_its_session_before_the_token_expires(
        gw: Gateway, browser: Browser) -> None:
    """A page whose token nears its end renews it (same session, new token, saved for
    every tab) without logging out."""
    tab = await open_tab(browser, gw.http)
    name = unique_name("webrenew")
    await sign_up(tab, name)
    first = await session_token(tab)
    await tab.page.evaluate("""() => {
      const s = JSON.parse(localStorage.getItem('duet.session'));
      s.expiresAt = Date.now() + 5000;
      s.lifetimeMs = 10000;
      localStorage.setItem('duet.session', JSON.stringify(s));
    }""")
    await tab.page.reload()
    await expect(tab.locator("#me-name")).to_have_text(name)

    async def renewed() -> str | None:
        token = await session_token(tab)
        return token if token != first else None

    token = await eventually(renewed, timeout=15, what="the page renewing its token")
    claims = [jwt.decode(t, options={"verify_signature": False}) for t in (first, token)]
    assert claims[0]["sid"] == claims[1]["sid"]
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{gw.http}/api/friends", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
    await expect(tab.locator("#app")).to_be_visible()
    assert tab.errors == []
