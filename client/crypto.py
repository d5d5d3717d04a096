"""Envelope v1 primitives on `cryptography`: device keys, wrapping, AEAD, signatures.

Every byte layout here is the one the README documents and the browser client reproduces
with WebCrypto: RSA-OAEP with SHA-256 (MGF1-SHA-256, no label), AES-256-GCM (12-byte IV,
16-byte tag appended), ECDSA P-256 with SHA-256 and raw r||s signatures, base64url without
padding, canonical JSON (sorted keys, no spaces, UTF-8).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from contracts.envelope import P256_N
from contracts.keys import device_proof_input

from .errors import CryptoError

_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(),
                     label=None)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise CryptoError("malformed base64url") from exc


def canonical(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no insignificant white space, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(spki_der: bytes) -> str:
    """A key id: base64url SHA-256 of the key's DER SubjectPublicKeyInfo."""
    return b64u(hashlib.sha256(spki_der).digest())


def spki(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def load_rsa_public(spki_b64u: str) -> rsa.RSAPublicKey:
    key = serialization.load_der_public_key(unb64u(spki_b64u))
    if not isinstance(key, rsa.RSAPublicKey):
        raise CryptoError("not an RSA public key")
    return key


def load_ec_public(spki_b64u: str) -> ec.EllipticCurvePublicKey:
    key = serialization.load_der_public_key(unb64u(spki_b64u))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CryptoError("not an EC public key")
    return key


@dataclass(frozen=True)
class DeviceKeys:
    """One device's private keys: RSA-OAEP for decryption, ECDSA P-256 for signing."""

    enc: rsa.RSAPrivateKey
    sig: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, rsa_bits: int = 2048) -> DeviceKeys:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits),
                   ec.generate_private_key(ec.SECP256R1()))

    @property
    def enc_spki(self) -> str:
        return b64u(spki(self.enc.public_key()))

    @property
    def sig_spki(self) -> str:
        return b64u(spki(self.sig.public_key()))

    @property
    def kid(self) -> str:
        return fingerprint(spki(self.enc.public_key()))

    @property
    def sid(self) -> str:
        return fingerprint(spki(self.sig.public_key()))

    def public(self, user: str, label: str | None = None) -> dict[str, str | None]:
        """What PUT /api/keys takes for this device of this user, with its proof."""
        proof = sign(self.sig, device_proof_input(user, self.enc_spki, self.sig_spki, label))
        return {"enc": self.enc_spki, "sig": self.sig_spki, "label": label,
                "proof": b64u(proof)}

    def to_pem(self, passphrase: bytes | None) -> dict[str, str]:
        enc = (serialization.BestAvailableEncryption(passphrase) if passphrase
               else serialization.NoEncryption())
        return {
            name: key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8, enc).decode()
            for name, key in (("enc", self.enc), ("sig", self.sig))
        }

    @classmethod
    def from_pem(cls, pems: dict[str, str], passphrase: bytes | None) -> DeviceKeys:
        try:
            enc = serialization.load_pem_private_key(pems["enc"].encode(), passphrase)
            sig = serialization.load_pem_private_key(pems["sig"].encode(), passphrase)
        except (ValueError, TypeError) as exc:
            raise CryptoError("cannot unlock the device keys (wrong passphrase?)") from exc
        if not isinstance(enc, rsa.RSAPrivateKey) or not isinstance(
                sig, ec.EllipticCurvePrivateKey):
            raise CryptoError("unexpected key types in the key file")
        return cls(enc, sig)


def wrap(public: rsa.RSAPublicKey, content_key: bytes) -> bytes:
    return public.encrypt(content_key, _OAEP)


def unwrap(private: rsa.RSAPrivateKey, wrapped: bytes) -> bytes:
    try:
        return private.decrypt(wrapped, _OAEP)
    except ValueError as exc:
        raise CryptoError("cannot unwrap the content key") from exc


def new_content_key() -> tuple[bytes, bytes]:
    """A fresh AES-256 key and 96-bit IV."""
    return AESGCM.generate_key(bit_length=256), os.urandom(12)


def seal(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    return AESGCM(key).encrypt(iv, plaintext, None)


def unseal(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(iv, ciphertext, None)
    except InvalidTag as exc:
        raise CryptoError("ciphertext failed authentication") from exc


def sign(private: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA P-256 / SHA-256 as WebCrypto emits it, 32-byte r then 32-byte s, with s made
    low (n - s when s > n/2: the same signature's other valid form), as v2 requires."""
    r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
    if s > P256_N // 2:
        s = P256_N - s
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify(public: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> bool:
    if len(signature) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                               int.from_bytes(signature[32:], "big"))
    try:
        public.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def safety_number(a: str, a_keys: list[tuple[str, str]], b: str,
                  b_keys: list[tuple[str, str]]) -> str:
    """Twelve groups of five digits, the same whichever friend computes it.

    Input: "duet-safety-v1\\n" + canonical JSON of {user_id: sorted [[kid, sid], ...]} for
    both users; SHA-512; each 5-byte chunk (big-endian) mod 100000.
    """
    material = {a: sorted([list(k) for k in a_keys]), b: sorted([list(k) for k in b_keys])}
    digest = hashlib.sha512(b"duet-safety-v1\n" + canonical(material)).digest()
    groups = [int.from_bytes(digest[i:i + 5], "big") % 100000 for i in range(0, 60, 5)]
    return " ".join(f"{g:05d}" for g in groups)
