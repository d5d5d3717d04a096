"""Living in the web client: one socket for every conversation, badges, notifications,
ticks through read, typing, presence, and the phone layout (three browser profiles)."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import httpx
import pymongo
from playwright.async_api import Browser, BrowserContext, expect
from support import Gateway, Stack, unique_name
from webclient import (
    PASSWORD,
    Tab,
    conversation_item,
    friend_button,
    image_loaded,
    message,
    open_chat,
    own_message,
    screenshot,
    send_text,
    sign_up,
)

from client import Client

# Each page records the notifications it shows and every tick an own message passes.
RECORDER = """
(() => {
  window.__notes = [];
  const Real = window.Notification;
  class Recorded extends Real {
    constructor(title, options = {}) {
      super(title, options);
      window.__notes.push({title, body: options.body || '', tag: options.tag || ''});
    }
  }
  Object.defineProperty(Recorded, 'permission', {get: () => Real.permission});
  Recorded.requestPermission = Real.requestPermission.bind(Real);
  window.Notification = Recorded;
  window.__ticks = [];
  new MutationObserver((changes) => {
    for (const c of changes) {
      const el = c.target;
      if (c.attributeName === 'data-state' && el.classList && el.classList.contains('own')) {
        window.__ticks.push([el.dataset.id, el.dataset.state]);
      }
    }
  }).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-state']});
})();
"""
HIDE_TAB = """() => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
  document.dispatchEvent(new Event('visibilitychange'));
}"""
SHOW_TAB = """() => {
  delete document.visibilityState; delete document.hidden;
  document.dispatchEvent(new Event('visibilitychange'));
}"""
GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
WEBP = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")
ORDER = ["pending", "sent", "stored", "delivered", "read"]


async def profile(browser: Browser, gw: Gateway, *, phone: bool = False
                  ) -> tuple[BrowserContext, Tab]:
    """A browser profile that may notify, recording what it shows."""
    size = {"width": 390, "height": 844} if phone else {"width": 1100, "height": 720}
    context = await browser.new_context(viewport=size, is_mobile=phone, has_touch=phone)
    await context.grant_permissions(["notifications"], origin=gw.http)
    await context.add_init_script(RECORDER)
    page = await context.new_page()
    tab = Tab(page)
    page.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    await page.goto(gw.http)
    await expect(page.locator("#auth")).to_be_visible()
    return context, tab


async def token(tab: Tab) -> dict[str, str]:
    session: dict[str, Any] = await tab.page.evaluate(
        "() => JSON.parse(localStorage.getItem('duet.session'))")
    return {"Authorization": f"Bearer {session['token']}", "user_id": session["userId"]}


async def befriend(gw: Gateway, a: dict[str, str], b: dict[str, str], b_name: str) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{gw.http}/api/friends", json={"username": b_name},
                            headers={"Authorization": a["Authorization"]})
        assert r.status_code == 201, r.text
        r = await http.post(f"{gw.http}/api/friends/{a['user_id']}/accept",
                            headers={"Authorization": b["Authorization"]})
        assert r.status_code == 200, r.text


def badge(tab: Tab, name: str) -> Any:
    return conversation_item(tab, name).locator(".badge")


async def ticks_of(tab: Tab, message_id: str) -> list[str]:
    ticks: list[list[str]] = await tab.page.evaluate("() => window.__ticks")
    return [state for mid, state in ticks if mid == message_id]


async def test_one_socket_badges_notifications_ticks_typing_and_both_widths(
        gw: Gateway, stack: Stack, browser: Browser, tmp_path: Path,
        mongo: pymongo.MongoClient[dict[str, object]]) -> None:
    """Alice, in Dave's conversation, sees badges rise for Bob and Carol over one socket,
    is notified while another conversation or a hidden tab gets a message, sees Bob
    typing, presence dots, and her message's ticks go sent → stored → delivered → read;
    screenshots at desktop and phone width."""
    names = {k: unique_name(k) for k in ("alice", "bob", "carol", "dave")}
    contexts = []
    tabs: dict[str, Tab] = {}
    for who in ("alice", "bob", "carol"):
        context, tab = await profile(browser, gw)
        contexts.append(context)
        await sign_up(tab, names[who])
        tabs[who] = tab
    alice, bob, carol = tabs["alice"], tabs["bob"], tabs["carol"]
    dave = Client(gw.http, home=tmp_path / "dave", passphrase="dave's passphrase")
    try:
        await dave.register(names["dave"], PASSWORD)
        auth = {who: await token(tab) for who, tab in tabs.items()}
        await befriend(gw, auth["bob"], auth["alice"], names["alice"])
        await befriend(gw, auth["carol"], auth["alice"], names["alice"])
        await dave.add_friend(names["alice"])
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{gw.http}/api/friends/{dave.user_id}/accept",
                                headers={"Authorization": auth["alice"]["Authorization"]})
            assert r.status_code == 200
        # Two days ago, Dave wrote; the conversation shows that day and today apart.
        old = await dave.send_text(names["alice"], "from the day before yesterday")
        await dave.wait_stored(names["alice"], old["id"])
        mongo[stack.db_name].messages.update_one(
            {"_id": f"{dave.user_id}:{old['id']}"},
            {"$set": {"ts": int((time.time() - 2 * 86400) * 1000)}})
        await dave.send_text(names["alice"], "and a link: https://example.org/a?b=1, "
                                             "not javascript:alert(1)")
        await dave.send_image(names["alice"], GIF, mime="image/gif", name="dot.gif")
        await dave.send_image(names["alice"], WEBP, mime="image/webp", name="dot.webp")

        for tab in tabs.values():  # the friend list is polled: wait for the conversations
            await expect(tab.locator("#conversations li.conv").first).to_be_visible(
                timeout=15_000)
        await open_chat(alice, names["dave"])
        await expect(message(alice, "from the day before yesterday")).to_be_visible()
        days = await alice.locator("#messages li.day").all_text_contents()
        assert len(days) == 2 and days[-1] == "Today", days
        link = alice.locator("#messages a")
        await expect(link).to_have_count(1)
        assert await link.get_attribute("href") == "https://example.org/a?b=1"
        assert await link.get_attribute("rel") == "noopener noreferrer"
        for selector in ("img[alt='dot.gif']", "img[alt='dot.webp']"):
            info = await image_loaded(alice, f"#messages {selector}")
            assert info["src"].startswith("blob:") and info["width"] == 1

        # Bob and Carol write while Alice is in Dave's conversation: badges, the title,
        # the list reordered, a notification for each other conversation.
        await open_chat(bob, names["alice"])
        await open_chat(carol, names["alice"])
        await expect(conversation_item(alice, names["bob"]).locator(".dot.online")).to_be_visible()
        await send_text(bob, "bob one")
        await send_text(bob, "bob two")
        await send_text(carol, "carol one")
        await expect(badge(alice, names["bob"])).to_have_text("2")
        await expect(badge(alice, names["carol"])).to_have_text("1")
        await expect(alice.page).to_have_title("(3) duet")
        await expect(badge(alice, names["dave"])).to_have_count(0)
        first = alice.locator("#conversations li.conv .name").first
        await expect(first).to_have_text(names["carol"])
        await expect(conversation_item(alice, names["carol"]).locator(".preview")).to_have_text(
            "carol one")
        notes = await alice.page.evaluate("() => window.__notes")
        assert {(n["title"], n["body"]) for n in notes} >= {
            (names["bob"], "bob two"), (names["carol"], "carol one")}
        shot = await screenshot(alice, "desktop.png")

        # A hidden tab is notified even for the open conversation.
        await open_chat(alice, names["bob"])
        await expect(badge(alice, names["bob"])).to_have_count(0)
        await expect(alice.page).to_have_title("(1) duet")
        await alice.page.evaluate(HIDE_TAB)
        await send_text(bob, "while you look away")
        await alice.page.wait_for_function(
            "() => window.__notes.some(n => n.body === 'while you look away')")
        await expect(badge(alice, names["bob"])).to_have_text("1")
        await alice.page.evaluate(SHOW_TAB)
        await expect(badge(alice, names["bob"])).to_have_count(0)

        # Bob types: Alice sees it in the conversation and in the list; it clears.
        await bob.locator("#text").press_sequentially("typing this", delay=30)
        await expect(alice.locator("#peer-status")).to_have_text("typing…", timeout=3000)
        await expect(conversation_item(alice, names["bob"]).locator(".preview")).to_have_text(
            "typing…")
        await bob.locator("#text").press("Enter")
        await expect(message(alice, "typing this")).to_be_visible()
        await expect(alice.locator("#peer-status")).not_to_have_text("typing…", timeout=6000)

        # Alice's message: sent, stored, delivered (Bob's device decrypted it), read.
        text = f"ticks {unique_name('t')}"
        await send_text(alice, text)
        mine = own_message(alice, text)
        await expect(mine).to_have_attribute("data-state", "read", timeout=15_000)
        states = await ticks_of(alice, await mine.get_attribute("data-id") or "")
        assert states[-1] == "read" and "sent" in states, states
        assert states == sorted(states, key=ORDER.index), states
        # Shift+Enter is a new line, Enter sends.
        await alice.locator("#text").fill("")
        await alice.locator("#text").press_sequentially("first line")
        await alice.locator("#text").press("Shift+Enter")
        await alice.locator("#text").press_sequentially("second line")
        await alice.locator("#text").press("Enter")
        await expect(message(bob, "first line\nsecond line")).to_be_visible()

        assert shot.name == "desktop.png"  # `make screenshots` copies them into docs/
        # The same account at phone width: the list, then the conversation, each a screen.
        await alice.page.set_viewport_size({"width": 390, "height": 844})
        await alice.locator("#back").click()
        await expect(alice.locator("#conversations")).to_be_visible()
        await expect(alice.locator("#chat")).to_be_hidden()
        await screenshot(alice, "phone-list.png")
        await friend_button(alice, names["bob"]).click()
        await expect(alice.locator("#conversations")).to_be_hidden()
        composer = await alice.locator("#composer").bounding_box()
        assert composer is not None and composer["y"] + composer["height"] <= 844
        await expect(message(alice, "typing this")).to_be_visible()
        await screenshot(alice, "phone-chat.png")
        for tab in tabs.values():
            assert tab.errors == [], tab.errors
    finally:
        await dave.close()
        for context in contexts:
            await context.close()


async def test_tabs_share_one_login_and_an_expired_session_says_so(
        gw: Gateway, browser: Browser) -> None:
    """A second tab of the browser is logged in already; logging out in one logs out the
    other; an expired session shows a plain notice, not a bare form; the page has a
    favicon; a search line about a request does not outlive its answer."""
    context, first = await profile(browser, gw)
    try:
        name = unique_name("tabs")
        await sign_up(first, name)
        second = Tab(await context.new_page())
        await second.page.goto(gw.http)
        await expect(second.locator("#me-name")).to_have_text(name)
        assert await second.page.locator("link[rel=icon]").get_attribute("href") == "/favicon.svg"
        async with httpx.AsyncClient() as http:
            r = await http.get(f"{gw.http}/favicon.svg")
            assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg")
            other = unique_name("other")
            await http.post(f"{gw.http}/api/register",
                            json={"username": other, "password": PASSWORD})
            r = await http.post(f"{gw.http}/api/login",
                                json={"username": other, "password": PASSWORD})
            other_auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        await first.locator("#search-username").fill(other)
        await first.locator("#search").click()
        await first.locator("#request-friend").click()
        await expect(first.locator("#search-result")).to_contain_text("Friend request sent")
        me = (await token(first))["user_id"]
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{gw.http}/api/friends/{me}/accept", headers=other_auth)
            assert r.status_code == 200
        await expect(first.locator("#search-result")).to_be_empty(timeout=15_000)
        await expect(friend_button(first, other)).to_be_visible()

        await second.locator("#logout").click()
        await expect(first.locator("#auth")).to_be_visible()
        await expect(first.locator("#auth-notice")).to_contain_text("logged out in another tab")

        await sign_up_again(first, name)
        await expect(second.locator("#me-name")).to_have_text(name)  # it followed
        await first.page.evaluate("""() => {
          const s = JSON.parse(localStorage.getItem('duet.session'));
          s.expiresAt = Date.now() - 1000;
          localStorage.setItem('duet.session', JSON.stringify(s));
        }""")
        await first.page.reload()
        await expect(first.locator("#auth-notice")).to_have_text(
            "Your session expired. Log in again to go on.")
        assert first.errors == [] and second.errors == []
    finally:
        await context.close()


async def sign_up_again(tab: Tab, name: str) -> None:
    await tab.locator("#auth-username").fill(name)
    await tab.locator("#auth-password").fill(PASSWORD)
    await tab.locator("#login").click()
    await expect(tab.locator("#me-name")).to_have_text(name, timeout=30_000)
