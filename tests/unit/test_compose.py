"""docker-compose.yml, Dockerfile and .env.example: parsed by a real compose, then house rules.

No Docker engine is needed: `docker compose config` (or Debian's `docker-compose config`)
validates and interpolates the file offline. If neither is installed the tests fail
instead of skipping; `make test` (scripts/bootstrap.sh) installs Debian's docker-compose.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

# The DUET_ variables of the design; _known_settings() adds every field of the settings classes.
DESIGN_SETTINGS = frozenset(
    {
        "DUET_AMQP_URL",
        "DUET_MONGO_URL",
        "DUET_MONGO_DB",
        "DUET_EXCHANGE",
        "DUET_PREFIX",
        "DUET_DELIVERY_LIMIT",
        "DUET_LOG_LEVEL",
        "DUET_HOST",
        "DUET_PORT",
        "DUET_TOKEN_SECRET",
        "DUET_TOKEN_SECRET_FILE",
        "DUET_TOKEN_TTL_S",
        "DUET_TLS_CERT",
        "DUET_TLS_KEY",
        "DUET_ALLOWED_ORIGINS",
        "DUET_MAX_FRAME_BYTES",
    }
)
# Services that run to completion (migrations, setup jobs) need no healthcheck; none yet.
ONE_SHOT_SERVICES: frozenset[str] = frozenset()
REQUIRED_SECRET = re.compile(r"^\$\{DUET_TOKEN_SECRET:\?[^}]+\}$")
INTERPOLATION = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> list[str]:
    """The compose command: the docker CLI plugin if it works, else docker-compose."""
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail(
        "no compose implementation: neither `docker compose` nor `docker-compose` works. "
        "make test installs one (scripts/bootstrap.sh: apt-get install docker-compose)."
    )


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """docker-compose.yml as plain YAML (before interpolation)."""
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _run_config(compose: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # An empty env file and a scrubbed environment: a developer's .env must not decide.
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DUET_", "RABBITMQ_", "COMPOSE_"))
    }
    return subprocess.run(
        [*compose, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**clean, **env},
    )


def _known_settings() -> frozenset[str]:
    """Every DUET_ variable the services read: the design's list and their settings' fields."""
    from gateway.settings import GatewaySettings
    from persister.settings import PersisterSettings

    names = set(DESIGN_SETTINGS)
    for settings in (GatewaySettings, PersisterSettings):
        prefix = str(settings.model_config.get("env_prefix", "")).upper()
        names |= {prefix + field.upper() for field in settings.model_fields}
    return frozenset(names)


def _services(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = spec.get("services")
    assert isinstance(services, dict) and services, "no services"
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- NAME=value` form
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_config_compose_file_valid(compose: list[str], tmp_path: Path) -> None:
    """A real compose implementation accepts docker-compose.yml when the secret is set."""
    result = _run_config(compose, tmp_path, DUET_TOKEN_SECRET="x" * 40)
    assert result.returncode == 0, result.stderr


def test_config_compose_without_token_secret_fails(compose: list[str], tmp_path: Path) -> None:
    """Without DUET_TOKEN_SECRET, compose refuses to start and says which variable is missing."""
    result = _run_config(compose, tmp_path)
    assert result.returncode != 0
    assert "DUET_TOKEN_SECRET" in result.stderr + result.stdout


def test_compose_images_pinned(spec: dict[str, Any]) -> None:
    """No image is untagged or `latest`; images pulled from a registry pin a patch version."""
    for name, service in _services(spec).items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name}: neither image nor build"
            continue
        repo, _, tag = str(image).rpartition(":")
        assert repo and "/" not in tag, f"{name}: image {image} has no tag"
        assert tag != "latest", f"{name}: image {image} uses latest"
        if "build" not in service:
            assert re.match(r"^\d+\.\d+\.\d+", tag), f"{name}: pin {image} to a patch version"


def test_compose_services_have_healthchecks(spec: dict[str, Any]) -> None:
    """Every long-running service has a healthcheck, in compose or in the Dockerfile it builds."""
    image_has_healthcheck = re.search(r"^HEALTHCHECK\s+(?!NONE)", DOCKERFILE.read_text(), re.M)
    for name, service in _services(spec).items():
        if name in ONE_SHOT_SERVICES:
            continue
        check = service.get("healthcheck")
        if check is None:
            assert "build" in service and image_has_healthcheck, f"{name}: no healthcheck"
        else:
            assert not check.get("disable"), f"{name}: healthcheck disabled"
            assert check.get("test"), f"{name}: healthcheck without a test"


def test_compose_duet_variables_known(spec: dict[str, Any]) -> None:
    """Every DUET_ variable compose sets or interpolates is one the services read."""
    used = set(INTERPOLATION.findall(COMPOSE_FILE.read_text()))
    for service in _services(spec).values():
        used |= set(_environment(service))
    unknown = {n for n in used if n.startswith("DUET_")} - _known_settings()
    assert not unknown, f"compose uses settings no service reads: {sorted(unknown)}"


def test_compose_token_secret_required(spec: dict[str, Any]) -> None:
    """DUET_TOKEN_SECRET is always `${DUET_TOKEN_SECRET:?message}`: no default, no literal."""
    values = [
        value
        for service in _services(spec).values()
        for key, value in _environment(service).items()
        if key == "DUET_TOKEN_SECRET"
    ]
    assert values, "no service gets DUET_TOKEN_SECRET"
    for value in values:
        assert REQUIRED_SECRET.match(value), f"DUET_TOKEN_SECRET: {value!r}"


def test_compose_dependencies_wait_until_healthy(spec: dict[str, Any]) -> None:
    """Services start only after the broker and the database they use report healthy."""
    services = _services(spec)
    for name in ("gateway", "persister"):
        depends = services[name].get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on needs the long form"
        for dependency in ("rabbitmq", "mongo"):
            condition = depends.get(dependency, {}).get("condition")
            assert condition == "service_healthy", f"{name} -> {dependency}: {condition}"


def test_compose_services_scalable(spec: dict[str, Any]) -> None:
    """No container_name and no single fixed host port on the app services, so --scale works."""
    for name, service in _services(spec).items():
        assert "container_name" not in service, f"{name}: container_name blocks --scale"
    for name in ("gateway", "persister"):
        for port in _services(spec)[name].get("ports", []):
            if isinstance(port, dict):  # long syntax
                published = str(port.get("published", ""))
            else:
                published = str(port).rsplit(":", 1)[0] if ":" in str(port) else ""
                published = published.rsplit(":", 1)[-1]  # drop a host IP
            assert not published.isdigit(), f"{name}: fixed host port {port}"


def test_dockerfile_pins_base_and_runs_as_non_root() -> None:
    """Every stage uses a pinned python:3.11.X-slim-bookworm; the image runs as non-root."""
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert bases, "no FROM"
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}, f"USER {users}"
    assert re.search(r"^HEALTHCHECK\b.*?/healthz", text, re.M | re.S), "no /healthz healthcheck"
    assert re.search(r'^CMD \["python", "-m", "gateway"\]', text, re.M)


def test_env_example_leaves_token_secret_empty() -> None:
    """.env.example names DUET_TOKEN_SECRET with no value, and .dockerignore keeps .env out."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    assert "DUET_TOKEN_SECRET=" in lines
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()
