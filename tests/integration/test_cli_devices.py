"""`duet devices`: the account's device keys listed, this one marked, another revoked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from support import Gateway, unique_name

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
PASSPHRASE = "device passphrase 42"


def duet(gw: Gateway, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUET_")}
    env.update(DUET_PASSWORD=PASSWORD, DUET_PASSPHRASE=PASSPHRASE)
    return subprocess.run([sys.executable, "-m", "client", "--server", gw.http, "--home",
                           str(home), *args], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


def ok(p: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert p.returncode == 0, f"{p.args}\n{p.stdout}\n{p.stderr}"
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip().startswith("{")]


def test_devices_link_by_code_list_revoke_other_refuse_own(gw: Gateway, tmp_path: Path) -> None:
    """A second home of one account waits with a link code; the first lists it as pending
    with that code and approves it by the code; both then list the same two approved
    devices, each marking its own; one revokes the other; revoking itself needs --yes."""
    name, home, other = unique_name("dv"), tmp_path / "a", tmp_path / "a2"
    ok(duet(gw, home, "register", name))
    joined = duet(gw, other, "--json", "login", name)
    login = ok(joined)[0]
    assert login["device_state"] == "pending"
    code = login["link_code"]
    third = duet(gw, tmp_path / "a3", "login", name)  # a person reads how to go on
    assert "waits for approval" in third.stdout and "duet devices approve" in third.stdout
    ok(duet(gw, home, "devices", "revoke", ok(duet(gw, home, "--json", "devices"))[-1]["kid"]))
    listed = ok(duet(gw, home, "--json", "devices"))
    assert [(d["state"], d["current"]) for d in listed] == [("approved", True),
                                                             ("pending", False)]
    assert listed[1]["code"] == code
    refused = duet(gw, other, "devices", "approve", code)
    assert refused.returncode == 1 and "identity key" in refused.stderr, refused.stderr
    assert ok(duet(gw, home, "--json", "devices", "approve", code.replace(" ", ""))) == [
        {"type": "device_approved", "kid": listed[1]["kid"]}]
    listed = ok(duet(gw, home, "--json", "devices"))
    assert [(d["state"], d["current"]) for d in listed] == [("approved", True),
                                                             ("approved", False)]
    mine, theirs = listed[0]["kid"], listed[1]["kid"]
    assert [d["current"] for d in ok(duet(gw, other, "--json", "devices"))] == [False, True]
    human = duet(gw, home, "devices").stdout.splitlines()
    assert human[0].startswith(mine) and human[0].endswith("(this device)")

    assert ok(duet(gw, home, "--json", "devices", "revoke", theirs)) == [
        {"type": "device_revoked", "kid": theirs}]
    assert [d["kid"] for d in ok(duet(gw, home, "--json", "devices"))] == [mine]

    refused = duet(gw, home, "devices", "revoke", mine)
    assert refused.returncode == 1 and "--yes" in refused.stderr, refused.stderr
    assert [d["kid"] for d in ok(duet(gw, home, "--json", "devices"))] == [mine]
