"""`duet-admin audit`: the broker's audit stream read back by the operators' command and
checked against MongoDB.

A real gateway and persister (the module's `gw`), SDK clients holding a real conversation,
and the command run as `python -m admin audit ...` against the module's prefix. The expected
sizes and hashes are computed here from the bodies MongoDB stored, independently of
admin/audit.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymongo
import pytest
from support import Gateway, Stack, unique_name, wait_stored

from client import Client
from contracts import room_id

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
PASS = "test passphrase"
CLI_TIMEOUT = 60.0
RECORD_FIELDS = {"id", "room", "sender", "kind", "size", "sha256", "ts", "cursor", "offset",
                 "published"}
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2a2a0c20000000049454e44ae426082")


@dataclass
class Conversation:
    room: str
    users: tuple[str, str]  # user ids: the first sent the image
    started_ms: int
    docs: dict[str, dict[str, Any]]  # MongoDB's documents of the room, by _id


@dataclass
class Run:
    code: int
    out: str
    err: str

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    def __str__(self) -> str:
        return f"exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"


def expected_digest(body: Any) -> tuple[int, str]:
    """Canonical JSON (sorted keys, no white space, non-ASCII kept, UTF-8): size, SHA-256."""
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return len(data), hashlib.sha256(data).hexdigest()


def audit_env(stack: Stack) -> dict[str, str]:
    """The services' settings, as `docker compose exec` gives them (no device profile:
    the command reads none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUET_")}
    env.update(DUET_AMQP_URL=stack.amqp_url, DUET_PREFIX=stack.prefix,
               DUET_MONGO_URL=stack.mongo_url)
    return env


def audit(stack: Stack, *args: str) -> Run:
    """`python -m admin audit ARGS` (duet-admin) to its end, killed after CLI_TIMEOUT."""
    p = subprocess.run([sys.executable, "-m", "admin", "audit", *args], cwd=REPO,
                       env=audit_env(stack), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=CLI_TIMEOUT)
    return Run(p.returncode, p.stdout, p.stderr)


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


@pytest.fixture
async def conversation(gw: Gateway, stack: Stack, mongo: pymongo.MongoClient[dict[str, Any]],
                       tmp_path: Path) -> Conversation:
    """Two SDK users, friends, who exchange five texts (one with non-ASCII) and an image,
    all of it stored by the persister."""
    started_ms = int(time.time() * 1000)
    a = Client(gw.http, home=tmp_path / "a", passphrase=PASS)
    b = Client(gw.http, home=tmp_path / "b", passphrase=PASS)
    try:
        na, nb = unique_name("alice"), unique_name("bob")
        ida = await a.register(na, "password-a-123")
        idb = await b.register(nb, "password-b-123")
        await a.add_friend(nb)
        await b.accept_friend(na)
        await a.send_text(nb, "hello bob")
        await b.send_text(na, "hi alice")
        await a.send_text(nb, "ça va? 🙂 日本語")
        await a.send_image(nb, PNG, mime="image/png", name="dot.png")
        await b.send_text(na, "fine")
        await b.send_text(na, "bye")
    finally:
        await a.close()
        await b.close()
    room = room_id(ida, idb)
    ids = await wait_stored(mongo, stack.db_name, room, 6)
    assert len(ids) == 6, ids
    docs = {d["_id"]: d for d in mongo[stack.db_name].messages.find({"room": room})}
    return Conversation(room, (ida, idb), started_ms, docs)


async def test_audit_tail_shows_every_message_with_body_hashes(
        conversation: Conversation, stack: Stack) -> None:
    """`duet-admin audit tail --room` prints each message of the conversation once, oldest
    first, with the size and SHA-256 of the canonical JSON of the body MongoDB stored."""
    run = await asyncio.to_thread(audit, stack, "tail", "--room", conversation.room)
    assert run.code == 0, run
    lines = run.lines()
    assert all(set(line) == RECORD_FIELDS for line in lines), run
    by_key = {f"{line['sender']}:{line['id']}": line for line in lines}
    assert len(by_key) == len(lines) == len(conversation.docs), run
    assert set(by_key) == set(conversation.docs)
    for key, doc in conversation.docs.items():
        line = by_key[key]
        size, sha = expected_digest(doc["body"])
        assert (line["size"], line["sha256"]) == (size, sha), key
        assert (line["room"], line["kind"], line["ts"], line["cursor"]) == (
            doc["room"], doc["kind"], doc["ts"], doc["cursor"])
    offsets = [line["offset"] for line in lines]
    assert all(isinstance(o, int) for o in offsets) and offsets == sorted(set(offsets))
    assert [line["kind"] for line in lines].count("image") == 1


async def test_audit_tail_since_offset_limit_and_user_filter(
        conversation: Conversation, stack: Stack) -> None:
    """`--since`, `--offset`, `--limit` and a user id in `--room` narrow the same stream
    the way they say."""
    everything = (await asyncio.to_thread(
        audit, stack, "tail", "--room", conversation.room)).lines()
    assert len(everything) == 6
    third = everything[2]
    run = await asyncio.to_thread(audit, stack, "tail", "--room", conversation.room,
                                  "--offset", str(third["offset"]))
    assert run.code == 0, run
    assert run.lines() == everything[2:]
    run = await asyncio.to_thread(audit, stack, "tail", "--room", conversation.room,
                                  "--since", iso(third["ts"]))
    assert run.code == 0, run
    assert [line["id"] for line in run.lines()] == [line["id"] for line in everything
                                                    if line["ts"] >= third["ts"]]
    run = await asyncio.to_thread(audit, stack, "tail", "--room", conversation.room,
                                  "--limit", "2")
    assert run.code == 0, run
    assert run.lines() == everything[:2]
    # A user id selects every room with that user: here, only this conversation's.
    run = await asyncio.to_thread(audit, stack, "tail", "--room",
                                  conversation.users[1], "--since", iso(conversation.started_ms))
    assert run.code == 0, run
    assert run.lines() == everything


async def test_audit_tail_follow_prints_messages_sent_after_it_started(
        conversation: Conversation, gw: Gateway, stack: Stack, tmp_path: Path) -> None:
    """`duet-admin audit tail --follow` keeps reading and prints a message published after it
    reached the end of the stream."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "admin", "audit", "tail", "--follow", "--room",
        conversation.room, "--since", iso(conversation.started_ms), cwd=REPO,
        env=audit_env(stack), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        seen = [json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
                for _ in range(6)]
        assert {f"{s['sender']}:{s['id']}" for s in seen} == set(conversation.docs)
        a = Client(gw.http, home=tmp_path / "a", passphrase=PASS)  # the fixture's device
        try:
            peer = next(u for u in conversation.users if u != a.user_id)
            ack = await a.send_text(peer, "one more")
        finally:
            await a.close()
        line = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        assert (line["id"], line["sender"], line["room"]) == (
            ack["id"], a.user_id, conversation.room)
        assert proc.returncode is None  # still following
    finally:
        if proc.returncode is None:
            proc.kill()  # by its PID: asyncio's Process.kill signals only this child
        await proc.wait()


async def test_audit_verify_reports_nothing_then_exactly_the_deleted_documents(
        conversation: Conversation, stack: Stack,
        mongo: pymongo.MongoClient[dict[str, Any]]) -> None:
    """`duet-admin audit verify` finds the stream and MongoDB in agreement (exit 0, a summary),
    then reports exactly the documents deleted from MongoDB by hand (exit 1)."""
    since = iso(conversation.started_ms)
    run = await asyncio.to_thread(audit, stack, "verify", "--since", since,
                                  "--room", conversation.room)
    assert run.code == 0, run
    [summary] = run.lines()
    assert summary["type"] == "summary" and summary["differences"] == 0, run
    assert summary["stream_messages"] == summary["stored_messages"] == 6
    assert summary["database"] == stack.db_name

    deleted = sorted(conversation.docs)[:2]
    result = mongo[stack.db_name].messages.delete_many({"_id": {"$in": deleted}})
    assert result.deleted_count == 2
    run = await asyncio.to_thread(audit, stack, "verify", "--since", since,
                                  "--room", conversation.room, "--grace", "0.5")
    assert run.code == 1, run
    *differences, summary = run.lines()
    assert {d["type"] for d in differences} == {"missing_in_mongo"}, run
    assert sorted(f"{d['sender']}:{d['id']}" for d in differences) == deleted
    for d in differences:
        doc = conversation.docs[f"{d['sender']}:{d['id']}"]
        assert (d["size"], d["sha256"]) == expected_digest(doc["body"])
        assert isinstance(d["offset"], int)
    assert summary["type"] == "summary" and summary["differences"] == 2
    assert (summary["missing_in_mongo"], summary["missing_in_stream"], summary["mismatch"]) == (
        2, 0, 0)
    assert (summary["stream_messages"], summary["stored_messages"]) == (6, 4)


async def test_audit_verify_reports_a_stored_body_that_differs(
        conversation: Conversation, stack: Stack,
        mongo: pymongo.MongoClient[dict[str, Any]]) -> None:
    """A document whose body was altered in MongoDB is reported as a mismatch with both
    hashes; an unknown prefix is a clear error, not an empty report."""
    key = sorted(conversation.docs)[0]
    body = dict(conversation.docs[key]["body"], ct="AAAA")
    mongo[stack.db_name].messages.update_one({"_id": key}, {"$set": {"body": body}})
    run = await asyncio.to_thread(audit, stack, "verify", "--since",
                                  iso(conversation.started_ms), "--room", conversation.room)
    assert run.code == 1, run
    *differences, summary = run.lines()
    [mismatch] = differences
    assert mismatch["type"] == "mismatch" and f"{mismatch['sender']}:{mismatch['id']}" == key
    assert mismatch["sha256"] == expected_digest(body)[1]
    assert mismatch["stream_sha256"] == expected_digest(conversation.docs[key]["body"])[1]
    assert summary["mismatch"] == 1 and summary["differences"] == 1

    run = await asyncio.to_thread(audit, stack, "tail", "--prefix", "nosuch.")
    assert run.code == 1 and not run.out, run
    assert run.err.startswith("duet-admin: error: ") and "nosuch.duet.audit" in run.err, run
