"""MongoDB's per-service accounts on a real mongod with access control: the roles
deploy/mongo/init.js gives each service (its ROLES table), created under the users and
passwords deploy/make_secrets.py writes into the services' URLs, let each service do its
work and nothing more. (mongosh is not on the build machines, so init.js itself is not run:
the accounts are created here with the same roles, as its createUser call does.)

The mongod is this test's own: started with --auth on a free port and a temporary dbpath,
stopped by its PID afterwards.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pymongo
import pytest
from pymongo.errors import OperationFailure

from devstack.mongo import find_mongod
from devstack.ports import free_port

pytestmark = [pytest.mark.mongod, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
ROOT_PASSWORD = "root-password-for-this-test-only"
UNAUTHORIZED = 13

Client = pymongo.MongoClient[dict[str, Any]]


def _roles() -> dict[str, list[str]]:
    """init.js's ROLES table: service -> role names on the duet database."""
    text = (ROOT / "deploy" / "mongo" / "init.js").read_text()
    table = re.search(r"const ROLES = (\{[^}]*\});", text)
    assert table is not None
    return dict(json.loads(re.sub(r"(\w+):", r'"\1":', table[1])))


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The services' MongoDB URLs as make_secrets.py writes them."""
    directory = tmp_path_factory.mktemp("secrets") / "secrets"
    subprocess.run([sys.executable, str(ROOT / "deploy" / "make_secrets.py"), str(directory)],
                   check=True, capture_output=True, timeout=30)
    return {role: (directory / f"{role}_mongo_url").read_text().strip()
            for role in ("gateway", "persister", "ops")}


@pytest.fixture(scope="module")
def mongod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A mongod with --auth; yields its port."""
    dbpath = tmp_path_factory.mktemp("mongo-auth")
    port = free_port()
    proc = subprocess.Popen(
        [str(find_mongod()), "--auth", "--dbpath", str(dbpath), "--port", str(port),
         "--bind_ip", "127.0.0.1", "--nounixsocket", "--quiet",
         "--logpath", str(dbpath / "mongod.log"), "--wiredTigerCacheSizeGB", "0.25",
         "--setParameter", "diagnosticDataCollectionEnabled=false"])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with _client(port=port, serverSelectionTimeoutMS=500) as probe:
                    probe.admin.command("ping")
                break
            except pymongo.errors.PyMongoError:
                assert proc.poll() is None, (dbpath / "mongod.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "mongod did not answer within 30 s"
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def accounts(mongod: int, urls: dict[str, str]) -> dict[str, str]:
    """Root through the localhost exception (as the image makes it), then every service's
    account with init.js's roles; returns a URL per service for this mongod."""
    with _client(port=mongod) as local:
        local.admin.command("createUser", "root", pwd=ROOT_PASSWORD, roles=["root"])
    out = {}
    with _client(port=mongod, username="root", password=ROOT_PASSWORD) as root:
        for role, names in _roles().items():
            url = urlsplit(urls[role])
            database = url.path.lstrip("/")
            root.admin.command("createUser", url.username, pwd=url.password,
                               roles=[{"role": r, "db": database} for r in names])
            out[role] = (f"mongodb://{url.username}:{url.password}@127.0.0.1:{mongod}/"
                         f"{database}?authSource=admin")
    return out


def _client(url: str | None = None, **kwargs: Any) -> Client:
    kwargs.setdefault("serverSelectionTimeoutMS", 5000)
    return pymongo.MongoClient(url, **kwargs)


def _refused(client: Client, action: Any) -> bool:
    try:
        action(client)
    except OperationFailure as exc:
        return exc.code == UNAUTHORIZED
    return False


def test_init_script_gives_each_service_its_roles() -> None:
    """init.js gives the gateway and the persister readWrite on duet, ops read."""
    assert _roles() == {"gateway": ["readWrite"], "persister": ["readWrite"], "ops": ["read"]}


@pytest.mark.parametrize("role", ["gateway", "persister"])
def test_service_account_reads_and_writes_duet_only(accounts: dict[str, str], role: str) -> None:
    """The gateway's and the persister's accounts write, index and read the duet database,
    and are refused other databases, user administration, dropping the database and server
    administration."""
    with _client(accounts[role]) as client:
        db = client["duet"]
        db.messages.insert_one({"_id": f"{role}:1", "body": "ciphertext"})
        db.messages.create_index("room")
        assert db.messages.find_one({"_id": f"{role}:1"}) is not None
        db.command("ping")
        assert _refused(client, lambda c: c["other"].things.insert_one({"x": 1}))
        assert _refused(client, lambda c: c["other"].things.find_one())
        assert _refused(client, lambda c: c.admin.command(
            "createUser", "intruder", pwd="intruder-password", roles=["root"]))
        assert _refused(client, lambda c: c["duet"].command(
            "createUser", "intruder", pwd="intruder-password", roles=["dbOwner"]))
        assert _refused(client, lambda c: c["duet"].command(
            "grantRolesToUser", urlsplit(accounts[role]).username, roles=["dbOwner"]))
        assert _refused(client, lambda c: c.drop_database("duet"))
        assert _refused(client, lambda c: c.admin.command("shutdown"))
        assert _refused(client, lambda c: c.admin.command("getCmdLineOpts"))


def test_ops_account_only_reads(accounts: dict[str, str]) -> None:
    """The ops account reads messages (duet-admin audit verify) and writes nothing."""
    with _client(accounts["persister"]) as writer:
        writer["duet"].messages.replace_one({"_id": "ops:1"}, {"body": "ciphertext"},
                                            upsert=True)
        writer["duet"].messages.create_index("room")
    with _client(accounts["ops"]) as client:
        assert client["duet"].messages.find_one({"_id": "ops:1"}) is not None
        assert _refused(client, lambda c: c["duet"].messages.insert_one({"x": 1}))
        assert _refused(client, lambda c: c["duet"].messages.delete_many({}))
        assert _refused(client, lambda c: c["duet"].messages.drop_index("room_1"))


def test_no_account_no_access(mongod: int) -> None:
    """Without logging in, nothing is readable: access control is on."""
    with _client(port=mongod) as client:
        assert _refused(client, lambda c: c["duet"].messages.find_one())
