from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import Gateway, Stack, unique_name

from client import Client

SDK_PASSPHRASE = "test passphrase"


@pytest.fixture(scope="module")
def gw(stack: Stack) -> Gateway:
    """One persister and one gateway for the module."""
    stack.persister()
    return stack.gateway()


@pytest.fixture
async def sdk_pair(gw: Gateway, tmp_path: Path) -> AsyncIterator[tuple[Client, Client, str, str]]:
    """Two SDK users who are friends, each on one device: (a, b, a's name, b's name).
    Their passwords are "password-a-123" and "password-b-123"."""
    a = Client(gw.http, home=tmp_path / "a", passphrase=SDK_PASSPHRASE)
    b = Client(gw.http, home=tmp_path / "b", passphrase=SDK_PASSPHRASE)
    na, nb = unique_name("alice"), unique_name("bob")
    await a.register(na, "password-a-123")
    await b.register(nb, "password-b-123")
    await a.add_friend(nb)
    await b.accept_friend(na)
    yield a, b, na, nb
    await a.close()
    await b.close()
