"""A device's files: who it is, its private keys (passphrase-encrypted) and its state.

    <home>/profile.json   server, user id, username, access token
    <home>/device.json    the device's private keys, PKCS#8 PEM encrypted with the passphrase,
                          and the account's identity key when this device holds it
    <home>/state.json     own send chains, seen chains, cursors, pinned device lists

Every file is written atomically with mode 0600 in a 0700 directory.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .crypto import DeviceKeys
from .errors import ConfigError, CryptoError


def default_home() -> Path:
    return Path(os.environ.get("DUET_HOME", Path.home() / ".duet"))


class Profile:
    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    def _path(self, name: str) -> Path:
        return self.home / name

    def _read(self, name: str) -> dict[str, Any]:
        path = self._path(name)
        if not path.exists():
            return {}
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def _write(self, name: str, data: dict[str, Any]) -> None:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.home, 0o700)
        fd, tmp = tempfile.mkstemp(dir=self.home, prefix=f".{name}.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, self._path(name))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- account ---------------------------------------------------------------------
    def account(self) -> dict[str, Any]:
        return self._read("profile.json")

    def save_account(self, **fields: Any) -> None:
        self._write("profile.json", {**self.account(), **fields})

    def require_account(self) -> dict[str, Any]:
        account = self.account()
        if not account.get("token"):
            raise ConfigError(f"no logged-in account in {self.home}: run `duet login` first")
        return account

    # -- device keys -----------------------------------------------------------------
    def has_device(self) -> bool:
        return self._path("device.json").exists()

    def load_device(self, passphrase: str | None) -> DeviceKeys:
        data = self._read("device.json")
        if not data:
            raise ConfigError(f"no device keys in {self.home}")
        return DeviceKeys.from_pem(data["pem"], passphrase.encode() if passphrase else None)

    def save_device(self, device: DeviceKeys, passphrase: str | None) -> None:
        if not passphrase:
            raise ConfigError("a passphrase is needed to keep the device keys encrypted")
        self._write("device.json", {"kid": device.kid, "sid": device.sid,
                                    "pem": device.to_pem(passphrase.encode())})

    def load_identity(self, passphrase: str | None) -> ec.EllipticCurvePrivateKey | None:
        """The account's identity key, if this device holds it."""
        pem = self._read("device.json").get("identity")
        if pem is None:
            return None
        try:
            key = serialization.load_pem_private_key(
                pem.encode(), passphrase.encode() if passphrase else None)
        except (ValueError, TypeError) as exc:
            raise CryptoError("cannot unlock the identity key (wrong passphrase?)") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CryptoError("unexpected key type for the identity key")
        return key

    def save_identity(self, key: ec.EllipticCurvePrivateKey, passphrase: str | None) -> None:
        if not passphrase:
            raise ConfigError("a passphrase is needed to keep the identity key encrypted")
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(passphrase.encode()))
        self._write("device.json", {**self._read("device.json"), "identity": pem.decode()})

    # -- state -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return self._read("state.json")

    def save_state(self, state: dict[str, Any]) -> None:
        self._write("state.json", state)
