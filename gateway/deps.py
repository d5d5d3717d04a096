"""Request dependencies: the app's services and the authenticated user."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pymongo.asynchronous.database import AsyncDatabase

from broker import Broker

from .auth import Passwords, Tokens
from .cursors import CursorClock
from .errors import Unauthenticated
from .hub import Hub
from .metrics import GatewayMetrics
from .presence import Presence
from .publisher import Publisher
from .quotas import Quotas
from .readmarks import ReadMarks
from .settings import GatewaySettings
from .throttle import Backoff, ConnectionCounter, FailureWindow


@dataclass(slots=True)
class Services:
    settings: GatewaySettings
    db: AsyncDatabase[dict[str, Any]]
    broker: Broker
    hub: Hub
    presence: Presence
    publisher: Publisher
    reads: ReadMarks  # read positions, moved in batches
    passwords: Passwords
    tokens: Tokens
    clock: CursorClock
    limits: dict[str, int]  # longest envelope `ct` per kind
    login_users: FailureWindow  # wrong current passwords per user (POST /api/password)
    login_ips: Backoff  # failed logins per address: a growing delay
    connections: ConnectionCounter
    metrics: GatewayMetrics
    quotas: Quotas  # per user, across gateways (gateway.quotas)
    login_pairs: FailureWindow  # failed logins per (user, address): never per user alone
    registrations: Backoff  # per address


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True, slots=True)
class Session:
    """Who is asking: the token's user and the session it names (gateway.sessions)."""

    user: str
    sid: str


async def current_session(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Session:
    """A valid token whose session is live (checked against a cache of a few seconds)."""
    from .sessions import store  # sessions' routes depend on this module

    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("missing bearer token")
    user, sid = get_services(request).tokens.verify_session(credentials.credentials)
    await store(request.app).check(user, sid)
    request.state.session = sid  # for the security log of the route
    return Session(user, sid)


async def current_user(session: Annotated[Session, Depends(current_session)]) -> str:
    return session.user


Svc = Annotated[Services, Depends(get_services)]
CurrentSession = Annotated[Session, Depends(current_session)]
CurrentUser = Annotated[str, Depends(current_user)]
