"""ServiceSettings: the broker and MongoDB URLs from files (Docker secrets, as compose gives
them), and DUET_DECLARE_TOPOLOGY."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import ServiceSettings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DUET_"):
            monkeypatch.delenv(name)


def test_read_urls_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DUET_AMQP_URL_FILE and DUET_MONGO_URL_FILE give the URLs, without the final newline."""
    (tmp_path / "amqp").write_text("amqp://duet-gateway:s3cret-s3cret-s3cret@rabbitmq:5672/\n")
    (tmp_path / "mongo").write_text("mongodb://duet-gateway:pw@mongo:27017/duet?replicaSet=rs0\n")
    monkeypatch.setenv("DUET_AMQP_URL_FILE", str(tmp_path / "amqp"))
    monkeypatch.setenv("DUET_MONGO_URL_FILE", str(tmp_path / "mongo"))
    settings = ServiceSettings()
    assert settings.amqp_url == "amqp://duet-gateway:s3cret-s3cret-s3cret@rabbitmq:5672/"
    assert settings.mongo_url == "mongodb://duet-gateway:pw@mongo:27017/duet?replicaSet=rs0"


@pytest.mark.parametrize("name", ["AMQP_URL", "MONGO_URL"])
def test_url_and_its_file_refused_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           name: str) -> None:
    """Giving both a URL and its file is refused, naming both; so is an empty file."""
    (tmp_path / "url").write_text("scheme://host/\n")
    monkeypatch.setenv(f"DUET_{name}_FILE", str(tmp_path / "url"))
    monkeypatch.setenv(f"DUET_{name}", "scheme://other/")
    with pytest.raises(ValidationError, match=f"DUET_{name} or DUET_{name}_FILE"):
        ServiceSettings()
    monkeypatch.delenv(f"DUET_{name}")
    (tmp_path / "url").write_text("\n")
    with pytest.raises(ValidationError, match="is empty"):
        ServiceSettings()


def test_declare_topology_defaults_to_true(monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher and the tests declare the topology; compose turns it off per service."""
    assert ServiceSettings().declare_topology is True
    monkeypatch.setenv("DUET_DECLARE_TOPOLOGY", "false")
    assert ServiceSettings().declare_topology is False
