"""The committed envelope v1 test vectors open, verify and chain as they say."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization

from client import crypto
from client.envelope import envelope_hash, open_content, signing_input, verify_signature
from client.errors import CryptoError
from client.vectors import DEFAULT_PATH

VECTORS = json.loads(DEFAULT_PATH.read_text())


def device(name: str) -> crypto.DeviceKeys:
    d = VECTORS["devices"][name]
    return crypto.DeviceKeys(
        serialization.load_pem_private_key(d["enc_private_pkcs8_pem"].encode(), None),
        serialization.load_pem_private_key(d["sig_private_pkcs8_pem"].encode(), None))


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_vector_case_opens_as_expected(case: dict) -> None:
    """Signature verdict, signing input, hash and plaintext match the vector."""
    env = case["envelope"]
    signer = crypto.load_ec_public(VECTORS["devices"][case["signer"]]["sig_spki"])
    assert verify_signature(env, signer) is case["signature_valid"]
    if not case["signature_valid"]:
        with pytest.raises(CryptoError):
            open_content(env, device("bob"))
        return
    assert crypto.b64u(signing_input(env)) == case["signing_input_b64u"]
    assert envelope_hash(env) == case["hash"]
    for reader in case["readers"]:
        content = open_content(env, device(reader))
        assert content.meta == case["plaintext_meta"]
        assert crypto.b64u(content.data) == case["plaintext_data_b64u"]


def test_vector_chain_links_each_envelope_to_the_previous() -> None:
    """Each of alice's envelopes names the hash of the one before it."""
    valid = [c for c in VECTORS["cases"] if c["signature_valid"]]
    assert [c["envelope"]["seq"] for c in valid] == [1, 2, 3]
    assert valid[0]["envelope"]["prev"] == ""
    for before, after in zip(valid, valid[1:], strict=False):
        assert after["envelope"]["prev"] == before["hash"]


def test_vector_safety_number_matches() -> None:
    """Both sides' safety number is the committed one."""
    a, b = VECTORS["devices"]["alice"], VECTORS["devices"]["bob"]
    assert crypto.safety_number(a["user"], [(a["kid"], a["sid"])],
                                b["user"], [(b["kid"], b["sid"])]) == VECTORS["safety_number"]
    assert crypto.safety_number(b["user"], [(b["kid"], b["sid"])],
                                a["user"], [(a["kid"], a["sid"])]) == VECTORS["safety_number"]


def test_vector_devices_match_their_fingerprints() -> None:
    """kid and sid are the SHA-256 fingerprints of the published SPKIs."""
    for name in ("alice", "bob"):
        d, keys = VECTORS["devices"][name], device(name)
        assert (keys.kid, keys.sid, keys.enc_spki, keys.sig_spki) == (
            d["kid"], d["sid"], d["enc_spki"], d["sig_spki"])
