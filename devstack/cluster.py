"""A real cluster on this one machine: RabbitMQ nodes clustered, and a MongoDB replica set.

    with RabbitCluster(state / "rabbit", nodes=3) as rabbit, \\
            ReplicaSet(state / "mongo-rs", members=3) as mongo:
        rabbit.amqp_url   # "amqp://guest:guest@127.0.0.1:P1/,amqp://…:P2/,amqp://…:P3/"
        mongo.url         # "mongodb://127.0.0.1:Q1,127.0.0.1:Q2,127.0.0.1:Q3/?replicaSet=…"
        rabbit.kill(0)    # SIGKILL a node (a drill); rabbit.start_node(0) brings it back

Each RabbitMQ node has its own node name, AMQP and distribution ports (free ones), data
and log directories and config file; all share one Erlang cookie (in the cluster's
directory, which is HOME for the nodes and for rabbitmqctl). Nothing of a machine-wide
broker is used or touched: not its node, its config (/etc/rabbitmq), nor its cookie. Every
node is a child process stopped by its PID. `python -m devstack --cluster` and the
cluster tests (tests/cluster/) stand the cluster up with this module.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from .errors import StartFailed, ToolMissing
from .launch import terminate
from .mongo import Mongod
from .ports import free_port
from .rabbit import rabbit_answers

log = logging.getLogger(__name__)

# Debian's /usr/sbin/rabbitmq-server switches to the rabbitmq user, who may not write our
# directories; the scripts behind it run as the caller.
_SCRIPTS = Path("/usr/lib/rabbitmq/bin")


def _tool(name: str) -> str:
    candidate = _SCRIPTS / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(name, "install rabbitmq-server (Debian package) to run a cluster")
    return found


class RabbitNode:
    """One RabbitMQ node: its names, ports and directories, and its process."""

    def __init__(self, home: Path, name: str) -> None:
        self.home, self.name = home, name
        self.dir = home / name.split("@")[0]
        self.port = 0
        self.dist_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def env(self) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")},
            "HOME": str(self.home),  # the shared .erlang.cookie
            "RABBITMQ_CONF_ENV_FILE": "/dev/null",  # not the machine-wide rabbitmq-env.conf
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self) -> None:
        """Spawn the node (first start: on free ports, kept for restarts)."""
        if not self.port:
            self.port, self.dist_port = free_port(), free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            # Three nodes on one disk: the default 50 MB free-disk alarm is plenty here.
            "disk_free_limit.absolute = 50MB\n")
        (self.dir / "enabled_plugins").write_text("[].\n")
        out = (self.dir / "server.out").open("ab")
        self._proc = subprocess.Popen([_tool("rabbitmq-server")], env=self.env(),
                                      stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, process_group=0)
        out.close()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not rabbit_answers(self.url, timeout=0.5):
            proc = self._proc
            if proc is None or proc.poll() is not None:
                raise StartFailed(f"RabbitMQ node {self.name}",
                                  f"exited; see {self.dir / 'server.out'}")
            if time.monotonic() > deadline:
                raise StartFailed(f"RabbitMQ node {self.name}",
                                  f"no answer on port {self.port} after {timeout:.0f} s")
            time.sleep(0.2)

    def ctl(self, *args: str, timeout: float = 60.0, tool: str = "rabbitmqctl") -> str:
        """rabbitmqctl (or another CLI tool: rabbitmq-upgrade) against this node."""
        done = subprocess.run([_tool(tool), "-n", self.name, *args], env=self.env(),
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise StartFailed(f"{tool} {' '.join(args)} on {self.name}",
                              (done.stderr or done.stdout).strip()[-400:])
        return done.stdout

    def stop(self, timeout: float = 30.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc, timeout, name=self.name)

    def kill(self) -> None:
        """SIGKILL, as a crashed machine would (its process group: the node's helpers too)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()


class RabbitCluster:
    """`nodes` RabbitMQ nodes joined into one cluster, each stopped by its PID on exit."""

    def __init__(self, home: Path, nodes: int = 3, *, start_timeout: float = 90.0) -> None:
        self.home = Path(home)
        tag = uuid.uuid4().hex[:6]
        self.nodes = [RabbitNode(self.home, f"duet{tag}{i}@localhost") for i in range(nodes)]
        self.start_timeout = start_timeout

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def amqp_url(self) -> str:
        """Every node, comma-separated: what DUET_AMQP_URL takes for a cluster."""
        return ",".join(self.urls)

    def start(self) -> RabbitCluster:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(20).upper())
            cookie.chmod(0o400)
        try:
            for node in self.nodes:  # in parallel: each takes ~10 s to boot
                node.start()
            for node in self.nodes:
                node.wait_ready(self.start_timeout)
            first = self.nodes[0]
            for node in self.nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first.name)
                node.ctl("start_app")
            log.info("RabbitMQ cluster of %d nodes: %s", len(self.nodes),
                     ", ".join(f"{n.name} on {n.port}" for n in self.nodes))
        except BaseException:
            self.stop()
            raise
        return self

    def running_nodes(self) -> list[str]:
        """The cluster's running nodes, as node 0 (or the first that answers) sees them."""
        for node in self.nodes:
            if node.pid is None:
                continue
            out = node.ctl("cluster_status", "--formatter", "json")
            return sorted(json.loads(out)["running_nodes"])
        return []

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def start_node(self, index: int) -> None:
        """Bring a stopped or killed node back: it rejoins with its data."""
        node = self.nodes[index]
        node.start()
        node.wait_ready(self.start_timeout)

    def restart_node(self, index: int) -> None:
        """One step of a rolling upgrade: wait until stopping the node keeps a majority of
        every quorum queue online, drain it (maintenance mode: its queue leaders move to
        other nodes, its client connections are closed), stop it, start it, revive it."""
        node = self.nodes[index]
        node.ctl("await_online_quorum_plus_one", "-t", "120", tool="rabbitmq-upgrade",
                 timeout=150)
        node.ctl("drain", tool="rabbitmq-upgrade", timeout=120)
        node.stop()
        self.start_node(index)
        node.ctl("revive", tool="rabbitmq-upgrade")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def __enter__(self) -> RabbitCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class ReplicaSet:
    """`members` mongods (from the same binary as Mongod) as one replica set."""

    def __init__(self, home: Path, members: int = 3, *, name: str = "duet") -> None:
        self.home, self.name = Path(home), name
        # A member waits up to 10 s on SIGTERM for a secondary to catch up; these hold
        # development data with a journal, so a short wait then SIGKILL is fine.
        # Fixed ports: a member restarted must come back where the set's config says.
        self.members = [Mongod(self.home / f"m{i}", free_port(), replica_set=name,
                               stop_timeout=3.0) for i in range(members)]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{m.port}" for m in self.members)
        return f"mongodb://{hosts}/?replicaSet={self.name}"

    def start(self, timeout: float = 60.0) -> ReplicaSet:
        try:
            for member in self.members:
                member.start()
            config = {"_id": self.name, "members": [
                {"_id": i, "host": f"127.0.0.1:{m.port}"} for i, m in enumerate(self.members)]}
            first: MongoClient[dict[str, object]] = MongoClient(self.members[0].url)
            with first:
                first.admin.command("replSetInitiate", config)
            self.primary(timeout)
            log.info("MongoDB replica set %s: %s", self.name, self.url)
        except BaseException:
            self.stop()
            raise
        return self

    def primary(self, timeout: float = 30.0) -> int:
        """Index of the member that is primary now (waiting up to `timeout` for one)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.members):
                if not m.running:
                    continue
                client: MongoClient[dict[str, object]] = MongoClient(
                    m.url, serverSelectionTimeoutMS=500)
                try:
                    if client.admin.command("hello").get("isWritablePrimary"):
                        return i
                except PyMongoError:
                    pass
                finally:
                    client.close()
            if time.monotonic() > deadline:
                raise StartFailed("MongoDB replica set", f"no primary after {timeout:.0f} s")
            time.sleep(0.2)

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def __enter__(self) -> ReplicaSet:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
