"""Two browsers chat end to end: sign up, befriend, text and a picture, history, at rest."""

from __future__ import annotations

import base64
from pathlib import Path

import bson
import pymongo
from playwright.async_api import Browser, expect
from support import Gateway, Stack, unique_name
from webclient import (
    accept_friend,
    friend_button,
    image_loaded,
    message,
    open_chat,
    open_tab,
    own_message,
    png,
    request_friend,
    screenshot,
    send_image,
    send_text,
    sign_up,
    texts,
    warnings,
)

DEVICE_KEYS_JS = """async (userId) => {
  const store = await import('/store.js');
  const d = await store.get('devices', userId);
  const describe = (k) => ({extractable: k.extractable, type: k.type, usages: k.usages,
    name: k.algorithm.name, bits: k.algorithm.modulusLength || null,
    e: k.algorithm.publicExponent ? Array.from(k.algorithm.publicExponent) : null,
    hash: k.algorithm.hash ? k.algorithm.hash.name : null,
    curve: k.algorithm.namedCurve || null});
  return {enc: describe(d.enc), sig: describe(d.sig), kid: d.kid};
}"""


async def test_exchange_text_and_image_between_browsers_stores_only_ciphertext(
        gw: Gateway, stack: Stack, browser: Browser,
        mongo: pymongo.MongoClient[dict[str, object]], tmp_path: Path) -> None:
    """Two browsers befriend and exchange text and a PNG, a reload shows the decrypted
    history, both see one safety number, and MongoDB holds none of the plaintext."""
    alice, bob = await open_tab(browser, gw.http), await open_tab(browser, gw.http)
    await screenshot(alice, "signup.png")
    na, nb = unique_name("alice"), unique_name("bob")
    await sign_up(alice, na)
    await sign_up(bob, nb)

    # Each profile made its own device: non-extractable RSA-OAEP 2048 / ECDSA P-256 keys.
    uid = await alice.page.evaluate("JSON.parse(localStorage.getItem('duet.session')).userId")
    keys = await alice.page.evaluate(DEVICE_KEYS_JS, uid)
    assert keys["enc"] == {"extractable": False, "type": "private", "usages": ["decrypt"],
                           "name": "RSA-OAEP", "bits": 2048, "e": [1, 0, 1],
                           "hash": "SHA-256", "curve": None}
    assert keys["sig"] == {"extractable": False, "type": "private", "usages": ["sign"],
                           "name": "ECDSA", "bits": None, "e": None, "hash": None,
                           "curve": "P-256"}

    await request_friend(alice, nb)
    await accept_friend(bob, na)
    await expect(friend_button(alice, nb)).to_be_visible()
    await open_chat(alice, nb)
    await open_chat(bob, na)

    hello = f"hello {nb} — ünïcödé ✓ {unique_name('t')}"
    reply = f"hi {na}, got it {unique_name('t')}"
    await send_text(alice, hello)
    await expect(message(bob, hello)).to_be_visible()
    await send_text(bob, reply)
    await expect(message(alice, reply)).to_be_visible()
    # Bob has the conversation open: Alice's message is read (through stored, delivered).
    await expect(own_message(alice, hello)).to_have_attribute("data-state", "read")
    await expect(own_message(alice, hello).locator(".ticks")).to_have_text("✓✓")

    picture = png(180, 112, (230, 120, 40))
    path = tmp_path / "sunset.png"
    path.write_bytes(picture)
    await send_image(alice, path)
    for tab in (alice, bob):
        info = await image_loaded(tab, "#messages li.msg img.picture")
        assert info["src"].startswith("blob:") and (info["width"], info["height"]) == (180, 112)
    last = f"see you soon {unique_name('t')}"
    await send_text(bob, last)
    await expect(message(alice, last)).to_be_visible()

    # A reload shows the history, verified and decrypted again, with nothing twice.
    await bob.page.reload()
    await expect(bob.locator("#conn-state")).to_have_attribute("data-state", "connected")
    await expect(message(bob, last)).to_be_visible()
    assert await texts(bob) == [hello, reply, last]
    info = await image_loaded(bob, "#messages li.msg img.picture")
    assert (info["width"], info["height"]) == (180, 112)
    assert await warnings(bob) == [] and await warnings(alice) == []

    # The safety number is the same on both sides.
    await alice.locator("#show-safety").click()
    await bob.locator("#show-safety").click()
    number = await alice.locator("#safety-number").text_content()
    assert number and len(number.split()) == 12
    await expect(bob.locator("#safety-number")).to_have_text(number)

    await screenshot(alice, "conversation.png")  # `make screenshots` copies it into docs/

    # Nothing in the stack's database contains any plaintext.
    db = mongo[stack.db_name]
    needles = [s.encode() for s in (hello, reply, last, "ünïcödé", "sunset.png")]
    needles += [picture, base64.b64encode(picture)[:40],
                base64.urlsafe_b64encode(picture).rstrip(b"=")[:40]]
    stored = 0
    for name in db.list_collection_names():
        for doc in db[name].find():
            raw = bson.encode(doc)
            stored += name == "messages"
            for needle in needles:
                assert needle not in raw, f"plaintext {needle[:20]!r} in {name}"
    assert stored >= 4
    assert alice.errors == [] and bob.errors == []
    assert alice.dialogs == [] and bob.dialogs == []
