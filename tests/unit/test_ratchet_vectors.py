"""The committed session vectors (contracts/vectors/ratchet-v1.json): the bundle verifies and
the forged one does not, X3DH gives the same secret from both sides, and replaying the
conversation with the listed keys reproduces every header and ciphertext byte for byte and
opens every delivery to its plaintext or its named error. The browser runs the same file
(tests/e2e/test_web_ratchet_units.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from client import crypto
from client.ratchet import Header, RatchetError, Session, x3dh_initiate, x3dh_respond
from client.ratchetvectors import DEFAULT_PATH, replay_keys
from contracts.prekeys import Bundle, bundle_signing_input

V = json.loads(DEFAULT_PATH.read_text())


def priv(pair: dict[str, str]) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(crypto.unb64u(pair["private"]))


def pub(pair: dict[str, str]) -> bytes:
    return crypto.unb64u(pair["public"])


def verifies(bundle: dict) -> bool:
    signer = crypto.load_ec_public(V["bob"]["sig_spki"])
    return crypto.verify(signer, bundle_signing_input(bundle), crypto.unb64u(bundle["sig"]))


def test_bundle_signature_verifies_and_the_forged_one_does_not() -> None:
    """The bundle's signing input is the vector's, it verifies under Bob's device signing
    key, it is a valid Bundle; a bundle with another signed prekey under the same
    signature does not verify."""
    assert crypto.b64u(bundle_signing_input(V["bundle"])) == V["bundle_signing_input_b64u"]
    Bundle.model_validate(V["bundle"])
    assert verifies(V["bundle"])
    assert not verifies(V["forged_bundle"])


def test_x3dh_both_sides_give_the_vector_secret() -> None:
    """Initiator and responder derive the vector's SK and AD, and the SK without the
    one-time prekey."""
    a, b = V["alice"], V["bob"]
    sk, ad = x3dh_initiate(priv(a["ik"]), priv(a["ek"]), pub(b["ik"]), pub(b["spk"]),
                           pub(b["opk"]))
    assert (crypto.b64u(sk), crypto.b64u(ad)) == (V["x3dh"]["sk_b64u"], V["x3dh"]["ad_b64u"])
    assert (sk, ad) == x3dh_respond(priv(b["ik"]), priv(b["spk"]), priv(b["opk"]), pub(a["ik"]),
                                    pub(a["ek"]))
    sk2, _ = x3dh_initiate(priv(a["ik"]), priv(a["ek"]), pub(b["ik"]), pub(b["spk"]), None)
    assert crypto.b64u(sk2) == V["x3dh"]["sk_without_opk_b64u"]
    assert x3dh_respond(priv(b["ik"]), priv(b["spk"]), None, pub(a["ik"]), pub(a["ek"]))[0] == sk2


def test_replaying_the_conversation_reproduces_every_byte() -> None:
    """Each send gives the vector's header and ciphertext; each delivery opens to its
    plaintext or raises its named error, leaving the session as it was."""
    sk, ad = crypto.unb64u(V["x3dh"]["sk_b64u"]), crypto.unb64u(V["x3dh"]["ad_b64u"])
    r = V["ratchet"]
    keys: dict[str, Iterator[X25519PrivateKey]] = {
        who: replay_keys(r["keys"][who]) for who in ("alice", "bob")}
    sessions = {
        "alice": Session.initiate(sk, ad, pub(V["bob"]["spk"]), V["x3dh"]["prekey"],
                                  lambda: next(keys["alice"])),
        "bob": Session.respond(sk, ad, priv(V["bob"]["spk"]), lambda: next(keys["bob"]))}
    errors = 0
    for event in r["events"]:
        session = sessions[event["by"]]
        if event["op"] == "send":
            message = r["messages"][event["msg"]]
            header, ct = session.encrypt(crypto.unb64u(message["pt_b64u"]))
            assert header.wire() == message["header"]
            assert crypto.b64u(ct) == message["ct_b64u"]
        elif "error" in event:
            before = json.dumps(session.state)
            with pytest.raises(RatchetError) as caught:
                session.decrypt(Header.from_wire(event["header"]),
                                crypto.unb64u(event["ct_b64u"]))
            assert caught.value.code == event["error"]
            assert json.dumps(session.state) == before
            errors += 1
        else:
            message = r["messages"][event["msg"]]
            plaintext = session.decrypt(Header.from_wire(message["header"]),
                                        crypto.unb64u(message["ct_b64u"]))
            assert crypto.b64u(plaintext) == message["pt_b64u"]
    assert errors == 3
    assert sessions["alice"].state["prekey"] is None  # heard back
    for who in ("alice", "bob"):
        assert next(keys[who], None) is None  # every listed key was used
    sent = {who: sum(m["from"] == who for m in r["messages"]) for who in ("alice", "bob")}
    assert sent == {"alice": 12, "bob": 12}
