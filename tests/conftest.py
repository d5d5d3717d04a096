"""Session fixtures: a real RabbitMQ and a real mongod, and a per-module stack of services."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest
from support import Stack, drop_broker_names

from devstack.mongo import Mongod, mongo_answers
from devstack.rabbit import rabbit_answers

AMQP_URL = os.environ.get("DUET_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MONGO_URL = os.environ.get("DUET_MONGO_URL", "mongodb://127.0.0.1:27017")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    if not rabbit_answers(AMQP_URL):
        pytest.fail(f"RabbitMQ does not answer at {AMQP_URL}: start it (rabbitmq-server -detached)")
    return AMQP_URL


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The configured mongod when it answers, else one started from the wheel on a free port."""
    if mongo_answers(MONGO_URL):
        yield MONGO_URL
        return
    with Mongod(tmp_path_factory.mktemp("mongo")) as mongod:
        yield mongod.url


@pytest.fixture(scope="session")
def mongo(mongo_url: str) -> Iterator[pymongo.MongoClient[dict[str, object]]]:
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongo_url)
    yield client
    client.close()


def _cleanup(stack: Stack, mongo: pymongo.MongoClient[dict[str, object]]) -> None:
    """Delete what the stack declared on the broker and in MongoDB."""
    drop_broker_names(stack)
    mongo.drop_database(stack.db_name)


@pytest.fixture(scope="module")
def stack(amqp_url: str, mongo_url: str, mongo: pymongo.MongoClient[dict[str, object]],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Services under a fresh prefix; started by the tests that need them, stopped after."""
    s = Stack(amqp_url, mongo_url, Path(tmp_path_factory.mktemp("logs")))
    yield s
    s.stop()
    _cleanup(s, mongo)


# What a test needs, read from the fixtures it uses (with those they use in turn: `stack`
# brings amqp_url and mongo_url). A test that starts a service itself is marked in its file.
NEEDS = {
    "amqp_url": "broker",
    "mongo_url": "mongod",
    "browser": "browser",
    "page": "browser",
    "compose": "compose",
}
FAULTS = Path(__file__).resolve().parent / "faults"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with what it needs, so `-m "not broker and not mongod"` runs the ones
    that need no service, and `-m "not browser"` all but the Chromium ones."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker in sorted({m for fixture, m in NEEDS.items() if fixture in used}):
            item.add_marker(marker)
        if item.path.is_relative_to(FAULTS):  # crashes and outages take their time
            item.add_marker("slow")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import reliability
    import support

    path = reliability.write()
    if path is not None:
        print(f"\nreliability report: {path}")
    # No service log line of the whole run may hold a password, a token or a ciphertext.
    found = support.leaks()
    if found:
        print("\nSECRETS IN SERVICE LOGS:\n" + "\n".join(found[:20]))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
