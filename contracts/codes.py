"""Every error code and close code of the WebSocket protocol (v1 and v2), in one table.

The gateway sends them, the SDK and the web client read them from here (the web client
from web/codes.js, generated from this module by `python -m contracts export` and checked
by tests/unit/test_contracts.py), and the docs list them.

    `error` frame codes: the socket stays open.
    close codes: the socket ends; `retry` says what a client does next:
        never    do not reconnect (log in again, or the room is not yours)
        backoff  reconnect after a growing, jittered delay
        now      reconnect at once (to another replica)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

Retry = Literal["never", "backoff", "now"]


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    cause: str


@dataclass(frozen=True, slots=True)
class CloseCode:
    code: int
    name: str
    cause: str
    retry: Retry


ERRORS: dict[str, ErrorCode] = {e.code: e for e in (
    ErrorCode("bad_json", "the frame is not JSON"),
    ErrorCode("invalid_frame", "not an object, a missing or mistyped field, an id outside "
                               "[A-Za-z0-9_-]{1,64}, an unknown kind, an envelope out of "
                               "shape, a bad cursor"),
    ErrorCode("unknown_type", "a `type` this protocol does not have (or none)"),
    ErrorCode("binary_frame", "a binary frame (frames are JSON text)"),
    ErrorCode("envelope_mismatch", "the envelope's room, sender or kind differs from the "
                                   "room, the token's user or the frame's kind"),
    ErrorCode("too_large", "the ciphertext exceeds the limit of its kind "
                           "(DUET_MAX_TEXT_BYTES, DUET_MAX_IMAGE_BYTES, or 512 bytes for a "
                           "receipt or typing signal)"),
    ErrorCode("not_friends", "v2: the peer is not an accepted friend (or not a user; or "
                             "the friendship ended: unfriend, block, a deleted account)"),
    ErrorCode("rate_limited", "v2: typing signals faster than DUET_TYPING_PER_S; the signal "
                              "was dropped"),
    ErrorCode("publish_failed", "the broker did not confirm in time; resend the same frame "
                                "(same id)"),
    ErrorCode("sync_failed", "history could not be read; send `sync` again"),
    ErrorCode("sync_needed", "v2: the gateway's broker connection was lost and restored, so "
                             "live frames may have been missed: send `sync` again now (the "
                             "socket stays open)"),
    ErrorCode("unavailable", "v2: storage did not answer (a `read` or `fetched` position "
                             "was not kept); send it again"),
    ErrorCode("not_your_device", "v2: a `fetched` frame names a device that is not a live "
                                 "device of the token's user"),
    ErrorCode("too_many_messages", "the user sent DUET_MESSAGES_PER_MINUTE messages this "
                                   "UTC minute (all sockets and gateways together); send "
                                   "it again (same id) next minute"),
    ErrorCode("too_many_bytes", "the user sent DUET_BYTES_PER_DAY bytes of ciphertext this "
                                "UTC day (all sockets and gateways together)"),
)}

NOT_AUTHENTICATED = 4401
FORBIDDEN_ROOM = 4403
POLICY = 1008
TOO_LARGE = 1009
UNAVAILABLE = 1011
RESTARTING = 1012
TRY_AGAIN_LATER = 1013
TOO_MANY_SOCKETS = 4429

CLOSES: dict[int, CloseCode] = {c.code: c for c in (
    CloseCode(NOT_AUTHENTICATED, "not_authenticated",
              "no token, a bad or expired one, one of no user, or its session ended (logout, "
              "revocation, a password change, expiry)", "never"),
    CloseCode(FORBIDDEN_ROOM, "forbidden_room",
              "v1: the peer is not an accepted friend (or not a user), or the friendship "
              "ended while the socket was open (unfriend, block, a deleted account)", "never"),
    CloseCode(POLICY, "policy", "the frame rate limit, the sockets-per-address limit, or a "
                                "foreign Origin", "backoff"),
    CloseCode(TOO_LARGE, "too_large", "a frame over DUET_MAX_FRAME_BYTES (do not send it "
                                      "again)", "backoff"),
    CloseCode(TOO_MANY_SOCKETS, "too_many_sockets",
              "the user already has DUET_MAX_SOCKETS_PER_USER sockets open (all gateways "
              "together): close one", "backoff"),
    CloseCode(UNAVAILABLE, "unavailable", "storage unavailable while opening", "backoff"),
    CloseCode(RESTARTING, "restarting", "the gateway is shutting down: reconnect elsewhere",
              "now"),
    CloseCode(TRY_AGAIN_LATER, "too_far_behind",
              "the socket missed frames: it fell more than DUET_OUTBOX_FRAMES or "
              "DUET_OUTBOX_BYTES behind, or (v1) its gateway's broker connection was lost "
              "and restored: reconnect and sync",
              "backoff"),
)}


def as_json() -> dict[str, object]:
    """The table as plain data (for the web client's generated module and the docs)."""
    return {"errors": {k: asdict(v) for k, v in ERRORS.items()},
            "closes": {str(k): asdict(v) for k, v in CLOSES.items()}}


def as_js() -> str:
    """web/codes.js: the same table as an ES module (written by `python -m contracts
    export`; a test keeps the committed file equal to this)."""
    data = as_json()
    return ("// Generated from contracts/codes.py by `python -m contracts export`: do not edit.\n"
            f"export const ERRORS = {json.dumps(data['errors'], indent=2, sort_keys=True)};\n"
            f"export const CLOSES = {json.dumps(data['closes'], indent=2, sort_keys=True)};\n")


def error_frame(code: str, detail: str | None = None, frame_id: object = None
                ) -> dict[str, object]:
    """An `error` frame: a code of ERRORS, a detail (its cause unless given), and the id
    of the frame it answers when there is one."""
    assert code in ERRORS, code
    frame: dict[str, object] = {"type": "error", "code": code,
                                "detail": ERRORS[code].cause if detail is None else detail}
    if isinstance(frame_id, str):
        frame["id"] = frame_id
    return frame
