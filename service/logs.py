"""Logging for the services: one JSON object per line (or plain text for a terminal).

Extra fields given with `extra={...}` (conn, user, id, code) become JSON keys. No call
site logs a message body, a token or a password; tests/security/test_logs.py checks it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# A query string (a client may put a token there against the rules) and anything shaped
# like a JWT never reach a log line.
_QUERY = re.compile(r"\?[^\s\"']*")
_JWT = re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]+")


class Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = _JWT.sub("<token>", message)
        if record.name.startswith("uvicorn"):
            clean = _QUERY.sub("?<redacted>", clean)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class UvicornName(logging.Filter):
    """uvicorn logs its ordinary lines (started, shutting down) under `uvicorn.error`;
    they are labelled `uvicorn`, so that a logger named error means an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.error":
            record.name = "uvicorn"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str, fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(Redact())
    handler.addFilter(UvicornName())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter stays out unless asked for.
    for noisy in ("aiormq", "aio_pika", "pymongo"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
