"""The browser's envelope (v2, and v1 which stays readable) against the Python SDK's: live,
in history, and on the vectors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from playwright.async_api import Browser, expect
from support import Gateway, unique_name
from webclient import (
    STORED,
    Inbox,
    image_loaded,
    message,
    open_chat,
    open_tab,
    own_message,
    png,
    sdk_friend,
    send_image,
    send_text,
    texts,
    warnings,
)

from client import crypto
from client.envelope import envelope_hash, open_content, signing_input, verify_signature
from client.vectors import VECTORS_DIR
from contracts.envelope import Envelope
from contracts.keys import DeviceKeyIn
from gateway.keys import check_device

FILES = {v: json.loads((VECTORS_DIR / f"envelope-v{v}.json").read_text()) for v in (1, 2)}
PASS = "sdk passphrase"
SAFETY_NUMBER = re.compile(r"^(\d{5} ){11}\d{5}$")

VECTORS_JS = """async (v) => {
  const m = await import('/envelope.js');
  const dev = {};
  const out = {devices: {}, cases: []};
  for (const name of ['alice', 'bob']) {
    const d = v.devices[name];
    dev[name] = await m.importDevice({encPkcs8Pem: d.enc_private_pkcs8_pem,
      sigPkcs8Pem: d.sig_private_pkcs8_pem, encSpki: d.enc_spki, sigSpki: d.sig_spki});
    out.devices[name] = {kid: dev[name].kid, sid: dev[name].sid};
  }
  for (const c of v.cases) {
    const env = c.envelope;
    const signer = await m.importSigPublic(v.devices[c.signer].sig_spki);
    const r = {name: c.name, valid: await m.verifySignature(env, signer),
      signingInput: m.b64u(m.signingInput(env)), hash: await m.envelopeHash(env), readers: {}};
    for (const reader of ['alice', 'bob']) {
      try {
        const p = await m.openEnvelope(env, dev[reader]);
        r.readers[reader] = {meta: p.meta, data: m.b64u(p.data),
          encoded: m.b64u(m.encodePlaintext(p.meta, p.data))};
      } catch (e) {
        r.readers[reader] = {error: e.code || String(e)};
      }
    }
    out.cases.push(r);
  }
  const a = v.devices.alice, b = v.devices.bob;
  out.safety = await m.safetyNumber(a.user, [[a.kid, a.sid]], b.user, [[b.kid, b.sid]]);
  out.safetyReversed = await m.safetyNumber(b.user, [[b.kid, b.sid]], a.user, [[a.kid, a.sid]]);
  const last = out.cases.filter((c) => c.valid).pop();
  const recipients = [
    {kid: b.kid, key: await m.importEncPublic(b.enc_spki)},
    {kid: a.kid, key: await m.importEncPublic(a.enc_spki)},
  ];
  out.sealed = await m.sealEnvelope({room: v.room, sender: a.user, device: dev.alice, seq: 4,
    prev: last.hash, kind: 'text', meta: {mime: m.TEXT_MIME},
    data: m.utf8('sealed in the browser — ünïcödé ✓'), recipients});
  // WebCrypto's s is high half the time: every one the page makes must be the low one.
  out.sigs = [];
  for (let i = 0; i < 16; i += 1) {
    const more = await m.sealEnvelope({room: v.room, sender: a.user, device: dev.alice, seq: 5 + i,
      prev: last.hash, kind: 'text', meta: {mime: m.TEXT_MIME}, data: m.utf8(`n${i}`), recipients});
    out.sigs.push(more.sig);
  }
  if (v.device_proof) {
    const p = v.device_proof;
    const input = m.deviceProofInput(p.user, p.upload.enc, p.upload.sig, p.label);
    out.proof = {input: m.b64u(input),
      valid: await m.verify(await m.importSigPublic(p.upload.sig), input, m.unb64u(p.upload.proof)),
      mine: await m.deviceUpload({...dev.alice, encSpki: a.enc_spki, sigSpki: a.sig_spki},
        p.user, p.label)};
  }
  out.canonical = m.canonical({b: [1, 'é', {z: null, a: true, y: false}],
    a: 'x\\u2028\\n"\\\\\\u0001', 'é': -7, '\\ud83d\\ude00': 2, '\\uffff': 3, '': []});
  return out;
}"""


def _device(name: str, version: int = 2) -> crypto.DeviceKeys:
    d = FILES[version]["devices"][name]
    return crypto.DeviceKeys(
        serialization.load_pem_private_key(d["enc_private_pkcs8_pem"].encode(), None),
        serialization.load_pem_private_key(d["sig_private_pkcs8_pem"].encode(), None))


@pytest.mark.parametrize("version", [1, 2])
async def test_verify_envelope_vectors_in_browser_matches_python(gw: Gateway, browser: Browser,
                                                                  version: int) -> None:
    """The page's envelope module verifies, hashes and opens every committed vector (v2, and
    v1 which stays readable) as the SDK does, computes the same safety number, and seals a
    v2 envelope, always with a low-s signature, that the SDK opens."""
    VECTORS = FILES[version]
    tab = await open_tab(browser, gw.http)
    out: dict[str, Any] = await tab.page.evaluate(VECTORS_JS, VECTORS)

    for name in ("alice", "bob"):
        d = VECTORS["devices"][name]
        assert out["devices"][name] == {"kid": d["kid"], "sid": d["sid"]}
    assert [c["name"] for c in out["cases"]] == [c["name"] for c in VECTORS["cases"]]
    for case, got in zip(VECTORS["cases"], out["cases"], strict=True):
        assert got["valid"] is case["signature_valid"], case["name"]
        if not case["signature_valid"]:
            if case["name"] == "tampered-ciphertext":
                assert got["readers"] == {"alice": {"error": "undecryptable"},
                                          "bob": {"error": "undecryptable"}}
            else:  # a signature form v2 refuses: the link is the original's all the same
                assert got["hash"] == VECTORS["cases"][0]["hash"]
            continue
        assert got["signingInput"] == case["signing_input_b64u"]
        assert got["hash"] == case["hash"]
        for reader in case["readers"]:
            assert got["readers"][reader] == {"meta": case["plaintext_meta"],
                                              "data": case["plaintext_data_b64u"],
                                              "encoded": case["plaintext_encoded_b64u"]}
    assert out["safety"] == out["safetyReversed"] == VECTORS["safety_number"]

    # The browser's own envelope: the right shape, and Python verifies and opens it.
    sealed = out["sealed"]
    Envelope.model_validate(sealed)
    assert [k["kid"] for k in sealed["keys"]] == sorted(k["kid"] for k in sealed["keys"])
    alice_sig = crypto.load_ec_public(VECTORS["devices"]["alice"]["sig_spki"])
    assert verify_signature(sealed, alice_sig)
    assert sealed["prev"] == VECTORS["cases"][2]["hash"] and sealed["seq"] == 4
    for sig in out["sigs"]:
        Envelope.model_validate({**sealed, "sig": sig})  # low-s, canonical: or it raises
    for reader in ("alice", "bob"):
        content = open_content(sealed, _device(reader, version))
        assert content.as_text() == "sealed in the browser — ünïcödé ✓"
        assert content.meta == {"mime": "text/plain;charset=utf-8"}
    assert sealed["v"] == 2 and signing_input(sealed).startswith(b"duet-envelope-v2\n{")
    assert envelope_hash(sealed)

    if version == 2:  # the device proof: the same input, and the gateway takes the page's
        proof = VECTORS["device_proof"]
        assert out["proof"]["input"] == proof["input_b64u"] and out["proof"]["valid"] is True
        mine = DeviceKeyIn.model_validate(out["proof"]["mine"])
        assert check_device(mine, proof["user"]).kid == VECTORS["devices"]["alice"]["kid"]

    # Canonical JSON: key order by code point (U+FFFF before U+1F600), escapes as Python's.
    expected = {"b": [1, "é", {"z": None, "a": True, "y": False}], "a": 'x\u2028\n"\\\x01',
                "é": -7, "\U0001f600": 2, "\uffff": 3, "": []}
    assert out["canonical"] == crypto.canonical(expected).decode()
    assert tab.errors == []


async def test_exchange_messages_between_browser_and_sdk_both_ways(
        gw: Gateway, browser: Browser, tmp_path: Path) -> None:
    """The SDK's history pages into the browser on scroll and the SDK reads the browser's
    text and picture, verified (no alerts) in both directions."""
    tab = await open_tab(browser, gw.http)
    web_name, sdk_name = unique_name("web"), unique_name("sdk")
    async with sdk_friend(tab, gw.http, tmp_path / "sdk", web_name, sdk_name,
                          PASS) as sdk:

        # 30 messages written before the browser looks: the newest page, then older on scroll.
        sent = [f"from sdk {i:02d}" for i in range(1, 31)]
        for text in sent:
            await sdk.send_text(web_name, text)
        await open_chat(tab, sdk_name)
        await expect(message(tab, sent[-1])).to_be_visible()
        shown = await texts(tab)
        assert shown == sent[-len(shown):] and len(shown) < len(sent)
        await tab.locator("#messages").evaluate("el => { el.scrollTop = 0; }")
        await expect(message(tab, sent[0])).to_be_visible()
        assert await texts(tab) == sent
        await expect(tab.locator("#messages li.start")).to_be_visible()

        async with Inbox(sdk, web_name) as inbox:
            await send_text(tab, "hello sdk, from the browser ✓")
            await inbox.wait_texts("hello sdk, from the browser ✓")
            await expect(own_message(tab, "hello sdk, from the browser ✓")).to_have_attribute(
                "data-state", STORED)

            picture = png(40, 24, (40, 140, 220))
            path = tmp_path / "sky.png"
            path.write_bytes(picture)
            await send_image(tab, path)
            await inbox.wait(lambda got: any(m.kind == "image" for m in got))
            [image] = [m for m in inbox.received if m.kind == "image"]
            assert image.content.data == picture
            assert image.content.meta == {"mime": "image/png", "name": "sky.png"}

            await sdk.send_text(web_name, "live from the sdk")
            await expect(message(tab, "live from the sdk")).to_be_visible()
            sdk_picture = png(20, 30, (20, 160, 60))
            await sdk.send_image(web_name, sdk_picture, mime="image/png", name="leaf.png")
            info = await image_loaded(tab, "#messages li.msg.theirs img.picture")
            assert (info["width"], info["height"]) == (20, 30)

            assert [m.text for m in inbox.received] == ["hello sdk, from the browser ✓",
                                                        "[image image/png]"]
            assert inbox.alerts == []
        await tab.locator("#show-safety").click()
        await expect(tab.locator("#safety-number")).to_have_text(SAFETY_NUMBER)
        assert await tab.locator("#safety-number").text_content() == await sdk.safety_number(
            web_name)
    assert await warnings(tab) == []
    assert tab.errors == []

