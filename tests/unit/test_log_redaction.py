"""Log redaction: tokens and query strings never reach a log line."""

from __future__ import annotations

import logging

from service.logs import Redact


def test_redact_removes_jwt_and_uvicorn_query_strings() -> None:
    """A JWT anywhere, and a query string in uvicorn's request lines, are replaced."""
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    r1 = logging.makeLogRecord({"name": "uvicorn.error", "msg": '%s - "WebSocket %s"',
                                "args": ("127.0.0.1:1", f"/ws/abc?token={token}")})
    r2 = logging.makeLogRecord({"name": "gateway.socket", "msg": "got %s",
                                "args": (token,)})
    for record in (r1, r2):
        assert Redact().filter(record)
        assert token not in record.getMessage()
    assert "?<redacted>" in r1.getMessage() and "/ws/abc" in r1.getMessage()


def test_uvicorn_ordinary_lines_are_not_labelled_error() -> None:
    """uvicorn's `uvicorn.error` logger carries its startup lines; they read `uvicorn`."""
    from service.logs import UvicornName

    record = logging.makeLogRecord({"name": "uvicorn.error", "msg": "Application startup",
                                    "levelno": logging.INFO})
    assert UvicornName().filter(record) and record.name == "uvicorn"
