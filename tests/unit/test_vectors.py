"""The committed envelope test vectors (v2, and v1 which stays readable) open, verify and
chain as they say; v2's signature rule is the gateway's too."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization

from client import crypto
from client.envelope import envelope_hash, open_content, signing_input, verify_signature
from client.errors import CryptoError
from client.vectors import VECTORS_DIR
from contracts.envelope import Envelope

FILES = {v: json.loads((VECTORS_DIR / f"envelope-v{v}.json").read_text()) for v in (1, 2)}
CASES = [(v, c) for v, f in FILES.items() for c in f["cases"]]


def device(name: str, version: int) -> crypto.DeviceKeys:
    d = FILES[version]["devices"][name]
    return crypto.DeviceKeys(
        serialization.load_pem_private_key(d["enc_private_pkcs8_pem"].encode(), None),
        serialization.load_pem_private_key(d["sig_private_pkcs8_pem"].encode(), None))


@pytest.mark.parametrize(("version", "case"), CASES,
                         ids=[f"v{v}-{c['name']}" for v, c in CASES])
def test_vector_case_opens_as_expected(version: int, case: dict) -> None:
    """Signature verdict, signing input, hash and plaintext match the vector."""
    env = case["envelope"]
    assert env["v"] == version
    signer = crypto.load_ec_public(FILES[version]["devices"][case["signer"]]["sig_spki"])
    assert verify_signature(env, signer) is case["signature_valid"]
    if not case["signature_valid"]:
        if case["name"] == "tampered-ciphertext":
            with pytest.raises(CryptoError):
                open_content(env, device("bob", version))
        return
    assert crypto.b64u(signing_input(env)) == case["signing_input_b64u"]
    assert envelope_hash(env) == case["hash"]
    for reader in case["readers"]:
        content = open_content(env, device(reader, version))
        assert content.meta == case["plaintext_meta"]
        assert crypto.b64u(content.data) == case["plaintext_data_b64u"]


@pytest.mark.parametrize("version", [1, 2])
def test_vector_chain_links_each_envelope_to_the_previous(version: int) -> None:
    """Each of alice's envelopes names the hash of the one before it."""
    valid = [c for c in FILES[version]["cases"] if c["signature_valid"]]
    assert [c["envelope"]["seq"] for c in valid] == [1, 2, 3]
    assert valid[0]["envelope"]["prev"] == ""
    for before, after in zip(valid, valid[1:], strict=False):
        assert after["envelope"]["prev"] == before["hash"]


@pytest.mark.parametrize("version", [1, 2])
def test_vector_safety_number_matches(version: int) -> None:
    """Both sides' safety number is the committed one."""
    vectors = FILES[version]
    a, b = vectors["devices"]["alice"], vectors["devices"]["bob"]
    assert crypto.safety_number(a["user"], [(a["kid"], a["sid"])],
                                b["user"], [(b["kid"], b["sid"])]) == vectors["safety_number"]
    assert crypto.safety_number(b["user"], [(b["kid"], b["sid"])],
                                a["user"], [(a["kid"], a["sid"])]) == vectors["safety_number"]


@pytest.mark.parametrize("version", [1, 2])
def test_vector_devices_match_their_fingerprints(version: int) -> None:
    """kid and sid are the SHA-256 fingerprints of the published SPKIs."""
    for name in ("alice", "bob"):
        d, keys = FILES[version]["devices"][name], device(name, version)
        assert (keys.kid, keys.sid, keys.enc_spki, keys.sig_spki) == (
            d["kid"], d["sid"], d["enc_spki"], d["sig_spki"])


def test_v2_device_proof_vector_verifies_as_the_gateway_checks_it() -> None:
    """The committed proof of possession is accepted by the gateway's check, and only for
    the user it names."""
    from contracts.keys import DeviceKeyIn, device_proof_input
    from gateway.errors import InvalidKey
    from gateway.keys import check_device

    vector, alice = FILES[2]["device_proof"], FILES[2]["devices"]["alice"]
    upload = DeviceKeyIn.model_validate(vector["upload"])
    assert crypto.b64u(device_proof_input(vector["user"], upload.enc, upload.sig,
                                          upload.label)) == vector["input_b64u"]
    assert check_device(upload, vector["user"]).kid == alice["kid"]
    with pytest.raises(InvalidKey):
        check_device(upload, FILES[2]["devices"]["bob"]["user"])


def test_v2_signature_forms_are_refused_by_the_gateway_and_change_no_link() -> None:
    """The high-s and re-encoded forms of a valid v2 signature verify as plain ECDSA, but
    the gateway's shape check refuses them, and the chain link (over the signing input)
    is the same as the original's: a server that re-encodes causes no false fork."""
    v2 = {c["name"]: c for c in FILES[2]["cases"]}
    good = v2["alice-1-text"]
    signer = crypto.load_ec_public(FILES[2]["devices"]["alice"]["sig_spki"])
    Envelope.model_validate(good["envelope"])
    for name in ("high-s-signature", "re-encoded-signature"):
        env = v2[name]["envelope"]
        assert crypto.verify(signer, signing_input(env), crypto.unb64u(env["sig"]))
        with pytest.raises(ValueError, match="low-s"):
            Envelope.model_validate(env)
        assert envelope_hash(env) == good["hash"]
    # Every signature this SDK makes is the low-s one.
    keys = device("alice", 2)
    for i in range(64):
        sig = crypto.b64u(crypto.sign(keys.sig, b"%d" % i))
        assert Envelope.model_validate({**good["envelope"], "sig": sig})


def test_device_list_vectors_verify_and_refuse_as_committed() -> None:
    """devicelist-v1.json: the valid list verifies, every other form is refused, and the
    link codes and the v2 safety number are what the contract computes."""
    from client.identity import verify_list
    from contracts.devicelist import link_code, list_signing_input, safety_number

    vectors = json.loads((VECTORS_DIR / "devicelist-v1.json").read_text())
    valid = vectors["cases"][0]
    assert valid["valid"] and crypto.b64u(list_signing_input(valid["signed"]["list"])) == \
        vectors["signing_input_b64u"]
    for case in vectors["cases"]:
        if case["valid"]:
            assert verify_list(case["signed"], case["user"]) == case["signed"]["list"]
        else:
            with pytest.raises(CryptoError):
                verify_list(case["signed"], case["user"])
    for c in vectors["link_codes"]:
        assert link_code(c["kid"], c["sid"]) == c["code"]
    s = vectors["safety_number"]
    assert safety_number(s["a"], s["a_identity"], s["b"], s["b_identity"]) == s["number"]
    assert safety_number(s["b"], s["b_identity"], s["a"], s["a_identity"]) == s["number"]


def test_history_share_vector_opens_to_its_keys() -> None:
    """devicelist-v1.json's history share opens, for its receiving device, to its keys;
    signed by the named sender only."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from client.shares import open_share
    from contracts.devicelist import share_signing_input

    vector = json.loads((VECTORS_DIR / "devicelist-v1.json").read_text())["history_share"]
    share, receiver = vector["share"], vector["receiver"]
    assert crypto.b64u(share_signing_input(share)) == vector["signing_input_b64u"]
    enc = serialization.load_pem_private_key(receiver["enc_private_pkcs8_pem"].encode(), None)
    sig = serialization.load_pem_private_key(receiver["sig_private_pkcs8_pem"].encode(), None)
    assert isinstance(enc, rsa.RSAPrivateKey) and isinstance(sig, ec.EllipticCurvePrivateKey)
    device = crypto.DeviceKeys(enc, sig)
    signer = crypto.load_ec_public(vector["sender"]["sig_spki"])
    keys = open_share(share, user=share["user"], device=device, signer=signer)
    assert {h: crypto.b64u(k) for h, k in keys.items()} == vector["keys_b64u"]
    with pytest.raises(CryptoError):
        open_share(share, user=share["user"], device=device,
                   signer=crypto.load_ec_public(receiver["sig_spki"]))
