"""create_app(settings): assemble the gateway; its lifespan owns every connection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from broker import Broker
from contracts.codes import RESTARTING
from contracts.documents import (
    BLOCK_INDEXES,
    FRIENDSHIP_INDEXES,
    MESSAGE_INDEXES,
    PRESENCE_INDEXES,
    READ_INDEXES,
    SESSION_INDEXES,
    USER_INDEXES,
)
from contracts.envelope import MAX_SIGNAL_BYTES, ct_limit

from . import (
    accounts,
    conversations,
    deletion,
    devicelist,
    errors,
    friends,
    history,
    historyshares,
    keys,
    prekeys,
    sessions,
    socket,
)
from .auth import Passwords, Tokens
from .body_limit import BodyLimit
from .cursors import CursorClock
from .deps import Services
from .hub import Hub
from .metrics import GatewayMetrics
from .presence import Presence
from .publisher import Publisher
from .quotas import Quotas
from .readmarks import ReadMarks
from .settings import GatewaySettings
from .throttle import Backoff, ConnectionCounter, FailureWindow

log = logging.getLogger(__name__)

# The web client is plain ES modules and CSS from this origin: no inline script, no eval,
# no third-party anything; decrypted images are shown from blob: URLs.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'; require-trusted-types-for 'script'; trusted-types 'none'")
LOGIN_WINDOW_S = 15 * 60
REGISTER_WINDOW_S = 60 * 60
READY_TIMEOUT_S = 1.5  # /readyz answers within this, MongoDB down or not
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]],
                         specs: list[tuple[str, list[tuple[str, int]], dict[str, Any]]]) -> None:
    for collection, fields, options in specs:
        await db[collection].create_index(fields, **options)


def create_app(settings: GatewaySettings) -> FastAPI:
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongo_url, serverSelectionTimeoutMS=5000)
        broker = Broker(settings, f"gateway-{settings.node}")
        try:
            db = mongo[settings.names.database]
            await ensure_indexes(db, USER_INDEXES + FRIENDSHIP_INDEXES + MESSAGE_INDEXES
                                 + READ_INDEXES + PRESENCE_INDEXES + BLOCK_INDEXES
                                 + SESSION_INDEXES)
            await broker.open()
            hub = Hub(broker, settings.node,
                      fetch=lambda cursors: history.read_cursors(db, cursors), metrics=metrics)
            presence = Presence(db, broker, settings.node, settings.presence_ttl_s)
            hub.arrivals = presence
            await presence.start()
            await hub.start()
            quotas = Quotas(db, settings.node, sockets=settings.max_sockets_per_user,
                            messages_per_minute=settings.messages_per_minute,
                            bytes_per_day=settings.bytes_per_day)
            await quotas.start()
            publisher = Publisher(broker, metrics, settings.publish_timeout_s,
                                  max_batch=settings.publish_batch,
                                  in_flight=settings.publish_in_flight,
                                  interval_s=settings.publish_interval_ms / 1000,
                                  partitions=settings.persist_partitions)
            app.state.services = Services(
                settings=settings, db=db, broker=broker, hub=hub, presence=presence,
                publisher=publisher, reads=ReadMarks(db, broker),
                passwords=Passwords(settings, metrics.password_hashes),
                tokens=Tokens(settings),
                clock=CursorClock(settings.node),
                limits={"text": ct_limit(settings.max_text_bytes),
                        "image": ct_limit(settings.max_image_bytes),
                        "receipt": ct_limit(MAX_SIGNAL_BYTES),
                        "typing": ct_limit(MAX_SIGNAL_BYTES)},
                login_users=FailureWindow(settings.login_failures_per_user, LOGIN_WINDOW_S),
                login_pairs=FailureWindow(settings.login_failures_per_user, LOGIN_WINDOW_S),
                login_ips=Backoff(settings.login_failures_per_ip, LOGIN_WINDOW_S,
                                  settings.backoff_max_s),
                registrations=Backoff(settings.registrations_per_ip, REGISTER_WINDOW_S,
                                      settings.backoff_max_s),
                connections=ConnectionCounter(settings.max_connections_per_ip),
                quotas=quotas,
                metrics=metrics)
            # Sessions: their store (and its sweep of ended sessions' sockets) from the start.
            sessions.store(app)
            log.info("gateway %s ready on %s:%s", settings.node, settings.host, settings.port)
            yield
            # Tell clients to reconnect elsewhere, then let go of the broker and MongoDB.
            for conn in hub.connections():
                conn.close(RESTARTING, "gateway restarting")
            await publisher.close()  # what was accepted still reaches the broker
            await app.state.services.reads.close()
            await quotas.close()  # this gateway's counts written, its sockets forgotten
            await hub.close()
            await presence.close()
            await sessions.store(app).close()
        finally:
            await broker.close()
            await mongo.close()
            log.info("gateway %s stopped", settings.node)

    # The API's map is for developers, not for every visitor: off unless DUET_API_DOCS.
    docs = settings.api_docs
    app = FastAPI(title="duet gateway", version="1", lifespan=lifespan,
                  docs_url="/api/docs" if docs else None,
                  openapi_url="/api/openapi.json" if docs else None, redoc_url=None)
    errors.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_rest_bytes)
    app.include_router(accounts.router)
    app.include_router(friends.router)
    app.include_router(deletion.router)
    app.include_router(history.router)
    app.include_router(keys.router)
    app.include_router(devicelist.router)
    app.include_router(historyshares.router)
    app.include_router(prekeys.router)
    app.include_router(conversations.router)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if not request.url.path.startswith("/api"):
            # Revalidate the web client's modules, so a deploy never mixes two versions.
            response.headers.setdefault("Cache-Control", "no-cache")
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        svc: Services = app.state.services
        checks = {"broker": svc.broker.ready, "mongo": True}
        try:
            await asyncio.wait_for(svc.db.command("ping"), READY_TIMEOUT_S)
        except (PyMongoError, TimeoutError):
            checks["mongo"] = False
        ok = all(checks.values())
        return JSONResponse({"ready": ok, **checks}, status_code=200 if ok else 503)

    if settings.web_dir is not None and settings.web_dir.is_dir():
        # Last, so /api, /ws and the probes win; html=True serves index.html at /.
        app.mount("/", StaticFiles(directory=settings.web_dir, html=True), name="web")
    # Added last, so outermost: /ws and /ws/{peer_id} skip the HTTP middlewares and the router.
    app.add_middleware(socket.SocketRoute)
    return app
