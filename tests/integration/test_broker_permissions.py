"""Least privilege on a real RabbitMQ: the accounts and permissions of
deploy/rabbitmq/definitions.json (rendered by render-definitions.sh, as compose does) are
created in a vhost of this test's own, and each service's account may do what the service
does and nothing more. The gateway's account cannot delete or redeclare duet.persist, and
a real gateway process runs on it as compose runs it (DUET_DECLARE_TOPOLOGY=false, the URL
and the token secret from files), or exits when the durable path is missing.

The local node is shared: the test adds one vhost and three users, named after a random id,
and deletes them afterwards; it touches nothing else (no other vhost, no configuration).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel
from support import Gateway, Persister, Stack, eventually, free_port

from broker import Broker
from broker.topology import TopologyMissing, declare_gateway_queue
from contracts import Names
from service.settings import ServiceSettings

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
RABBIT = ROOT / "deploy" / "rabbitmq"
ROLES = ("gateway", "persister", "ops")
NAMES = Names()  # compose runs without a prefix: the definitions name duet.* as they are


def _rabbitmqctl(*args: str) -> None:
    result = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, (args[0], result.stderr)


@dataclass
class Accounts:
    """A vhost holding the definitions' accounts: an amqp:// URL per role."""
    vhost: str
    urls: dict[str, str]

    def settings(self, role: str, **overrides: object) -> ServiceSettings:
        return ServiceSettings(amqp_url=self.urls[role], **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def accounts(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Accounts]:
    """The definitions rendered from per-role URLs, then applied to a fresh vhost."""
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is needed to create the test vhost and users")
    tag = uuid.uuid4().hex[:10]
    vhost = f"duet-test-permissions-{tag}"
    host = urlsplit(amqp_url).netloc.rsplit("@", 1)[-1]
    tmp = tmp_path_factory.mktemp("definitions")
    secrets = tmp / "secrets"
    secrets.mkdir()
    urls = {}
    for role in ROLES:
        user, password = f"duet-test-{tag}-{role}", f"Zq3-x_9.kW~s7Lr2{uuid.uuid4().hex}"
        (secrets / f"{role}_amqp_url").write_text(f"amqp://{user}:{password}@rabbitmq:5672/\n")
        urls[role] = f"amqp://{user}:{password}@{host}/{quote(vhost, safe='')}"
    render = subprocess.run(
        ["sh", str(RABBIT / "render-definitions.sh")], capture_output=True, text=True,
        timeout=30, check=False,
        env={"PATH": "/usr/bin:/bin", "SECRETS_DIR": str(secrets),
             "DEFINITIONS_TEMPLATE": str(RABBIT / "definitions.json"),
             "DEFINITIONS_OUT": str(tmp / "definitions.json")})
    assert render.returncode == 0, render.stderr
    definitions = json.loads((tmp / "definitions.json").read_text())
    created: list[str] = []
    _rabbitmqctl("add_vhost", vhost)
    try:
        for user in definitions["users"]:
            _rabbitmqctl("add_user", user["name"], user["password"])
            created.append(user["name"])
            _rabbitmqctl("set_user_tags", user["name"], *user["tags"])
        for p in definitions["permissions"]:
            assert p["vhost"] == "/", p
            _rabbitmqctl("set_permissions", "-p", vhost, p["user"], p["configure"], p["write"],
                         p["read"])
        yield Accounts(vhost, urls)
    finally:
        _rabbitmqctl("delete_vhost", vhost)
        for name in created:
            _rabbitmqctl("delete_user", name)


@pytest.fixture
async def declared(accounts: Accounts) -> AsyncIterator[Accounts]:
    """The persister's account declared the durable path, as `python -m persister` does."""
    async with Broker(accounts.settings("persister"), "persister"):
        pass
    yield accounts


def _amqp(method: str, *args: object, **kwargs: object
          ) -> Callable[[AbstractChannel], Awaitable[object]]:
    """An operation straight on the AMQP channel (aiormq), for the methods aio-pika wraps
    only on its own objects."""
    async def run(channel: AbstractChannel) -> object:
        amqp = await channel.get_underlay_channel()
        return await getattr(amqp, method)(*args, **kwargs)
    return run


async def _noop(_message: object) -> None:
    return None


async def _refused(url: str, operation: Callable[[AbstractChannel], Awaitable[object]]) -> bool:
    """True if the broker answers the operation with ACCESS_REFUSED (403)."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        try:
            await operation(channel)
        except aiormq.exceptions.ChannelAccessRefused:
            return True
    return False


async def test_persister_account_declares_the_durable_path_and_consumes(
        declared: Accounts) -> None:
    """With its own account the persister declares exchange, duet.persist, the dead letters
    and duet.audit (done by the fixture), consumes duet.persist and publishes notices."""
    url = declared.urls["persister"]
    assert not await _refused(url, lambda ch: ch.declare_queue(
        NAMES.persist_queue, passive=True))
    assert not await _refused(url, _amqp("basic_consume", NAMES.persist_queue, _noop))
    async with Broker(declared.settings("persister"), "persister") as broker:
        await broker.notify(b"{}", "stored")


async def test_gateway_account_publishes_binds_and_consumes_its_own_queue(
        declared: Accounts) -> None:
    """With DUET_DECLARE_TOPOLOGY=false the gateway's account starts (passive checks), declares
    and binds its own queue, publishes a chat message (confirmed, routed to duet.persist) and
    receives it on its own queue."""
    settings = declared.settings("gateway", declare_topology=False)
    async with Broker(settings, "gateway") as broker:
        channel = await broker.channel(16)
        queue = await declare_gateway_queue(channel, broker.names, uuid.uuid4().hex[:8])
        await queue.bind(broker.exchange, "room.a.b")
        await broker.publish(b'{"probe": 1}', "room.a.b")
        message = await queue.get(timeout=5, fail=True)
        assert message is not None and message.body == b'{"probe": 1}'
        await message.ack()
        await queue.unbind(broker.exchange, "room.a.b")
    async with Broker(declared.settings("persister"), "persister") as persister:
        assert await persister.queue_depth(NAMES.persist_queue) >= 1


@pytest.mark.parametrize(("what", "operation"), [
    ("queue.delete duet.persist", lambda ch: ch.queue_delete(NAMES.persist_queue)),
    ("queue.declare duet.persist", lambda ch: ch.declare_queue(
        NAMES.persist_queue, durable=True, arguments={"x-queue-type": "quorum"})),
    ("queue.purge duet.persist", _amqp("queue_purge", NAMES.persist_queue)),
    ("basic.consume duet.persist", _amqp("basic_consume", NAMES.persist_queue, _noop)),
    ("queue.bind duet.persist", _amqp("queue_bind", NAMES.persist_queue, NAMES.exchange,
                                      routing_key="#")),
    ("queue.unbind duet.persist", _amqp("queue_unbind", NAMES.persist_queue, NAMES.exchange,
                                        routing_key="room.#")),
    ("queue.delete duet.audit", lambda ch: ch.queue_delete(NAMES.audit_stream)),
    ("queue.delete duet.dead-letters", lambda ch: ch.queue_delete(NAMES.dead_letter_queue)),
    ("exchange.delete duet.rooms", lambda ch: ch.exchange_delete(NAMES.exchange)),
    ("exchange.declare duet.rooms", lambda ch: ch.declare_exchange(
        NAMES.exchange, aio_pika.ExchangeType.TOPIC, durable=True)),
    ("exchange.delete duet.dead", lambda ch: ch.exchange_delete(NAMES.dead_letter_exchange)),
    ("queue.declare another name", lambda ch: ch.declare_queue("duet.other", durable=True)),
])
async def test_gateway_account_refused_on_the_durable_path(
        declared: Accounts, what: str,
        operation: Callable[[AbstractChannel], Awaitable[object]]) -> None:
    """The gateway's account gets ACCESS_REFUSED on anything that could lose, take or reroute
    stored messages, and the queue is still there afterwards."""
    assert await _refused(declared.urls["gateway"], operation), what
    async with Broker(declared.settings("persister"), "persister") as persister:
        await persister.queue_depth(NAMES.persist_queue)  # a missing queue raises


async def test_gateway_with_declare_topology_refused_by_its_account(declared: Accounts) -> None:
    """The same account with DUET_DECLARE_TOPOLOGY left true cannot start: the reason compose
    sets it false for the gateways."""
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
        async with Broker(declared.settings("gateway"), "gateway"):
            pass


async def test_gateway_exits_when_the_durable_path_is_missing(declared: Accounts) -> None:
    """Passive checks find a missing durable path (here: another prefix's) and Broker.open
    raises TopologyMissing, so the gateway stops for a restart instead of publishing into a
    path no persister reads."""
    settings = declared.settings("gateway", declare_topology=False, prefix="absent.")
    with pytest.raises(TopologyMissing) as caught:
        async with Broker(settings, "gateway"):
            pass
    assert "absent.duet." in str(caught.value)


async def test_ops_account_reads_the_audit_stream_only(declared: Accounts) -> None:
    """The ops account can consume duet.audit (what duet-admin audit does) and nothing else:
    no publish, no delete, no duet.persist."""
    url = declared.urls["ops"]

    async def read_audit(channel: AbstractChannel) -> None:
        await channel.set_qos(prefetch_count=10)
        queue = await channel.get_queue(NAMES.audit_stream, ensure=True)
        tag = await queue.consume(_noop, arguments={"x-stream-offset": "first"})
        await queue.cancel(tag)

    assert not await _refused(url, read_audit)
    assert await _refused(url, lambda ch: ch.queue_delete(NAMES.audit_stream))
    assert await _refused(url, _amqp("basic_consume", NAMES.persist_queue, _noop))

    async def publish(channel: AbstractChannel) -> None:
        amqp = await channel.get_underlay_channel()
        await amqp.confirm_delivery()
        await amqp.basic_publish(b"{}", exchange=NAMES.exchange, routing_key="room.a.b")

    assert await _refused(url, publish)


def _gateway(stack: Stack, accounts: Accounts, tmp_path: Path, prefix: str,
             **extra: str) -> Gateway:
    """A `python -m gateway` as compose runs it: the gateway's account, the URL and the token
    secret from files, DUET_DECLARE_TOPOLOGY=false; its database is the stack's."""
    (tmp_path / "gateway_amqp_url").write_text(accounts.urls["gateway"] + "\n")
    (tmp_path / "token_secret").write_text("t" * 48 + "\n")
    port = free_port()
    env = stack.env(DUET_PORT=str(port), DUET_PREFIX=prefix, DUET_MONGO_DB=stack.db_name,
                    DUET_DECLARE_TOPOLOGY="false",
                    DUET_AMQP_URL_FILE=str(tmp_path / "gateway_amqp_url"),
                    DUET_TOKEN_SECRET_FILE=str(tmp_path / "token_secret"), **extra)
    del env["DUET_AMQP_URL"], env["DUET_TOKEN_SECRET"]
    gateway = Gateway("gateway", env, stack.log_dir, f"gateway-least-{port}", port)
    stack.services.append(gateway)
    gateway.start()
    return gateway


async def test_gateway_process_runs_on_its_account_from_files(
        declared: Accounts, stack: Stack, tmp_path: Path) -> None:
    """The real gateway process with compose's settings (account and token secret from
    files, only checking the topology) becomes ready once the persister declared the path."""
    gateway = _gateway(stack, declared, tmp_path, "")
    await gateway.wait_ready_async()
    gateway.stop()


async def test_gateway_process_exits_without_the_durable_path(
        declared: Accounts, stack: Stack, tmp_path: Path) -> None:
    """Without the durable path (a prefix nobody declared) the gateway process exits with a
    failure status, for compose's restart, naming what is missing."""
    gateway = _gateway(stack, declared, tmp_path, "absent.")
    await eventually(lambda: gateway.returncode is not None, 30, "the gateway exits")
    assert gateway.returncode not in (None, 0)
    assert "absent.duet.rooms does not exist" in gateway.log()


@pytest.mark.parametrize("partitions", ["1", "4"])
async def test_persister_process_runs_on_its_account_partitioned_or_not(
        accounts: Accounts, stack: Stack, tmp_path: Path, partitions: str) -> None:
    """The real persister process on its own account (compose's rendered permissions)
    declares the persist queues of its partition count and the persisters' roll queue,
    consumes them and becomes ready; then a gateway on its account starts against them."""
    (tmp_path / "persister_amqp_url").write_text(accounts.urls["persister"] + "\n")
    port = free_port()
    env = stack.env(DUET_HEALTH_PORT=str(port), DUET_PREFIX="", DUET_MONGO_DB=stack.db_name,
                    DUET_PERSIST_PARTITIONS=partitions,
                    DUET_AMQP_URL_FILE=str(tmp_path / "persister_amqp_url"))
    del env["DUET_AMQP_URL"]
    persister = Persister("persister", env, stack.log_dir, f"persister-least-{port}", port)
    stack.services.append(persister)
    persister.start()
    try:
        await persister.wait_ready_async()
        gateway = _gateway(stack, accounts, tmp_path, "", DUET_PERSIST_PARTITIONS=partitions)
        await gateway.wait_ready_async()
        gateway.stop()
    finally:
        persister.stop()
