"""Browser tests: Debian's Chromium driven by Playwright, against real gateways."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright
from support import Gateway, Stack
from webclient import CHROMIUM, LAUNCH_ARGS


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
