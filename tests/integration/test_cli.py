"""The `duet` command line end to end: real CLI processes against a real gateway and persister."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pty
import re
import struct
import subprocess
import sys
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import bson
import pymongo
import pytest
from bson import json_util
from support import Gateway, Stack, unique_name

from contracts import Names

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
PASSPHRASE = "device passphrase 42"
CLI_TIMEOUT = 60.0  # seconds, for any one CLI process
# The one line `duet listen` writes on stderr once its socket is ready.
LISTENING = re.compile(r"^listening to \S+ .*\(Ctrl-C to stop\)$")


# -- running the CLI ---------------------------------------------------------------------
@dataclass
class Run:
    args: list[str]
    code: int
    out: str
    err: str

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    def messages(self) -> list[dict[str, Any]]:
        return [e for e in self.lines() if e["type"] == "message"]

    def problems(self) -> list[str]:
        """stderr's lines but `listen`'s note that it is listening."""
        return [line for line in self.err.splitlines() if not LISTENING.match(line)]

    def __str__(self) -> str:
        return f"duet {' '.join(self.args)} -> {self.code}\n{self.out}\n{self.err}"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUET_")}
    env.update(DUET_PASSWORD=PASSWORD, DUET_PASSPHRASE=PASSPHRASE)
    env.update(extra)
    return {k: v for k, v in env.items() if v}


def command(gw: Gateway, home: Path, args: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "client", "--server", gw.http, "--home", str(home), *args]


def duet(gw: Gateway, home: Path, *args: str, env: dict[str, str] | None = None,
         stdin: str | None = None, timeout: float = CLI_TIMEOUT) -> Run:
    """Run the CLI to its end (killed after `timeout`), with no terminal."""
    p = subprocess.run(command(gw, home, args), cwd=REPO, env=env or cli_env(),
                       input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    return Run(list(args), p.returncode, p.stdout, p.stderr)


async def aduet(gw: Gateway, home: Path, *args: str, timeout: float = CLI_TIMEOUT) -> Run:
    """Run the CLI without blocking the event loop; killed by its PID after `timeout`."""
    proc = await asyncio.create_subprocess_exec(
        *command(gw, home, args), cwd=REPO, env=cli_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Run(list(args), proc.returncode, out.decode(), err.decode())


def ok(run: Run) -> Run:
    assert run.code == 0 and not run.problems(), str(run)
    return run


def png(text: str) -> bytes:
    """A valid 1x1 PNG carrying `text` in a tEXt chunk, so every test image is unique."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
            + chunk(b"tEXt", b"Comment\x00" + text.encode())
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00\xff"))
            + chunk(b"IEND", b""))


def register_pair(gw: Gateway, root: Path) -> tuple[str, str, Path, Path]:
    """Two users, friends, each on one device, made through the CLI."""
    a, b = unique_name("al"), unique_name("bo")
    ha, hb = root / "a", root / "b"
    ok(duet(gw, ha, "register", a))
    ok(duet(gw, hb, "register", b))
    ok(duet(gw, ha, "friends", "add", b))
    ok(duet(gw, hb, "friends", "accept", a))
    return a, b, ha, hb


# -- one conversation, driven only through the CLI ---------------------------------------
@dataclass
class Conversation:
    alice: str
    bob: str
    homes: dict[str, Path]
    texts: dict[str, str]
    images: dict[str, bytes]
    bob_listen: Run
    alice_listen: Run
    second_device_history: Run
    alice_history: Run
    runs: list[Run] = field(default_factory=list)
    tapped: list[bytes] = field(default_factory=list)


async def converse(gw: Gateway, stack: Stack, root: Path) -> Conversation:
    alice, bob = unique_name("alice"), unique_name("bob")
    homes = {"a": root / "alice", "a2": root / "alice-laptop", "b": root / "bob"}
    tag = uuid.uuid4().hex
    texts = {"a": f"meet me at the old mill at nine {tag}",
             "b": f"bring the blue umbrella, not the red one {tag}"}
    images = {"a": png(f"alice's secret picture {tag}"), "b": png(f"bob's holiday {tag}")}
    files = {}
    for who, data in images.items():
        files[who] = root / f"{who}.png"
        files[who].write_bytes(data)
    runs: list[Run] = []

    async def run(home: str, *args: str, timeout: float = CLI_TIMEOUT) -> Run:
        result = await aduet(gw, homes[home], *args, timeout=timeout)
        runs.append(result)
        return ok(result)

    await asyncio.gather(run("a", "register", alice), run("b", "register", bob))
    # The second device exists, approved, before anything is sent.
    linked = await run("a2", "--json", "login", alice)
    await run("a", "devices", "approve", linked.lines()[0]["link_code"])
    await run("a", "friends", "add", bob)
    await run("b", "friends", "accept", alice)

    # A copy of everything published on the stack's exchange from here on.
    conn = await aio_pika.connect(stack.amqp_url)
    async with conn:
        channel = await conn.channel()
        tap = await channel.declare_queue(f"tap-{uuid.uuid4().hex}", exclusive=True)
        await tap.bind(Names(prefix=stack.prefix).exchange, routing_key="room.#")

        bob_listening = asyncio.create_task(run(
            "b", "--json", "listen", alice, "--count", "2", "--timeout", "40",
            "--save-dir", str(root / "bob-got"), timeout=50))
        await run("a", "send", bob, texts["a"])
        await run("a", "send-image", bob, str(files["a"]))
        await run("b", "send", alice, texts["b"])
        await run("b", "send-image", alice, str(files["b"]))
        bob_listen = await bob_listening
        alice_listen = await run("a", "listen", bob, "--json", "--count", "2", "--timeout", "20",
                                 "--save-dir", str(root / "alice-got"))
        second = await run("a2", "history", bob, "--json", "--save-dir", str(root / "a2-got"))
        for _ in range(40):  # until the persister stored all four
            if len(second.messages()) == 4:
                break
            await asyncio.sleep(0.5)
            second = await run("a2", "history", bob, "--json", "--save-dir",
                               str(root / "a2-got"))
        alice_history = await run("a", "history", bob)

        tapped = []
        while (message := await tap.get(no_ack=True, fail=False, timeout=5)) is not None:
            tapped.append(message.body)
    return Conversation(alice, bob, homes, texts, images, bob_listen, alice_listen, second,
                        alice_history, runs, tapped)


@pytest.fixture(scope="module")
def talk(gw: Gateway, stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Conversation:
    """Alice (two devices) and Bob register, befriend and exchange text and images by CLI."""
    return asyncio.run(converse(gw, stack, tmp_path_factory.mktemp("cli")))


# -- acceptance --------------------------------------------------------------------------
@pytest.mark.timeout(240)
def test_exchange_messages_cli_each_side_reads_plaintext(talk: Conversation) -> None:
    """Text and images sent with the CLI arrive decrypted, and a second device reads its own."""
    got = talk.bob_listen.messages()
    from_alice = [m for m in got if not m["own"]]
    assert [m["kind"] for m in from_alice] == ["text", "image"], str(talk.bob_listen)
    assert from_alice[0]["text"] == talk.texts["a"] and from_alice[0]["sender_name"] == talk.alice
    image = from_alice[1]
    assert image["mime"] == "image/png" and image["bytes"] == len(talk.images["a"])
    assert Path(image["path"]).read_bytes() == talk.images["a"]

    got = talk.alice_listen.messages()
    from_bob = [m for m in got if not m["own"]]
    assert [(m["kind"], m["sender_name"]) for m in from_bob] == [("text", talk.bob),
                                                                 ("image", talk.bob)]
    assert from_bob[0]["text"] == talk.texts["b"]
    assert Path(from_bob[1]["path"]).read_bytes() == talk.images["b"]
    own = [m for m in got if m["own"]]  # alice's own, replayed to the device that sent them
    assert [m.get("text") for m in own] == [talk.texts["a"], None]

    history = talk.second_device_history.messages()
    assert [(m["own"], m["kind"]) for m in history] == [
        (True, "text"), (True, "image"), (False, "text"), (False, "image")]
    assert history[0]["text"] == talk.texts["a"] and history[2]["text"] == talk.texts["b"]
    assert Path(history[1]["path"]).read_bytes() == talk.images["a"]
    assert not [e for e in talk.second_device_history.lines() if e["type"] == "alert"]

    human = talk.alice_history.out
    assert f"{talk.alice} (you): {talk.texts['a']}" in human
    assert f"{talk.bob}: {talk.texts['b']}" in human
    assert human.count("[image image/png") == 2 and "WARNING" not in human


def b64_forms(plain: bytes) -> list[bytes]:
    """The plaintext, its hex, and its base64 and base64url at each of the 3 alignments."""
    forms = [plain, plain.hex().encode()]
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * shift + plain)
            first = 4 * -(-shift // 3)  # the first group made only of plaintext bytes
            last = 4 * ((len(plain) + shift) // 3)  # the end of the last such group
            forms.append(text[first:last])
    return forms


def leaks(haystack: bytes, secrets: dict[str, list[bytes]]) -> list[str]:
    return [name for name, forms in secrets.items() if any(f in haystack for f in forms)]


@pytest.mark.timeout(240)
def test_search_storage_broker_logs_no_plaintext(talk: Conversation, stack: Stack,
                                                 mongo: pymongo.MongoClient[Any]) -> None:
    """No plaintext, in any encoding, is in MongoDB, on the broker or in a service log."""
    secrets = {f"text {w}": b64_forms(t.encode()) for w, t in talk.texts.items()}
    secrets.update({f"image {w}": b64_forms(i) for w, i in talk.images.items()})
    # The search finds what it looks for: the plaintext embedded in an encoding of its own.
    for name, plain in [("image a", talk.images["a"]), ("text b", talk.texts["b"].encode())]:
        assert leaks(base64.urlsafe_b64encode(b"xy" + plain + b"z"), secrets) == [name]
    saved = next(m["path"] for m in talk.bob_listen.messages() if "path" in m)
    assert leaks(Path(saved).read_bytes(), secrets) == ["image a"]

    db = mongo[stack.db_name]
    names = db.list_collection_names()
    assert names
    count = 0
    for collection in names:
        for doc in db[collection].find():
            count += 1
            dumped = json_util.dumps(doc).encode()
            raw = bson.encode(doc)
            found = leaks(dumped, secrets) + leaks(raw, secrets)
            assert not found, f"{found} in {collection}: {dumped[:300]!r}"
    assert count >= 4  # at least the four messages were looked at

    assert len(talk.tapped) >= 4, "the broker tap saw fewer messages than were sent"
    for body in talk.tapped:
        assert not leaks(body, secrets), body[:300]

    logs = [p for p in stack.log_dir.iterdir() if p.is_file()]
    assert logs
    for path in logs:
        assert not (found := leaks(path.read_bytes(), secrets)), f"{found} in {path}"

    # Nor did the CLI print a password, passphrase or token.
    tokens = [json.loads((h / "profile.json").read_text())["token"] for h in talk.homes.values()]
    for run in talk.runs:
        for secret in [PASSWORD, PASSPHRASE, *tokens]:
            assert secret not in run.out and secret not in run.err, str(run)


# -- the rest of the commands -----------------------------------------------------------
def test_verify_safety_number_same_for_both_friends(talk: Conversation, gw: Gateway) -> None:
    """Both friends' `verify` shows the same twelve groups of five digits."""
    a = ok(duet(gw, talk.homes["a"], "verify", talk.bob, "--json")).lines()
    b = ok(duet(gw, talk.homes["b"], "verify", talk.alice, "--json")).lines()
    assert len(a) == len(b) == 1 and a[0]["type"] == "safety_number"
    number = a[0]["safety_number"]
    assert number == b[0]["safety_number"]
    groups = number.split()
    assert len(groups) == 12 and all(len(g) == 5 and g.isdigit() for g in groups)
    human = ok(duet(gw, talk.homes["a"], "verify", talk.bob)).out
    assert " ".join(groups[:4]) in human and "Compare" in human


def test_print_json_output_every_line_parses(talk: Conversation, gw: Gateway) -> None:
    """With --json every line of every command's output is one JSON object with a type."""
    runs = [duet(gw, talk.homes["a"], "--json", "friends", "list"),
            duet(gw, talk.homes["b"], "history", talk.alice, "--json"),
            duet(gw, talk.homes["a"], "verify", talk.bob, "--json"),
            duet(gw, talk.homes["b"], "--json", "send", talk.alice, "json", "check")]
    for run in runs:
        lines = ok(run).lines()
        assert lines and all(isinstance(x, dict) and "type" in x for x in lines), str(run)
    [friend] = runs[0].lines()
    assert friend == {"type": "friend", "user_id": friend["user_id"], "username": talk.bob,
                      "status": "accepted"}
    [sent] = runs[3].lines()
    assert sent["type"] == "sent" and sent["kind"] == "text" and sent["to"] == talk.alice


def test_login_wrong_password_exit_1(talk: Conversation, gw: Gateway, tmp_path: Path) -> None:
    """A wrong password ends with exit 1 and one readable error line, secret-free."""
    run = duet(gw, tmp_path / "h", "login", talk.alice, env=cli_env(DUET_PASSWORD="wrong pass 9"))
    assert run.code == 1 and run.out == "", str(run)
    assert run.err.startswith("duet: error: ") and run.err.count("\n") == 1, run.err
    assert "password" in run.err and "wrong pass 9" not in run.err
    assert not (tmp_path / "h" / "device.json").exists()


def test_send_non_friend_exit_1(talk: Conversation, gw: Gateway, tmp_path: Path) -> None:
    """Sending to someone who is not a friend, or not yet one, fails with exit 1 and says why."""
    carol = unique_name("carol")
    ok(duet(gw, tmp_path / "c", "register", carol))
    run = duet(gw, tmp_path / "c", "send", talk.alice, "hello stranger")
    assert run.code == 1 and run.err.startswith("duet: error: "), str(run)
    assert "not among your friends" in run.err and "Traceback" not in run.err
    ok(duet(gw, tmp_path / "c", "friends", "add", talk.alice))
    run = duet(gw, tmp_path / "c", "send-image", talk.alice, __file__)
    assert run.code == 1 and "does not look like an image" in run.err, str(run)
    (tmp_path / "x.png").write_bytes(png("x"))
    run = duet(gw, tmp_path / "c", "send-image", talk.alice, str(tmp_path / "x.png"))
    assert run.code == 1 and "has not accepted" in run.err, str(run)


def test_read_secrets_from_stdin_or_file_else_fail(talk: Conversation, gw: Gateway,
                                                   tmp_path: Path) -> None:
    """--password-stdin and --passphrase-file log in a new device; without them it fails fast."""
    phrase = tmp_path / "phrase"
    phrase.write_text("another passphrase\n")
    env = cli_env(DUET_PASSWORD="", DUET_PASSPHRASE="")
    home = tmp_path / "h"
    run = duet(gw, home, "--json", "login", talk.bob, "--password-stdin", "--passphrase-file",
               str(phrase), env=env, stdin=PASSWORD + "\n")
    [done] = ok(run).lines()
    assert done["type"] == "logged_in" and done["new_device"] is True
    run = duet(gw, home, "history", talk.alice, env=env)  # no passphrase, no terminal
    assert run.code == 1 and "DUET_PASSPHRASE" in run.err, str(run)
    run = duet(gw, home, "history", talk.alice, env=cli_env(DUET_PASSPHRASE="not it"))
    assert run.code == 1 and "wrong passphrase" in run.err, str(run)
    ok(duet(gw, home, "history", talk.alice, "--passphrase-file", str(phrase), env=env))


def test_unlock_short_passphrase_error_keeps_its_words(talk: Conversation, gw: Gateway) -> None:
    """A wrong passphrase that is also a word ("wrong") leaves the error line's words whole:
    only secrets that came back in someone else's text are redacted."""
    run = duet(gw, talk.homes["a"], "history", talk.bob, env=cli_env(DUET_PASSPHRASE="wrong"))
    assert run.code == 1 and run.out == "", str(run)
    assert run.err == "duet: error: cannot unlock the device keys (wrong passphrase?)\n", run.err


def test_parse_bad_arguments_exit_2(gw: Gateway, tmp_path: Path) -> None:
    """Usage errors exit 2 before anything is done."""
    for args in [(), ("frobnicate",), ("listen", "--count", "0"), ("friends",),
                 ("register", "no spaces allowed"), ("send", "bob")]:
        run = duet(gw, tmp_path, *args)
        assert run.code == 2 and "usage:" in run.err, str(run)
    assert not any(tmp_path.iterdir())


def test_listen_count_stops_next_run_resumes(gw: Gateway, tmp_path: Path) -> None:
    """A listen that stops after N leaves the rest for the next; --from-start replays all."""
    a, b, ha, hb = register_pair(gw, tmp_path)
    for i in range(3):
        ok(duet(gw, ha, "send", b, f"number {i}"))

    def texts(run: Run) -> list[str]:
        assert not [e for e in run.lines() if e["type"] == "alert"], str(run)
        return [m["text"] for m in run.messages()]

    args = ("--json", "listen", a, "--timeout", "20", "--count")
    first = ok(duet(gw, hb, *args, "1"))
    assert texts(first) == ["number 0"]
    assert first.err == f"listening to {a} (Ctrl-C to stop)\n", str(first)
    assert texts(ok(duet(gw, hb, *args, "2"))) == ["number 1", "number 2"]
    assert texts(ok(duet(gw, hb, "--json", "listen", a, "--timeout", "2"))) == []
    run = duet(gw, hb, *args, "1", "--timeout", "2")
    assert run.code == 1 and "0 of 1 messages" in run.err, str(run)
    replay = ok(duet(gw, hb, *args, "3", "--from-start"))
    assert texts(replay) == ["number 0", "number 1", "number 2"]
    every = ok(duet(gw, ha, "listen", "--timeout", "3"))  # every friend; own not counted
    assert [line.split("] ", 1)[1] for line in every.out.splitlines()] == [
        f"{a} (you): number {i}" for i in range(3)]
    assert every.err == "listening to all conversations (Ctrl-C to stop)\n", str(every)


async def test_listen_says_listening_once_socket_ready(gw: Gateway, tmp_path: Path) -> None:
    """`duet listen` writes one line on stderr when its socket is ready, never on stdout; a
    message sent after that line arrives live."""
    a, b, ha, hb = await asyncio.to_thread(register_pair, gw, tmp_path)
    proc = await asyncio.create_subprocess_exec(
        *command(gw, hb, ("--json", "listen", a, "--count", "1", "--timeout", "40")),
        cwd=REPO, env=cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        note = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        assert note == f"listening to {a} (Ctrl-C to stop)\n"
        ok(await aduet(gw, ha, "send", b, "after the note"))
        out, err = await asyncio.wait_for(proc.communicate(), 45)
    finally:
        if proc.returncode is None:
            proc.kill()  # by its PID: asyncio's Process.kill signals only this child
            await proc.wait()
    assert proc.returncode == 0 and err == b"", (out, err)
    [line] = [json.loads(x) for x in out.decode().splitlines()]
    assert (line["type"], line["text"]) == ("message", "after the note")


def test_listen_every_friend_merges_rooms(gw: Gateway, tmp_path: Path) -> None:
    """Without FRIEND, listen shows the messages of every friend's room as they come."""
    a, b, ha, hb = register_pair(gw, tmp_path)
    c, hc = unique_name("ca"), tmp_path / "c"
    ok(duet(gw, hc, "register", c))
    ok(duet(gw, hc, "friends", "add", b))
    ok(duet(gw, hb, "friends", "accept", c))
    ok(duet(gw, ha, "send", b, "from a"))
    ok(duet(gw, hc, "send", b, "from c"))
    run = ok(duet(gw, hb, "--json", "listen", "--count", "2", "--timeout", "20"))
    got = sorted((m["sender_name"], m["text"]) for m in run.messages())
    assert got == sorted([(a, "from a"), (c, "from c")]), str(run)
    ok(duet(gw, ha, "send", b, "again from a"))
    run = ok(duet(gw, hb, "--json", "listen", "--count", "1", "--timeout", "20"))
    assert [m["text"] for m in run.messages()] == ["again from a"], str(run)


def number(run: Run) -> str:
    return str(next(x["safety_number"] for x in run.lines() if x["type"] == "safety_number"))


def test_send_warns_of_unapproved_device_and_identity_change(gw: Gateway,
                                                             tmp_path: Path) -> None:
    """A friend's device not yet approved is named in a warning and gets no key, and the
    safety number stays; after the friend resets the identity key, sending fails until
    `duet verify --accept`, and only then the safety number changes."""
    a, b, ha, hb = register_pair(gw, tmp_path)
    ok(duet(gw, ha, "send", b, "first"))
    before = number(ok(duet(gw, ha, "verify", b, "--json")))
    ok(duet(gw, tmp_path / "b2", "login", b))
    run = ok(duet(gw, ha, "send", b, "second"))
    assert "WARNING: unapproved_device" in run.out and "gets no key" in run.out, str(run)
    assert number(ok(duet(gw, ha, "verify", b, "--json"))) == before

    ok(duet(gw, hb, "devices", "reset-identity", "--yes"))
    refused = duet(gw, ha, "send", b, "third")
    assert refused.code == 1 and "identity key changed" in refused.err, str(refused)
    assert number(ok(duet(gw, ha, "verify", b, "--json"))) == before
    after = number(ok(duet(gw, ha, "verify", b, "--json", "--accept")))
    assert after != before
    assert number(ok(duet(gw, hb, "verify", a, "--json"))) == after
    ok(duet(gw, ha, "send", b, "third"))


def test_send_image_terminal_draws_progress_bar(gw: Gateway, tmp_path: Path) -> None:
    """On a terminal, send-image draws a bar on stderr that ends at 100 %."""
    a, b, ha, hb = register_pair(gw, tmp_path)
    image = tmp_path / "dot.png"
    image.write_bytes(png("progress"))
    leader, follower = pty.openpty()
    try:
        p = subprocess.run(command(gw, ha, ("send-image", b, str(image))), cwd=REPO,
                           env=cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=follower, timeout=CLI_TIMEOUT, text=True)
        os.close(follower)
        follower = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert p.returncode == 0 and "sent dot.png" in p.stdout, p.stdout
    text = drawn.decode()
    assert "\rdot.png [" in text and "100%" in text and "encrypting" in text, text


def test_inbox_lists_unread_and_listen_clears_them(gw: Gateway, tmp_path: Path) -> None:
    """`duet inbox` shows each conversation's unread count and newest text; messages shown
    by `duet listen` count as read (on every device of the user)."""
    a, b, ha, hb = register_pair(gw, tmp_path)
    ok(duet(gw, ha, "send", b, "one"))
    ok(duet(gw, ha, "send", b, "two, the newest"))
    [row] = ok(duet(gw, hb, "--json", "inbox")).lines()
    assert (row["friend"], row["unread"], row["preview"]) == (a, 2, "two, the newest")
    human = ok(duet(gw, hb, "inbox")).out
    assert a in human and "2 unread" in human and "two, the newest" in human
    ok(duet(gw, hb, "--json", "listen", a, "--count", "2", "--timeout", "20"))
    [row] = ok(duet(gw, hb, "--json", "inbox")).lines()
    assert row["unread"] == 0, row
    [row] = ok(duet(gw, ha, "--json", "inbox")).lines()
    assert (row["friend"], row["unread"]) == (b, 0)
