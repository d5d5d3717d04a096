"""Gateway errors and their one mapping to HTTP problem JSON (RFC 9457).

    GatewayError                     status  code
    ├── Unauthenticated              401     unauthenticated
    ├── Forbidden                    403     forbidden
    ├── NotFound                     404     not_found
    ├── Conflict                     409     conflict
    ├── InvalidKey                   422     invalid_key
    ├── TooManyRequests              429     rate_limited
    └── Unavailable                  503     unavailable
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM = "application/problem+json"


class GatewayError(Exception):
    status = 500
    code = "internal"
    title = "Internal error"

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class Unauthenticated(GatewayError):
    status, code, title = 401, "unauthenticated", "Not authenticated"


class Forbidden(GatewayError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(GatewayError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(GatewayError):
    status, code, title = 409, "conflict", "Conflict"


class InvalidKey(GatewayError):
    status, code, title = 422, "invalid_key", "Invalid key"


class TooManyRequests(GatewayError):
    status, code, title = 429, "rate_limited", "Too many requests"


class Unavailable(GatewayError):
    status, code, title = 503, "unavailable", "Service unavailable"


def problem(status: int, title: str, detail: str, code: str, *,
            retry_after: int | None = None, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "code": code, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install(app: FastAPI) -> None:
    """Map every error at the edge, in one place."""

    @app.exception_handler(GatewayError)
    async def _gateway_error(_: Request, exc: GatewayError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, exc.code, retry_after=exc.retry_after)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return problem(422, "Invalid request", detail, "invalid_request", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error")
        return problem(exc.status_code, str(exc.detail), str(exc.detail), code)
