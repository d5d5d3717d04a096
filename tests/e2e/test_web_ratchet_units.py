"""The web client's ratchet.js (X3DH and the Double Ratchet) and prekeys.js (signed prekey
bundles), unit-tested in Chromium against the SDK's client.ratchet.

The shared vector (contracts/vectors/ratchet-v1.json, which tests/unit checks through the
SDK) is reproduced byte for byte: the bundle's signing input and signature, X3DH from both
sides, and, with the vector's ratchet keys handed out in order, every header and ciphertext
of its conversation, every plaintext and every named fault, with the page's session state
equal to the SDK's after each event. Then what the vector cannot show: forward secrecy (a
stolen state opens nothing sent after the next ratchet step; an opened message's key is
gone), reordering up to exactly MAX_SKIP, and live sessions with client.ratchet.Session on
the other side, both ways, alternating and out of order.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from playwright.async_api import Browser, Page
from webclient import units_page

from client import crypto
from client.ratchet import (
    Header,
    RatchetError,
    Session,
    private_raw,
    public_raw,
    x3dh_initiate,
)
from client.ratchetvectors import DEFAULT_PATH, replay_keys
from contracts import prekeys
from contracts.envelope import sig_is_canonical

VECTOR = json.loads(DEFAULT_PATH.read_text())
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

SETUP_JS = """async (v) => {
  const R = await import('/ratchet.js');
  const P = await import('/prekeys.js');
  const C = await import('/crypto.js');
  const {b64u, unb64u, utf8, fromUtf8} = await import('/codec.js');
  // A key generator handing out the listed pairs in order, as the vector's sides made them.
  const listed = (pairs) => {
    let i = 0;
    const next = async () => {
      if (i >= pairs.length) throw new Error('out of listed keys');
      const p = pairs[i++];
      return {privateRaw: unb64u(p.private), publicRaw: unb64u(p.public)};
    };
    next.used = () => i;
    return next;
  };
  // The code a RatchetError names, null if it did not throw.
  const error = async (promise) => {
    try {
      await promise;
      return null;
    } catch (err) {
      return err instanceof R.RatchetError ? err.code : `not a RatchetError: ${err}`;
    }
  };
  const sk = unb64u(v.x3dh.sk_b64u);
  const ad = unb64u(v.x3dh.ad_b64u);
  // A fresh pair of sessions on the vector's X3DH result, with random ratchet keys.
  const pair = async () => [
    await R.Session.initiate(sk, ad, unb64u(v.bob.spk.public), v.x3dh.prekey),
    R.Session.respond(sk, ad, unb64u(v.bob.spk.private)),
  ];
  const state = (session) => JSON.parse(JSON.stringify(session.state));
  globalThis.u = {R, P, C, v, b64u, unb64u, utf8, fromUtf8, listed, error, sk, ad, pair, state};
}"""


@pytest.fixture
async def page(browser: Browser, web_server: str) -> AsyncIterator[Page]:
    """A blank page with ratchet.js, prekeys.js and the vector loaded."""
    async with units_page(browser, web_server, SETUP_JS, VECTOR) as page:
        yield page


async def run(page: Page, body: str, arg: Any = None) -> Any:
    """Evaluate an async function body that sees `u`, `R` (ratchet.js) and `arg`."""
    return await page.evaluate(
        f"async (arg) => {{ const u = globalThis.u; const R = u.R; {body} }}", arg)


def high_s(sig_b64u: str) -> str:
    """The same ECDSA signature in its other valid form (s → n - s)."""
    raw = crypto.unb64u(sig_b64u)
    s = P256_N - int.from_bytes(raw[32:], "big")
    return crypto.b64u(raw[:32] + s.to_bytes(32, "big"))


async def test_constants_match_contracts(page: Page) -> None:
    """ratchet.js and prekeys.js use contracts/prekeys.py's info strings, prefix and bounds."""
    out = await run(page, """
      return {x3dh: R.X3DH_INFO, root: R.ROOT_INFO, message: R.MESSAGE_INFO, skip: R.MAX_SKIP,
              skipped: R.MAX_SKIPPED, old: R.MAX_OLD_CHAINS, prefix: u.P.BUNDLE_PREFIX,
              keyIdMax: u.P.KEY_ID_MAX};""")
    assert out == {
        "x3dh": prekeys.X3DH_INFO.decode(), "root": prekeys.ROOT_INFO.decode(),
        "message": prekeys.MESSAGE_INFO.decode(), "skip": prekeys.MAX_SKIP,
        "skipped": prekeys.MAX_SKIPPED, "old": prekeys.MAX_OLD_CHAINS,
        "prefix": prekeys.BUNDLE_PREFIX.decode(), "keyIdMax": prekeys.KEY_ID_MAX,
    }


async def test_bundle_vector_verifies_and_forgery_does_not(page: Page) -> None:
    """The vector bundle's signing input is the vector's and it verifies with bob's signing
    key; the forged bundle, the same signature in high-s form and an extra field do not."""
    out = await run(page, """
      const key = await u.C.importSigPublic(u.v.bob.sig_spki);
      const bundle = u.v.bundle;
      return {
        input: u.b64u(u.P.bundleSigningInput(bundle)),
        bundle: await u.P.verifyBundle(bundle, key),
        forged: await u.P.verifyBundle(u.v.forged_bundle, key),
        highS: await u.P.verifyBundle({...bundle, sig: arg}, key),
        extra: await u.P.verifyBundle({...bundle, opk: {id: 8, key: bundle.ik}}, key),
        missing: await u.P.verifyBundle({...bundle, ik: undefined}, key),
      };""", high_s(VECTOR["bundle"]["sig"]))
    assert out == {"input": VECTOR["bundle_signing_input_b64u"], "bundle": True,
                   "forged": False, "highS": False, "extra": False, "missing": False}


async def test_sign_bundle_in_browser_verified_by_python(page: Page) -> None:
    """A bundle the page signs with bob's signing key is one the SDK accepts: the Bundle
    model, a canonical low-s signature, valid over contracts.prekeys.bundle_signing_input."""
    out = await run(page, """
      const pem = u.v.bob.sig_private_pkcs8_pem;
      const sig = await crypto.subtle.importKey('pkcs8', u.C.pemToDer(pem), u.C.ECDSA_P256, false,
                                                ['sign']);
      const ik = await R.generateKeyPair();
      const spk = await R.generateKeyPair();
      const bundle = await u.P.signBundle(sig, {user: u.v.bob.user, kid: u.v.bob.kid,
        ik: u.b64u(ik.publicRaw), spk: {id: 4294967295, key: u.b64u(spk.publicRaw)}});
      const verified = await u.P.verifyBundle(bundle, await u.C.importSigPublic(u.v.bob.sig_spki));
      return {bundle, verified};""")
    bundle = out["bundle"]
    assert out["verified"] is True
    assert prekeys.Bundle.model_validate(bundle).spk.id == prekeys.KEY_ID_MAX
    assert sig_is_canonical(bundle["sig"])
    signer = crypto.load_ec_public(VECTOR["bob"]["sig_spki"])
    assert crypto.verify(signer, prekeys.bundle_signing_input(bundle),
                         crypto.unb64u(bundle["sig"]))


async def test_x3dh_both_sides_give_vector_secret(page: Page) -> None:
    """x3dhInitiate and x3dhRespond both give the vector's SK and AD, and sk_without_opk
    without the one-time prekey; a low-order or short public key is bad_key, as in Python."""
    out = await run(page, """
      const k = (x) => u.unb64u(x);
      const a = u.v.alice;
      const b = u.v.bob;
      const init = await R.x3dhInitiate(k(a.ik.private), k(a.ek.private), k(b.ik.public),
                                        k(b.spk.public), k(b.opk.public));
      const resp = await R.x3dhRespond(k(b.ik.private), k(b.spk.private), k(b.opk.private),
                                       k(a.ik.public), k(a.ek.public));
      const initNo = await R.x3dhInitiate(k(a.ik.private), k(a.ek.private), k(b.ik.public),
                                          k(b.spk.public), null);
      const respNo = await R.x3dhRespond(k(b.ik.private), k(b.spk.private), null,
                                         k(a.ik.public), k(a.ek.public));
      const low = new Uint8Array(32);
      low[0] = 1; // u = 1: a point of low order
      const shown = (x) => ({sk: u.b64u(x.sk), ad: u.b64u(x.ad)});
      return {
        init: shown(init), resp: shown(resp), initNo: shown(initNo), respNo: shown(respNo),
        zero: await u.error(R.x3dhInitiate(k(a.ik.private), k(a.ek.private), k(b.ik.public),
                                           new Uint8Array(32), null)),
        low: await u.error(R.x3dhRespond(k(b.ik.private), k(b.spk.private), null, low,
                                         k(a.ek.public))),
        short: await u.error(R.x3dhInitiate(k(a.ik.private), k(a.ek.private),
                                            k(b.ik.public).subarray(1), k(b.spk.public), null)),
        public: u.b64u(await R.publicRaw(k(a.ik.private))),
      };""")
    x3dh = VECTOR["x3dh"]
    full = {"sk": x3dh["sk_b64u"], "ad": x3dh["ad_b64u"]}
    without = {"sk": x3dh["sk_without_opk_b64u"], "ad": x3dh["ad_b64u"]}
    assert out["init"] == out["resp"] == full
    assert out["initNo"] == out["respNo"] == without
    assert out["public"] == VECTOR["alice"]["ik"]["public"]
    assert out["zero"] == out["low"] == out["short"] == "bad_key"
    ik = X25519PrivateKey.from_private_bytes(crypto.unb64u(VECTOR["alice"]["ik"]["private"]))
    for bad in (bytes(32), b"\x01" + bytes(31)):
        with pytest.raises(RatchetError) as caught:
            x3dh_initiate(ik, ik, bad, bad, None)
        assert caught.value.code == "bad_key"


def python_states() -> list[dict[str, Any]]:
    """client.ratchet's sessions after each event of the vector, replayed with its keys."""
    v = VECTOR
    sk, ad = crypto.unb64u(v["x3dh"]["sk_b64u"]), crypto.unb64u(v["x3dh"]["ad_b64u"])
    keys = {who: replay_keys(v["ratchet"]["keys"][who]) for who in ("alice", "bob")}

    def keygen(who: str) -> Callable[[], X25519PrivateKey]:
        return lambda: next(keys[who])

    spk = X25519PrivateKey.from_private_bytes(crypto.unb64u(v["bob"]["spk"]["private"]))
    sessions = {
        "alice": Session.initiate(sk, ad, public_raw(spk), copy.deepcopy(v["x3dh"]["prekey"]),
                                  keygen("alice")),
        "bob": Session.respond(sk, ad, spk, keygen("bob")),
    }
    states = []
    for event in v["ratchet"]["events"]:
        session = sessions[event["by"]]
        message = v["ratchet"]["messages"][event["msg"]] if "msg" in event else event
        if event["op"] == "send":
            session.encrypt(crypto.unb64u(message["pt_b64u"]))
        elif "error" in event:
            with pytest.raises(RatchetError):
                session.decrypt(Header.from_wire(event["header"]),
                                crypto.unb64u(event["ct_b64u"]))
        else:
            session.decrypt(Header.from_wire(message["header"]), crypto.unb64u(message["ct_b64u"]))
        states.append({who: copy.deepcopy(s.state) for who, s in sessions.items()})
    return states


async def test_ratchet_vector_replayed_byte_for_byte(page: Page) -> None:
    """With the vector's ratchet keys handed out in order, every send gives the vector's
    header and ciphertext, every delivery its plaintext or its named error (a failed one
    leaving the state as it was), and both states equal client.ratchet's after each event."""
    out = await run(page, """
      const v = u.v;
      const keys = {alice: u.listed(v.ratchet.keys.alice), bob: u.listed(v.ratchet.keys.bob)};
      const s = {
        alice: await R.Session.initiate(u.sk, u.ad, u.unb64u(v.bob.spk.public), v.x3dh.prekey,
                                        keys.alice),
        bob: R.Session.respond(u.sk, u.ad, u.unb64u(v.bob.spk.private), keys.bob),
      };
      const results = [];
      const states = [];
      for (const e of v.ratchet.events) {
        const m = v.ratchet.messages[e.msg];
        const session = s[e.by];
        if (e.op === 'send') {
          const {header, ct} = await session.encrypt(u.unb64u(m.pt_b64u));
          results.push({header, ct_b64u: u.b64u(ct)});
        } else if (e.error) {
          const before = JSON.stringify(session.state);
          const error = await u.error(session.decrypt(e.header, u.unb64u(e.ct_b64u)));
          results.push({error, unchanged: JSON.stringify(session.state) === before});
        } else {
          const pt = await session.decrypt(m.header, u.unb64u(m.ct_b64u));
          results.push({pt_b64u: u.b64u(pt)});
        }
        states.push({alice: u.state(s.alice), bob: u.state(s.bob)});
      }
      return {results, states, used: {alice: keys.alice.used(), bob: keys.bob.used()}};""")
    ratchet = VECTOR["ratchet"]
    events = ratchet["events"]
    assert len(out["results"]) == len(events)
    for i, (event, got) in enumerate(zip(events, out["results"], strict=True)):
        if event["op"] == "send":
            message = ratchet["messages"][event["msg"]]
            want = {"header": message["header"], "ct_b64u": message["ct_b64u"]}
        elif "error" in event:
            want = {"error": event["error"], "unchanged": True}
        else:
            want = {"pt_b64u": ratchet["messages"][event["msg"]]["pt_b64u"]}
        assert got == want, f"event {i}: {event}"
    assert out["used"] == {who: len(keys) for who, keys in ratchet["keys"].items()}
    for i, (got, want) in enumerate(zip(out["states"], python_states(), strict=True)):
        assert got == want, f"state after event {i}: {events[i]}"


async def test_forward_secrecy(page: Page) -> None:
    """A copy of alice's state taken before bob's reply cannot open what alice sends after
    her next ratchet step (not even after opening bob's reply itself), while bob's live
    session can; bob cannot open again a message it opened (key_gone)."""
    out = await run(page, """
      const [alice, bob] = await u.pair();
      const m1 = await alice.encrypt(u.utf8('before'));
      const opened1 = u.fromUtf8(await bob.decrypt(m1.header, m1.ct));
      const stolen = alice.copy(); // time T
      const atT = JSON.stringify(stolen.state);
      const stolenToo = alice.copy();
      const r1 = await bob.encrypt(u.utf8('reply'));
      await alice.decrypt(r1.header, r1.ct);
      const m2 = await alice.encrypt(u.utf8('after'));
      const copyKept = JSON.stringify(stolen.state) === atT && JSON.stringify(alice.state) !== atT;
      const stolenReply = u.fromUtf8(await stolenToo.decrypt(r1.header, r1.ct));
      return {
        opened1, copyKept, stolenReply,
        newKey: m2.header.dh !== m1.header.dh && m2.header.n === 0,
        copy: await u.error(stolen.decrypt(m2.header, m2.ct)),
        copyAfterReply: await u.error(stolenToo.decrypt(m2.header, m2.ct)),
        bob: u.fromUtf8(await bob.decrypt(m2.header, m2.ct)),
        again: await u.error(bob.decrypt(m2.header, m2.ct)),
        first: await u.error(bob.decrypt(m1.header, m1.ct)),
        bobKeysLeft: bob.state.skipped.length,
      };""")
    assert out == {
        "opened1": "before", "copyKept": True, "stolenReply": "reply", "newKey": True,
        "copy": "bad_message", "copyAfterReply": "bad_message", "bob": "after",
        "again": "key_gone", "first": "key_gone", "bobKeysLeft": 0,
    }


async def test_out_of_order_within_max_skip(page: Page) -> None:
    """30 messages delivered in reverse order all open; a message more than MAX_SKIP ahead
    of the chain is too_far_ahead, one exactly MAX_SKIP ahead opens, and then the other."""
    out = await run(page, """
      const [alice, bob] = await u.pair();
      const sent = [];
      for (let i = 0; i < 30; i += 1) sent.push(await alice.encrypt(u.utf8(`m${i}`)));
      const opened = [];
      for (const m of [...sent].reverse()) {
        opened.push(u.fromUtf8(await bob.decrypt(m.header, m.ct)));
      }
      const keysLeft = bob.state.skipped.length;
      const more = [];
      for (let i = 0; i <= R.MAX_SKIP + 1; i += 1) more.push(await alice.encrypt(u.utf8(`n${i}`)));
      const beyond = more[R.MAX_SKIP + 1]; // bob expects n = 30; this is n = 30 + MAX_SKIP + 1
      const atBound = more[R.MAX_SKIP];
      const tooFar = await u.error(bob.decrypt(beyond.header, beyond.ct));
      const skippedBefore = bob.state.skipped.length;
      return {
        opened, keysLeft, tooFar, skippedBefore, ns: [beyond.header.n, atBound.header.n],
        atBound: u.fromUtf8(await bob.decrypt(atBound.header, atBound.ct)),
        skipped: bob.state.skipped.length,
        beyond: u.fromUtf8(await bob.decrypt(beyond.header, beyond.ct)),
        early: u.fromUtf8(await bob.decrypt(more[0].header, more[0].ct)),
      };""")
    max_skip = prekeys.MAX_SKIP
    assert out["opened"] == [f"m{i}" for i in reversed(range(30))]
    assert out["keysLeft"] == 0
    assert out["ns"] == [30 + max_skip + 1, 30 + max_skip]
    assert out["tooFar"] == "too_far_ahead" and out["skippedBefore"] == 0
    assert out["atBound"] == f"n{max_skip}" and out["skipped"] == max_skip
    assert out["beyond"] == f"n{max_skip + 1}" and out["early"] == "n0"


async def test_failed_open_changes_nothing(page: Page) -> None:
    """A delivery that fails only after skipping keys or stepping the ratchet (tampered
    ciphertext, a changed counter, a stranger's ratchet key) leaves the state as it was,
    and the genuine messages still open after it."""
    out = await run(page, """
      const [alice, bob] = await u.pair();
      const sent = [];
      for (let i = 0; i < 5; i += 1) sent.push(await alice.encrypt(u.utf8(`m${i}`)));
      const last = sent[4];
      const flipped = Uint8Array.from(last.ct);
      flipped[0] ^= 1;
      const stranger = await R.generateKeyPair();
      const attempts = {
        // bob's first delivery: a ratchet step and four skipped keys before the AEAD fails
        tampered: [last.header, flipped],
        counter: [{...last.header, n: 3}, last.ct],
        stranger: [{...last.header, dh: u.b64u(stranger.publicRaw)}, last.ct],
        malformed: [{...last.header, pn: -1}, last.ct],
      };
      const tryAll = async () => {
        const got = {};
        for (const [name, [header, ct]] of Object.entries(attempts)) {
          const before = JSON.stringify(bob.state);
          const error = await u.error(bob.decrypt(header, ct));
          got[name] = [error, JSON.stringify(bob.state) === before];
        }
        return got;
      };
      const fresh = await tryAll();
      const first = u.fromUtf8(await bob.decrypt(last.header, last.ct));
      const later = await tryAll(); // with a receiving chain and skipped keys in place
      const rest = [];
      for (const m of sent.slice(0, 4)) rest.push(u.fromUtf8(await bob.decrypt(m.header, m.ct)));
      return {fresh, later, first, rest};""")
    assert out["first"] == "m4" and out["rest"] == ["m0", "m1", "m2", "m3"]
    failed = ["bad_message", True]
    assert out["fresh"] == {"tampered": failed, "counter": failed, "stranger": failed,
                            "malformed": failed}
    # m4 itself was opened since; "counter" now finds m3's skipped key, which fails on m4's
    # ciphertext and stays kept (m3 opens after).
    assert out["later"] == {"tampered": ["key_gone", True], "counter": failed,
                            "stranger": failed, "malformed": failed}


async def test_kept_keys_and_chains_are_bounded(page: Page) -> None:
    """A session remembers its last MAX_OLD_CHAINS receiving chains (a replay from one is
    key_gone; from a chain forgotten before them it cannot open: bad_message) and keeps at
    most MAX_SKIPPED skipped keys, dropping the oldest first."""
    out = await run(page, """
      const [alice, bob] = await u.pair();
      const firsts = [];
      for (let i = 0; i < R.MAX_OLD_CHAINS + 3; i += 1) {
        const m = await alice.encrypt(u.utf8(`a${i}`));
        firsts.push(m);
        await bob.decrypt(m.header, m.ct);
        const r = await bob.encrypt(u.utf8(`b${i}`));
        await alice.decrypt(r.header, r.ct);
      }
      const chains = {
        old: bob.state.old.length,
        recent: await u.error(bob.decrypt(firsts[3].header, firsts[3].ct)),
        forgotten: await u.error(bob.decrypt(firsts[1].header, firsts[1].ct)),
      };
      // Stand-ins for keys skipped earlier (the state is plain data), then 3 really skipped.
      bob.state.skipped = Array.from({length: R.MAX_SKIPPED - 1},
                                     (_, i) => [`earlier-${i}`, 0, u.b64u(new Uint8Array(32))]);
      const sent = [];
      for (let i = 0; i < 4; i += 1) sent.push(await alice.encrypt(u.utf8(`c${i}`)));
      await bob.decrypt(sent[3].header, sent[3].ct);
      const kept = bob.state.skipped;
      const opened = [];
      for (const m of sent.slice(0, 3)) opened.push(u.fromUtf8(await bob.decrypt(m.header, m.ct)));
      return {chains, kept: kept.length, oldest: kept[0][0], newest: kept.at(-1)[1], opened};""")
    assert out == {
        "chains": {"old": prekeys.MAX_OLD_CHAINS, "recent": "key_gone",
                   "forgotten": "bad_message"},
        "kept": prekeys.MAX_SKIPPED, "oldest": "earlier-2", "newest": 2,
        "opened": ["c0", "c1", "c2"],
    }


async def test_concurrent_calls_take_turns(page: Page) -> None:
    """Encrypts and decrypts started together on one session run one at a time: two
    messages get two counters (never one message key twice) and both open."""
    out = await run(page, """
      const [alice, bob] = await u.pair();
      const sent = await Promise.all(['x', 'y', 'z'].map((t) => alice.encrypt(u.utf8(t))));
      const opened = await Promise.all(sent.map((m) => bob.decrypt(m.header, m.ct)));
      return {ns: sent.map((m) => m.header.n), opened: opened.map(u.fromUtf8),
              nr: bob.state.nr};""")
    assert out == {"ns": [0, 1, 2], "opened": ["x", "y", "z"], "nr": 3}


async def test_sessions_with_python_both_ways(page: Page) -> None:
    """A session between client.ratchet.Session (alice, X3DH in Python) and the page's
    (bob, x3dhRespond on the same keys): 12 messages each way, alternating, out of order
    within chains and late across ratchet steps, all open on the other side."""
    a_ik, a_ek, b_ik, b_spk, b_opk = (X25519PrivateKey.generate() for _ in range(5))
    sk, ad = x3dh_initiate(a_ik, a_ek, public_raw(b_ik), public_raw(b_spk), public_raw(b_opk))
    prekey = {"ik": crypto.b64u(public_raw(a_ik)), "ek": crypto.b64u(public_raw(a_ek)),
              "spk": 1, "opk": 2}
    alice = Session.initiate(sk, ad, public_raw(b_spk), prekey)
    keys = {"ik": private_raw(b_ik), "spk": private_raw(b_spk), "opk": private_raw(b_opk),
            "peerIk": public_raw(a_ik), "peerEk": public_raw(a_ek)}
    out = await run(page, """
      const k = Object.fromEntries(Object.entries(arg).map(([n, x]) => [n, u.unb64u(x)]));
      const x = await R.x3dhRespond(k.ik, k.spk, k.opk, k.peerIk, k.peerEk);
      u.bob = R.Session.respond(x.sk, x.ad, k.spk);
      return {sk: u.b64u(x.sk), ad: u.b64u(x.ad)};""",
        {name: crypto.b64u(key) for name, key in keys.items()})
    assert out == {"sk": crypto.b64u(sk), "ad": crypto.b64u(ad)}

    from_alice: dict[str, dict[str, Any]] = {}
    from_bob: dict[str, dict[str, Any]] = {}

    def alice_sends(*texts: str) -> None:
        for text in texts:
            header, ct = alice.encrypt(text.encode())
            from_alice[text] = {"header": header.wire(), "ct": crypto.b64u(ct)}

    def alice_opens(*texts: str) -> list[str]:
        return [alice.decrypt(Header.from_wire(from_bob[t]["header"]),
                              crypto.unb64u(from_bob[t]["ct"])).decode() for t in texts]

    async def bob_sends(*texts: str) -> None:
        from_bob.update(await run(page, """
          const sent = {};
          for (const text of arg) {
            const {header, ct} = await u.bob.encrypt(u.utf8(text));
            sent[text] = {header, ct: u.b64u(ct)};
          }
          return sent;""", list(texts)))

    async def bob_opens(*texts: str) -> list[str]:
        opened: list[str] = await run(page, """
          const opened = [];
          for (const m of arg) {
            opened.push(u.fromUtf8(await u.bob.decrypt(m.header, u.unb64u(m.ct))));
          }
          return opened;""", [from_alice[t] for t in texts])
        return opened

    alice_sends("p1 — ünïcödé ✓", "p2", "p3", "p4")
    assert await bob_opens("p1 — ünïcödé ✓", "p3", "p4") == ["p1 — ünïcödé ✓", "p3", "p4"]
    await bob_sends("b1 ✓", "b2", "b3", "b4")
    assert alice_opens("b2", "b1 ✓", "b4") == ["b2", "b1 ✓", "b4"]
    alice_sends("p5", "p6")
    assert await bob_opens("p6", "p5", "p2") == ["p6", "p5", "p2"]  # p2 late, a chain back
    for p, b in (("p7", "b5"), ("p8", "b6"), ("p9", "b7")):  # a ratchet step each
        alice_sends(p)
        assert await bob_opens(p) == [p]
        await bob_sends(b)
        assert alice_opens(b) == [b]
    assert alice_opens("b3") == ["b3"]  # late, three chains back
    await bob_sends("b8", "b9", "b10")
    assert alice_opens("b8") == ["b8"]
    alice_sends("p10")
    assert await bob_opens("p10") == ["p10"]
    await bob_sends("b11", "b12")
    # b12 first: alice steps her ratchet and keeps b9's and b10's keys by the header's pn.
    assert alice_opens("b12", "b10", "b11", "b9") == ["b12", "b10", "b11", "b9"]
    alice_sends("p11", "p12")
    assert await bob_opens("p12", "p11") == ["p12", "p11"]

    assert len(from_alice) == len(from_bob) == 12
    left = await run(page, "return u.bob.state.skipped.length;")
    assert left == 0 and alice.state["skipped"] == [] and alice.state["prekey"] is None
