"""The web client's pure modules, unit-tested in Chromium: verify.js (every verdict on what
arrives) and outbox.js (what a send's replies mean, pending sends and their retries).

web/ is served as it is by a plain HTTP server on 127.0.0.1 (a secure context, so WebCrypto
works; no broker, no database), a blank page imports the modules, and each test asks for
verdicts on good and bad inputs built from the shared envelope vectors (v2)
(contracts/vectors/, the same file tests/unit/test_vectors.py runs through the SDK).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from webclient import evaluate, units_page

from client.vectors import DEFAULT_PATH

VECTORS = json.loads(DEFAULT_PATH.read_text())

# Run once per page: the modules, the vector devices and helpers, kept on globalThis.u.
SETUP_JS = """async (v) => {
  const V = await import('/verify.js');
  const E = await import('/envelope.js');
  const S = await import('/signals.js');
  const O = await import('/outbox.js');
  const dev = {};
  const keys = {};
  for (const name of ['alice', 'bob']) {
    const d = v.devices[name];
    dev[name] = await E.importDevice({encPkcs8Pem: d.enc_private_pkcs8_pem,
      sigPkcs8Pem: d.sig_private_pkcs8_pem, encSpki: d.enc_spki, sigSpki: d.sig_spki});
    const device = {kid: d.kid, sid: d.sid, enc: d.enc_spki, sig: d.sig_spki, revokedAt: null};
    keys[name] = {device, sigPublic: await E.importSigPublic(d.sig_spki)};
  }
  const a = v.devices.alice;
  const b = v.devices.bob;
  const members = {[a.user]: 'alice', [b.user]: 'bob'};
  const recipients = [{kid: a.kid, key: await E.importEncPublic(a.enc_spki)},
                      {kid: b.kid, key: await E.importEncPublic(b.enc_spki)}];
  const cursor = (n) => n.toString(16).padStart(32, '0');
  globalThis.u = {
    V, E, S, O, v, dev, keys, members, cursor,
    cases: Object.fromEntries(v.cases.map((c) => [c.name, c.envelope])),
    context: (key) => ({room: v.room, members, key}),
    frame: (env, id = `id-${env.seq}`, extra = {}) => ({type: 'message', room: v.room,
      sender: env.sender, id, kind: env.kind, body: env, cursor: cursor(env.seq), ts: 0, ...extra}),
    seal: (from, fields) => E.sealEnvelope({room: v.room, sender: v.devices[from].user,
      device: dev[from], recipients, ...fields}),
    copy: (x) => JSON.parse(JSON.stringify(x)),
    flip: (s) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1),
  };
}"""


@pytest.fixture
async def page(browser: Browser, web_server: str) -> AsyncIterator[Page]:
    """A blank page of the server with the modules and the vector devices loaded."""
    async with units_page(browser, web_server, SETUP_JS, VECTORS) as page:
        yield page


async def run(page: Page, body: str) -> Any:
    """Evaluate an async function body that sees `u` (the setup) and returns JSON."""
    return await evaluate(page, f"const V = u.V; {body}")


# -- envelopes ---------------------------------------------------------------------------

async def test_verify_frame_vectors_accepted(page: Page) -> None:
    """Every valid vector verifies as alice's device, decrypts for both readers to its plaintext
    and links into alice's chain with the vector's hash."""
    out = await run(page, """
      const chains = new V.ChainBook();
      const got = [];
      for (const c of u.v.cases.filter((c) => c.signature_valid)) {
        const frame = u.frame(c.envelope);
        const verdict = await V.verifyFrame(frame, u.context(u.keys.alice));
        const bob = await V.openFrame(frame, u.context(u.keys.alice), u.dev.bob);
        const alice = await V.openFrame(frame, u.context(u.keys.alice), u.dev.alice);
        const link = await chains.addEnvelope(verdict.device.kid, frame.body, frame.id,
                                              {live: true});
        got.push({name: c.name, alert: verdict.alert, kid: verdict.device.kid,
          needed: V.keyNeeded(frame, u.context()),
          meta: [bob.content.meta, alice.content.meta],
          data: [u.E.b64u(bob.content.data), u.E.b64u(alice.content.data)],
          link: [link.kind, link.show, link.alert, link.hash]});
      }
      return got;""")
    valid = [c for c in VECTORS["cases"] if c["signature_valid"]]
    alice = VECTORS["devices"]["alice"]
    assert [g["name"] for g in out] == [c["name"] for c in valid]
    for case, got in zip(valid, out, strict=True):
        assert got["alert"] is None and got["kid"] == alice["kid"]
        assert got["needed"] == {"user": alice["user"], "kid": alice["kid"]}
        assert got["meta"] == [case["plaintext_meta"]] * 2
        assert got["data"] == [case["plaintext_data_b64u"]] * 2
        assert got["link"] == ["ok", True, None, case["hash"]]


async def test_verify_frame_altered_ciphertext_refused(page: Page) -> None:
    """The vector's tampered ciphertext, and any altered field, fail the signature check."""
    out = await run(page, """
      const tampered = u.v.cases.find((c) => !c.signature_valid).envelope;
      const good = u.cases['alice-1-text'];
      const altered = [tampered];
      for (const field of ['ct', 'iv', 'prev']) {
        const env = u.copy(good);
        env[field] = field === 'prev' ? 'x' : u.flip(env[field]);
        altered.push(env);
      }
      const wk = u.copy(good);
      wk.keys[0].wk = u.flip(wk.keys[0].wk);
      altered.push(wk);
      const got = [];
      for (const env of altered) {
        const r = await V.openFrame(u.frame(env), u.context(u.keys.alice), u.dev.bob);
        got.push([r.alert && r.alert.kind, r.content, r.device]);
      }
      return got;""")
    assert out == [["bad_signature", None, None]] * 5


async def test_verify_frame_wrong_signature_refused(page: Page) -> None:
    """A signature by another key, another envelope's signature, or no signature: bad_signature."""
    out = await run(page, """
      const good = u.cases['alice-1-text'];
      const swapped = {...u.copy(good), sig: u.cases['alice-2-image'].sig};
      const empty = {...u.copy(good), sig: ''};
      const junk = {...u.copy(good), sig: '!!not base64!!'};
      // alice's device as published, but the key that checks it is bob's.
      const wrongKey = {device: u.keys.alice.device, sigPublic: u.keys.bob.sigPublic};
      // bob's key id on an envelope alice's key signed.
      const posing = await u.seal('alice', {seq: 1, prev: '', kind: 'text',
        meta: {mime: u.E.TEXT_MIME}, data: u.E.utf8('hi'),
        device: {...u.dev.alice, kid: u.dev.bob.kid}});
      const noKey = {...u.keys.alice, sigPublic: null};
      const checks = [[good, wrongKey], [swapped, u.keys.alice], [empty, u.keys.alice],
                      [junk, u.keys.alice], [posing, u.keys.bob], [good, noKey]];
      const got = [];
      for (const [env, key] of checks) {
        const r = await V.verifyFrame(u.frame(env), u.context(key));
        got.push([r.alert.kind, r.alert.detail, r.device]);
      }
      return got;""")
    assert out == [["bad_signature", "the signature does not match alice’s key", None]] * 6


async def test_verify_frame_unknown_key_refused(page: Page) -> None:
    """A device the sender's trusted list does not name, or keys that could not be fetched:
    unknown_key."""
    out = await run(page, """
      const frame = u.frame(u.cases['alice-1-text']);
      const got = [];
      for (const key of [{device: null}, undefined, {device: null, error: 'offline'}, u.keys.bob]) {
        got.push((await V.verifyFrame(frame, u.context(key))).alert);
      }
      return got;""")
    assert out == [
        {"kind": "unknown_key", "detail": "signed by a device alice’s device list does not name"},
        {"kind": "unknown_key", "detail": "signed by a device alice’s device list does not name"},
        {"kind": "unknown_key", "detail": "alice’s keys could not be fetched: offline"},
        {"kind": "unknown_key", "detail": "signed by a device alice’s device list does not name"},
    ]


async def test_verify_frame_misaddressed_and_malformed_refused(page: Page) -> None:
    """Outside the room, another room, sender or kind: mismatch; not envelope v1 or v2, or
    chain fields out of range: malformed; and no key is asked for a frame refused before its
    signature."""
    out = await run(page, """
      const env = u.cases['alice-1-text'];
      const frames = {
        stranger: u.frame(env, 'x', {sender: 'ffffffffffffffffffffffff'}),
        room: u.frame(env, 'x', {room: 'a.b'}),
        sender: u.frame(env, 'x', {sender: u.v.devices.bob.user}),
        kind: u.frame(env, 'x', {kind: 'image'}),
        version: u.frame({...u.copy(env), v: 3}),
        alg: u.frame({...u.copy(env), alg: 'none'}),
        body: u.frame(env, 'x', {body: 'not an object'}),
      };
      const got = {};
      for (const [name, frame] of Object.entries(frames)) {
        const r = await V.verifyFrame(frame, u.context(u.keys.alice));
        got[name] = [r.alert.kind, V.keyNeeded(frame, u.context())];
      }
      const text = {kind: 'text', meta: {mime: u.E.TEXT_MIME}, data: u.E.utf8('x')};
      for (const [name, seq] of [['seq0', 0], ['seqNeg', -1]]) {
        const env = await u.seal('alice', {...text, seq, prev: ''});
        const r = await V.verifyFrame(u.frame(env), u.context(u.keys.alice));
        got[name] = [r.alert.kind, r.alert.detail];
      }
      return got;""")
    assert out == {
        "stranger": ["mismatch", None], "room": ["mismatch", None], "sender": ["mismatch", None],
        "kind": ["mismatch", None], "version": ["malformed", None], "alg": ["malformed", None],
        "body": ["malformed", None],
        "seq0": ["malformed", "the chain fields are invalid"],
        "seqNeg": ["malformed", "the chain fields are invalid"],
    }


async def test_open_frame_not_for_this_device_explained(page: Page) -> None:
    """A verified envelope that holds no key for this device is not_for_device, not shown."""
    out = await run(page, """
      const env = await u.E.sealEnvelope({room: u.v.room, sender: u.v.devices.alice.user,
        device: u.dev.alice, seq: 1, prev: '', kind: 'text', meta: {mime: u.E.TEXT_MIME},
        data: u.E.utf8('for alice only'), recipients: [{kid: u.dev.alice.kid,
          key: await u.E.importEncPublic(u.v.devices.alice.enc_spki)}]});
      const r = await V.openFrame(u.frame(env), u.context(u.keys.alice), u.dev.bob);
      return [r.device && r.device.kid, r.content, r.alert];""")
    assert out == [VECTORS["devices"]["alice"]["kid"], None,
                   {"kind": "not_for_device", "detail": "the message holds no key for this device"}]


# -- the hash chain ----------------------------------------------------------------------

async def test_chain_book_gap_reported_once(page: Page) -> None:
    """#1 then #3 leaves #2 missing, reported once at #3; a chain loaded from its start that
    begins at #2 is missing #1."""
    out = await run(page, """
      const kid = u.dev.alice.kid;
      const chains = new V.ChainBook();
      const links = [];
      for (const name of ['alice-1-text', 'alice-3-text']) {
        const env = u.cases[name];
        links.push((await chains.addEnvelope(kid, env, `id-${env.seq}`)).kind);
      }
      const first = chains.gaps([kid]);
      const again = chains.gaps([kid]);
      const start = new V.ChainBook();
      start.atStart = true;
      await start.addEnvelope(kid, u.cases['alice-2-image'], 'id-2');
      return {links, first, again, start: start.gaps([kid])};""")
    kid = VECTORS["devices"]["alice"]["kid"]
    assert out["links"] == ["ok", "ok"]
    assert out["first"] == [{"device": kid, "from": 2, "to": 2, "id": "id-3",
                             "detail": "message #2 of this device are missing"}]
    assert out["again"] == []
    assert out["start"] == [{"device": kid, "from": 1, "to": 1, "id": "id-2",
                             "detail": "message #1 of this device are missing"}]


async def test_chain_book_fork_refused(page: Page) -> None:
    """A validly signed #2 whose prev is not #1's hash is a fork (shown, with a warning);
    the genuine #2 after it is a replay of that seq."""
    out = await run(page, """
      const kid = u.dev.alice.kid;
      const chains = new V.ChainBook();
      await chains.addEnvelope(kid, u.cases['alice-1-text'], 'id-1');
      const forked = await u.seal('alice', {seq: 2, prev: 'not-the-hash-of-1', kind: 'text',
        meta: {mime: u.E.TEXT_MIME}, data: u.E.utf8('forked')});
      const signed = await V.verifyFrame(u.frame(forked), u.context(u.keys.alice));
      const fork = await chains.addEnvelope(kid, forked, 'forked');
      const genuine = await chains.addEnvelope(kid, u.cases['alice-2-image'], 'id-2');
      // #3 follows the genuine #2, not the one this book holds.
      const next = await chains.addEnvelope(kid, u.cases['alice-3-text'], 'id-3');
      return {signed: signed.alert, fork: [fork.show, fork.alert],
              genuine: [genuine.show, genuine.alert], next: [next.show, next.alert]};""")
    assert out["signed"] is None
    assert out["fork"] == [True, {"kind": "fork",
                                  "detail": "#2 does not follow the #1 this device sent"}]
    assert out["genuine"] == [False, {"kind": "replay",
                                      "detail": "message #2 of this device arrived again"}]
    assert out["next"] == [True, {"kind": "fork",
                                  "detail": "#3 does not follow the #2 this device sent"}]


async def test_chain_book_replay_refused(page: Page) -> None:
    """The same envelope and id again is a quiet duplicate; under another id, or live after a
    newer link, it is a replay and not shown."""
    out = await run(page, """
      const kid = u.dev.alice.kid;
      const chains = new V.ChainBook();
      const first = u.cases['alice-1-text'];
      const got = {};
      got.ok = await chains.addEnvelope(kid, first, 'id-1');
      got.duplicate = await chains.addEnvelope(kid, first, 'id-1');
      got.otherId = await chains.addEnvelope(kid, first, 'again');
      const live = new V.ChainBook();
      await live.addEnvelope(kid, u.cases['alice-3-text'], 'id-3', {live: true});
      got.late = await live.addEnvelope(kid, u.cases['alice-2-image'], 'id-2', {live: true});
      got.history = await live.addEnvelope(kid, first, 'id-1');
      const brief = ([k, r]) => [k, [r.kind, r.show, r.alert]];
      return Object.fromEntries(Object.entries(got).map(brief));""")
    assert out == {
        "ok": ["ok", True, None],
        "duplicate": ["duplicate", False, None],
        "otherId": ["replay", False, {"kind": "replay",
                                      "detail": "message #1 of this device arrived again"}],
        "late": ["replay", False, {"kind": "replay", "detail": "#2 arrived after #3"}],
        "history": ["ok", True, None],
    }


async def test_chain_book_heads_detect_rewritten_history(page: Page) -> None:
    """A head seen before that now differs is a fork, one now missing a gap; heads move on
    only forward and never for this device's own chain."""
    out = await run(page, """
      const kid = u.dev.alice.kid;
      const chains = new V.ChainBook();
      for (const name of ['alice-1-text', 'alice-2-image']) {
        const env = u.cases[name];
        await chains.addEnvelope(kid, env, `id-${env.seq}`);
      }
      const hash2 = u.v.cases[1].hash;
      return {
        same: chains.checkHeads({[kid]: {seq: 2, hash: hash2}}),
        changed: chains.checkHeads({[kid]: {seq: 2, hash: 'other'}}),
        shorter: chains.checkHeads({[kid]: {seq: 3, hash: u.v.cases[2].hash}}),
        remembered: chains.rememberHeads({[kid]: {seq: 1, hash: 'h1'}}, 'mine'),
        unchanged: chains.rememberHeads({[kid]: {seq: 2, hash: hash2}}, 'mine'),
        own: chains.rememberHeads({}, kid),
      };""")
    kid = VECTORS["devices"]["alice"]["kid"]
    hash2 = VECTORS["cases"][1]["hash"]
    assert out["same"] == []
    assert out["changed"] == [{"kind": "fork", "device": kid, "id": "id-2",
                               "detail": "#2 differs from the one this browser saw before"}]
    assert out["shorter"] == [{"kind": "gap", "device": kid, "id": None,
                               "detail": "messages up to #3, seen here before, are missing "
                                         "from the history"}]
    assert out["remembered"] == {kid: {"seq": 2, "hash": hash2}}
    assert out["unchanged"] is None and out["own"] is None


# -- signals and keys --------------------------------------------------------------------

RECEIPTS_JS = """
  const bob = u.v.devices.bob;
  const marks = u.S.receiptContent(u.cursor(2), u.cursor(1));
  const receipt = (fields = {}, content = marks) => u.seal('bob', {
    seq: 0, prev: '', kind: 'receipt', meta: content.meta, data: content.data, ...fields});
  const frame = (env) => u.frame(env, 'r', {cursor: u.cursor(9)});
  const good = await receipt();
  const cases = {
    good: [good, u.keys.bob],
    altered: [{...u.copy(good), ct: u.flip(good.ct)}, u.keys.bob],
    signedByAlice: [await receipt({device: {...u.dev.alice, kid: bob.kid}}), u.keys.bob],
    unknownDevice: [await receipt({device: u.dev.alice}), {device: null}],
    inChain: [await receipt({seq: 1}), u.keys.bob],
    text: [await receipt({}, u.E.textContent(u.cursor(2))), u.keys.bob],
    badCursor: [await receipt({}, {meta: {mime: u.S.RECEIPT_MIME},
      data: u.E.utf8(JSON.stringify({delivered: 'soon', read: null}))}), u.keys.bob],
  };
  const got = {};
  for (const [name, [env, key]] of Object.entries(cases)) {
    const r = await V.verifyReceipt(frame(env), u.context(key), u.dev.alice);
    got[name] = r.alert ? [r.alert.kind, r.alert.detail] : r.marks;
  }
  return got;"""


async def test_verify_receipt_forged_refused(page: Page) -> None:
    """The friend's receipt gives its marks; an altered, forged, misplaced or misshapen one
    is refused with its reason."""
    out = await run(page, RECEIPTS_JS)
    assert out == {
        "good": {"delivered": "2".rjust(32, "0"), "read": "1".rjust(32, "0")},
        "altered": ["bad_signature", "the signature does not match bob’s key"],
        "signedByAlice": ["bad_signature", "the signature does not match bob’s key"],
        "unknownDevice": ["unknown_key", "signed by a device bob’s device list does not name"],
        "inChain": ["malformed", "the chain fields are invalid"],
        "text": ["malformed", "a signal of type text/plain;charset=utf-8"],
        "badCursor": ["malformed", "a receipt out of shape"],
    }


async def test_verify_typing_stale_refused(page: Page) -> None:
    """A fresh typing signal says whether the friend types; one from another time is refused."""
    out = await run(page, """
      const now = 1_700_000_000_000;
      const typing = async (on, at) => {
        const c = u.S.typingContent(on, at);
        const env = await u.seal('bob', {seq: 0, prev: '', kind: 'typing', meta: c.meta,
                                         data: c.data});
        const frame = {type: 'typing', room: u.v.room, sender: u.v.devices.bob.user, body: env};
        const r = await V.verifyTyping(frame, u.context(u.keys.bob), u.dev.alice, now);
        return r.alert ? r.alert.kind + ': ' + r.alert.detail : r.typing;
      };
      return [await typing(true, now - 1000), await typing(false, now),
              await typing(true, now - 60_000)];""")
    assert out == [True, False, "malformed: a typing signal from another time"]


async def test_verify_frame_revoked_device_after_revocation_refused(page: Page) -> None:
    """A revoked device's message counts if the server's ts is not after the revocation;
    a later one, or a typing signal (no ts), is revoked_device; a forged one stays
    bad_signature."""
    out = await run(page, """
      const env = u.cases['alice-1-text'];
      const revoked = {device: {...u.keys.alice.device, revokedAt: 1000},
                       sigPublic: u.keys.alice.sigPublic};
      const verdict = async (frame, key = revoked) => {
        const r = await V.verifyFrame(frame, u.context(key));
        return r.alert ? [r.alert.kind, r.alert.detail] : r.device.kid;
      };
      return {
        before: await verdict(u.frame(env, 'a', {ts: 999})),
        at: await verdict(u.frame(env, 'b', {ts: 1000})),
        after: await verdict(u.frame(env, 'c', {ts: 1001})),
        noTs: await verdict(u.frame(env, 'd', {ts: undefined})),
        forged: await verdict(u.frame({...u.copy(env), ct: u.flip(env.ct)}, 'e', {ts: 5000})),
        live: await verdict(u.frame(env, 'f', {ts: 1001}), u.keys.alice),
      };""")
    kid = VECTORS["devices"]["alice"]["kid"]
    late = ["revoked_device", "signed by a device alice revoked before it was sent"]
    assert out == {"before": kid, "at": kid, "after": late, "noTs": late,
                   "forged": ["bad_signature", "the signature does not match alice’s key"],
                   "live": kid}


# -- the outbox --------------------------------------------------------------------------

async def test_outbox_replies_move_ticks_forward(page: Page) -> None:
    """ack → sent, stored → stored, publish_failed → the same frame again, any other error →
    failed; ticks never move back, failed can come at any time."""
    out = await run(page, """
      const O = u.O;
      const replies = [
        {type: 'ack', id: 'm', cursor: u.cursor(1), ts: 5},
        {type: 'stored', id: 'm', cursor: u.cursor(1)},
        {type: 'error', id: 'm', code: 'publish_failed', detail: 'later'},
        {type: 'error', id: 'm', code: 'too_large', detail: 'too big'},
        {type: 'message', id: 'm'},
      ].map(O.reply);
      const path = (states) => states.reduce(
        (acc, s) => [...acc, O.advance(acc[acc.length - 1] ?? null, s)], []);
      return {
        replies,
        forward: path(['pending', 'sent', 'stored', 'delivered', 'read']),
        back: path(['pending', 'stored', 'sent', 'read', 'delivered', 'pending']),
        failed: path(['pending', 'sent', 'failed', 'sent', 'pending']),
        unknown: O.advance('sent', 'lost'),
      };""")
    assert out["replies"] == [
        {"settle": True, "resend": False, "state": "sent", "cursor": "1".rjust(32, "0"), "ts": 5},
        {"settle": True, "resend": False, "state": "stored", "cursor": "1".rjust(32, "0"),
         "ts": None},
        {"settle": False, "resend": True, "state": "pending"},
        {"settle": True, "resend": False, "state": "failed", "detail": "too big"},
        None,
    ]
    assert out["forward"] == ["pending", "sent", "stored", "delivered", "read"]
    assert out["back"] == ["pending", "stored", "stored", "read", "read", "read"]
    assert out["failed"] == ["pending", "sent", "failed", "sent", "sent"]
    assert out["unknown"] == "sent"


async def test_outbox_pending_sends_retried_with_same_id(page: Page) -> None:
    """Sealed messages chain in order and wait in the outbox; pending ones go again after a
    reconnect and after publish_failed with the same id, marked retry, until settled."""
    out = await run(page, """
      const posted = [];
      let up = false;
      const post = (f) => {
        if (up) posted.push(f);
        return up;
      };
      const outbox = new u.O.Outbox(u.v.devices.alice.user, post);
      const peer = {id: u.v.devices.bob.user, name: 'bob'};
      const room = `test-${crypto.randomUUID()}`;
      const bobKey = await u.E.importEncPublic(u.v.devices.bob.enc_spki);
      const recipients = [{kid: u.dev.bob.kid, key: bobKey}];
      const sealed = [];
      for (const text of ['one', 'two']) {
        const s = await outbox.seal({device: u.dev.alice, peer, room, kind: 'text',
          meta: {mime: u.E.TEXT_MIME}, data: u.E.utf8(text), recipients});
        sealed.push(s);
        outbox.send(s.frame, room);
      }
      const [one, two] = sealed.map((s) => s.frame);
      const offline = posted.length;
      up = true;
      outbox.resendAll();
      const afterReconnect = posted.map((f) => [f.id, f.retry ?? false]);
      posted.length = 0;
      outbox.resendLater(two.id);
      await new Promise((r) => setTimeout(r, 700));
      const afterFailure = posted.map((f) => [f.id, f.retry ?? false]);
      const storedBefore = (await outbox.stored(room)).map((e) => e.frame.id);
      await outbox.settle(room, one.id);
      const storedAfter = (await outbox.stored(room)).map((e) => e.frame.id);
      posted.length = 0;
      outbox.resendAll();
      await outbox.settle(room, two.id);
      outbox.close();
      return {
        offline, afterReconnect, afterFailure, storedBefore, storedAfter,
        last: posted.map((f) => f.id), pending: [outbox.has(one.id), outbox.has(two.id)],
        seqs: [one.body.seq, two.body.seq], linked: two.body.prev === sealed[0].hash,
        ids: [one.id, two.id], roomOf: outbox.roomOf(two.id),
        left: (await outbox.stored(room)).length,
      };""")
    one, two = out["ids"]
    assert out["offline"] == 0
    assert out["afterReconnect"] == [[one, True], [two, True]]
    assert out["afterFailure"] == [[two, True]]
    assert out["storedBefore"] == [one, two] and out["storedAfter"] == [two]
    assert out["last"] == [two]
    assert out["pending"] == [False, False] and out["left"] == 0 and out["roomOf"] is None
    assert out["seqs"] == [1, 2] and out["linked"] is True
