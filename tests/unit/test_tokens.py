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


def test_previous_secrets_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """DUET_TOKEN_SECRETS_PREVIOUS_FILE (a Docker secret) holds the older secrets, one a
    line; a token one of them signed is accepted; the variable and its file together are
    refused."""
    old, new = "o" * 40, "n" * 40
    (tmp_path / "previous").write_text(f"{old}\n\n")
    monkeypatch.setenv("DUET_TOKEN_SECRET", new)
    monkeypatch.setenv("DUET_TOKEN_SECRETS_PREVIOUS_FILE", str(tmp_path / "previous"))
    settings = GatewaySettings()
    assert [s.get_secret_value() for s in settings.token_secrets_previous] == [old]
    monkeypatch.setenv("DUET_TOKEN_SECRET", old)
    token = Tokens(GatewaySettings(_env_file=None)).issue("a" * 24, "alice")  # type: ignore[call-arg]
    monkeypatch.setenv("DUET_TOKEN_SECRET", new)
    assert Tokens(settings).verify(token)
    monkeypatch.setenv("DUET_TOKEN_SECRETS_PREVIOUS", "x" * 40)
    with pytest.raises(ValueError, match="not both"):
        GatewaySettings()
