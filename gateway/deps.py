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
from .settings import GatewaySettings
from .throttle import ConnectionCounter, FailureWindow


@dataclass(slots=True)
class Services:
    settings: GatewaySettings
    db: AsyncDatabase[dict[str, Any]]
    broker: Broker
    hub: Hub
    presence: Presence
    publisher: Publisher
    passwords: Passwords
    tokens: Tokens
    clock: CursorClock
    limits: dict[str, int]  # longest envelope `ct` per kind
    login_users: FailureWindow
    login_ips: FailureWindow
    connections: ConnectionCounter
    metrics: GatewayMetrics


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


_bearer = HTTPBearer(auto_error=False)


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("missing bearer token")
    return get_services(request).tokens.verify(credentials.credentials)


Svc = Annotated[Services, Depends(get_services)]
CurrentUser = Annotated[str, Depends(current_user)]
