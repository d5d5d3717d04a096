"""Envelope v3 in the web client (docs/sessions.md): the browser publishes prekeys, sends
and reads messages and receipts over Double Ratchet sessions with every other device (the
SDK's and its own user's), keeps what it read and sent in IndexedDB sealed under a
non-extractable key, reads it from there after a reload instead of opening it twice, and
says in the conversation header whether the conversation is forward secret."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pymongo
from playwright.async_api import Browser, WebSocket, expect
from support import Gateway, Stack, eventually, unique_name
from webclient import (
    PASSWORD,
    Inbox,
    Tab,
    accept_friend,
    approve_browser,
    log_in,
    message,
    open_chat,
    open_tab,
    own_message,
    sdk_friend,
    send_text,
    sign_up,
    texts,
    warnings,
)

from client import Client, Message
from contracts import room_id
from contracts.envelope import ALG_V3, Envelope

PASS = "sdk passphrase"
Mongo = pymongo.MongoClient[dict[str, Any]]
FORWARD_SECRET = "forward secret"

# What this browser profile holds at rest: the at-rest key, and every sealed record.
AT_REST_JS = """async () => {
  const store = await import('/store.js');
  const key = await store.get('atrest', 'key');
  let exported;
  try {
    await crypto.subtle.exportKey('raw', key);
    exported = 'exported';
  } catch (e) {
    exported = e.name;
  }
  const dump = async (name) => (await store.entriesWithPrefix(name, '')).map(([k, v]) => ({
    name: k, fields: Object.keys(v).sort(), iv: v.iv instanceof Uint8Array ? v.iv.length : null,
    ct: v.ct instanceof Uint8Array ? Array.from(v.ct) : null}));
  return {
    key: {isCryptoKey: key instanceof CryptoKey, extractable: key.extractable,
      name: key.algorithm.name, length: key.algorithm.length, usages: [...key.usages].sort()},
    exported, sessions: await dump('sessions'), history: await dump('history'),
  };
}"""

# Forget every ratchet session this profile holds (its prekeys and local history stay).
WIPE_SESSIONS_JS = """async () => {
  const store = await import('/store.js');
  const names = (await store.entriesWithPrefix('sessions', '')).map(([k]) => k)
    .filter((k) => k.includes('/peer/'));
  await store.write(names.map((k) => ['sessions', k, undefined]));
  return names.length;
}"""


def scheme(tab: Tab) -> Any:
    return tab.locator('[data-testid="scheme"]')


async def user_id(tab: Tab) -> str:
    uid: str = await tab.page.evaluate("JSON.parse(localStorage.getItem('duet.session')).userId")
    return uid


async def stored(mongo: Mongo, stack: Stack, room: str, count: int) -> list[dict[str, Any]]:
    """The room's stored message documents (texts, images and receipts), once there are
    at least `count` texts."""
    def find() -> list[dict[str, Any]] | None:
        docs = list(mongo[stack.db_name].messages.find({"room": room}).sort("cursor", 1))
        return docs if sum(d["kind"] == "text" for d in docs) >= count else None
    found: list[dict[str, Any]] = await eventually(find, what=f"{count} texts stored")
    return found


def assert_v3_ratchet(doc: dict[str, Any], kids: set[str]) -> None:
    """The stored envelope is v3 and holds a ratchet entry (no RSA wrap) for each of `kids`,
    and none for the device that sent it."""
    env = doc["body"]
    Envelope.model_validate(env)
    assert env["v"] == 3 and env["alg"] == ALG_V3, env
    assert {k["kid"] for k in env["keys"]} == kids, (doc["kind"], env["keys"])
    assert env["from"] not in kids
    for entry in env["keys"]:
        assert set(entry) == {"kid", "h", "pre", "wk"}, entry
        assert len(base64.urlsafe_b64decode(entry["wk"] + "==")) == 48


async def test_web_and_sdk_talk_over_sessions_kept_at_rest(
        gw: Gateway, stack: Stack, mongo: Mongo, browser: Browser, tmp_path: Path) -> None:
    """Web ↔ SDK both ways: every stored envelope is v3 with a ratchet entry for the other
    device only (the browser's first carries X3DH's header, none after it heard back), the
    SDK reads the browser's messages and the browser the SDK's, with no alert, and the
    header turns from "not forward secret: 1 device without a session" to "forward secret".
    A reload shows the history again from what the browser kept, even with its sessions
    wiped (so nothing opened twice); what it keeps is ciphertext under a non-extractable
    AES-GCM key; and a message its sessions cannot open is a "could not decrypt" warning
    naming the ratchet's code. On the wire, messages and receipts leave as v3, typing as
    v2."""
    tab = await open_tab(browser, gw.http)
    frames: list[dict[str, Any]] = []

    def on_websocket(ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: frames.append(json.loads(payload)))

    tab.page.on("websocket", on_websocket)
    nw, ns = unique_name("fw"), unique_name("fs")
    async with sdk_friend(tab, gw.http, tmp_path / "sdk", nw, ns,
                          PASS) as sdk:
        await open_chat(tab, ns)
        await expect(scheme(tab)).to_have_text("not forward secret: 1 device without a session")
        web_kid = await tab.page.evaluate(
            "async (u) => (await (await import('/store.js')).get('devices', u)).kid",
            await user_id(tab))
        room = room_id(await user_id(tab), sdk.user_id or "")

        hello = f"hello over a session {unique_name('t')}"
        reply = f"the sdk answers {unique_name('t')}"
        again = f"and the browser again {unique_name('t')}"
        async with Inbox(sdk, nw) as inbox:
            await send_text(tab, hello)
            await inbox.wait_texts(hello)
            await expect(scheme(tab)).to_have_text(FORWARD_SECRET)
            await sdk.send_text(nw, reply)
            await expect(message(tab, reply)).to_be_visible()
            await send_text(tab, again)
            await inbox.wait_texts(again)
            # The SDK's receipt for it opened here too (kept before the reloads below).
            await expect(own_message(tab, again)).to_have_attribute("data-state", "delivered")
            assert inbox.alerts == []
        assert [m.text for m in inbox.received] == [hello, again]

        # The browser's receipt for the SDK's message (sent a moment after it showed it).
        def web_receipt() -> list[dict[str, Any]] | None:
            docs = list(mongo[stack.db_name].messages.find({"room": room}).sort("cursor", 1))
            mine = [d for d in docs if d["kind"] == "receipt" and d["body"]["from"] == web_kid]
            return docs if mine and sum(d["kind"] == "text" for d in docs) == 3 else None
        docs = await eventually(web_receipt, what="the browser's receipt stored")
        by_text = [d for d in docs if d["kind"] == "text"]
        for doc in docs:  # texts and both sides' receipts
            other = sdk.device.kid if doc["body"]["from"] == web_kid else web_kid
            assert_v3_ratchet(doc, {other})
        first, answer, last = (d["body"]["keys"][0] for d in by_text)
        assert first["pre"] is not None and first["pre"]["opk"] is not None  # X3DH's header
        assert answer["pre"] is None  # the SDK answers on the session the browser started
        assert last["pre"] is None  # the browser heard back: no header any more
        assert first["h"]["dh"] != last["h"]["dh"]  # a Diffie-Hellman step in between

        # A reload reads the history again with no warning.
        await tab.page.reload()
        await expect(message(tab, again)).to_be_visible()
        assert await texts(tab) == [hello, reply, again]
        await expect(scheme(tab)).to_have_text(FORWARD_SECRET)
        assert await warnings(tab) == []

        # The server no longer holds the first message (as past a retention): the browser
        # shows what it kept, in its place, and sees no hole in its own chain.
        gone = mongo[stack.db_name].messages.delete_one({"room": room, "id": by_text[0]["id"]})
        assert gone.deleted_count == 1
        await tab.page.reload()
        await expect(message(tab, again)).to_be_visible()
        await expect(tab.locator("#messages li.start")).to_be_visible()
        assert await texts(tab) == [hello, reply, again]
        assert await warnings(tab) == []

        # At rest: ciphertext only, under a key the page cannot export.
        rest = await tab.page.evaluate(AT_REST_JS)
        assert rest["key"] == {"isCryptoKey": True, "extractable": False, "name": "AES-GCM",
                               "length": 256, "usages": ["decrypt", "encrypt"]}
        assert rest["exported"] == "InvalidAccessError"
        names = {r["name"] for r in rest["sessions"]}
        assert f"{web_kid}/prekeys" in names and f"{web_kid}/peer/{sdk.device.kid}" in names
        assert len(rest["history"]) >= 4  # three texts and the SDK's receipts
        needles = [t.encode() for t in (hello, reply, again)]
        needles += [b'"state"', b'"frame"', b'"key"', b'"one_time"', b"duet-envelope"]
        for record in rest["sessions"] + rest["history"]:
            assert record["fields"] == ["ct", "iv", "v"] and record["iv"] == 12, record["name"]
            raw = bytes(record["ct"])
            assert len(raw) > 16
            for needle in needles:
                assert needle not in raw, (record["name"], needle)

        # Without any session, a reload still shows everything: it comes from what was kept.
        assert await tab.page.evaluate(WIPE_SESSIONS_JS) == 1
        await tab.page.reload()
        await expect(message(tab, again)).to_be_visible()
        assert await texts(tab) == [hello, reply, again]
        assert await warnings(tab) == []

        # A new message from the SDK now finds no session here: said, with the code.
        await sdk.send_text(nw, "after the wipe")
        warning = tab.locator('#messages li.warning[data-kind="undecryptable"]').first
        await expect(warning).to_contain_text("Could not decrypt")
        await expect(warning).to_contain_text("no_session: no session with the sending device")
        await expect(message(tab, "after the wipe")).to_have_count(0)

    # What left the browser: messages and receipts as v3, typing signals as v2.
    sent = [(f["kind"], f["body"]["v"]) for f in frames if f.get("type") == "send"]
    assert ("text", 3) in sent and ("receipt", 3) in sent
    assert {v for _, v in sent} == {3}
    typing = [f["body"]["v"] for f in frames if f.get("type") == "typing"]
    assert typing and set(typing) == {2}
    assert tab.errors == [] and tab.dialogs == []


async def test_every_device_reads_every_message_over_sessions(
        gw: Gateway, stack: Stack, mongo: Mongo, browser: Browser, tmp_path: Path) -> None:
    """Two browsers of the web user (the second approved in Settings → Devices) and two SDK
    devices of the friend (the second approved by the first): a message from each of the
    four reaches the other three, each stored as v3 with a ratchet entry for exactly those
    three devices; no device alerts."""
    w1 = await open_tab(browser, gw.http)
    nw, ns = unique_name("mw"), unique_name("ms")
    await sign_up(w1, nw)
    async with Client(gw.http, home=tmp_path / "s1", passphrase=PASS) as s1, \
            Client(gw.http, home=tmp_path / "s2", passphrase=PASS) as s2:
        await s1.register(ns, PASSWORD)
        await s1.add_friend(nw)
        await accept_friend(w1, ns)
        await s2.login(ns, PASSWORD)
        await s1.approve_device(s2.link_code)
        w2 = await open_tab(browser, gw.http)
        await log_in(w2, nw)
        await approve_browser(w2, w1)
        kids = {}
        for name, tab in (("w1", w1), ("w2", w2)):
            kids[name] = await tab.page.evaluate(
                "async (u) => (await (await import('/store.js')).get('devices', u)).kid",
                await user_id(tab))
        kids["s1"], kids["s2"] = s1.device.kid, s2.device.kid
        await open_chat(w1, ns)
        await open_chat(w2, ns)

        texts_of = {name: f"from {name} {unique_name('t')}" for name in ("w1", "w2", "s1", "s2")}
        acks: dict[str, str] = {}
        async with Inbox(s1, nw) as in1, Inbox(s2, nw) as in2:
            def sdk_has(inbox: Inbox, text: str) -> bool:
                return any(isinstance(e, Message) and e.text == text for e in inbox.events)

            for sender in ("w1", "w2", "s1", "s2"):
                text = texts_of[sender]
                if sender in ("w1", "w2"):
                    await send_text(w1 if sender == "w1" else w2, text)
                else:
                    ack = await (s1 if sender == "s1" else s2).send_text(nw, text)
                    acks[sender] = str(ack["id"])
                for tab in (w1, w2):
                    await expect(message(tab, text)).to_be_visible()
                for name, inbox in (("s1", in1), ("s2", in2)):
                    if name != sender:
                        await eventually(lambda inbox=inbox, text=text: sdk_has(inbox, text),
                                         what=f"{text} read by {name}")
            # The browsers' receipts for the SDK's messages opened there too.
            for name, sdk in (("s1", s1), ("s2", s2)):
                await eventually(lambda sdk=sdk, name=name: sdk.status(acks[name])
                                 in ("delivered", "read"), what=f"a receipt for {name}")
            assert in1.alerts == [] and in2.alerts == []
        for tab in (w1, w2):
            assert await texts(tab) == list(texts_of.values())
            assert await warnings(tab) == []
            await expect(scheme(tab)).to_have_text(FORWARD_SECRET)

        docs = await stored(mongo, stack, room_id(await user_id(w1), s1.user_id or ""), 4)
        by_kid = {v: k for k, v in kids.items()}
        senders = []
        for doc in docs:
            sender = by_kid[doc["body"]["from"]]
            assert_v3_ratchet(doc, set(kids.values()) - {kids[sender]})
            if doc["kind"] == "text":
                senders.append(sender)
        assert senders == ["w1", "w2", "s1", "s2"]
    assert w1.errors == [] and w2.errors == []


async def test_tabs_of_one_browser_are_one_device(gw: Gateway, browser: Browser,
                                                  tmp_path: Path) -> None:
    """Two tabs of one browser profile share the device: each shows every message of the
    SDK (both open each one at once, from the inbox and the conversation: one ratchet step,
    the rest find it kept, no key_gone), both send receipts over the one session, and what
    each tab sends, in turn, reaches the SDK with no alert and shows in the other tab (read
    from what the sending tab kept). test_web_sessionstore_units.py forces the races."""
    tab = await open_tab(browser, gw.http)
    nw, ns = unique_name("tw"), unique_name("ts")
    async with sdk_friend(tab, gw.http, tmp_path / "sdk", nw, ns,
                          PASS) as sdk:
        other = Tab(await tab.page.context.new_page(), username=nw)
        other.page.on("pageerror", lambda exc: other.errors.append(str(exc)))
        await other.page.goto(gw.http)
        for t in (tab, other):
            await open_chat(t, ns)

        sent = [f"sdk {i} {unique_name('t')}" for i in range(4)]
        for text in sent:
            await sdk.send_text(nw, text)
        for t in (tab, other):
            for text in sent:
                await expect(message(t, text)).to_be_visible()

        mine = [f"tab {i} {unique_name('t')}" for i in range(3)]
        async with Inbox(sdk, nw) as inbox:
            for t, text in zip((tab, other, tab), mine, strict=True):
                await send_text(t, text)
            await inbox.wait_texts(*mine)
            assert inbox.alerts == []
        for t in (tab, other):
            for text in mine:
                await expect(message(t, text)).to_be_visible()
            assert await warnings(t) == []
        assert tab.errors == [] and other.errors == []


async def test_forged_bundle_falls_back_to_rsa_until_the_device_answers(
        gw: Gateway, stack: Stack, mongo: Mongo, browser: Browser, tmp_path: Path) -> None:
    """A bundle the server altered (its signature no longer verifies against the device's
    signing key in the pinned list) starts no session: the browser warns of it and wraps
    the message with RSA-OAEP, which the SDK still reads, and the header says one device
    has no session. Once the SDK answers over a session of its own starting, the browser
    holds one too: "forward secret", and its next message is a ratchet entry."""
    tab = await open_tab(browser, gw.http)
    nw, ns = unique_name("bw"), unique_name("bs")
    async with sdk_friend(tab, gw.http, tmp_path / "sdk", nw, ns,
                          PASS) as sdk:
        forged = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
        changed = mongo[stack.db_name].prekeys.update_one(
            {"kid": sdk.device.kid}, {"$set": {"bundle.ik": forged}})
        assert changed.modified_count == 1
        await open_chat(tab, ns)
        room = room_id(await user_id(tab), sdk.user_id or "")

        async with Inbox(sdk, nw) as inbox:
            await send_text(tab, "over rsa")
            await inbox.wait_texts("over rsa")
            warning = tab.locator('#messages li.warning[data-kind="bad_bundle"]')
            await expect(warning).to_have_count(1)
            await expect(warning).to_contain_text(sdk.device.kid[:12])
            await expect(scheme(tab)).to_have_text(
                "not forward secret: 1 device without a session")
            [doc] = [d for d in await stored(mongo, stack, room, 1) if d["kind"] == "text"]
            assert doc["body"]["v"] == 3
            assert [set(k) for k in doc["body"]["keys"]] == [{"kid", "wk"}]

            await sdk.send_text(nw, "over a session")
            await expect(message(tab, "over a session")).to_be_visible()
            await expect(scheme(tab)).to_have_text(FORWARD_SECRET)
            await send_text(tab, "now forward secret")
            await inbox.wait_texts("now forward secret")
            assert inbox.alerts == []
        docs = [d for d in await stored(mongo, stack, room, 3) if d["kind"] == "text"]
        web_kid = docs[0]["body"]["from"]
        assert_v3_ratchet(docs[1], {web_kid})
        assert_v3_ratchet(docs[2], {sdk.device.kid})
        assert [m.text for m in inbox.received] == ["over rsa", "now forward secret"]
        assert tab.errors == []
