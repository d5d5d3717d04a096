"""Access tokens: signed, expiring, and valid across a signing-key rotation."""

from __future__ import annotations

import pytest

from gateway.auth import Tokens
from gateway.errors import Unauthenticated
from gateway.settings import GatewaySettings

OLD, NEW = "o" * 40, "n" * 40
USER = "a" * 24


def tokens(secret: str, previous: str = "") -> Tokens:
    return Tokens(GatewaySettings(token_secret=secret, token_secrets_previous=previous,
                                  web_dir=None))


def test_rotated_secret_keeps_old_tokens_valid() -> None:
    """A token signed with the old secret verifies after rotation; new ones use the new."""
    old_token = tokens(OLD).issue(USER, "alice")
    rotated = tokens(NEW, previous=OLD)
    assert rotated.verify(old_token) == USER
    assert tokens(NEW).verify(rotated.issue(USER, "alice")) == USER
    with pytest.raises(Unauthenticated):
        tokens(NEW).verify(old_token)  # once the old secret is dropped, so are its tokens


def test_expired_and_garbage_tokens_refused() -> None:
    """Expired, malformed and foreign tokens raise Unauthenticated."""
    t = tokens(NEW)
    t.ttl_s = -10
    with pytest.raises(Unauthenticated, match="expired"):
        tokens(NEW).verify(t.issue(USER, "a"))
    for bad in ("", "a.b.c", tokens("x" * 40).issue(USER, "a")):
        with pytest.raises(Unauthenticated):
            tokens(NEW).verify(bad)


def test_placeholder_and_short_secrets_refused() -> None:
    """Settings refuse a missing, short or placeholder secret."""
    for secret in ("short", "changeme"):
        with pytest.raises(ValueError):
            GatewaySettings(token_secret=secret)


def test_an_empty_web_dir_serves_no_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """DUET_WEB_DIR="" means no web client, not the working directory (Path(""))."""
    monkeypatch.setenv("DUET_WEB_DIR", "")
    monkeypatch.setenv("DUET_TOKEN_SECRET", "x" * 32)
    assert GatewaySettings().web_dir is None
