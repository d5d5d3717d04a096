"""Contracts: committed schemas, room keys, frame validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts import Names, SendFrame, client_frame, room_id, room_key, server_frame
from contracts.schemas import SCHEMA_DIR, render, schemas

A, B = "a" * 24, "b" * 24
ENV = {"v": 1, "alg": "RSA-OAEP-256+A256GCM+ES256", "room": f"{A}.{B}", "sender": A,
       "from": "k" * 43, "seq": 1, "prev": "", "kind": "text",
       "keys": [{"kid": "k" * 43, "wk": "w" * 342}], "iv": "i" * 16, "ct": "c" * 40,
       "sig": "s" * 86}


def test_committed_schemas_match_models() -> None:
    """contracts/schema/ holds exactly what `python -m contracts export` writes."""
    generated = {f"{name}.schema.json": render(s) for name, s in schemas().items()}
    committed = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.schema.json")}
    assert committed == generated, "run `make schemas` and commit contracts/schema/"


def test_room_key_is_order_independent() -> None:
    """room_key(a, b) == room_key(b, a) == room.<lo>.<hi>."""
    assert room_key(A, B) == room_key(B, A) == f"room.{A}.{B}"
    with pytest.raises(ValueError):
        room_id(A, A)


def test_names_take_prefix_everywhere() -> None:
    """Every broker and database name carries the prefix; database names lose dots."""
    n = Names(prefix="t1.")
    assert n.exchange == "t1.duet.rooms" and n.persist_queue == "t1.duet.persist"
    assert n.gateway_queue("x").startswith("t1.") and n.database == "t1_duet"


def test_send_frame_ignores_claimed_sender() -> None:
    """A `sender` in a send frame is not part of the model."""
    f = SendFrame.model_validate({"type": "send", "id": "a1", "kind": "text", "body": ENV,
                                  "sender": B})
    assert "sender" not in f.model_dump()


@pytest.mark.parametrize("frame", [
    {"type": "send", "id": "", "kind": "text", "body": {}},
    {"type": "send", "id": "x" * 65, "kind": "text", "body": {}},
    {"type": "send", "id": "a.b", "kind": "text", "body": {}},
    {"type": "send", "id": "ok", "kind": "audio", "body": {}},
    {"type": "sync", "after": "zz"},
    {"type": "nope"},
])
def test_client_frame_rejects_invalid(frame: dict) -> None:
    """Ids outside [A-Za-z0-9_-]{1,64}, unknown kinds, bad cursors, unknown types fail."""
    with pytest.raises(ValidationError):
        client_frame.validate_python(frame)


@pytest.mark.parametrize(("field", "value"), [
    ("v", 2), ("alg", "RSA1_5"), ("seq", 0), ("prev", "short"), ("keys", []),
    ("iv", "x" * 15), ("sig", "s" * 85), ("ct", "has space" * 4), ("from", "k" * 42),
])
def test_envelope_outer_shape_is_checked(field: str, value: object) -> None:
    """Each envelope field out of shape fails validation."""
    with pytest.raises(ValidationError):
        client_frame.validate_python({"type": "send", "id": "e", "kind": "text",
                                      "body": {**ENV, field: value}})


def test_envelope_rejects_extra_fields() -> None:
    """Nothing rides along the envelope unchecked."""
    with pytest.raises(ValidationError):
        client_frame.validate_python({"type": "send", "id": "e", "kind": "text",
                                      "body": {**ENV, "plaintext": "oops"}})


def test_server_frames_round_trip() -> None:
    """Every server frame type validates through the ServerFrame union."""
    c = "0" * 32
    for f in ({"type": "ready", "room": "r", "user": A, "peer": B},
              {"type": "ack", "id": "a", "ts": 1, "cursor": c},
              {"type": "message", "id": "a", "sender": A, "room": "r", "kind": "text",
               "body": ENV, "ts": 1, "cursor": c},
              {"type": "stored", "id": "a", "cursor": c},
              {"type": "synced", "count": 0, "cursor": None},
              {"type": "error", "code": "bad_json", "detail": "x"}):
        assert server_frame.validate_python(f).type == f["type"]
