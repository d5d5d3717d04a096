"""Browser tests: Debian's Chromium driven by Playwright, against real gateways."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright
from support import Gateway, Stack, http_server
from webclient import CHROMIUM, LAUNCH_ARGS, WEB, UnitsHandler

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: drives a real browser (deselect: -m 'not e2e')")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def gw(stack: Stack) -> Gateway:
    """One persister and one gateway (serving web/ at /) for the module."""
    stack.persister()
    return stack.gateway()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium; every test opens its own contexts (browser profiles) in it."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS,
                                     timeout=60_000)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture(scope="module")
def web_server() -> Iterator[str]:
    """web/ as plain files over HTTP on a free port of 127.0.0.1 (no gateway): for the units."""
    with http_server(partial(UnitsHandler, directory=str(WEB))) as url:
        yield url
