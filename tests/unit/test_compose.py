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
# `admin` is run by hand (`docker compose run --rm admin …`, profile ops).
ONE_SHOT_SERVICES = frozenset({"mongo-init", "admin"})
REPLICA_SET = "rs0"
INTERPOLATION = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
# The containers that run duet or face the internet: read-only, no capabilities.
HARDENED_SERVICES = ("gateway", "persister", LOAD_BALANCER, "admin")
# Each service's own accounts: service -> (its RabbitMQ URL secret, its MongoDB URL secret).
ACCOUNTS = {"gateway": ("gateway_amqp_url", "gateway_mongo_url"),
            "persister": ("persister_amqp_url", "persister_mongo_url"),
            "admin": ("ops_amqp_url", "ops_mongo_url")}
SECRETS_DIR = DEPLOY / "secrets"
# Settings whose value is a secret: never in a compose environment, only their _FILE.
SECRET_SETTINGS = ("DUET_TOKEN_SECRET", "DUET_AMQP_URL", "DUET_MONGO_URL")


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


def _run_config(compose: list[str], tmp_path: Path, *args: str, files: tuple[Path, ...] = (),
                **env: str) -> subprocess.CompletedProcess[str]:
    # An empty env file and a scrubbed environment: a developer's .env must not decide.
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    clean = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("DUET_", "RABBITMQ_", "COMPOSE_", "LB_"))
    }
    return subprocess.run(
        [*compose, "--env-file", str(env_file),
         *(a for f in (COMPOSE_FILE, *files) for a in ("-f", str(f))), "config", *args],
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
    result = _run_config(compose, tmp_path_factory.mktemp("compose"))
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
    """A real compose implementation accepts docker-compose.yml with an empty environment:
    no secret comes from the environment any more."""
    result = _run_config(compose, tmp_path, "-q")
    assert result.returncode == 0, result.stderr


def _secret_files(resolved: dict[str, Any]) -> dict[str, Path]:
    out = {}
    for name, secret in (resolved.get("secrets") or {}).items():
        assert set(secret) == {"file"}, f"secret {name}: a file, not {sorted(secret)}"
        out[str(name)] = Path(secret["file"])
    return out


def _mounted_secrets(service: dict[str, Any]) -> set[str]:
    return {str(s["source"]) if isinstance(s, dict) else str(s)
            for s in service.get("secrets", [])}


def test_compose_secrets_are_files_no_service_sees_in_its_environment(
        resolved: dict[str, Any]) -> None:
    """Every secret is a Docker secret from a file in deploy/secrets/ (which git ignores),
    each service mounts only its own, and no environment holds a secret: the token secret
    and the URLs (with their passwords) are given as *_FILE paths to mounted secrets."""
    files = _secret_files(resolved)
    assert files, "no secrets"
    for name, path in files.items():
        assert path.parent == SECRETS_DIR and path.name == name, (name, path)
    ignore = (SECRETS_DIR / ".gitignore").read_text().split()
    assert "*" in ignore and "!.gitignore" in ignore
    services = _services(resolved)
    for name, service in services.items():
        env = _environment(service)
        for setting in SECRET_SETTINGS:
            assert setting not in env, f"{name}: {setting} in the environment, use its _FILE"
        for key, value in env.items():
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", value), f"{name}: {key} has a password"
            assert "PASSWORD" not in key or key.endswith("_FILE"), f"{name}: {key}"
            if key.endswith("_FILE"):
                secret = value.removeprefix("/run/secrets/")
                assert value.startswith("/run/secrets/") and secret in _mounted_secrets(
                    service), f"{name}: {key}={value} is not one of its secrets"
        assert _mounted_secrets(service) <= set(files), name
    gateway = _environment(services["gateway"])
    assert gateway["DUET_TOKEN_SECRET_FILE"] == "/run/secrets/token_secret"
    holders = [n for n, s in services.items() if "token_secret" in _mounted_secrets(s)]
    assert holders == ["gateway"], holders


def test_compose_services_use_their_own_accounts(resolved: dict[str, Any]) -> None:
    """Gateway, persister and the ops tool each read their own RabbitMQ and MongoDB URL,
    and no secret of one service is mounted into another duet service."""
    services = _services(resolved)
    for name, (amqp, mongo) in ACCOUNTS.items():
        mounted = _mounted_secrets(services[name])
        assert {amqp, mongo} <= mounted, (name, mounted)
        others = {s for n, pair in ACCOUNTS.items() if n != name for s in pair}
        assert not mounted & others, (name, mounted & others)
        if name != "admin":  # duet-admin reads DUET_AMQP_URL: its entrypoint cats the files
            env = _environment(services[name])
            assert env["DUET_AMQP_URL_FILE"] == f"/run/secrets/{amqp}"
            assert env["DUET_MONGO_URL_FILE"] == f"/run/secrets/{mongo}"
    admin = " ".join(services["admin"]["entrypoint"])
    assert "/run/secrets/ops_amqp_url" in admin and "/run/secrets/ops_mongo_url" in admin
    assert services["admin"].get("profiles") == ["ops"], "admin must not start with `up`"
    # The broker and mongo-init read every account from the same files.
    assert {"gateway_amqp_url", "persister_amqp_url", "ops_amqp_url"} <= _mounted_secrets(
        services["rabbitmq"])
    assert {"gateway_mongo_url", "persister_mongo_url", "ops_mongo_url",
            "mongo_root_password"} <= _mounted_secrets(services["mongo-init"])


def test_compose_gateway_only_checks_the_durable_path(resolved: dict[str, Any]) -> None:
    """The gateways do not declare the durable path (their account may not): they check it
    and start after the persister, which declares it."""
    services = _services(resolved)
    assert _environment(services["gateway"])["DUET_DECLARE_TOPOLOGY"] == "false"
    assert _environment(services["persister"]).get("DUET_DECLARE_TOPOLOGY", "true") != "false"
    depends = services["gateway"]["depends_on"]
    assert depends["persister"]["condition"] == "service_healthy"


def test_compose_containers_read_only_without_capabilities(resolved: dict[str, Any]) -> None:
    """Gateway, persister, balancer and the ops tool: read-only root file system, every
    capability dropped and none added, no privilege gain, not privileged, a tmpfs /tmp as
    the only writable place; the balancer runs as the image's nginx user, not root."""
    services = _services(resolved)
    for name in HARDENED_SERVICES:
        service = services[name]
        assert service.get("read_only") is True, f"{name}: root file system writable"
        assert [c.upper() for c in service.get("cap_drop", [])] == ["ALL"], name
        assert not service.get("cap_add"), f"{name}: adds {service.get('cap_add')}"
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert not service.get("privileged"), name
        tmpfs = service.get("tmpfs") or []
        tmpfs = [tmpfs] if isinstance(tmpfs, str) else tmpfs
        assert [m.split(":")[0] for m in tmpfs] == ["/tmp"], (name, tmpfs)
        for target, source in _mounts(service).items():
            volume = next(v for v in service.get("volumes", [])
                          if (v["target"] if isinstance(v, dict) else v.split(":")[1]) == target)
            read_only = volume.get("read_only") if isinstance(volume, dict) else (
                str(volume).endswith(":ro"))
            assert read_only, f"{name}: {source} mounted writable at {target}"
    lb = services[LOAD_BALANCER]
    assert str(lb.get("user", "")).split(":")[0] not in ("", "0", "root"), lb.get("user")
    assert str(lb.get("sysctls", {}).get("net.ipv4.ip_unprivileged_port_start")) == "0"
    # nginx writes only under /tmp (pid, temporary files).
    for directive in _nginx_directives(NGINX_CONF.read_text()):
        if directive[0] == "pid" or directive[0].endswith("_temp_path"):
            assert directive[1].startswith("/tmp/"), directive


def test_compose_required_services_present(resolved: dict[str, Any], tmp_path: Path) -> None:
    """The broker, the database and its init job, both services and the balancer are there,
    and the hosts in the URLs deploy/make_secrets.py writes are services of this file."""
    services = _services(resolved)
    assert REQUIRED_SERVICES <= set(services), sorted(REQUIRED_SERVICES - set(services))
    for key, url in _make_secrets(tmp_path / "secrets").items():
        if key.endswith("_url"):
            host = urlsplit(url).hostname
            assert host in services, f"{key} points at {host}, not a service"


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
        # Compose gives a secret as its file (DUET_X_FILE) where the launcher gives DUET_X.
        given = set(env) | {k.removesuffix("_FILE") for k in env}
        assert own | shared <= given, (name, sorted((own | shared) - given))
    assert "DUET_TOKEN_SECRET_FILE" in _environment(services["gateway"])


def _make_secrets(directory: Path, *args: str) -> dict[str, str]:
    """Run deploy/make_secrets.py into `directory`; its files by name."""
    result = subprocess.run(["python3", str(DEPLOY / "make_secrets.py"), str(directory), *args],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    return {p.name: p.read_text().strip() for p in directory.iterdir()}


def test_make_secrets_writes_every_secret_once(resolved: dict[str, Any], tmp_path: Path) -> None:
    """deploy/make_secrets.py writes every secret compose mounts, readable by the containers'
    users (0444) in a directory only its owner enters (0700), with a distinct account per
    service, and never overwrites one."""
    made = _make_secrets(tmp_path / "secrets")
    assert set(made) == set(_secret_files(resolved)), sorted(set(made) ^ set(_secret_files(
        resolved)))
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    for name in made:
        assert (tmp_path / "secrets" / name).stat().st_mode & 0o777 == 0o444, name
    for system in ("_amqp_url", "_mongo_url"):
        users = [urlsplit(v).username for k, v in made.items() if k.endswith(system)]
        assert len(users) == len(set(users)) == 3, users
    passwords = [urlsplit(v).password for k, v in made.items() if k.endswith("_url")]
    assert len(set(passwords)) == 6 and all(p and len(p) >= 32 for p in passwords)
    assert len(made["token_secret"]) >= 32
    assert re.fullmatch(r"[A-Za-z0-9+/=]{64,1024}", made["mongo_keyfile"]), "not base64"
    again = _make_secrets(tmp_path / "secrets")
    assert again == made, "a second run changed a secret"


def test_compose_mongo_has_auth_and_per_service_accounts(
        resolved: dict[str, Any], tmp_path: Path) -> None:
    """mongod runs as the replica set with a key file (access control on) and a root account
    from a secret; mongo-init initiates the set only when it is not yet initiated, waits for
    a primary, and creates one account per service with only its roles on the duet database
    (gateway and persister readWrite, ops read), read from the URLs the services use."""
    services = _services(resolved)
    mongo = services["mongo"]
    command = _command(mongo)
    assert command[command.index("--replSet") + 1] == REPLICA_SET, command
    key_file = command[command.index("--keyFile") + 1]
    assert "--noauth" not in command
    assert "/run/secrets/mongo_keyfile" in " ".join(mongo["entrypoint"]) and key_file in " ".join(
        mongo["entrypoint"])
    env = _environment(mongo)
    assert env["MONGO_INITDB_ROOT_USERNAME"] and "MONGO_INITDB_ROOT_PASSWORD" not in env
    assert env["MONGO_INITDB_ROOT_PASSWORD_FILE"] == "/run/secrets/mongo_root_password"
    assert {"mongo_root_password", "mongo_keyfile"} <= _mounted_secrets(mongo)
    init = services["mongo-init"]
    script_path = _command(init)[_command(init).index("--file") + 1]
    mount_target, source = next((t, s) for t, s in _mounts(init).items()
                                if script_path.startswith(t + "/"))
    script = Path(source) / script_path[len(mount_target) + 1:]
    assert script.is_file(), script
    text = script.read_text()
    assert "rs.initiate" in text and "NotYetInitialized" in text and "isWritablePrimary" in text
    assert f'"{REPLICA_SET}"' in text
    assert 'admin.auth(ROOT_USER, secret("mongo_root_password"))' in text
    roles = re.search(r"const ROLES = (\{[^}]*\});", text)
    assert roles is not None
    assert json.loads(re.sub(r"(\w+):", r'"\1":', roles[1])) == {
        "gateway": ["readWrite"], "persister": ["readWrite"], "ops": ["read"]}
    assert "createUser" in text and "updateUser" in text
    # The URLs make_secrets.py writes are the ones init.js reads its accounts from.
    shape = re.search(r"const URL_SHAPE = /(.+)/;", text)
    assert shape is not None
    made = _make_secrets(tmp_path / "secrets")
    for role in ("gateway", "persister", "ops"):
        url = made[f"{role}_mongo_url"]
        match = re.match(shape[1].replace("\\/", "/"), url)
        assert match is not None, role
        assert (match[1], match[2], match[3]) == (urlsplit(url).username,
                                                   urlsplit(url).password, "duet")
        query = parse_qs(urlsplit(url).query)
        assert query.get("replicaSet") == [REPLICA_SET] and query.get("authSource") == ["admin"]


def _render(tmp_path: Path, urls: dict[str, str]) -> subprocess.CompletedProcess[str]:
    secrets = tmp_path / "render-secrets"
    secrets.mkdir(exist_ok=True)
    for role, url in urls.items():
        (secrets / f"{role}_amqp_url").write_text(url + "\n")
    return subprocess.run(
        ["sh", str(DEPLOY / "rabbitmq" / "render-definitions.sh")], capture_output=True,
        text=True, timeout=30, check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SECRETS_DIR": str(secrets),
             "DEFINITIONS_TEMPLATE": str(DEPLOY / "rabbitmq" / "definitions.json"),
             "DEFINITIONS_OUT": str(tmp_path / "definitions.json")})


def test_compose_rabbitmq_definitions_render_one_account_per_service(
        resolved: dict[str, Any], tmp_path: Path) -> None:
    """The broker loads definitions at boot (its conf names the file the entrypoint renders);
    rendering them from make_secrets.py's URLs gives one account per service, none an
    administrator, and permissions by which the gateway cannot configure, read or write
    duet.persist, duet.audit or the dead letters (tests/integration/test_broker_permissions.py
    checks the same on a real broker); a placeholder or URL-unsafe password is refused."""
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

    made = _make_secrets(tmp_path / "secrets")
    urls = {role: made[f"{role}_amqp_url"] for role in ("gateway", "persister", "ops")}
    result = _render(tmp_path, urls)
    assert result.returncode == 0, result.stderr
    definitions = json.loads((tmp_path / "definitions.json").read_text())
    assert definitions["vhosts"] == [{"name": "/"}]
    accounts = {u["name"]: u for u in definitions["users"]}
    assert {(n, u["password"]) for n, u in accounts.items()} == {
        (urlsplit(u).username, urlsplit(u).password) for u in urls.values()}
    for user in accounts.values():
        assert "administrator" not in user["tags"] and "management" not in user["tags"]
    permissions = {p["user"]: p for p in definitions["permissions"]}
    assert set(permissions) == set(accounts) and len(definitions["permissions"]) == 3

    def may(role: str, kind: str, name: str) -> bool:
        return re.fullmatch(permissions[str(urlsplit(urls[role]).username)][kind], name) is not None

    durable = ("duet.persist", "duet.persist.0", "duet.persist.15", "duet.persisters",
               "duet.audit", "duet.dead", "duet.dead-letters")
    for name in (*durable, "duet.rooms"):
        assert not may("gateway", "configure", name), name
    for name in durable:
        assert not may("gateway", "write", name) and not may("gateway", "read", name), name
    assert may("gateway", "configure", "duet.gateway.0a1b2c3d")
    assert may("gateway", "write", "duet.rooms") and may("gateway", "read", "duet.rooms")
    for name in (*durable, "duet.rooms"):
        assert may("persister", "configure", name), name
    for name in ("duet.persist", "duet.persist.3", "duet.persisters"):
        assert may("persister", "read", name) and may("persister", "write", name), name
    assert not may("persister", "read", "duet.audit")
    assert not may("persister", "configure", "duet.persist.x")
    assert not may("persister", "configure", "duet.gateway.0a1b2c3d")
    assert may("ops", "read", "duet.audit")
    for kind in ("configure", "write"):
        for name in (*durable, "duet.rooms", "duet.gateway.0a1b2c3d"):
            assert not may("ops", kind, name), (kind, name)
    for bad in ("change-me-change-me", "short", "has a space in it!!", "p@ss/word:1234567890"):
        assert _render(tmp_path, {**urls, "gateway": f"amqp://duet-gateway:{bad}@rabbitmq:5672/"}
                       ).returncode != 0, bad
    (tmp_path / "none").mkdir()
    assert _render(tmp_path / "none", {}).returncode != 0, "rendered without the URL files"


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


def test_env_example_holds_no_secret() -> None:
    """.env.example sets no secret (they are files in deploy/secrets/), .dockerignore keeps
    .env out, and the image copies nothing from deploy/."""
    text = (ROOT / ".env.example").read_text()
    for name in ("DUET_TOKEN_SECRET", "PASSWORD", "DUET_AMQP_URL", "DUET_MONGO_URL"):
        assert not re.search(rf"^[A-Z_]*{name}[A-Z_]*=", text, re.M), name
    assert "make_secrets.py" in text
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()
    assert not re.search(r"^COPY\s+(\.|deploy)\b", DOCKERFILE.read_text(), re.M)


# -- the cluster variant (deploy/compose.cluster.yml) -------------------------------------
CLUSTER_FILE = DEPLOY / "compose.cluster.yml"


@pytest.fixture(scope="module")
def cluster(compose: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """docker-compose.yml with deploy/compose.cluster.yml, as compose understands them."""
    result = _run_config(compose, tmp_path_factory.mktemp("cluster"), files=(CLUSTER_FILE,))
    assert result.returncode == 0, result.stderr
    loaded = yaml.safe_load(result.stdout)
    assert isinstance(loaded, dict)
    return loaded


def test_cluster_variant_runs_three_broker_nodes_that_find_each_other(
        cluster: dict[str, Any]) -> None:
    """Three RabbitMQ services, each with its own fixed host name (its node name) and data
    volume, the same Erlang cookie secret and the same peer-discovery conf, which names
    exactly their three nodes."""
    services = _services(cluster)
    nodes = {name: s for name, s in services.items() if str(s.get("image", "")).startswith(
        "rabbitmq:")}
    assert len(nodes) == 3, sorted(nodes)
    hosts, volumes, confs = set(), set(), set()
    for node in nodes.values():
        hosts.add(node["hostname"])
        mounts = _mounts(node)
        volumes.add(mounts["/var/lib/rabbitmq"])
        confs.add(mounts["/etc/rabbitmq/conf.d/30-cluster.conf"])
        assert "rabbitmq_erlang_cookie" in _mounted_secrets(node)
        assert ".erlang.cookie" in " ".join(node["entrypoint"])
        assert "render-definitions.sh" in " ".join(node["entrypoint"])
    assert len(hosts) == 3 and len(volumes) == 3 and len(confs) == 1
    conf = Path(confs.pop()).read_text()
    named = set(re.findall(r"^cluster_formation\.classic_config\.nodes\.\d+ = (\S+)$", conf,
                           re.M))
    assert named == {f"rabbit@{h}" for h in hosts}
    assert "cluster_formation.peer_discovery_backend = classic_config" in conf


def test_cluster_variant_runs_a_three_member_replica_set(cluster: dict[str, Any]) -> None:
    """Three mongod services in the replica set rs0 with the key file, and mongo-init
    initiating the set with exactly those three (after all are healthy)."""
    services = _services(cluster)
    members = {name: s for name, s in services.items()
               if s.get("command", [None])[0] == "mongod"}
    assert len(members) == 3, sorted(members)
    for member in members.values():
        command = member["command"]
        assert command[command.index("--replSet") + 1] == REPLICA_SET
        assert "--keyFile" in command and "mongo_keyfile" in _mounted_secrets(member)
    init = services["mongo-init"]
    listed = init["environment"]["MONGO_RS_MEMBERS"].split(",")
    assert sorted(listed) == sorted(f"{name}:27017" for name in members)
    assert set(members) <= set(init["depends_on"])
    assert "MONGO_RS_MEMBERS" in (DEPLOY / "mongo" / "init.js").read_text()


def test_cluster_variant_services_wait_for_every_node_and_partition_alike(
        cluster: dict[str, Any]) -> None:
    """Gateways and persisters wait for all three broker nodes and run the same partition
    count (one that spreads leaders: more than one)."""
    services = _services(cluster)
    nodes = {n for n, s in services.items() if str(s.get("image", "")).startswith("rabbitmq:")}
    counts = set()
    for name in ("gateway", "persister"):
        assert nodes <= set(services[name]["depends_on"]), name
        counts.add(services[name]["environment"]["DUET_PERSIST_PARTITIONS"])
    assert len(counts) == 1 and int(counts.pop()) > 1


def test_make_secrets_for_the_cluster_names_every_node(cluster: dict[str, Any],
                                                      tmp_path: Path) -> None:
    """make_secrets.py --cluster writes every secret the cluster variant mounts; each
    service's AMQP URL lists the three nodes with one account (what DUET_AMQP_URL takes),
    its MongoDB URL the three members; the rendered broker accounts are the same."""
    made = _make_secrets(tmp_path / "secrets", "--cluster")
    assert set(made) == set(_secret_files(cluster))
    services = _services(cluster)
    hosts = sorted(s["hostname"] for s in services.values()
                   if str(s.get("image", "")).startswith("rabbitmq:"))
    for role in ("gateway", "persister", "ops"):
        urls = made[f"{role}_amqp_url"].split(",")
        assert sorted(urlsplit(u).hostname for u in urls) == hosts
        assert len({(urlsplit(u).username, urlsplit(u).password) for u in urls}) == 1
        mongo = made[f"{role}_mongo_url"]
        assert mongo.split("@")[1].split("/")[0] == "mongo:27017,mongo-2:27017,mongo-3:27017"
    result = _render(tmp_path, {r: made[f"{r}_amqp_url"] for r in ("gateway", "persister", "ops")})
    assert result.returncode == 0, result.stderr
    users = {u["name"]: u["password"]
             for u in json.loads((tmp_path / "definitions.json").read_text())["users"]}
    assert users == {urlsplit(made[f"{r}_amqp_url"]).username:
                     urlsplit(made[f"{r}_amqp_url"].split(",")[0]).password
                     for r in ("gateway", "persister", "ops")}
