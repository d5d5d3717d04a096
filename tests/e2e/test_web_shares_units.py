"""The web client's shares.js (history shares) unit-tested in Chromium against the shared
vector (contracts/vectors/devicelist-v1.json `history_share`, which the SDK opens in
tests/unit): the page opens it to its keys, refuses it from another signer, seals shares
the SDK opens, and verify.js opens a message with a shared key where it holds none.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from webclient import evaluate, units_page

from client import crypto
from client.errors import CryptoError
from client.listvectors import DEFAULT_PATH
from client.shares import open_share
from contracts.devicelist import SHARE_KEYS, share_signing_input
from contracts.envelope import sig_is_canonical

VECTOR = json.loads(DEFAULT_PATH.read_text())["history_share"]

SETUP_JS = """async (v) => {
  const S = await import('/shares.js');
  const C = await import('/crypto.js');
  const r = v.receiver;
  const receiver = await C.importDevice({encPkcs8Pem: r.enc_private_pkcs8_pem,
    sigPkcs8Pem: r.sig_private_pkcs8_pem, encSpki: r.enc_spki, sigSpki: r.sig_spki});
  const {b64u} = await import('/codec.js');
  const b64 = (keys) => Object.fromEntries(Object.entries(keys).map(([h, k]) => [h, b64u(k)]));
  globalThis.u = {S, C, v, receiver, b64, b64u, copy: (x) => JSON.parse(JSON.stringify(x))};
}"""


@pytest.fixture
async def page(browser: Browser, web_server: str) -> AsyncIterator[Page]:
    """A blank page with shares.js and the vector's receiving device loaded."""
    async with units_page(browser, web_server, SETUP_JS, VECTOR) as page:
        yield page


async def run(page: Page, body: str) -> Any:
    return await evaluate(page, f"const S = u.S; {body}")


async def test_open_share_vector_to_its_keys(page: Page) -> None:
    """The vector share opens, for its receiving device and signed by its sender, to exactly
    its keys, over the vector's signing input."""
    out = await run(page, """
      const signer = await u.C.importSigPublic(u.v.sender.sig_spki);
      const keys = await S.openShare(u.v.share, {user: u.v.share.user, device: u.receiver, signer});
      return {keys: u.b64(keys), input: u.b64u(S.shareSigningInput(u.v.share))};""")
    assert out["keys"] == VECTOR["keys_b64u"]
    assert out["input"] == VECTOR["signing_input_b64u"]


async def test_open_share_refuses_other_signer_device_or_user(page: Page) -> None:
    """A share is refused when checked against a signer other than its sender, when it names
    another receiving device or user, and when a signed field was changed."""
    out = await run(page, """
      const share = u.v.share;
      const device = u.receiver;
      const sender = await u.C.importSigPublic(u.v.sender.sig_spki);
      const other = await u.C.importSigPublic(u.v.receiver.sig_spki);
      const attempts = {
        otherSigner: () => S.openShare(share, {user: share.user, device, signer: other}),
        otherUser: () => S.openShare(share, {user: 'someone else', device, signer: sender}),
        otherDevice: () => S.openShare({...u.copy(share), to: u.v.sender.kid},
                                       {user: share.user, device, signer: sender}),
        otherPart: () => S.openShare({...u.copy(share), part: 1},
                                     {user: share.user, device, signer: sender}),
      };
      const got = {};
      for (const [name, attempt] of Object.entries(attempts)) {
        try {
          await attempt();
          got[name] = 'opened';
        } catch (err) {
          got[name] = [err instanceof S.ShareError, err.message];
        }
      }
      return got;""")
    assert out == {
        "otherSigner": [True, "a history share not signed by the device it names"],
        "otherUser": [True, "a history share for another device"],
        "otherDevice": [True, "a history share for another device"],
        "otherPart": [True, "a history share not signed by the device it names"],
    }


async def test_seal_shares_in_browser_opened_by_python(page: Page) -> None:
    """Keys the page seals for a device the SDK holds come out of client.shares.open_share as
    they went in, in parts of SHARE_KEYS, each signed (low s) by the page's device."""
    laptop = crypto.DeviceKeys.generate()
    user = VECTOR["share"]["user"]
    out = await run(page, f"""
      const sender = await u.C.generateDevice();
      const keys = {{}};
      for (let i = 0; i < {SHARE_KEYS + 1}; i += 1) {{
        keys[`hash-${{String(i).padStart(4, '0')}}`] = u.C.randomBytes(32);
      }}
      const toKey = await u.C.importEncPublic({json.dumps(laptop.enc_spki)});
      const shares = await S.sealShares({{user: {json.dumps(user)}, sender, toKid:
        {json.dumps(laptop.kid)}, toKey, keys}});
      return {{shares, keys: u.b64(keys), kid: sender.kid, sig: sender.sigSpki}};""")
    shares = out["shares"]
    assert [s["part"] for s in shares] == [0, 1]
    signer = crypto.load_ec_public(out["sig"])
    opened: dict[str, str] = {}
    for share in shares:
        assert share["from"] == out["kid"] and share["to"] == laptop.kid
        assert sig_is_canonical(share["sig"])
        assert crypto.verify(signer, share_signing_input(share), crypto.unb64u(share["sig"]))
        part = open_share(share, user=user, device=laptop, signer=signer)
        opened.update({h: crypto.b64u(k) for h, k in part.items()})
    assert len(opened) == SHARE_KEYS + 1 and opened == out["keys"]
    with pytest.raises(CryptoError):
        open_share(shares[0], user=user, device=laptop,
                   signer=crypto.load_ec_public(VECTOR["sender"]["sig_spki"]))


async def test_open_verified_uses_shared_key_where_message_holds_none(page: Page) -> None:
    """verify.js opens a message that holds no key for the reader with the content key the
    lookup shares for its hash; with none found it is not_for_device, and a signal never
    asks the lookup."""
    out = await run(page, """
      const V = await import('/verify.js');
      const E = await import('/envelope.js');
      const sender = await u.C.generateDevice();
      const env = await E.sealEnvelope({room: 'r', sender: 'alice', device: sender, seq: 1,
        prev: '', kind: 'text', ...E.textContent('from before'),
        recipients: [{kid: sender.kid, key: await E.importEncPublic(sender.encSpki)}]});
      const key = await E.unwrapContentKey(env, sender);
      const hash = await E.envelopeHash(env);
      const asked = [];
      const shared = async (e) => {
        asked.push(await E.envelopeHash(e));
        return asked.at(-1) === hash ? key : null;
      };
      const frame = (body, kind = 'text') => ({type: 'message', room: 'r', sender: 'alice',
        id: 'm', kind, body});
      const found = await V.openVerified(frame(env), u.receiver, shared);
      const none = await V.openVerified(frame(env), u.receiver, async () => null);
      const without = await V.openVerified(frame(env), u.receiver);
      const before = asked.length;
      const signal = await V.openVerified(frame({...env, kind: 'receipt'}, 'receipt'),
                                          u.receiver, shared);
      return {
        text: found.alert === null ? new TextDecoder().decode(found.content.data) : found.alert,
        none: none.alert.kind, without: without.alert.kind, signal: signal.alert.kind,
        askedForSignal: asked.length - before,
      };""")
    assert out == {"text": "from before", "none": "not_for_device", "without": "not_for_device",
                   "signal": "not_for_device", "askedForSignal": 0}
