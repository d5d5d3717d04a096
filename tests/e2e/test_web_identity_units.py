"""The web client's identity.js, unit-tested in Chromium against the shared device-list
vectors (contracts/vectors/devicelist-v1.json, which the SDK checks in tests/unit): list
signatures, link codes, the v2 safety number, and judge(), which decides what a fetched list
is worth against the one pinned.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from webclient import evaluate, units_page

from client import crypto
from client.identity import verify_list
from client.listvectors import DEFAULT_PATH
from contracts.envelope import sig_is_canonical

VECTORS = json.loads(DEFAULT_PATH.read_text())

SETUP_JS = """async (v) => {
  const I = await import('/identity.js');
  const C = await import('/crypto.js');
  const identity = await crypto.subtle.importKey('pkcs8',
    C.pemToDer(v.identity.private_pkcs8_pem), C.ECDSA_P256, false, ['sign']);
  const valid = v.cases.find((c) => c.name === 'valid');
  globalThis.u = {I, C, v, identity, valid, copy: (x) => JSON.parse(JSON.stringify(x))};
}"""


@pytest.fixture
async def page(browser: Browser, web_server: str) -> AsyncIterator[Page]:
    """A blank page with identity.js and the vector identity key loaded."""
    async with units_page(browser, web_server, SETUP_JS, VECTORS) as page:
        yield page


async def run(page: Page, body: str) -> Any:
    return await evaluate(page, f"const I = u.I; {body}")


async def test_verify_list_vectors_only_valid_accepted(page: Page) -> None:
    """The valid list verifies with its signing input; a changed version, a high-s or foreign
    signature and another user are refused, each with its reason."""
    out = await run(page, """
      const got = [];
      for (const c of u.v.cases) {
        try {
          const list = await I.verifyList(c.signed, c.user);
          got.push([c.name, true, list.version]);
        } catch (err) {
          got.push([c.name, false, err.message]);
        }
      }
      return {got, input: Array.from(I.listSigningInput(u.valid.signed.list))};""")
    assert [[name, ok] for name, ok, _ in out["got"]] == [
        [c["name"], c["valid"]] for c in VECTORS["cases"]]
    reasons = {name: why for name, _, why in out["got"]}
    assert reasons == {
        "valid": 3,
        "version-changed": "the device list is not signed by its identity key",
        "high-s-signature": "the device list’s signature is not canonical",
        "another-user": "a device list of another user or version",
        "signed-by-another-key": "the device list is not signed by its identity key",
    }
    assert bytes(out["input"]) == crypto.unb64u(VECTORS["signing_input_b64u"])


async def test_sign_list_in_browser_verified_by_python(page: Page) -> None:
    """A list the page signs with the vector identity key (low s, every time) is one the SDK
    verifies, and an out-of-shape list is refused before its signature is checked."""
    out = await run(page, """
      const sigs = [];
      for (let i = 0; i < 12; i += 1) {
        const list = {...u.copy(u.valid.signed.list), version: 10 + i};
        sigs.push(await I.signList(u.identity, list));
      }
      const bad = await I.signList(u.identity, {...u.copy(u.valid.signed.list), devices: 'x'});
      let refused = null;
      try {
        await I.verifyList(bad, u.valid.user);
      } catch (err) {
        refused = err.message;
      }
      return {sigs, refused};""")
    for signed in out["sigs"]:
        assert sig_is_canonical(signed["sig"])
        assert verify_list(signed, VECTORS["cases"][0]["user"])["version"] >= 10
    assert out["refused"] == "the device list is out of shape"


async def test_link_codes_and_safety_number_match_vectors(page: Page) -> None:
    """Link codes and the v2 safety number are the vectors', whichever user comes first, and
    the identity fingerprint is the vector's."""
    out = await run(page, """
      const s = u.v.safety_number;
      return {
        codes: await Promise.all(u.v.link_codes.map((c) => I.linkCode(c.kid, c.sid))),
        number: await I.safetyNumber(s.a, s.a_identity, s.b, s.b_identity),
        reversed: await I.safetyNumber(s.b, s.b_identity, s.a, s.a_identity),
        fingerprint: await I.identityFingerprint(u.v.identity.spki),
      };""")
    assert out["codes"] == [c["code"] for c in VECTORS["link_codes"]]
    assert out["number"] == out["reversed"] == VECTORS["safety_number"]["number"]
    assert out["fingerprint"] == VECTORS["identity"]["fingerprint"]


async def test_judge_pins_first_list_then_refuses_other_identity_and_rollback(
        page: Page) -> None:
    """First sight pins; a newer list by the pinned key is used; another identity keeps the
    pin and names the new list; an older version or a list gone or forged keeps the pin with
    bad_device_list; with no pin, nothing is trusted from a bad list."""
    out = await run(page, """
      const user = u.valid.user;
      const list = u.valid.signed.list;
      const pin = {list, verified: true};
      const newer = await I.signList(u.identity, {...u.copy(list), version: list.version + 1});
      const older = await I.signList(u.identity, {...u.copy(list), version: list.version - 1});
      const other = await I.generateIdentity();
      const reset = await I.signList(other.key, {...u.copy(list), identity: other.spki,
                                                 version: 1});
      const forged = u.v.cases.find((c) => c.name === 'signed-by-another-key').signed;
      const brief = (j) => ({use: j.use && j.use.version, identity: j.use && j.use.identity,
        alert: j.alert && j.alert.kind, changedTo: j.changedTo && j.changedTo.identity});
      return {
        first: brief(await I.judge(null, u.valid.signed, user)),
        same: brief(await I.judge(pin, u.valid.signed, user)),
        newer: brief(await I.judge(pin, newer, user)),
        other: brief(await I.judge(pin, reset, user)),
        older: brief(await I.judge(pin, older, user)),
        gone: brief(await I.judge(pin, null, user)),
        forged: brief(await I.judge(pin, forged, user)),
        forgedFirst: brief(await I.judge(null, forged, user)),
        noneYet: brief(await I.judge(null, null, user)),
        otherSpki: other.spki,
      };""")
    spki = VECTORS["identity"]["spki"]
    pinned = {"use": 3, "identity": spki}
    assert out["first"] == {**pinned, "alert": None, "changedTo": None}
    assert out["same"] == {**pinned, "alert": None, "changedTo": None}
    assert out["newer"] == {"use": 4, "identity": spki, "alert": None, "changedTo": None}
    assert out["other"] == {**pinned, "alert": "identity_changed",
                            "changedTo": out["otherSpki"]}
    for case in ("older", "gone", "forged"):
        assert out[case] == {**pinned, "alert": "bad_device_list", "changedTo": None}, case
    assert out["forgedFirst"] == {"use": None, "identity": None, "alert": "bad_device_list",
                                  "changedTo": None}
    assert out["noneYet"] == {"use": None, "identity": None, "alert": None, "changedTo": None}


async def test_list_edits_add_and_revoke_devices_with_next_version(page: Page) -> None:
    """Approving a device adds it (once) at the next version; revoking moves it to the revoked
    ones with when; revoking a device not listed is refused."""
    out = await run(page, """
      const list = u.valid.signed.list;
      const key = {kid: 'k', sid: 's', enc: 'e', sig: 'g', label: 'phone',
                   created_at: 1, proof: 'x'};
      const added = I.withDevice(list, key, 50);
      const again = I.withDevice(added, key, 60);
      const revoked = I.withRevoked(added, 'k', 70);
      let refused = null;
      try {
        I.withRevoked(list, 'nope', 80);
      } catch (err) {
        refused = err.message;
      }
      const first = I.firstList('me', 'spki', key, 5);
      return {added, again, revoked, refused, first};""")
    base = VECTORS["cases"][0]["signed"]["list"]
    new = {"kid": "k", "sid": "s", "enc": "e", "sig": "g", "label": "phone", "added": 50}
    assert out["added"] == {**base, "version": 4, "devices": [*base["devices"], new]}
    assert out["again"]["version"] == 5 and [d["kid"] for d in out["again"]["devices"]] == [
        base["devices"][0]["kid"], "k"]
    assert out["revoked"] == {**base, "version": 5, "devices": base["devices"],
                              "revoked": [*base["revoked"], {**new, "revoked_at": 70}]}
    assert out["refused"] == "that device is not in the list"
    assert out["first"] == {"v": 1, "user": "me", "identity": "spki", "version": 1,
                            "devices": [{**new, "added": 5}], "revoked": []}
