"""What the page does with hostile content, where the token goes, and foreign origins."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import orjson
import pytest
from playwright.async_api import Browser, expect
from support import Gateway, befriend, signup, unique_name
from webclient import (
    ROOT,
    STORED,
    message,
    open_chat,
    open_tab,
    own_message,
    png,
    sdk_friend,
    send_text,
    session_token,
    warnings,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

MARKUP = "<img src=x onerror=alert(1)>"
TURN_INTO_MARKUP = """() => {
  try { document.createElement('div').innerHTML = '<b>x</b>'; return 'allowed'; }
  catch (e) { return e instanceof TypeError ? 'refused' : String(e); }
}"""
WEB = ROOT / "web"
# Ways to turn a string into markup or code; the client uses none of them.
SINKS = re.compile(r"\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval|"
                   r"new Function|setAttribute\(\s*['\"](style|on\w+)['\"])")


async def test_render_markup_message_as_text_runs_nothing(gw: Gateway, browser: Browser,
                                                           tmp_path: Path) -> None:
    """Markup in a message and in an image's file name shows as text, opens no dialog, the
    page refuses HTML sinks (Trusted Types), and the token appears in no request or WebSocket
    URL."""
    tab = await open_tab(browser, gw.http)
    web_name, sdk_name = unique_name("web"), unique_name("sdk")
    async with sdk_friend(tab, gw.http, tmp_path / "sdk", web_name, sdk_name,
                          "sdk passphrase") as sdk:
        await open_chat(tab, sdk_name)
        await sdk.send_text(web_name, MARKUP)
        await sdk.send_image(web_name, png(8, 8, (200, 0, 0)), mime="image/png",
                             name=f"{MARKUP}.png")
        await expect(message(tab, MARKUP)).to_be_visible()
        await expect(tab.locator("#messages figcaption")).to_have_text(f"{MARKUP}.png")
        await send_text(tab, MARKUP)
        await expect(own_message(tab, MARKUP)).to_have_attribute("data-state", STORED)
        await asyncio.sleep(1.0)  # time for an injected handler to have fired

    sources = await tab.locator("#messages img").evaluate_all("els => els.map(e => e.src)")
    assert len(sources) == 1 and sources[0].startswith("blob:")
    assert await tab.locator("#messages [onerror]").count() == 0
    # Trusted Types (index.html's CSP): the page refuses to turn any string into markup.
    assert await tab.page.evaluate(TURN_INTO_MARKUP) == "refused"
    assert tab.dialogs == [] and tab.errors == []
    assert await warnings(tab) == []
    token = await session_token(tab)
    assert tab.urls and not [u for u in tab.urls if token in u]
    assert any(u.startswith("ws://") for u in tab.urls)


def test_scan_web_client_sources_uses_no_markup_sinks() -> None:
    """No module of the web client parses strings as HTML or code, and the page has no
    inline script or style."""
    modules = sorted(WEB.glob("*.js"))
    assert modules
    for path in modules:
        found = [m.group(0) for m in SINKS.finditer(path.read_text())]
        assert found == [], f"{path.name}: {found}"
    html = (WEB / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline <script>"
    assert not re.search(r"\sstyle=|<style|\son\w+=", html), "inline style or handler"


async def test_serve_web_client_with_strict_csp_and_module_types(gw: Gateway) -> None:
    """The page and its modules are served from the gateway with the strict CSP and a
    JavaScript type for every module."""
    async with httpx.AsyncClient(base_url=gw.http, timeout=10) as http:
        page = await http.get("/")
        assert page.status_code == 200 and 'src="/app.js"' in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp
        for path in sorted(WEB.glob("*.js")):
            r = await http.get(f"/{path.name}")
            assert r.status_code == 200, path.name
            assert "javascript" in r.headers["content-type"], path.name


async def test_refuse_websocket_from_foreign_origin_closes_1008(gw: Gateway) -> None:
    """A WebSocket upgrade with a foreign Origin is closed with 1008; the same credentials
    from the gateway's own origin get `ready`."""
    async with httpx.AsyncClient(timeout=10) as http:
        a, b = await signup(http, gw.http, "a"), await signup(http, gw.http, "b")
        await befriend(http, gw.http, a, b)
    protocols = ["duet.v1", f"bearer.{a.token}"]
    url = f"{gw.ws}/ws/{b.user_id}"
    async with connect(url, origin="http://evil.example", subprotocols=protocols,
                       open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    async with connect(url, origin=gw.http, subprotocols=protocols, open_timeout=10) as ws:
        assert ws.subprotocol == "duet.v1"
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame["type"] == "ready"
