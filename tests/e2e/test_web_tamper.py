"""Envelopes that fail a check reach the page as warnings, never as messages."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, expect
from support import Gateway, User, open_socket, signup, unique_name
from webclient import accept_friend, message, open_chat, open_tab, sign_up, texts

from client import crypto
from client.envelope import Content, Recipient, envelope_hash, seal
from contracts import room_id


class Forger:
    """A real account whose frames are written by hand: any seq, prev, key or signature."""

    def __init__(self, user: User, peer: User, device: crypto.DeviceKeys,
                 recipients: list[Recipient]) -> None:
        self.user, self.peer, self.device, self.recipients = user, peer, device, recipients
        self.room = room_id(user.user_id, peer.user_id)

    def envelope(self, text: str, seq: int, prev: str,
                 device: crypto.DeviceKeys | None = None) -> dict[str, Any]:
        return seal(room=self.room, sender=self.user.user_id, device=device or self.device,
                    seq=seq, prev=prev, kind="text", content=Content.text(text),
                    recipients=self.recipients)


async def test_receive_forged_envelopes_shows_warnings_not_messages(gw: Gateway,
                                                                    browser: Browser,
                                                                    tmp_path: Path) -> None:
    """A bad signature, an unknown key and a replay show only a warning; a gap, a fork and a
    friend's new device show a warning next to the message, and the key change a banner."""
    tab = await open_tab(browser, gw.http)
    web_name = unique_name("web")
    await sign_up(tab, web_name)
    device = crypto.DeviceKeys.generate()
    async with httpx.AsyncClient(timeout=10) as http:
        forger_user = await signup(http, gw.http, "forger")
        r = await http.put(f"{gw.http}/api/keys",
                           json={"keys": [device.public(forger_user.user_id)]},
                           headers=forger_user.auth)
        assert r.status_code == 200, r.text
        r = await http.post(f"{gw.http}/api/friends", json={"username": web_name},
                            headers=forger_user.auth)
        assert r.status_code == 201, r.text
        web = (await http.get(f"{gw.http}/api/users/{web_name}",
                              headers=forger_user.auth)).json()
    recipients = [Recipient(k["kid"], crypto.load_rsa_public(k["enc"])) for k in web["keys"]]
    recipients.append(Recipient(device.kid, device.enc.public_key()))
    peer = User(web["user_id"], web_name, "", "")
    forger = Forger(forger_user, peer, device, recipients)
    await accept_friend(tab, forger_user.username)
    await open_chat(tab, forger_user.username)

    first = forger.envelope("genuine 1", 1, "")
    second = forger.envelope("genuine 2", 2, envelope_hash(first))
    tampered = copy.deepcopy(forger.envelope("tampered", 3, envelope_hash(second)))
    tampered["ct"] = ("A" if tampered["ct"][0] != "A" else "B") + tampered["ct"][1:]
    stranger = forger.envelope("unknown device", 3, envelope_hash(second),
                               device=crypto.DeviceKeys.generate())
    skipped = forger.envelope("after a gap", 4, "")
    forked = forger.envelope("forked", 5, envelope_hash(first))
    new_device = crypto.DeviceKeys.generate()
    frames = [("g1", first), ("g2", second), ("bad-sig", tampered), ("stranger", stranger),
              ("replay", first), ("gap", skipped), ("fork", forked)]
    async with open_socket(gw, forger_user, peer) as sock:
        for frame_id, body in frames:
            await sock.send({"type": "send", "id": frame_id, "kind": "text", "body": body})
            await sock.recv_type("ack")
        await expect(message(tab, "forked")).to_be_visible()
        # The friend adds a device: a message from it brings the key change to light.
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.put(f"{gw.http}/api/keys",
                               json={"keys": [new_device.public(forger_user.user_id)]},
                               headers=forger_user.auth)
            assert r.status_code == 200, r.text
        forger.recipients.append(Recipient(new_device.kid, new_device.enc.public_key()))
        body = forger.envelope("from a new device", 1, "", device=new_device)
        await sock.send({"type": "send", "id": "new-device", "kind": "text", "body": body})
        await sock.recv_type("ack")
        await expect(message(tab, "from a new device")).to_be_visible()

    assert await texts(tab) == ["genuine 1", "genuine 2", "after a gap", "forked",
                                "from a new device"]
    kinds = await tab.locator("#messages li.warning").evaluate_all(
        "els => els.map(e => [e.dataset.kind, e.dataset.id])")
    assert kinds == [["bad_signature", "bad-sig"], ["unknown_key", "stranger"],
                     ["replay", "replay"], ["gap", "gap"], ["fork", "fork"],
                     ["key_changed", "new-device"]]
    await expect(tab.locator("#banner")).to_be_visible()
    await expect(tab.locator("#banner")).to_contain_text("keys changed")
    await tab.locator("#banner-ok").click()
    await expect(tab.locator("#banner")).to_be_hidden()
    assert tab.errors == [] and tab.dialogs == []
