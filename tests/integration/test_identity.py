"""Identity keys and signed device lists (docs/protocol.md "Device lists"), SDK side:
a device the server slips into a directory gets no key, adding a device changes no safety
number, a changed identity blocks sending until accepted, a revoked device's later
messages are refused, and the gateway stores only lists the identity key signed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Gateway, Stack

from client import crypto
from client.errors import IdentityChanged
from client.events import Alert, Message
from client.identity import identity_spki, listed, new_identity, sign_list
from client.sdk import Client

SDK_PASSPHRASE = "test passphrase"  # as in conftest.py

Pair = tuple[Client, Client, str, str]


def inject_device(mongo: Any, stack: Stack, user_id: str, label: str) -> str:
    """What a malicious server (or anyone writing to MongoDB) can do: add a device key to
    a user's directory entry. Returns its kid."""
    keys = crypto.DeviceKeys.generate()
    mongo[stack.db_name].users.update_one({"_id": user_id}, {"$push": {"keys": {
        "kid": keys.kid, "sid": keys.sid, "enc": keys.enc_spki, "sig": keys.sig_spki,
        "label": label, "created_at": int(time.time() * 1000)}}})
    return keys.kid


async def stored_envelope(a: Client, friend: str, message_id: str) -> dict[str, Any]:
    page = await a.api.messages(await a._peer(friend), after=None, limit=100)  # noqa: SLF001
    return next(m["body"] for m in page["messages"] if m["id"] == message_id)


def wrapped_for(envelope: dict[str, Any]) -> set[str]:
    return {k["kid"] for k in envelope["keys"]}


@pytest.mark.parametrize("whose", ["friend", "own"])
async def test_device_injected_into_a_directory_gets_no_key_and_an_alert_names_it(
        sdk_pair: Pair, mongo: Any, stack: Stack, whose: str) -> None:
    """Acceptance 2 and 3 (SDK): a device pushed into Bob's (or Alice's own) directory
    entry straight into MongoDB receives no wrapped key, and Alice is told its name."""
    a, b, na, nb = sdk_pair
    await a.send_text(nb, "before")
    target = b.user_id if whose == "friend" else a.user_id
    assert target is not None
    kid = inject_device(mongo, stack, target, "evil tablet")
    ack = await a.send_text(nb, "after")
    await a.wait_stored(nb, ack["id"])
    env = await stored_envelope(a, nb, ack["id"])
    assert kid not in wrapped_for(env)
    # v3: the friend's device only (the sending device keeps its own copy: docs/sessions.md)
    assert wrapped_for(env) == {b.device.kid}
    named = [w for w in a.warnings if w.kind == "unapproved_device"]
    assert len(named) == 1 and named[0].sender == target
    assert "evil tablet" in named[0].detail and kid[:12] in named[0].detail


async def test_second_device_linked_with_code_changes_no_safety_number(
        sdk_pair: Pair, tmp_path: Path) -> None:
    """Acceptance 1 and 4 (SDK to SDK): Alice's second device waits with a code, her first
    approves it by that code, the list version grows, the new device reads the earlier
    history (shared by the approving device), Bob sees no warning and the same safety
    number, and both of Alice's devices read new messages."""
    a, b, na, nb = sdk_pair
    for i in range(3):
        earlier = await b.send_text(na, f"earlier {i}")
    await b.wait_stored(na, earlier["id"])
    mine = await a.send_text(nb, "earlier, from alice")
    await a.wait_stored(nb, mine["id"])
    before = await b.safety_number(na)
    a2 = Client(a.url, home=tmp_path / "a2", passphrase=SDK_PASSPHRASE)
    try:
        await a2.login(na, "password-a-123")
        assert a2.device_state == "pending"
        with pytest.raises(Exception, match="waits for approval"):
            await a2.send_text(nb, "too early")
        assert a.device_state == "identity"
        pending = await a.pending_devices()
        assert [p["code"] for p in pending] == [a2.link_code]
        version = (await a.api.user(na))["device_list"]["list"]["version"]
        with pytest.raises(Exception, match="no device waiting"):
            await a.approve_device("0000 0000 0000")
        assert await a.approve_device(a2.link_code) == a2.device.kid
        assert (await a.api.user(na))["device_list"]["list"]["version"] == version + 1
        assert await a2.refresh_device_state() == "linked"
        history = await a2.history(nb)
        assert [e.text for e in history if isinstance(e, Message)] == [
            "earlier 0", "earlier 1", "earlier 2", "earlier, from alice"]
        assert [e for e in history if isinstance(e, Alert)] == []

        assert await b.safety_number(na) == before
        ack = await b.send_text(na, "to both of alice's devices")
        await b.wait_stored(na, ack["id"])
        assert b.warnings == []
        for device in (a, a2):
            texts = [e.text for e in await device.history(nb) if isinstance(e, Message)]
            assert "to both of alice's devices" in texts
        own = await a2.send_text(nb, "from alice's second device")
        await a2.wait_stored(nb, own["id"])
        assert "from alice's second device" in [
            e.text for e in await b.history(na) if isinstance(e, Message)]
        assert [e for e in await b.history(na) if isinstance(e, Alert)
                and e.kind != "not_for_device"] == []
    finally:
        await a2.close()


async def test_changed_identity_blocks_sending_until_accepted(sdk_pair: Pair,
                                                               tmp_path: Path) -> None:
    """Acceptance 5 (SDK): Bob resets his identity key; Alice's sends to Bob are refused
    until she accepts it; the safety number changes only then; a verified mark is cleared
    and the alert says she had verified him."""
    a, b, na, nb = sdk_pair
    before = await a.safety_number(nb)
    await a.mark_verified(nb)
    await b.reset_identity()
    with pytest.raises(IdentityChanged, match="identity key changed"):
        await a.send_text(nb, "blocked")
    changed = [w for w in a.warnings if w.kind == "identity_changed"]
    assert len(changed) == 1 and "you had verified" in changed[0].detail
    assert await a.safety_number(nb) == before  # still the pinned key's
    await a.accept_identity(nb)
    after = await a.safety_number(nb)
    assert after != before and after == await b.safety_number(na)
    assert not a.verified(b.user_id or "")
    ack = await a.send_text(nb, "accepted")
    await a.wait_stored(nb, ack["id"])
    assert "accepted" in [e.text for e in await b.history(na) if isinstance(e, Message)]


async def test_message_signed_by_a_revoked_device_after_revocation_is_refused(
        sdk_pair: Pair, tmp_path: Path) -> None:
    """Acceptance 6: Alice revokes her second device; what it signed before stays readable
    for Bob, what it signs afterwards is refused with a revoked_device alert."""
    a, b, na, nb = sdk_pair
    a2 = Client(a.url, home=tmp_path / "a2", passphrase=SDK_PASSPHRASE)
    try:
        await a2.login(na, "password-a-123")
        await a.approve_device(a2.link_code)
        old = await a2.send_text(nb, "signed while approved")
        await a2.wait_stored(nb, old["id"])
        await a.revoke_device(a2.device.kid)
        listed_now = (await a.api.user(na))["device_list"]["list"]
        assert [d["kid"] for d in listed_now["revoked"]] == [a2.device.kid]
        # The revoked device still holds its keys and its session: it can still sign.
        a2._directories.clear()  # noqa: SLF001  (its own cached view would refuse to send)
        a2._pins.pop(a2.user_id or "", None)  # noqa: SLF001
        late = await a2._post(b.user_id or "", "text", _sealed(a2, b, "signed after"))  # noqa: SLF001
        await a2.wait_stored(nb, late["id"])
        events = await b.history(na)
        assert "signed while approved" in [e.text for e in events if isinstance(e, Message)]
        assert "signed after" not in [e.text for e in events if isinstance(e, Message)]
        assert [e.id for e in events if isinstance(e, Alert) and e.kind == "revoked_device"] \
            == [late["id"]]
    finally:
        await a2.close()


def _sealed(a2: Client, b: Client, text: str) -> dict[str, Any]:
    from client.envelope import Content, Recipient, seal
    from contracts import room_id
    assert a2.user_id and b.user_id
    link = a2._send_chains.get(room_id(a2.user_id, b.user_id), {"seq": 0, "hash": ""})  # noqa: SLF001
    return seal(room=room_id(a2.user_id, b.user_id), sender=a2.user_id, device=a2.device,
                seq=link["seq"] + 1, prev=link["hash"], kind="text",
                content=Content.text(text),
                recipients=[Recipient(b.device.kid, b.device.enc.public_key())])


async def test_gateway_stores_only_lists_the_identity_key_signed(sdk_pair: Pair,
                                                                 gw: Gateway) -> None:
    """Bad-input catalogue rows for PUT /api/devicelist: each is refused with its code and
    the stored list is unchanged."""
    a, _, na, _ = sdk_pair
    profile = await a.api.user(na)
    stored = profile["device_list"]
    body = stored["list"]
    mine = next(k for k in profile["keys"] if k["kid"] == a.device.kid)
    identity = a._identity()  # noqa: SLF001
    stranger = new_identity()
    auth = {"Authorization": f"Bearer {a.api.token}"}
    cases = [
        ("another user's", sign_list(identity, {**body, "user": "64b0a1e1f00d000000000000",
                                                "version": 9}), 403, "forbidden"),
        ("not newer", sign_list(identity, body), 409, "conflict"),
        ("another identity, no reset", sign_list(stranger, {
            **body, "identity": identity_spki(stranger), "version": 9}), 409, "conflict"),
        ("signature by another key", {**sign_list(stranger, {**body, "version": 9})},
         422, "invalid_key"),
        ("a device that uploaded nothing", sign_list(identity, {**body, "version": 9,
         "devices": [*body["devices"], {**listed(mine), "kid": "A" * 43}]}), 409, "conflict"),
        ("high-s signature", {**sign_list(identity, {**body, "version": 9}),
                              "sig": _high_s(sign_list(identity, {**body, "version": 9})["sig"])},
         422, "invalid_request"),
    ]
    async with httpx.AsyncClient(verify=gw.verify) as http:
        for what, upload, status, code in cases:
            r = await http.put(f"{gw.http}/api/devicelist", json=upload, headers=auth)
            assert (r.status_code, r.json()["code"]) == (status, code), (what, r.text)
    assert (await a.api.user(na))["device_list"] == stored


def _high_s(sig: str) -> str:
    from contracts.envelope import P256_N
    raw = crypto.unb64u(sig)
    return crypto.b64u(raw[:32] + (P256_N - int.from_bytes(raw[32:], "big")).to_bytes(32, "big"))
