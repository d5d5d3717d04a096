"""Envelopes that fail a check reach the page as warnings, never as messages."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, expect
from support import Gateway, User, open_socket, signup, unique_name
from webclient import accept_friend, message, open_chat, open_tab, send_text, sign_up, texts

from client import crypto
from client.envelope import Content, Recipient, envelope_hash, seal
from client.identity import identity_spki, listed, new_identity, sign_list
from contracts import room_id


class Forger:
    """A real account whose frames are written by hand: any seq, prev, key or signature;
    and whose device lists its own identity key signs, with any device in them."""

    def __init__(self, user: User, peer: User, device: crypto.DeviceKeys,
                 recipients: list[Recipient]) -> None:
        self.user, self.peer, self.device, self.recipients = user, peer, device, recipients
        self.room = room_id(user.user_id, peer.user_id)
        self.identity = new_identity()
        self.version = 0

    def envelope(self, text: str, seq: int, prev: str,
                 device: crypto.DeviceKeys | None = None) -> dict[str, Any]:
        return seal(room=self.room, sender=self.user.user_id, device=device or self.device,
                    seq=seq, prev=prev, kind="text", content=Content.text(text),
                    recipients=self.recipients)

    async def publish(self, http: httpx.AsyncClient, base: str,
                      devices: list[crypto.DeviceKeys],
                      revoked: tuple[crypto.DeviceKeys, ...] = ()) -> None:
        """Sign the next list: `devices` live (their keys uploaded first), `revoked`
        revoked as of now."""
        for d in devices:
            r = await http.put(f"{base}/api/keys", json={"keys": [d.public(self.user.user_id)]},
                               headers=self.user.auth)
            assert r.status_code == 200, r.text
        now = int(time.time() * 1000)
        self.version += 1
        body = {"v": 1, "user": self.user.user_id, "identity": identity_spki(self.identity),
                "version": self.version, "devices": [_listed(d) for d in devices],
                "revoked": [{**_listed(d), "revoked_at": now} for d in revoked]}
        r = await http.put(f"{base}/api/devicelist", json=sign_list(self.identity, body),
                           headers=self.user.auth)
        assert r.status_code == 200, r.text


def _listed(d: crypto.DeviceKeys) -> dict[str, Any]:
    return listed({"kid": d.kid, "sid": d.sid, "enc": d.enc_spki, "sig": d.sig_spki,
                   "label": None})


async def test_receive_forged_envelopes_shows_warnings_not_messages(gw: Gateway,
                                                                    browser: Browser,
                                                                    tmp_path: Path) -> None:
    """A bad signature, an unknown key and a replay show only a warning; a gap and a fork a
    warning next to the message; a device the friend's signed list does not name is
    refused and named until the list approves it, and once the list revokes it, what it
    signs after is refused."""
    tab = await open_tab(browser, gw.http)
    web_name = unique_name("web")
    await sign_up(tab, web_name)
    device = crypto.DeviceKeys.generate()
    async with httpx.AsyncClient(timeout=10) as http:
        forger_user = await signup(http, gw.http, "forger")
        r = await http.post(f"{gw.http}/api/friends", json={"username": web_name},
                            headers=forger_user.auth)
        assert r.status_code == 201, r.text
        web = (await http.get(f"{gw.http}/api/users/{web_name}",
                              headers=forger_user.auth)).json()
        recipients = [Recipient(k["kid"], crypto.load_rsa_public(k["enc"])) for k in web["keys"]]
        recipients.append(Recipient(device.kid, device.enc.public_key()))
        peer = User(web["user_id"], web_name, "", "")
        forger = Forger(forger_user, peer, device, recipients)
        await forger.publish(http, gw.http, [device])
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
    async with open_socket(gw, forger_user, peer) as sock, \
            httpx.AsyncClient(timeout=10) as http:

        async def post(frame_id: str, body: dict[str, Any]) -> None:
            await sock.send({"type": "send", "id": frame_id, "kind": "text", "body": body})
            await sock.recv_type("ack")

        for frame_id, body in frames:
            await post(frame_id, body)
        await expect(message(tab, "forked")).to_be_visible()

        # A device the server lists but the signed list does not: refused, and named.
        r = await http.put(f"{gw.http}/api/keys",
                           json={"keys": [new_device.public(forger_user.user_id, "spare")]},
                           headers=forger_user.auth)
        assert r.status_code == 200, r.text
        forger.recipients.append(Recipient(new_device.kid, new_device.enc.public_key()))
        unlisted = forger.envelope("from a new device", 1, "", device=new_device)
        await post("unlisted", unlisted)
        await expect(tab.locator('#messages li.warning[data-kind="unapproved_device"]')
                     ).to_contain_text(new_device.kid[:12])
        # The list approves it: the same envelope again is a message.
        await forger.publish(http, gw.http, [device, new_device])
        await post("approved", unlisted)
        await expect(message(tab, "from a new device")).to_be_visible()
        # The list revokes it; the browser's next send fetches the lists afresh.
        await forger.publish(http, gw.http, [device], revoked=(new_device,))
        await send_text(tab, "noticed")
        await post("late", forger.envelope("after revocation", 2, envelope_hash(unlisted),
                                           device=new_device))
        await expect(tab.locator('#messages li.warning[data-kind="revoked_device"]')
                     ).to_have_count(1)

    assert await texts(tab) == ["genuine 1", "genuine 2", "after a gap", "forked",
                                "from a new device", "noticed"]
    kinds = await tab.locator("#messages li.warning").evaluate_all(
        "els => els.map(e => [e.dataset.kind, e.dataset.id])")
    assert kinds == [["bad_signature", "bad-sig"], ["unknown_key", "stranger"],
                     ["replay", "replay"], ["gap", "gap"], ["fork", "fork"],
                     ["unapproved_device", "unlisted"], ["unknown_key", "unlisted"],
                     ["revoked_device", "late"]]
    await expect(tab.locator("#banner")).to_be_hidden()
    assert tab.errors == [] and tab.dialogs == []
