"""Exchange, queue and routing-key names, and the pair-room rules.

A room is the unordered pair of its two members' ids, written `<lo>.<hi>`.
Broker messages about a room travel under `<namespace>.<lo>.<hi>`:

    room.<lo>.<hi>      chat messages and receipts: persisted (duet.persist) and audited
    typing.<lo>.<hi>    typing signals: transient, routed to gateways only
    unsent.<lo>.<hi>    messages a gateway published whose confirm failed (so pushed live,
                        perhaps never stored): transient, gateways only
    presence.<lo>.<hi>  a member went online or offline (one publish, every friend's room
                        in CC): transient, gateways only
    user.<uid>.read     a user's read position moved: to that user's devices only
    user.<uid>.friends  a friendship of the user's ended (unfriend, block, a deleted
                        account): each gateway forgets it and closes that pair's v1
                        sockets; transient, never pushed to clients
    user.<uid>.account  the user's account was deleted: each gateway closes its sockets

A gateway binds its queue to `*.<uid>.*` and `*.*.<uid>` while it holds a socket of user
`uid`: two bindings cover every room of that user (whatever the number of friends) and
the user's own `user.<uid>.*` events, and no other user's. The persister's receipts
travel under the one key `stored`, one notice per written batch (all its rooms), which
every gateway queue binds. `room.#` is bound to duet.audit, and to duet.persist when
persistence has one partition.

Partitioned persistence (DUET_PERSIST_PARTITIONS = N > 1): every chat broker message also
carries, in CC, `persist.<slot>` for each of its rooms' slots (PERSIST_SLOTS of them, by a
hash of the room). Partition p is the quorum queue duet.persist.<p>, bound to the slots
s with s % N == p. Routing needs no N at the gateway: it always names the slots (it
reads N only to split its batches by partition, gateway.publisher).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

USER_ID_PATTERN = r"^[0-9a-f]{24}$"
_USER_ID = re.compile(USER_ID_PATTERN)

MESSAGE_NS = "room"
TYPING_NS = "typing"
UNSENT_NS = "unsent"
PRESENCE_NS = "presence"
USER_NS = "user"
STORED_NS = "stored"
PERSIST_NS = "persist"
PERSIST_SLOTS = 64  # a room's slot never changes, whatever the partition count
MAX_PARTITIONS = 16  # DUET_PERSIST_PARTITIONS' bound: at least 4 slots each


def is_user_id(value: str) -> bool:
    """True when value has the shape of a user id (no dots, no wildcards)."""
    return bool(_USER_ID.match(value))


def room_id(a: str, b: str) -> str:
    """The room of two users, the same whichever order they are given in."""
    if a == b:
        raise ValueError("a room needs two different users")
    lo, hi = (a, b) if a < b else (b, a)
    return f"{lo}.{hi}"


def room_members(room: str) -> tuple[str, str]:
    lo, _, hi = room.partition(".")
    return lo, hi


def room_key(a: str, b: str) -> str:
    """Routing key of chat messages between a and b: `room.<lo>.<hi>`."""
    return f"{MESSAGE_NS}.{room_id(a, b)}"


def message_key(room: str) -> str:
    return f"{MESSAGE_NS}.{room}"


STORED_KEY = STORED_NS  # the routing key of every stored notice


def persist_slot(room: str) -> int:
    """The room's slot: CRC-32 (stable across processes and versions, unlike hash())."""
    return zlib.crc32(room.encode()) % PERSIST_SLOTS


def persist_key(slot: int) -> str:
    return f"{PERSIST_NS}.{slot}"


def persist_partition(room: str, partitions: int) -> int:
    """Which of `partitions` persist queues stores this room's messages."""
    return persist_slot(room) % partitions


def persist_bindings(partition: int, partitions: int) -> list[str]:
    """The keys partition `partition` of `partitions` is bound to."""
    if partitions == 1:
        return [f"{MESSAGE_NS}.#"]
    return [persist_key(s) for s in range(PERSIST_SLOTS) if s % partitions == partition]


def typing_key(room: str) -> str:
    return f"{TYPING_NS}.{room}"


def unsent_key(room: str) -> str:
    return f"{UNSENT_NS}.{room}"


def presence_key(room: str) -> str:
    return f"{PRESENCE_NS}.{room}"


def read_key(user: str) -> str:
    """A user's own read-position events: matched by that user's `*.<uid>.*` binding."""
    return f"{USER_NS}.{user}.read"


FRIENDS_EVENT = "friends"
ACCOUNT_EVENT = "account"


def friends_key(user: str) -> str:
    """A friendship of this user's ended: every gateway holding a socket of theirs hears."""
    return f"{USER_NS}.{user}.{FRIENDS_EVENT}"


def account_key(user: str) -> str:
    """This user's account was deleted: every gateway holding a socket of theirs hears."""
    return f"{USER_NS}.{user}.{ACCOUNT_EVENT}"


def user_bindings(user: str) -> tuple[str, str]:
    """The two patterns that bring a gateway everything about one user's rooms."""
    return f"*.{user}.*", f"*.*.{user}"


@dataclass(frozen=True, slots=True)
class Names:
    """Every broker and database name, behind one prefix so stacks never collide."""

    prefix: str = ""
    exchange_name: str = "duet.rooms"
    db_name: str = "duet"

    @property
    def exchange(self) -> str:
        return f"{self.prefix}{self.exchange_name}"

    @property
    def persist_queue(self) -> str:
        return f"{self.prefix}duet.persist"

    def persist_queues(self, partitions: int) -> list[str]:
        """duet.persist alone, or duet.persist.0 .. duet.persist.<N-1>."""
        if partitions == 1:
            return [self.persist_queue]
        return [f"{self.persist_queue}.{p}" for p in range(partitions)]

    @property
    def persister_roll(self) -> str:
        """A queue nothing is published to; every persister consumes it, so its consumer
        count is how many persisters run (partitions are single-active-consumer, and
        count only the active one)."""
        return f"{self.prefix}duet.persisters"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}duet.dead"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.prefix}duet.dead-letters"

    @property
    def audit_stream(self) -> str:
        return f"{self.prefix}duet.audit"

    def durable_names(self) -> tuple[list[str], list[str]]:
        """(queues, exchanges) the services may declare that outlive them, under any
        partition count: what a test or benchmark deletes after its run (per-gateway
        queues are exclusive and go with their gateway)."""
        queues = [self.persist_queue, *self.persist_queues(MAX_PARTITIONS),
                  self.dead_letter_queue, self.audit_stream, self.persister_roll]
        return queues, [self.exchange, self.dead_letter_exchange]

    def gateway_queue(self, node: str) -> str:
        return f"{self.prefix}duet.gateway.{node}"

    @property
    def database(self) -> str:
        # MongoDB database names cannot hold dots; the broker's names can.
        return f"{self.prefix}{self.db_name}".replace(".", "_")
