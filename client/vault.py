"""A device's secrets at rest in its home directory, sealed with AES-256-GCM under a key
derived from the passphrase (scrypt), read and written under an exclusive file lock, so two
`duet` processes of one home (a `listen` and a `send`) never both advance a ratchet from
the same state.

    <home>/<name>.vault     one JSON document, sealed whole and replaced on every write
                            {"v": 1, "salt": B64U(16), "iv": B64U(12), "ct": B64U(...)}
    <home>/<name>.journal   records appended one at a time, each sealed on its own: a
                            line {"v": 1, "salt": B64U(16)}, then a line {"iv", "ct"} each
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .crypto import b64u, unb64u
from .errors import ConfigError, CryptoError

log = logging.getLogger(__name__)

SCRYPT_N = 2**15  # ~85 ms on this project's machine: once per file and process


class _Sealed:
    """What a vault and a journal share: the passphrase's key (per salt) and the lock."""

    def __init__(self, home: Path, name: str, suffix: str, passphrase: str | None) -> None:
        if not passphrase:
            raise ConfigError("a passphrase is needed to keep session keys and history "
                              "encrypted")
        self.path = Path(home) / f"{name}.{suffix}"
        self._lock = Path(home) / f".{name}.lock"
        self._passphrase = passphrase.encode()
        self._keys: dict[bytes, bytes] = {}  # salt -> derived key

    def _key(self, salt: bytes) -> bytes:
        if salt not in self._keys:
            self._keys[salt] = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=8, p=1).derive(
                self._passphrase)
        return self._keys[salt]

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class Vault(_Sealed):
    def __init__(self, home: Path, name: str, passphrase: str | None) -> None:
        super().__init__(home, name, "vault", passphrase)

    def _load(self) -> tuple[dict[str, Any], bytes]:
        if not self.path.exists():
            return {}, os.urandom(16)
        sealed = json.loads(self.path.read_text())
        salt = unb64u(sealed["salt"])
        try:
            plain = AESGCM(self._key(salt)).decrypt(unb64u(sealed["iv"]), unb64u(sealed["ct"]),
                                                    self.path.name.encode())
        except InvalidTag as exc:
            raise CryptoError(f"cannot open {self.path.name} (wrong passphrase?)") from exc
        data: dict[str, Any] = json.loads(plain)
        return data, salt

    def read(self) -> dict[str, Any]:
        with self._locked():
            return self._load()[0]

    @contextmanager
    def open(self) -> Iterator[dict[str, Any]]:
        """The document, locked; written back (sealed afresh) when the block ends without
        an exception."""
        with self._locked():
            data, salt = self._load()
            yield data
            iv = os.urandom(12)
            ct = AESGCM(self._key(salt)).encrypt(iv, json.dumps(data).encode(),
                                                 self.path.name.encode())
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"v": 1, "salt": b64u(salt), "iv": b64u(iv), "ct": b64u(ct)}, f)
                f.flush()
                os.fsync(f.fileno())  # a ratchet state never rolls back to a used key
            os.replace(tmp, self.path)


class Journal(_Sealed):
    """Records added in O(1) (a kept history grows by one message at a time) and read
    from an offset, so a reader that has the first part reads only what came since."""

    def __init__(self, home: Path, name: str, passphrase: str | None) -> None:
        super().__init__(home, name, "journal", passphrase)

    def append(self, record: dict[str, Any]) -> None:
        with self._locked():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a+b") as f:
                f.seek(0)
                first = f.readline()
                if first.endswith(b"\n"):
                    salt = unb64u(json.loads(first)["salt"])
                    _cut_torn_tail(f)
                else:  # a new journal (or a header torn by a crash: nothing follows it)
                    f.truncate(0)
                    salt = os.urandom(16)
                    f.write((json.dumps({"v": 1, "salt": b64u(salt)}) + "\n").encode())
                iv = os.urandom(12)
                ct = AESGCM(self._key(salt)).encrypt(iv, json.dumps(record).encode(),
                                                     self.path.name.encode())
                f.write((json.dumps({"iv": b64u(iv), "ct": b64u(ct)}) + "\n").encode())
                f.flush()
                os.fsync(f.fileno())  # kept before the session that opened it moves on

    def read(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """The records from byte `offset` (0: all), and the offset after the last whole
        line (a line torn by a crash mid-write is left for the next read)."""
        if not self.path.exists():
            return [], 0
        with self._locked(), self.path.open("rb") as f:
            first = f.readline()
            if not first.endswith(b"\n"):
                return [], 0  # empty, or a header torn by a crash: the next append redoes it
            salt = unb64u(json.loads(first)["salt"])
            f.seek(max(offset, f.tell()))
            records, end = [], f.tell()
            for line in f:
                if not line.endswith(b"\n"):
                    break
                end += len(line)
                try:
                    sealed = json.loads(line)
                except ValueError:
                    log.warning("%s: a damaged line skipped", self.path.name)
                    continue
                try:
                    plain = AESGCM(self._key(salt)).decrypt(
                        unb64u(sealed["iv"]), unb64u(sealed["ct"]), self.path.name.encode())
                except InvalidTag as exc:
                    raise CryptoError(f"cannot open {self.path.name} (wrong passphrase?)"
                                      ) from exc
                records.append(json.loads(plain))
        return records, end


def _cut_torn_tail(f: Any) -> None:
    """Drop a last line a crash left unfinished (an image's record is megabytes long), so
    the next record starts a line."""
    size = end = f.seek(0, os.SEEK_END)
    while end > 0:
        start = max(0, end - (1 << 20))
        f.seek(start)
        chunk = f.read(end - start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            if start + cut + 1 < size:
                f.truncate(start + cut + 1)
            return
        end = start
    f.truncate(0)
