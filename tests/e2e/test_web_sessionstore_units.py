"""The web client's sessionstore.js (a browser device's prekeys and ratchet sessions, sealed
at rest) and localhistory.js, unit-tested in Chromium with no server: what the envelope v3
paths rely on and a live conversation cannot force. Two DeviceSessions of one device stand
for two tabs of one browser profile (one IndexedDB, one Web Lock).

Then one test with the SDK's client.sessions on the other side: what the page seals, the
SDK opens, and back.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from webclient import evaluate, units_page

from client import crypto
from client.sessions import DeviceSessions, Target, bundle_verifies
from client.vault import Vault

SETUP_JS = """async () => {
  const SS = await import('/sessionstore.js');
  const LH = await import('/localhistory.js');
  const R = await import('/ratchet.js');
  const C = await import('/crypto.js');
  const store = await import('/store.js');
  const A = await import('/atrest.js');
  const {b64u, unb64u} = await import('/codec.js');
  const error = async (promise) => {
    try {
      await promise;
      return null;
    } catch (err) {
      return err instanceof R.RatchetError ? err.code : `not a RatchetError: ${err}`;
    }
  };
  // A device as the page's storage holds one, and the target it is to another device.
  const device = () => C.generateDevice();
  const target = async (d, upload, oneTime = 0) => ({kid: d.kid,
    rsa: await C.importEncPublic(d.encSpki), bundle: upload.bundle,
    oneTime: upload.one_time[oneTime] ?? null});
  // How many sealed records a device holds under `prefix` of the sessions store.
  const records = async (prefix) => (await store.entriesWithPrefix('sessions', prefix)).length;
  globalThis.u = {SS, LH, R, C, A, store, b64u, unb64u, error, device, target, records};
}"""


@pytest.fixture
async def page(browser: Browser, web_server: str) -> AsyncIterator[Page]:
    async with units_page(browser, web_server, SETUP_JS, None) as page:
        yield page


async def test_prekey_upload_signed_and_kept_before_published(page: Page) -> None:
    """The first upload makes the identity key and signed prekey; every upload's one-time
    prekeys have fresh ids and their private halves are stored (sealed) before it returns;
    the bundle verifies with the device's signing key, and not as another device's."""
    out = await evaluate(page, """
      const d = await u.device();
      const s = new u.SS.DeviceSessions(d);
      const first = await s.prekeyUpload('alice', 3);
      const second = await s.prekeyUpload('alice', 2);
      const sig = await u.C.importSigPublic(d.sigSpki);
      const kept = await u.store.get('sessions', `${d.kid}/prekeys`);
      return {
        ids: [...first.one_time, ...second.one_time].map((k) => k.id),
        sameBundle: JSON.stringify(first.bundle) === JSON.stringify(second.bundle)
          || first.bundle.ik === second.bundle.ik,
        verifies: await u.SS.bundleVerifies(first.bundle, 'alice', d.kid, sig),
        otherUser: await u.SS.bundleVerifies(first.bundle, 'bob', d.kid, sig),
        otherKid: await u.SS.bundleVerifies(first.bundle, 'alice', 'x'.repeat(43), sig),
        tampered: await u.SS.bundleVerifies({...first.bundle, ik: second.one_time[0].key},
          'alice', d.kid, sig),
        kept: Object.keys(kept).sort(),
        bundle: first.bundle, user: 'alice', sigSpki: d.sigSpki, kid: d.kid,
      };""")
    assert out["ids"] == [1, 2, 3, 4, 5]
    assert out["sameBundle"] is True
    assert out["verifies"] is True
    assert [out["otherUser"], out["otherKid"], out["tampered"]] == [False, False, False]
    assert out["kept"] == ["ct", "iv", "v"]
    # The SDK takes the page's bundle as the device's.
    assert bundle_verifies(out["bundle"], "alice", out["kid"], out["sigSpki"])


async def test_two_tabs_sealing_at_once_never_reuse_a_state(page: Page) -> None:
    """Two DeviceSessions of one device (two tabs) seal to the same peer at once: every
    entry has its own message number, each carries the X3DH header until the peer answers,
    and the peer opens all of them, in any order."""
    out = await evaluate(page, """
      const alice = await u.device();
      const bob = await u.device();
      const tab1 = new u.SS.DeviceSessions(alice);
      const tab2 = new u.SS.DeviceSessions(alice);
      const peer = new u.SS.DeviceSessions(bob);
      await tab1.prekeyUpload('alice', 1);
      const to = await u.target(bob, await peer.prekeyUpload('bob', 2));
      const keys = Array.from({length: 6}, () => u.C.randomBytes(32));
      const sealed = await Promise.all(keys.map((k, i) => (i % 2 ? tab2 : tab1).seal(k, [to])));
      const entries = sealed.map((e) => e[0]);
      const opened = [];
      for (const i of [5, 0, 3, 1, 4, 2]) {
        opened.push(u.b64u(await peer.open(alice.kid, entries[i])) === u.b64u(keys[i]));
      }
      return {
        ns: entries.map((e) => e.h.n).sort(), dhs: new Set(entries.map((e) => e.h.dh)).size,
        pre: entries.map((e) => e.pre && e.pre.ek), opk: entries[0].pre.opk, opened,
        held: await u.records(`${alice.kid}/peer/`),
      };""")
    assert out["ns"] == [0, 1, 2, 3, 4, 5]
    assert out["dhs"] == 1 and len(set(out["pre"])) == 1 and out["pre"][0]
    assert out["opk"] == 1
    assert out["opened"] == [True] * 6
    assert out["held"] == 1


async def test_one_message_opened_once_across_tabs_then_read_from_history(page: Page) -> None:
    """Two tabs open the same entry at once, each looking in the local history first (as
    keyring.js does): one ratchet step, both get the key, and it is kept; opening it again
    without the history is key_gone (its message key is gone), and the kept record holds
    no plaintext."""
    out = await evaluate(page, """
      const alice = await u.device();
      const bob = await u.device();
      const sender = new u.SS.DeviceSessions(alice);
      await sender.prekeyUpload('alice', 0);
      const tab1 = new u.SS.DeviceSessions(bob);
      const tab2 = new u.SS.DeviceSessions(bob);
      const to = await u.target(bob, await tab1.prekeyUpload('bob', 1));
      const key = u.C.randomBytes(32);
      const [entry] = await sender.seal(key, [to]);
      const history = new u.LH.LocalHistory('bob-user');
      const frame = {type: 'message', id: 'm1', sender: 'alice-user', room: 'a.b', kind: 'text',
        body: {room: 'a.b', secret: 'plain words'}, ts: 1, cursor: '0'.repeat(31) + '1'};
      let steps = 0; // ratchet steps taken: keep() runs once per message opened
      const opts = {kept: () => history.key('a.b', 'hash1'), keep: async (k) => {
        steps += 1;
        return [await history.entry(frame, 'hash1', k)];
      }};
      const both = await Promise.all([tab1.open(alice.kid, entry, opts),
        tab2.open(alice.kid, entry, opts)]);
      const record = await u.store.get('history', 'bob-user/a.b/hash1');
      const kept = await history.get('a.b', 'hash1');
      return {
        both: both.map((k) => u.b64u(k) === u.b64u(key)), steps,
        again: await u.error(tab2.open(alice.kid, entry)),
        keptFrame: kept.frame, keptKey: u.b64u(kept.key) === u.b64u(key),
        keys: Object.keys(await history.keys()),
        plain: new TextDecoder('latin1').decode(record.ct).includes('plain words'),
        oneTime: (await u.A.read('sessions', `${bob.kid}/prekeys`)).one_time,
      };""")
    assert out["both"] == [True, True] and out["steps"] == 1
    assert out["again"] == "key_gone"
    assert out["keptKey"] is True and out["keptFrame"]["cursor"].endswith("1")
    assert out["keys"] == ["hash1"]
    assert out["plain"] is False
    assert out["oneTime"] == {}  # the one-time prekey went with the message it opened


async def test_prekey_reused_or_unknown_named_and_nothing_changes(page: Page) -> None:
    """A second sender whose X3DH used a one-time prekey already used (a server handing it
    out twice) gets prekey_gone, as does a signed prekey this device never made; no session
    is kept for them, and a message with no session and no X3DH header is no_session."""
    out = await evaluate(page, """
      const [alice, carol, bob] = [await u.device(), await u.device(), await u.device()];
      const a = new u.SS.DeviceSessions(alice);
      const c = new u.SS.DeviceSessions(carol);
      const b = new u.SS.DeviceSessions(bob);
      await a.prekeyUpload('alice', 0);
      await c.prekeyUpload('carol', 0);
      const upload = await b.prekeyUpload('bob', 1);
      const to = await u.target(bob, upload);
      const [first] = await a.seal(u.C.randomBytes(32), [to]);
      await b.open(alice.kid, first);
      const [twice] = await c.seal(u.C.randomBytes(32), [to]);
      const reused = await u.error(b.open(carol.kid, twice));
      const unknown = {...twice, pre: {...twice.pre, spk: 7, opk: null}};
      const forged = await u.error(b.open(carol.kid, unknown));
      const [later] = await a.seal(u.C.randomBytes(32), [to]);
      const none = await u.error(b.open(carol.kid, {...later, pre: null}));
      return {reused, forged, none,
        carol: await u.store.get('sessions', `${bob.kid}/peer/${carol.kid}`) ?? null};""")
    assert out == {"reused": "prekey_gone", "forged": "prekey_gone", "none": "no_session",
                   "carol": None}


async def test_signed_prekey_rotates_weekly_and_old_ones_still_answer(page: Page) -> None:
    """A week on, the next upload signs a new signed prekey (id + 1); a message built on a
    bundle claimed before still opens (the replaced key is kept), until two more rotations
    have passed: then it is prekey_gone."""
    out = await evaluate(page, """
      const [alice, bob] = [await u.device(), await u.device()];
      const a = new u.SS.DeviceSessions(alice);
      const b = new u.SS.DeviceSessions(bob);
      await a.prekeyUpload('alice', 0);
      const t0 = Date.now();
      const week = u.SS.SPK_ROTATE_MS + 1;
      const old = await b.prekeyUpload('bob', 0, t0);
      const due = [await b.spkDue(t0), await b.spkDue(t0 + week)];
      const rotated = await b.prekeyUpload('bob', 0, t0 + week);
      const [early] = await a.seal(u.C.randomBytes(32), [await u.target(bob, old)]);
      const opened = await u.error(b.open(alice.kid, early));
      await b.prekeyUpload('bob', 0, t0 + 2 * week);
      await b.prekeyUpload('bob', 0, t0 + 3 * week);
      const carol = await u.device();
      const c = new u.SS.DeviceSessions(carol);
      await c.prekeyUpload('carol', 0);
      const [late] = await c.seal(u.C.randomBytes(32), [await u.target(bob, old)]);
      return {due, ids: [old.bundle.spk.id, rotated.bundle.spk.id],
        sameIk: old.bundle.ik === rotated.bundle.ik, opened,
        late: await u.error(b.open(carol.kid, late))};""")
    assert out == {"due": [False, True], "ids": [1, 2], "sameIk": True, "opened": None,
                   "late": "prekey_gone"}


async def test_both_start_at_once_each_holds_two_and_they_converge(page: Page) -> None:
    """Sesame: both devices start a session with the other at the same moment; each opens the
    other's first message (two sessions each), and the exchange that follows opens every
    message on the session that last opened one."""
    out = await evaluate(page, """
      const [alice, bob] = [await u.device(), await u.device()];
      const a = new u.SS.DeviceSessions(alice);
      const b = new u.SS.DeviceSessions(bob);
      const toBob = await u.target(bob, await b.prekeyUpload('bob', 2));
      const toAlice = await u.target(alice, await a.prekeyUpload('alice', 2));
      const [ab] = await a.seal(u.C.randomBytes(32), [toBob]);
      const [ba] = await b.seal(u.C.randomBytes(32), [toAlice]);
      await a.open(bob.kid, ba);
      await b.open(alice.kid, ab);
      let ok = 0;
      for (let i = 0; i < 6; i += 1) {
        const [from, to, fromKid, toT] = i % 2
          ? [b, a, bob.kid, toAlice] : [a, b, alice.kid, toBob];
        const key = u.C.randomBytes(32);
        const [e] = await from.seal(key, [toT]);
        if (u.b64u(await to.open(fromKid, e)) === u.b64u(key)) ok += 1;
      }
      const sessions = await u.A.read('sessions', `${alice.kid}/peer/${bob.kid}`);
      const records = [await u.records(`${alice.kid}/peer/${bob.kid}`),
        await u.records(`${bob.kid}/peer/${alice.kid}`)];
      return {ok, records, count: sessions.length};""")
    assert out == {"ok": 6, "records": [1, 1], "count": 2}


async def test_page_and_sdk_sessions_open_each_other(page: Page, tmp_path: Path) -> None:
    """The SDK's DeviceSessions seals to the page's bundle and the page's DeviceSessions
    opens it (responding to X3DH), then seals back on that session and the SDK opens it:
    one format, one state machine, on both sides."""
    sdk_device = crypto.DeviceKeys.generate()
    sdk = DeviceSessions(Vault(tmp_path, "sessions", "pass phrase"))
    sdk_upload = sdk.prekey_upload(sdk_device, "sdk-user", 1, int(time.time() * 1000))
    page_side: dict[str, Any] = await evaluate(page, """
      const d = await u.device();
      globalThis.dev = d;
      globalThis.s = new u.SS.DeviceSessions(d);
      const upload = await s.prekeyUpload('web-user', 1);
      return {upload, kid: d.kid, sigSpki: d.sigSpki, encSpki: d.encSpki};""")
    assert bundle_verifies(page_side["upload"]["bundle"], "web-user", page_side["kid"],
                           page_side["sigSpki"])
    key = b"k" * 32
    target = Target(page_side["kid"], crypto.load_rsa_public(page_side["encSpki"]),
                    page_side["upload"]["bundle"], page_side["upload"]["one_time"][0])
    [entry] = sdk.seal(key, [target])
    got = await page.evaluate("""async ([kid, entry, upload, encSpki]) => {
      const u = globalThis.u;
      const opened = u.b64u(await s.open(kid, entry));
      const back = await s.seal(u.unb64u(opened), [{kid, rsa: await u.C.importEncPublic(encSpki),
        bundle: upload.bundle, oneTime: null}]);
      return {opened, back};
    }""", [sdk_device.kid, entry, sdk_upload, sdk_device.enc_spki])
    assert crypto.unb64u(got["opened"]) == key
    [back] = got["back"]
    assert back["pre"] is None and "h" in back  # the page answers on the session it got
    assert sdk.open(page_side["kid"], back) == key
