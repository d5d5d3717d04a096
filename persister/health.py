"""The persister's small HTTP port: /healthz, /readyz and /metrics."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Generator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .metrics import PersisterMetrics

log = logging.getLogger(__name__)

Readiness = Callable[[], Awaitable[dict[str, bool]]]


def health_app(metrics: PersisterMetrics, readiness: Readiness) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        checks = await readiness()
        ok = all(checks.values())
        return JSONResponse({"ready": ok, **checks}, status_code=200 if ok else 503)

    async def prometheus(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz),
                             Route("/metrics", prometheus)])


class _Server(uvicorn.Server):
    """Leaves SIGTERM and SIGINT to the persister, which stops the health port itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def health_server(app: Starlette, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            lifespan="off")
    return _Server(config)
