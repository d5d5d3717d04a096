from __future__ import annotations

import pytest
from support import Gateway, Stack


@pytest.fixture(scope="module")
def gw(stack: Stack) -> Gateway:
    """One persister and one gateway for the module."""
    stack.persister()
    return stack.gateway()
