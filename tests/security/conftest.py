from __future__ import annotations

import pytest
from support import Gateway, Stack


@pytest.fixture(scope="module")
def gw(stack: Stack) -> Gateway:
    """A persister and a gateway with tight, testable limits."""
    stack.persister()
    return stack.gateway(DUET_RATE_PER_S="20", DUET_RATE_BURST="40",
                         DUET_MAX_CONNECTIONS_PER_IP="6", DUET_LOGIN_FAILURES_PER_USER="3",
                         DUET_OUTBOX_FRAMES="64")
