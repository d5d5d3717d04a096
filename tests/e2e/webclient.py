"""Driving the web client in Chromium (Playwright, async API), and a TCP relay for failover."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    WebSocket,
    expect,
)

from client import Alert, Client, Message

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("DUET_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run"]
TIMEOUT_MS = 20_000  # any one browser step
# An own message the persister stored, or further along (the friend's device has it).
STORED = re.compile(r"^(stored|delivered|read)$")
PASSWORD = "correct horse battery"
LINK_CODE = re.compile(r"^\d{4} \d{4} \d{4}$")

expect.set_options(timeout=TIMEOUT_MS)


@dataclass
class Tab:
    """One browser profile (a Playwright context: its own IndexedDB, so its own device)."""

    page: Page
    errors: list[str] = field(default_factory=list)  # uncaught exceptions, CSP violations
    dialogs: list[str] = field(default_factory=list)  # alert/confirm/prompt opened
    urls: list[str] = field(default_factory=list)  # every request and WebSocket URL
    username: str = ""

    def locator(self, selector: str) -> Locator:
        return self.page.locator(selector)


async def open_tab(browser: Browser, url: str) -> Tab:
    context = await browser.new_context(viewport={"width": 1100, "height": 720})
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    tab = Tab(page)

    async def on_dialog(dialog: Dialog) -> None:
        tab.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    def on_websocket(ws: WebSocket) -> None:
        tab.urls.append(ws.url)

    def on_console(msg: ConsoleMessage) -> None:
        # The browser reports CSP violations (inline script or style, foreign sources) here.
        if msg.type == "error" and "Content Security Policy" in msg.text:
            tab.errors.append(msg.text)

    page.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    page.on("console", on_console)
    page.on("dialog", on_dialog)
    page.on("request", lambda request: tab.urls.append(request.url))
    page.on("websocket", on_websocket)
    await page.goto(url)
    await expect(page.locator("#auth")).to_be_visible()
    return tab


async def sign_up(tab: Tab, username: str, password: str = PASSWORD) -> None:
    page = tab.page
    await page.locator("#auth-username").fill(username)
    await page.locator("#auth-password").fill(password)
    await page.locator("#signup").click()
    await expect(page.locator("#me-name")).to_have_text(username, timeout=30_000)
    tab.username = username


async def log_in(tab: Tab, username: str, password: str = PASSWORD) -> None:
    """Press Log in: the browser is then in the app, or waits for approval (link_code)."""
    await tab.locator("#auth-username").fill(username)
    await tab.locator("#auth-password").fill(password)
    await tab.locator("#login").click()
    tab.username = username


async def logged_in(tab: Tab) -> None:
    await expect(tab.locator("#me-name")).to_have_text(tab.username, timeout=30_000)


async def link_code(tab: Tab) -> str:
    """The code this browser shows while it waits for approval."""
    await expect(tab.locator("#pending")).to_be_visible(timeout=30_000)
    await expect(tab.locator("#link-code")).to_have_text(LINK_CODE)
    code = await tab.locator("#link-code").text_content()
    assert code is not None
    return code


async def open_devices(tab: Tab) -> Locator:
    """Settings → Devices (opened if closed): the list."""
    if await tab.locator("#settings").is_hidden():
        await tab.locator("#settings-open").click()
    return tab.locator("#devices")


def device_row(tab: Tab, *, kid: str | None = None, code: str | None = None) -> Locator:
    """A row of Settings → Devices, by key id or by the link code it shows."""
    rows = tab.locator(f'#devices li.device[data-kid="{kid}"]' if kid else "#devices li.device")
    return rows.filter(has_text=code) if code else rows


async def approve_in_settings(tab: Tab, code: str) -> None:
    """On the browser holding the identity key: approve the device showing `code`."""
    await open_devices(tab)
    row = device_row(tab, code=code)
    await expect(row).to_have_attribute("data-state", "pending")
    await row.locator("button.approve").click()
    await expect(tab.locator("#devices-status")).to_contain_text("Approved")


async def approve_browser(tab: Tab, approver: Client | Tab, *,
                          share_history: bool = True) -> str:
    """Approve this waiting browser from the device holding the account's identity key (an
    SDK client, or another browser's settings, which always shares the history); wait until
    the browser is in. Its code."""
    code = await link_code(tab)
    if isinstance(approver, Tab):
        await approve_in_settings(approver, code)
    else:
        await approver.approve_device(code, share_history=share_history)
    await logged_in(tab)
    return code


async def request_friend(tab: Tab, username: str) -> None:
    page = tab.page
    await page.locator("#search-username").fill(username)
    await page.locator("#search").click()
    await page.locator("#request-friend").click()
    await expect(page.locator("#search-result")).to_contain_text(username)


async def accept_friend(tab: Tab, username: str) -> None:
    """Accept the request once it shows (the friend list is polled every few seconds)."""
    item = tab.locator("#requests li.incoming").filter(has_text=username)
    await item.locator("button.accept").click()
    await expect(friend_button(tab, username)).to_be_visible()


@contextlib.asynccontextmanager
async def sdk_friend(tab: Tab, url: str, home: Path, web_name: str, sdk_name: str,
                     passphrase: str) -> AsyncIterator[Client]:
    """`web_name` signs up in the tab, an SDK user `sdk_name` asks to be friends and the tab
    accepts: the two ends of a web↔SDK test, the SDK client open for the block."""
    await sign_up(tab, web_name)
    async with Client(url, home=home, passphrase=passphrase) as sdk:
        await sdk.register(sdk_name, PASSWORD)
        await sdk.add_friend(web_name)
        await accept_friend(tab, sdk_name)
        yield sdk


def friend_button(tab: Tab, username: str) -> Locator:
    """The friend's conversation in the list."""
    return tab.locator("#conversations button.conv-open").filter(
        has=tab.page.locator(".name").get_by_text(username, exact=True))


def conversation_item(tab: Tab, username: str) -> Locator:
    return tab.locator("#conversations li.conv").filter(
        has=tab.page.locator(".name").get_by_text(username, exact=True))


async def open_chat(tab: Tab, username: str) -> None:
    await friend_button(tab, username).click()
    await expect(tab.locator("#peer-name")).to_have_text(username)
    await expect(tab.locator("#conn-state")).to_have_attribute("data-state", "connected")


async def send_text(tab: Tab, text: str) -> None:
    await tab.locator("#text").fill(text)
    await tab.locator("#text").press("Enter")
    await expect(own_message(tab, text)).to_be_visible()


async def send_image(tab: Tab, path: Path) -> None:
    await tab.locator("#image").set_input_files(str(path))


def message(tab: Tab, text: str) -> Locator:
    """The message whose text is exactly `text`."""
    return tab.locator("#messages li.msg").filter(
        has=tab.page.locator(".text").get_by_text(text, exact=True))


def own_message(tab: Tab, text: str) -> Locator:
    return tab.locator("#messages li.msg.own").filter(
        has=tab.page.locator(".text").get_by_text(text, exact=True))


async def texts(tab: Tab) -> list[str]:
    """The text of every message shown, in display order."""
    result: list[str] = await tab.page.locator("#messages li.msg .text").all_text_contents()
    return result


async def warnings(tab: Tab) -> list[str]:
    result: list[str] = await tab.locator("#messages li.warning").all_text_contents()
    return result


async def image_loaded(tab: Tab, selector: str) -> dict[str, Any]:
    """Wait for a decrypted image to load; its size and URL scheme."""
    img = tab.locator(selector)
    await expect(img).to_be_visible()
    await tab.page.wait_for_function(
        "el => el.complete && el.naturalWidth > 0", arg=await img.element_handle(),
        timeout=TIMEOUT_MS)
    info: dict[str, Any] = await img.evaluate(
        "el => ({width: el.naturalWidth, height: el.naturalHeight, src: el.src})")
    return info


async def session_token(tab: Tab) -> str:
    token: str = await tab.page.evaluate(
        "() => JSON.parse(localStorage.getItem('duet.session')).token")
    return token


async def screenshot(tab: Tab, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    await tab.page.screenshot(path=str(path))
    return path


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid PNG of one colour with a darker border (so a screenshot shows its edges)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    dark = bytes(c // 2 for c in rgb)
    rows = b"".join(
        b"\x00" + b"".join(
            dark if x < 3 or y < 3 or x >= width - 3 or y >= height - 3 else bytes(rgb)
            for x in range(width))
        for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


# -- the pure modules, unit-tested on a blank page (test_web_units.py, test_web_identity_units.py)

BLANK = b"<!doctype html><meta charset='utf-8'><title>duet units</title>"


class UnitsHandler(SimpleHTTPRequestHandler):
    """web/ as files, plus a blank page to import them from; nothing cached, nothing logged."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript"}

    def do_GET(self) -> None:
        if self.path != "/units.html":
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(BLANK)))
        self.end_headers()
        self.wfile.write(BLANK)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.asynccontextmanager
async def units_page(browser: Browser, url: str, setup_js: str, arg: Any) -> AsyncIterator[Page]:
    """A blank page of the units server after `setup_js(arg)` ran; no uncaught error after."""
    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{url}/units.html")
    await page.evaluate(setup_js, arg)
    yield page
    await context.close()
    assert errors == []


async def evaluate(page: Page, body: str) -> Any:
    """Evaluate an async function body that sees `u` (what the setup kept) and returns JSON."""
    return await page.evaluate(f"async () => {{ const u = globalThis.u; {body} }}")


class Inbox:
    """The Python SDK listening to one friend in the background, collecting every event."""

    def __init__(self, client: Client, friend: str) -> None:
        self.client = client
        self.friend = friend
        self.events: list[Message | Alert] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Inbox:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        async for event in self.client.listen(self.friend):
            self.events.append(event)

    @property
    def received(self) -> list[Message]:
        """Messages from the friend (not this user's own), in arrival order."""
        return [e for e in self.events if isinstance(e, Message) and not e.own]

    @property
    def alerts(self) -> list[Alert]:
        return [e for e in self.events if isinstance(e, Alert)]

    async def wait(self, check: Callable[[list[Message]], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not check(self.received):
            if self._task is not None and self._task.done():
                self._task.result()  # raise what ended the listener
                raise AssertionError("the SDK listener stopped")
            if time.monotonic() > deadline:
                got = [m.text for m in self.received]
                raise AssertionError(f"timed out; SDK received {got}, alerts {self.alerts}")
            await asyncio.sleep(0.05)

    async def wait_texts(self, *wanted: str, timeout: float = 20.0) -> None:
        await self.wait(lambda got: set(wanted) <= {m.text for m in got}, timeout)


class Relay:
    """A TCP relay on 127.0.0.1, standing in for a load balancer in front of the gateways.

    Each new connection goes to the first port in `upstreams` that accepts it; when the
    upstream end of a piped connection goes away, the browser's end is closed too.
    """

    def __init__(self, upstreams: list[int]) -> None:
        self.upstreams = list(upstreams)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Stop accepting, then end every piped connection.
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            for port in list(self.upstreams):
                try:
                    up_reader, up_writer = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", port), 2)
                except (OSError, TimeoutError):
                    continue
                break
            else:
                return  # nothing accepts: the client sees the connection closed
            pipes = {asyncio.create_task(_pipe(reader, up_writer)),
                     asyncio.create_task(_pipe(up_reader, writer))}
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
                up_writer.close()
        finally:
            writer.close()
            self._tasks.discard(task)  # type: ignore[arg-type]


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
