"""Passwords (argon2id) and access tokens (signed, expiring JWTs)."""

from __future__ import annotations

import asyncio
import time

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from prometheus_client import Counter

from contracts import is_user_id

from .errors import Unauthenticated
from .settings import GatewaySettings

_ALGORITHM = "HS256"
_AUDIENCE = "duet"


class Passwords:
    """argon2id hashing off the event loop, each run counted in `computed` ("hash" or
    "verify"). Callers run it only for a password worth checking: a free username at
    registration, a known user at login (docs/security.md says what that reveals)."""

    def __init__(self, settings: GatewaySettings, computed: Counter | None = None) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib,
            parallelism=1,
        )
        self._hashed = computed.labels("hash") if computed is not None else None
        self._verified = computed.labels("verify") if computed is not None else None

    async def hash(self, password: str) -> str:
        if self._hashed is not None:
            self._hashed.inc()
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        if self._verified is not None:
            self._verified.inc()
        try:
            return await asyncio.to_thread(self._hasher.verify, stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False


class Tokens:
    def __init__(self, settings: GatewaySettings) -> None:
        self._secret = settings.secret
        self._verifiers = settings.verification_secrets
        self.ttl_s = settings.token_ttl_s

    def issue(self, user_id: str, username: str, session: str | None = None) -> str:
        """A token for this user; `session` (the `sid` claim) names its server-side session,
        which the gateway checks on every use (gateway.sessions)."""
        now = int(time.time())
        claims = {"sub": user_id, "name": username, "iat": now, "exp": now + self.ttl_s,
                  "aud": _AUDIENCE}
        if session is not None:
            claims["sid"] = session
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str) -> str:
        """Return the user id the token was issued to, or raise Unauthenticated."""
        return self.verify_session(token)[0]

    def verify_session(self, token: str) -> tuple[str, str]:
        """Return (user id, session id) of a token, or raise Unauthenticated; a token that
        names no session (issued before sessions existed) is refused.

        New tokens are signed with the current secret; tokens signed with a previous one
        (DUET_TOKEN_SECRETS_PREVIOUS) are accepted until they expire.
        """
        claims: dict[str, object] | None = None
        for secret in self._verifiers:
            try:
                claims = jwt.decode(token, secret, algorithms=[_ALGORITHM],
                                    audience=_AUDIENCE,
                                    options={"require": ["exp", "sub", "aud"]})
                break
            except jwt.ExpiredSignatureError:
                raise Unauthenticated("token expired") from None
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError:
                raise Unauthenticated("invalid token") from None
        if claims is None:
            raise Unauthenticated("invalid token")
        sub = claims.get("sub")
        sid = claims.get("sid", "")
        if not isinstance(sub, str) or not is_user_id(sub) or not isinstance(sid, str):
            raise Unauthenticated("invalid token")
        return sub, sid
