"""docker-compose.yml, Dockerfile, .env.example and deploy/: parsed by a real compose, then
house rules.

No Docker engine is needed: `docker compose config` (or Debian's `docker-compose config`)
validates, interpolates and normalises the file offline, and the rules below read its
output. If neither is installed the tests fail instead of skipping; `make test`
(scripts/bootstrap.sh) installs Debian's docker-compose. The nginx configuration is also
given to a real `nginx -t` (make test unpacks Debian's nginx into .duet/nginx).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
NGINX_CONF = DEPLOY / "nginx.conf"

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
# Every service the code needs, by role: the broker, the database (and the job that makes it
# a replica set), both services, and the load balancer in front of the gateways.
REQUIRED_SERVICES = frozenset({"rabbitmq", "mongo", "mongo-init", "gateway", "persister", "lb"})
SCALED_SERVICES = ("gateway", "persister")
LOAD_BALANCER = "lb"
# Services that run to completion need no healthcheck; the others wait for them to succeed.
ONE_SHOT_SERVICES = frozenset({"mongo-init"})
REPLICA_SET = "rs0"
REQUIRED_SECRETS = ("DUET_TOKEN_SECRET", "RABBITMQ_PASSWORD")
INTERPOLATION = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
# Values that make `docker compose config` succeed; nothing here is ever started.
TEST_SECRETS = {"DUET_TOKEN_SECRET": "x" * 40, "RABBITMQ_PASSWORD": "compose-test-password-1"}


# -- fixtures ------------------------------------------------------------------------------
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


def _run_config(compose: list[str], tmp_path: Path, *args: str,
                **env: str) -> subprocess.CompletedProcess[str]:
    # An empty env file and a scrubbed environment: a developer's .env must not decide.
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    clean = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("DUET_", "RABBITMQ_", "COMPOSE_", "LB_"))
    }
    return subprocess.run(
        [*compose, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**clean, **env},
    )


@pytest.fixture(scope="module")
def resolved(compose: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The file as compose understands it: interpolated and normalised by `config`."""
    result = _run_config(compose, tmp_path_factory.mktemp("compose"), **TEST_SECRETS)
    assert result.returncode == 0, result.stderr
    loaded = yaml.safe_load(result.stdout)
    assert isinstance(loaded, dict)
    return loaded


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
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    return command.split() if isinstance(command, str) else list(command or [])


def _published_ports(service: dict[str, Any]) -> list[str]:
    """Host ports a service publishes (short or long syntax); [] for expose-only."""
    published = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            value = str(port.get("published", ""))
        else:
            parts = str(port).split(":")
            value = parts[-2] if len(parts) >= 2 else ""  # host IP:host port:container port
        if value:
            published.append(value)
    return published


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source, for the bind mounts and volumes of a resolved service."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            out[str(volume["target"])] = str(volume.get("source", ""))
        else:
            source, target, *_ = str(volume).split(":")
            out[target] = source
    return out


def _nginx_directives(text: str) -> list[list[str]]:
    """Every directive of an nginx configuration, as its words (comments dropped)."""
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return [stmt.split() for stmt in re.split(r"[;{}]", code) if stmt.strip()]


# Space, a comment, a "quoted" or 'quoted' word, a ; { or }, a bare word.
_NGINX_TOKEN = re.compile(r"""\s+|#[^\n]*|"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'"""
                          r"""|([;{}])|([^\s;{}"'#]+)""")


@dataclass
class _NginxBlock:
    """A block of an nginx configuration (`server`, `location = /x`, …): its own directives
    (words, quotes removed) and the blocks inside it."""
    words: list[str]
    directives: list[list[str]] = field(default_factory=list)
    blocks: list[_NginxBlock] = field(default_factory=list)

    def values(self, name: str) -> list[list[str]]:
        return [d[1:] for d in self.directives if d[0] == name]

    def find(self, name: str) -> list[_NginxBlock]:
        """Every block named `name` at any depth below this one."""
        return [b for child in self.blocks
                for b in ([child] if child.words[0] == name else []) + child.find(name)]


def _nginx_tree(text: str) -> _NginxBlock:
    """An nginx configuration as nested blocks, quoted words (with `;` inside) kept whole."""
    root = _NginxBlock(["main"])
    stack, words = [root], []
    for m in _NGINX_TOKEN.finditer(text):
        word = next((g for g in (m[1], m[2], m[4]) if g is not None), None)
        if word is not None:
            words.append(word)
        elif m[3] == ";":
            stack[-1].directives.append(words)
            words = []
        elif m[3] == "{":
            block = _NginxBlock(words)
            stack[-1].blocks.append(block)
            stack.append(block)
            words = []
        elif m[3] == "}":
            stack.pop()
    assert len(stack) == 1 and not words, "unbalanced nginx configuration"
    return root


# -- compose accepts the file ----------------------------------------------------------------
def test_config_compose_file_valid(compose: list[str], tmp_path: Path) -> None:
    """A real compose implementation accepts docker-compose.yml when the secrets are set."""
    result = _run_config(compose, tmp_path, "-q", **TEST_SECRETS)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", REQUIRED_SECRETS)
def test_config_compose_without_secret_fails(compose: list[str], tmp_path: Path,
                                             missing: str) -> None:
    """Without DUET_TOKEN_SECRET or RABBITMQ_PASSWORD, compose refuses to start and names it."""
    env = {k: v for k, v in TEST_SECRETS.items() if k != missing}
    result = _run_config(compose, tmp_path, "-q", **env)
    assert result.returncode != 0
    assert missing in result.stderr + result.stdout


def test_compose_secrets_required_everywhere() -> None:
    """Every use of a secret is `${NAME:?message}`: no default, no literal, no bare `$NAME`."""
    text = COMPOSE_FILE.read_text()
    for name in REQUIRED_SECRETS:
        uses = re.findall(r"\$\{?" + name + r"\b[^}]*\}?", text)
        assert uses, f"{name} is never used"
        for use in uses:
            assert re.fullmatch(r"\$\{" + name + r":\?[^}]+\}", use), f"{name}: {use!r}"


# -- house rules, on what compose resolved ---------------------------------------------------
def test_compose_required_services_present(resolved: dict[str, Any]) -> None:
    """The broker, the database and its init job, both services and the balancer are there,
    and the hosts in the services' URLs are services of this file."""
    services = _services(resolved)
    assert REQUIRED_SERVICES <= set(services), sorted(REQUIRED_SERVICES - set(services))
    for name in SCALED_SERVICES:
        env = _environment(services[name])
        for key in ("DUET_AMQP_URL", "DUET_MONGO_URL"):
            host = urlsplit(env[key]).hostname
            assert host in services, f"{name}: {key} points at {host}, not a service"


def test_compose_images_pinned(resolved: dict[str, Any]) -> None:
    """No image is untagged or `latest`; images pulled from a registry pin a patch version."""
    for name, service in _services(resolved).items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name}: neither image nor build"
            continue
        repo, _, tag = str(image).rpartition(":")
        assert repo and "/" not in tag, f"{name}: image {image} has no tag"
        assert tag != "latest", f"{name}: image {image} uses latest"
        if "build" not in service:
            assert re.match(r"^\d+\.\d+\.\d+", tag), f"{name}: pin {image} to a patch version"


def test_compose_services_have_healthchecks(resolved: dict[str, Any]) -> None:
    """Every long-running service has a healthcheck (in compose or the Dockerfile it builds);
    one-shot jobs are not restarted."""
    image_has_healthcheck = re.search(r"^HEALTHCHECK\s+(?!NONE)", DOCKERFILE.read_text(), re.M)
    for name, service in _services(resolved).items():
        if name in ONE_SHOT_SERVICES:
            assert service.get("restart", "no") == "no", f"{name}: a one-shot job restarts"
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


def test_compose_dependencies_wait_until_ready(resolved: dict[str, Any]) -> None:
    """The services start after the broker and MongoDB are healthy and the replica set is
    initiated; the init job after MongoDB; the balancer after the gateways."""
    services = _services(resolved)
    wanted = {
        "gateway": {"rabbitmq": "service_healthy", "mongo": "service_healthy",
                    "mongo-init": "service_completed_successfully"},
        "persister": {"rabbitmq": "service_healthy", "mongo": "service_healthy",
                      "mongo-init": "service_completed_successfully"},
        "mongo-init": {"mongo": "service_healthy"},
        LOAD_BALANCER: {"gateway": "service_healthy"},
    }
    for name, dependencies in wanted.items():
        depends = services[name].get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on needs the long form"
        for dependency, condition in dependencies.items():
            got = depends.get(dependency, {}).get("condition")
            assert got == condition, f"{name} -> {dependency}: {got}"


def test_compose_services_scalable(resolved: dict[str, Any]) -> None:
    """No container_name anywhere, and no host name or host port on the scaled services,
    so `--scale gateway=3 --scale persister=2` works as is."""
    for name, service in _services(resolved).items():
        assert "container_name" not in service, f"{name}: container_name blocks --scale"
    for name in SCALED_SERVICES:
        service = _services(resolved)[name]
        assert "hostname" not in service, f"{name}: a fixed hostname on a scaled service"
        assert not _published_ports(service), f"{name}: publishes {service.get('ports')}"


def test_compose_only_load_balancer_publishes_ports(resolved: dict[str, Any]) -> None:
    """The balancer publishes http and https; no other service publishes anything."""
    for name, service in _services(resolved).items():
        if name == LOAD_BALANCER:
            targets = {int(p["target"]) if isinstance(p, dict) else int(str(p).split(":")[-1])
                       for p in service.get("ports", [])}
            assert targets == {80, 443}, targets
        else:
            assert not service.get("ports"), f"{name} publishes {service.get('ports')}"
    backend = resolved.get("networks", {}).get("backend", {})
    assert backend.get("internal") is True, "the broker and database network must be internal"
    assert "backend" not in _services(resolved)[LOAD_BALANCER].get("networks", {})


def test_compose_matches_local_launcher(resolved: dict[str, Any], tmp_path: Path) -> None:
    """Compose runs the services with the launcher's commands and sets the variables the
    launcher sets for each (devstack/stack.py)."""
    from devstack.stack import StackConfig, duet_services

    launched = {s.name.rsplit("-", 1)[0]: s
                for s in duet_services(StackConfig(state_dir=tmp_path), {"X": "1"})}
    source = (ROOT / "devstack" / "stack.py").read_text()
    services = _services(resolved)
    for name in SCALED_SERVICES:
        command = _command(services[name])
        assert command == ["python", *launched[name].argv[1:]], (name, command)
        assert command == ["python", "-m", name]
        env = _environment(services[name])
        # What the launcher sets per service, and what it hands every child (stack._start).
        own = {k for k in launched[name].env if k.startswith("DUET_")}
        shared = {k for k in ("DUET_AMQP_URL", "DUET_MONGO_URL") if f'"{k}"' in source}
        assert shared == {"DUET_AMQP_URL", "DUET_MONGO_URL"}, "the launcher changed"
        assert own | shared <= set(env), (name, sorted((own | shared) - set(env)))
    assert "DUET_TOKEN_SECRET" in _environment(services["gateway"])


def test_compose_token_secret_required(spec: dict[str, Any]) -> None:
    """DUET_TOKEN_SECRET is given to the gateway, always as `${DUET_TOKEN_SECRET:?message}`."""
    values = [
        value
        for service in _services(spec).values()
        for key, value in _environment(service).items()
        if key == "DUET_TOKEN_SECRET"
    ]
    assert values, "no service gets DUET_TOKEN_SECRET"
    for value in values:
        assert re.fullmatch(r"\$\{DUET_TOKEN_SECRET:\?[^}]+\}", value), value


def test_compose_mongo_is_a_replica_set(resolved: dict[str, Any]) -> None:
    """mongod runs with --replSet, the services' URL names the set, and mongo-init runs a
    script that initiates it only when it is not yet initiated and waits for a primary."""
    services = _services(resolved)
    command = _command(services["mongo"])
    assert command[command.index("--replSet") + 1] == REPLICA_SET, command
    for name in SCALED_SERVICES:
        url = _environment(services[name])["DUET_MONGO_URL"]
        assert parse_qs(urlsplit(url).query).get("replicaSet") == [REPLICA_SET], url
    init = services["mongo-init"]
    script_path = _command(init)[_command(init).index("--file") + 1]
    mount_target, source = next((t, s) for t, s in _mounts(init).items()
                                if script_path.startswith(t + "/"))
    script = Path(source) / script_path[len(mount_target) + 1:]
    assert script.is_file(), script
    text = script.read_text()
    assert "rs.initiate" in text and "NotYetInitialized" in text and "isWritablePrimary" in text
    assert f'"{REPLICA_SET}"' in text


def test_compose_rabbitmq_definitions_render_the_account(
        resolved: dict[str, Any], tmp_path: Path) -> None:
    """The broker loads definitions at boot (its conf names the file the entrypoint renders),
    and rendering them gives the vhost, the account from .env and its permissions; a
    placeholder or URL-unsafe password is refused."""
    rabbit = _services(resolved)["rabbitmq"]
    mounts = _mounts(rabbit)
    conf_source = next(s for t, s in mounts.items() if t.startswith("/etc/rabbitmq/conf.d/"))
    conf = dict(line.split(" = ", 1) for line in Path(conf_source).read_text().splitlines()
                if line.strip() and not line.startswith("#"))
    entrypoint = " ".join(rabbit.get("entrypoint") or [])
    assert "render-definitions.sh" in entrypoint and "docker-entrypoint.sh" in entrypoint
    render = DEPLOY / "rabbitmq" / "render-definitions.sh"
    assert Path(mounts["/etc/duet/rabbitmq"]) == render.parent, mounts
    assert 'template="${DEFINITIONS_TEMPLATE:-/etc/duet/rabbitmq/definitions.json}"' in (
        render.read_text())
    assert re.search(r'out="\$\{DEFINITIONS_OUT:-' + re.escape(conf["load_definitions"]),
                     render.read_text()), "the conf loads another file than the one rendered"

    def run(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(render)], capture_output=True, text=True, timeout=30, check=False,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RABBITMQ_USER": "duet",
                 "RABBITMQ_PASSWORD": password,
                 "DEFINITIONS_TEMPLATE": str(DEPLOY / "rabbitmq" / "definitions.json"),
                 "DEFINITIONS_OUT": str(tmp_path / "definitions.json")})

    password = "Zq3-x_9.kW~s7Lr2VbN4"
    result = run(password)
    assert result.returncode == 0, result.stderr
    definitions = json.loads((tmp_path / "definitions.json").read_text())
    assert definitions["vhosts"] == [{"name": "/"}]
    assert [(u["name"], u["password"]) for u in definitions["users"]] == [("duet", password)]
    assert definitions["permissions"][0]["user"] == "duet"
    assert "administrator" not in definitions["users"][0]["tags"]
    for bad in ("change-me-change-me", "short", "has a space in it!!", "p@ss/word:1234567890"):
        assert run(bad).returncode != 0, bad


def test_compose_gateway_trusts_forwarded_for_and_persister_checks_health_port(
        resolved: dict[str, Any]) -> None:
    """The gateways believe the balancer's X-Forwarded-For; the persister's healthcheck asks
    its DUET_HEALTH_PORT with Python's urllib (the image has no curl)."""
    services = _services(resolved)
    assert _environment(services["gateway"]).get("DUET_FORWARDED_ALLOW_IPS")
    persister = services["persister"]
    assert _environment(persister).get("DUET_HEALTH_PORT")
    test = " ".join(persister["healthcheck"]["test"])
    assert "python" in test and "urllib" in test and "DUET_HEALTH_PORT" in test
    assert re.search(r"/(healthz|readyz)", test)


# -- the load balancer ---------------------------------------------------------------------
def test_nginx_passes_websocket_upgrades_and_terminates_tls(resolved: dict[str, Any]) -> None:
    """deploy/nginx.conf (mounted into the balancer) speaks TLS with the mounted certificate,
    redirects http to https, passes Upgrade/Connection with HTTP/1.1 and long timeouts,
    overwrites X-Forwarded-For, and finds the gateway replicas through Docker's DNS."""
    lb = _services(resolved)[LOAD_BALANCER]
    mounts = _mounts(lb)
    assert Path(mounts["/etc/nginx/nginx.conf"]) == NGINX_CONF
    assert Path(mounts["/etc/nginx/tls"]) == DEPLOY / "tls"
    directives = _nginx_directives(NGINX_CONF.read_text())

    def values(name: str) -> list[list[str]]:
        return [d[1:] for d in directives if d[0] == name]

    assert ["443", "ssl", "default_server"] in values("listen")
    assert ["80", "default_server"] in values("listen")
    assert values("ssl_certificate") == [["/etc/nginx/tls/server.pem"]]
    assert values("ssl_certificate_key") == [["/etc/nginx/tls/server-key.pem"]]
    assert any(v[0] in ("301", "308") and v[1].startswith("https://") for v in values("return"))
    headers = {v[0].lower(): v[1] for v in values("proxy_set_header")}
    assert headers["upgrade"] == "$http_upgrade"
    assert headers["connection"] == "$connection_upgrade"
    assert ["$http_upgrade", "$connection_upgrade"] in values("map")
    assert headers["x-forwarded-for"] == "$remote_addr"  # overwritten, never appended
    assert headers["host"] == "$http_host"  # the gateway's Origin check compares with Host
    assert values("proxy_http_version") == [["1.1"]]
    timeout = values("proxy_read_timeout")[0][0]
    assert int(timeout.rstrip("s")) >= 300, timeout
    # Re-resolved at request time: a variable upstream and Docker's embedded resolver.
    assert values("resolver")[0][0] == "127.0.0.11"
    [[target]] = values("proxy_pass")
    variable = target.removeprefix("http://")
    assert variable.startswith("$"), "proxy_pass must name the gateways through a variable"
    [[_, upstream]] = [v for v in values("set") if v[0] == variable]
    host, port = upstream.split(":")
    gateway = _services(resolved)[host]
    assert port == _environment(gateway)["DUET_PORT"]
    assert LOAD_BALANCER not in host


def test_nginx_https_server_sends_hsts_everywhere() -> None:
    """The https server sends Strict-Transport-Security for a year with includeSubDomains,
    on every answer (`always`), and no location drops it with an add_header of its own."""
    [https] = [b for b in _nginx_tree(NGINX_CONF.read_text()).find("server")
               if ["443", "ssl", "default_server"] in b.values("listen")]
    hsts = ["Strict-Transport-Security", "max-age=31536000; includeSubDomains", "always"]
    assert https.values("add_header") == [hsts]
    for location in https.find("location"):
        # nginx inherits add_header into a block only if that block has none itself.
        assert location.values("add_header") in ([], [hsts]), location.words


def _nginx() -> str | None:
    """An nginx binary: $NGINX, else one on PATH, in /usr/sbin, or the one `make test`
    unpacks into .duet/nginx (scripts/bootstrap.sh)."""
    unpacked = str(ROOT / ".duet" / "nginx" / "usr" / "sbin" / "nginx")
    for candidate in (os.environ.get("NGINX"), shutil.which("nginx"), "/usr/sbin/nginx",
                      unpacked):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.mark.compose  # a deployment tool, as compose is
def test_nginx_config_accepted_by_nginx(tmp_path: Path) -> None:
    """A real `nginx -t` accepts deploy/nginx.conf with a certificate from gateway.certs."""
    nginx = _nginx()
    assert nginx is not None, "no nginx binary: `make test` unpacks one into .duet/nginx"
    from gateway.certs import make

    make(tmp_path / "tls", ["localhost"])
    text = NGINX_CONF.read_text().replace("/etc/nginx/tls/", f"{tmp_path}/tls/")
    text = text.replace("/tmp/nginx", f"{tmp_path}/nginx")
    (tmp_path / "nginx.conf").write_text(text)
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                             "-e", "stderr"], capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 0, result.stderr


# -- the image and the example environment --------------------------------------------------
def test_dockerfile_pins_base_and_runs_as_non_root() -> None:
    """Every stage uses a pinned python:3.11.X-slim-bookworm; the image runs as non-root,
    carries every package compose runs (and the CLI), and serves the web client."""
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert bases, "no FROM"
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}, f"USER {users}"
    assert re.search(r"^HEALTHCHECK\b.*?/healthz", text, re.M | re.S), "no /healthz healthcheck"
    assert re.search(r'^CMD \["python", "-m", "gateway"\]', text, re.M)
    for package in ("contracts", "broker", "gateway", "persister", "client", "admin"):
        assert re.search(rf"^COPY {package} ", text, re.M), f"the image lacks {package}/"
    assert re.search(r"^COPY web (\S+)", text, re.M) and "DUET_WEB_DIR=" in text


def test_env_example_leaves_secrets_empty() -> None:
    """.env.example names the secrets with no value, and .dockerignore keeps .env out."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    for name in REQUIRED_SECRETS:
        assert f"{name}=" in lines, name
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()
