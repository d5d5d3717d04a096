"""Client errors.

    DuetError
    ├── CryptoError         a key, a signature or a ciphertext did not check out
    ├── ApiError            the server answered a REST call with a problem (status, code)
    ├── SendError           a send was refused (error frame) or not acknowledged in time
    └── ConfigError         no profile, no passphrase, a missing friend
        ├── InsecureServer  plain http:// or ws:// to a server off this machine (transport.py)
        └── IdentityChanged the friend's identity key changed: accept it before sending
"""

from __future__ import annotations


class DuetError(Exception):
    """Base of everything the client raises."""


class CryptoError(DuetError):
    pass


class ApiError(DuetError):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(status, code, detail)
        self.status, self.code, self.detail = status, code, detail

    def __str__(self) -> str:
        return f"{self.detail} ({self.status} {self.code})"


class SendError(DuetError):
    def __init__(self, message_id: str, code: str, detail: str) -> None:
        super().__init__(message_id, code, detail)
        self.message_id, self.code, self.detail = message_id, code, detail

    def __str__(self) -> str:
        return f"message {self.message_id} not sent: {self.detail} ({self.code})"


class ConfigError(DuetError):
    pass


class InsecureServer(ConfigError):
    """A plain http:// or ws:// server URL whose host is not loopback, without `flag`."""

    def __init__(self, url: str, flag: str) -> None:
        super().__init__(url, flag)
        self.url, self.flag = url, flag

    def __str__(self) -> str:
        return (f"refusing {self.url}: unencrypted to a host that is not this machine, so "
                f"anyone on the network could read the password and the token; use https://, "
                f"or {self.flag} to allow it")


class IdentityChanged(ConfigError):
    """The friend's signed device list is under another identity key than the pinned one:
    nothing is sent to them until the user accepts it (Client.accept_identity)."""
