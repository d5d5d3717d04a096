"""A device added later and approved without the history (`--no-history`): what it holds
no key for is one explained line (CLI) and a `not_for_device` alert (SDK), never a
warning per message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from support import Gateway, conversation_before, unique_name

from client import Alert, Client, Message
from client.events import NOT_FOR_DEVICE

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
PASSPHRASE = "device passphrase 42"
LINE = "{} earlier messages were sent before this device was added and cannot be read here"


def duet(gw: Gateway, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUET_")}
    env.update(DUET_PASSWORD=PASSWORD, DUET_PASSPHRASE=PASSPHRASE)
    p = subprocess.run([sys.executable, "-m", "client", "--server", gw.http, "--home",
                        str(home), *args], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"duet {' '.join(args)}\n{p.stdout}\n{p.stderr}"
    return p


def lines(p: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


async def test_history_new_device_one_line_per_unreadable_run(gw: Gateway,
                                                               tmp_path: Path) -> None:
    """A CLI home and an SDK client added later: `history` and `listen` print one line for
    the N earlier messages, the SDK yields not_for_device alerts, and a new message reads."""
    na, nb, n = unique_name("ca"), unique_name("cb"), 4
    async with Client(gw.http, home=tmp_path / "a", passphrase=PASSPHRASE) as a, \
            Client(gw.http, home=tmp_path / "b", passphrase=PASSPHRASE) as b:
        await conversation_before(a, b, na, nb, PASSWORD, n)

        # The SDK: one alert a message, of its own kind, not undecryptable.
        async with Client(gw.http, home=tmp_path / "a3", passphrase=PASSPHRASE) as a3:
            await a3.login(na, PASSWORD)
            await a.approve_device(a3.link_code, share_history=False)
            events = [e for e in await a3.history(nb) if isinstance(e, Alert | Message)]
        assert len(events) == n, events
        assert all(isinstance(e, Alert) and e.kind == NOT_FOR_DEVICE for e in events), events

        home = tmp_path / "a2"
        code = lines(duet(gw, home, "--json", "login", na))[0]["link_code"]
        duet(gw, tmp_path / "a", "devices", "approve", code, "--no-history")
        new = await b.send_text(na, "after the new home")
        await b.wait_stored(na, new["id"])

    got = lines(duet(gw, home, "--json", "history", nb))
    assert [e["type"] for e in got] == ["unreadable", "message"], got
    assert got[0]["count"] == n and len(got[0]["ids"]) == n
    assert got[1]["text"] == "after the new home"
    human = duet(gw, home, "history", nb).stdout.splitlines()
    assert human[0] == LINE.format(n) and "WARNING" not in "\n".join(human)
    listened = lines(duet(gw, home, "--json", "listen", nb, "--from-start", "--count", "1",
                          "--timeout", "20"))
    assert [e["type"] for e in listened] == ["unreadable", "message"], listened
    assert listened[0]["count"] == n and listened[1]["text"] == "after the new home"
