"""A real cluster on this machine: three RabbitMQ nodes and a three-member MongoDB replica
set (devstack/cluster.py), two gateways and two persisters given every node's address,
persistence in four partitions. Drills while a conversation streams across the two
gateways: SIGKILL the RabbitMQ node that leads the most partitions, stop the MongoDB
primary, restart the three nodes one after another; and restart a single-node broker.
Each checks that every acked message is stored once and delivered once, and says how long
sends paused."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pymongo
import pytest
from reliability import record
from support import (
    Gateway,
    Stack,
    stored_ids,
    unique_name,
)

from client import Client, Message
from contracts import room_id
from devstack.cluster import RabbitCluster, ReplicaSet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

PARTITIONS = "4"


class Cluster:
    def __init__(self, rabbit: RabbitCluster, mongo: ReplicaSet, stack: Stack,
                 gateways: list[Gateway]) -> None:
        self.rabbit, self.mongo, self.stack, self.gateways = rabbit, mongo, stack, gateways
        self._client: pymongo.MongoClient | None = None

    def stack_mongo(self) -> pymongo.MongoClient:
        """A client of the replica set (it follows the primary)."""
        if self._client is None:
            self._client = pymongo.MongoClient(self.mongo.url)
        return self._client

    def connections_by_node(self, name: str = "") -> dict[int, int]:
        """How many of this stack's broker connections (named `name`, if given) each node
        holds, by node index."""
        ports = {n.port: i for i, n in enumerate(self.rabbit.nodes)}
        counts = {i: 0 for i in ports.values()}
        for node in self.rabbit.nodes:
            if node.pid is None:
                continue
            out = node.ctl("list_connections", "name", "client_properties", "--formatter", "json")
            for conn in json.loads(out):
                port = re.search(r"-> 127\.0\.0\.1:(\d+)", conn["name"])
                props = json.dumps(conn["client_properties"])
                if port and f"{self.stack.prefix}{name}" in props and int(port.group(1)) in ports:
                    counts[ports[int(port.group(1))]] += 1
            return counts
        return counts

    def queues(self) -> list[dict[str, object]]:
        """This stack's queues: name, type, leader, members (asked of a running node)."""
        node = next(n for n in self.rabbit.nodes if n.pid is not None)
        out = node.ctl("list_queues", "name", "type", "leader", "members", "--formatter", "json")
        return [q for q in json.loads(out) if str(q["name"]).startswith(self.stack.prefix)]

    def partition_leaders(self) -> dict[int, int]:
        """How many persist partitions each node leads, by node index."""
        index = {n.name: i for i, n in enumerate(self.rabbit.nodes)}
        counts = {i: 0 for i in index.values()}
        for q in self.queues():
            if ".duet.persist." in str(q["name"]) and q["leader"] in index:
                counts[index[str(q["leader"])]] += 1
        return counts


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = Path(tmp_path_factory.mktemp("cluster"))
    with RabbitCluster(root / "rabbit", nodes=3) as rabbit, \
            ReplicaSet(root / "mongo", members=3) as mongo:
        stack = Stack(rabbit.amqp_url, mongo.url, root / "logs",
                      extra_env={"DUET_PERSIST_PARTITIONS": PARTITIONS})
        try:
            stack.persister()
            stack.persister()
            gateways = [stack.gateway(), stack.gateway()]
            yield (made := Cluster(rabbit, mongo, stack, gateways))
        finally:
            stack.stop()
        if made.stack_mongo() is not None:
            made.stack_mongo().close()


def test_cluster_forms_with_partitions_replicated_and_leaders_spread(cluster: Cluster) -> None:
    """Three running nodes; four persist partitions, each a quorum queue with a member on
    each node, their leaders on at least two nodes (no node leads more than two)."""
    nodes = sorted(n.name for n in cluster.rabbit.nodes)
    assert cluster.rabbit.running_nodes() == nodes
    partitions = [q for q in cluster.queues() if ".duet.persist." in str(q["name"])]
    assert len(partitions) == int(PARTITIONS)
    for q in partitions:
        assert q["type"] == "quorum" and sorted(q["members"]) == nodes  # type: ignore
    assert max(cluster.partition_leaders().values()) <= 2, cluster.partition_leaders()


class Conversation:
    """Alice (SDK) sends through one gateway, Bob (SDK) listens through another: what a
    user's client does across a fault (resends, reconnects, syncs), for real."""

    def __init__(self, gw_a: Gateway, gw_b: Gateway, home: Path) -> None:
        self.a = Client(gw_a.http, home=home / "a", passphrase="cluster passphrase")
        self.b = Client(gw_b.http, home=home / "b", passphrase="cluster passphrase")
        self.na, self.nb = unique_name("ca"), unique_name("cb")
        self.got: set[str] = set()
        self.duplicates = 0  # a message shown twice
        self._expect: list[str] = []
        self.longest = 0.0  # seconds between two acks, at most
        self._listener: asyncio.Task[None] | None = None

    async def start(self, expect: list[str]) -> None:
        await self.a.register(self.na, "password-a-123")
        await self.b.register(self.nb, "password-b-123")
        await self.a.add_friend(self.nb)
        await self.b.accept_friend(self.na)
        ready = asyncio.Event()
        self._expect = expect  # send() may extend it

        async def listen() -> None:
            async for event in self.b.listen(on_ready=ready.set):
                if isinstance(event, Message) and not event.own:
                    self.duplicates += event.id in self.got
                    self.got.add(event.id)

        self._listener = asyncio.create_task(listen())
        await asyncio.wait_for(ready.wait(), 30)

    @property
    def room(self) -> str:
        assert self.a.user_id and self.b.user_id
        return room_id(self.a.user_id, self.b.user_id)

    async def send(self, ids: list[str], fault_at: int, fault: Callable[[], None], *,
                   meanwhile: bool = False) -> None:
        """Send each id (the SDK resends until acked), the fault before the fault_at-th:
        waiting for it, or (meanwhile) sending on while it runs and then 20 more."""
        last = time.monotonic()
        running: asyncio.Task[None] | None = None
        i = 0
        while i < len(ids) or (running is not None and not running.done()):
            if i == fault_at:
                running = asyncio.create_task(asyncio.to_thread(fault))
                if not meanwhile:
                    await running
            mid = ids[i] if i < len(ids) else f"{ids[0]}-more{i}"
            if i >= len(ids):
                ids.append(mid)  # the fault still runs: the stream goes on
            await self.a.send_text(self.nb, f"message {i}", message_id=mid)
            now = time.monotonic()
            self.longest, last = max(self.longest, now - last), now
            i += 1
        if running is not None:
            await running  # its exception, if any

    async def received(self, timeout: float) -> None:
        """Wait until Bob was shown every message sent, then half a second more (so a
        late duplicate would be counted)."""
        listener = self._listener
        assert listener is not None
        deadline = time.monotonic() + timeout
        while not self.got >= set(self._expect):
            if listener.done():
                listener.result()  # its exception
                raise AssertionError("Bob's listener ended")
            assert time.monotonic() < deadline, (
                f"{len(set(self._expect) - self.got)} of {len(self._expect)} not delivered")
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self.a.close()
        await self.b.close()


async def stored_eventually(mongo: pymongo.MongoClient, db: str, room: str, ids: list[str],
                            timeout: float = 60.0) -> list[str]:
    """The room's stored ids, once every one of `ids` is among them (or the timeout)."""
    end = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(stored_ids, mongo, db, room)
        if set(ids) <= set(found) or time.monotonic() > end:
            return found
        await asyncio.sleep(0.3)


def stored_once(found: list[str], ids: list[str]) -> list[str]:
    """The drill's messages among a room's stored ids (which hold Bob's receipts too),
    checked to be every acked one, once."""
    texts = [i for i in found if i in set(ids)]
    assert sorted(texts) == sorted(ids), f"{len(set(ids) - set(texts))} acked, not stored"
    return texts


async def test_sigkill_the_node_leading_most_partitions_loses_no_acked_message(
        cluster: Cluster, tmp_path: Path) -> None:
    """Drill 1: while 200 messages stream across two gateways, SIGKILL the RabbitMQ node
    that leads the most persist partitions. Every message is acked, stored exactly once
    and delivered once; sends pause only while the services move to another node."""
    leaders = cluster.partition_leaders()
    connections = cluster.connections_by_node()
    victim = max(leaders, key=lambda i: (leaders[i], connections[i]))
    talk, ids = Conversation(*cluster.gateways, tmp_path), [f"k{i}" for i in range(200)]
    try:
        await talk.start(ids)
        await talk.send(ids, 60, lambda: cluster.rabbit.kill(victim))
        await talk.received(90)
        texts = stored_once(await stored_eventually(
            cluster.stack_mongo(), cluster.stack.db_name, talk.room, ids), ids)
        assert talk.duplicates == 0
        # docs/operations.md: a lost node's services move to another within seconds (one
        # reconnect interval, 1 s, per node tried), never the minutes it stays down.
        assert talk.longest < 10, f"sends paused for {talk.longest:.1f} s"
        record("test_sigkill_the_node_leading_most_partitions_loses_no_acked_message",
               f"SIGKILL RabbitMQ node {victim} of 3 (leader of {leaders[victim]} of the 4 "
               f"persist partitions, {connections[victim]} of the stack's connections) "
               "mid-stream", "no acked message lost or doubled, all delivered once",
               acked=len(ids), stored=len(texts), delivered=len(talk.got),
               duplicates=talk.duplicates, longest_pause_s=round(talk.longest, 2))
    finally:
        await talk.close()
        await asyncio.to_thread(cluster.rabbit.start_node, victim)


async def test_rolling_restart_of_every_node_loses_no_acked_message(
        cluster: Cluster, tmp_path: Path) -> None:
    """Drill 3, a rolling upgrade: restart the three RabbitMQ nodes one after another
    (each: wait until stopping it keeps every quorum queue's majority, drain it, stop it,
    start it, wait until it runs) while the conversation streams on. Nothing acked is
    lost or doubled, everything is delivered once."""
    talk, ids = Conversation(*cluster.gateways, tmp_path), [f"r{i}" for i in range(100)]

    def roll() -> None:
        for i in range(len(cluster.rabbit.nodes)):
            cluster.rabbit.restart_node(i)

    started = time.monotonic()
    try:
        await talk.start(ids)
        await talk.send(ids, 20, roll, meanwhile=True)
        rolled = time.monotonic() - started
        await talk.received(90)
        texts = stored_once(await stored_eventually(
            cluster.stack_mongo(), cluster.stack.db_name, talk.room, ids), ids)
        assert talk.duplicates == 0
        assert cluster.rabbit.running_nodes() == sorted(n.name for n in cluster.rabbit.nodes)
        assert talk.longest < 10, f"sends paused for {talk.longest:.1f} s"
        record("test_rolling_restart_of_every_node_loses_no_acked_message",
               "rolling restart of the 3 RabbitMQ nodes (drain, stop, start, one by one) "
               "mid-stream", "no acked message lost or doubled, all delivered once",
               acked=len(ids), stored=len(texts), delivered=len(talk.got),
               duplicates=talk.duplicates, longest_pause_s=round(talk.longest, 2),
               roll_s=round(rolled, 1))
    finally:
        await talk.close()


async def test_stopping_the_mongodb_primary_loses_no_acked_message(cluster: Cluster,
                                                                   tmp_path: Path) -> None:
    """Drill 2: stop the replica set's primary mid-stream; a new one is elected, storage
    resumes, every message is stored once and delivered."""
    primary = await asyncio.to_thread(cluster.mongo.primary)
    member = cluster.mongo.members[primary]
    gw_a, gw_b = cluster.gateways
    talk, ids = Conversation(gw_b, gw_a, tmp_path), [f"m{i}" for i in range(200)]
    try:
        await talk.start(ids)
        await talk.send(ids, 60, member.stop)
        await talk.received(90)
        texts = stored_once(await stored_eventually(
            cluster.stack_mongo(), cluster.stack.db_name, talk.room, ids, timeout=90), ids)
        assert talk.duplicates == 0
        record("test_stopping_the_mongodb_primary_loses_no_acked_message",
               "stop the MongoDB primary (of 3) mid-stream",
               "no acked message lost or doubled, all delivered once", acked=len(ids),
               stored=len(texts), delivered=len(talk.got), duplicates=talk.duplicates,
               longest_pause_s=round(talk.longest, 2))
    finally:
        await talk.close()
        await asyncio.to_thread(member.start)
        await asyncio.to_thread(cluster.mongo.primary)


async def test_receivers_gateway_node_killed_every_message_still_reaches_the_receiver(
        cluster: Cluster, tmp_path: Path) -> None:
    """Guarantee 3 across a node loss: Bob listens on a gateway whose broker node is
    SIGKILLed while Alice sends through a gateway connected only to the other nodes, so
    her messages keep being routed. Those routed while Bob's gateway re-creates its queue
    on another node reach no socket live; the gateway then tells its device sockets
    `sync_needed`, Bob's client syncs over the same socket, and every message arrives,
    once, without a reconnect."""
    nodes = cluster.rabbit.nodes
    gw_b = cluster.stack.gateway(DUET_NODE="bob")
    where = cluster.connections_by_node("gateway-bob")
    victim = next(i for i, n in where.items() if n)
    others = ",".join(n.url for i, n in enumerate(nodes) if i != victim)
    gw_a = cluster.stack.gateway(DUET_AMQP_URL=others)
    talk, ids = Conversation(gw_a, gw_b, tmp_path), [f"g{i}" for i in range(150)]
    try:
        await talk.start(ids)
        session = talk.b._session
        assert session is not None and session.sockets == 1
        await talk.send(ids, 50, lambda: cluster.rabbit.kill(victim))
        await talk.received(90)
        assert talk.got == set(ids) and talk.duplicates == 0
        assert session is talk.b._session and session.sockets == 1, "Bob reconnected"
        assert "asked to sync" in Path(gw_b.log_path).read_text()
        record("test_receivers_gateway_node_killed_every_message_still_reaches_the_receiver",
               "SIGKILL the receiver's gateway's RabbitMQ node while the sender's gateway "
               "keeps publishing", "every message delivered (sync_needed, then a sync over "
               "the same socket)",
               sent=len(ids), delivered=len(talk.got), duplicates=talk.duplicates)
    finally:
        await talk.close()
        await asyncio.to_thread(cluster.rabbit.start_node, victim)


async def test_restarting_a_single_node_broker_loses_no_acked_message(
        mongo_url: str, mongo: pymongo.MongoClient, tmp_path: Path) -> None:
    """Drill 4: a one-node broker (its own rabbitmq-server process, as a small install
    runs) is stopped and started again mid-stream: the durable queues come back with it,
    the services reconnect, the SDK resends what failed meanwhile and syncs. Nothing acked
    is lost or doubled; sends wait about as long as the broker is down."""
    with RabbitCluster(tmp_path / "rabbit", nodes=1) as rabbit:
        stack = Stack(rabbit.amqp_url, mongo_url, tmp_path / "logs")
        try:
            stack.persister()
            talk = Conversation(stack.gateway(), stack.gateway(), tmp_path)
            ids = [f"s{i}" for i in range(100)]
            down: list[float] = []

            def restart() -> None:
                started = time.monotonic()
                rabbit.nodes[0].stop()
                rabbit.start_node(0)
                down.append(time.monotonic() - started)

            try:
                await talk.start(ids)
                await talk.send(ids, 30, restart, meanwhile=True)
                await talk.received(90)
                texts = stored_once(await stored_eventually(
                    mongo, stack.db_name, talk.room, ids), ids)
                assert talk.duplicates == 0
                record("test_restarting_a_single_node_broker_loses_no_acked_message",
                       "restart a single-node RabbitMQ (its rabbitmq-server process) "
                       "mid-stream", "no acked message lost or doubled, all delivered once",
                       acked=len(ids), stored=len(texts), delivered=len(talk.got),
                       duplicates=talk.duplicates, broker_down_s=round(down[0], 1),
                       longest_pause_s=round(talk.longest, 2))
            finally:
                await talk.close()
        finally:
            stack.stop()


async def test_services_started_while_the_first_listed_node_is_down_work(
        cluster: Cluster, tmp_path: Path) -> None:
    """Acceptance 4: node 0, the first of the three URLs every service is given, is down;
    a gateway and a persister started then come up (on another node) and a conversation
    through the new gateway is delivered and stored."""
    cluster.rabbit.kill(0)
    try:
        persister = cluster.stack.persister()  # raises unless /readyz answers 200
        gateway = cluster.stack.gateway()
        assert cluster.rabbit.amqp_url.split(",")[0] == cluster.rabbit.nodes[0].url
        talk, ids = Conversation(gateway, cluster.gateways[1], tmp_path), [f"f{i}" for i in
                                                                          range(20)]
        try:
            await talk.start(ids)
            await talk.send(ids, len(ids), lambda: None)
            await talk.received(60)
            stored_once(await stored_eventually(cluster.stack_mongo(), cluster.stack.db_name,
                                                talk.room, ids), ids)
        finally:
            await talk.close()
        gateway.stop()
        persister.stop()
    finally:
        await asyncio.to_thread(cluster.rabbit.start_node, 0)
