"""Contracts: committed schemas, room keys, frame validation."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts import Names, SendFrame, client_frame, room_id, room_key, server_frame
from contracts.envelope import P256_N, sig_is_canonical
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
    ("v", 2), ("alg", "RSA1_5"), ("seq", 0), ("seq", -1), ("prev", "short"), ("keys", []),
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


def test_asyncapi_document_is_committed_and_valid() -> None:
    """contracts/asyncapi.json is what the contracts generate, and AsyncAPI's own JSON
    Schema for 3.0.0 (its maintainers' @asyncapi/specs) accepts it; a broken copy fails."""
    import json
    from pathlib import Path

    import jsonschema

    from contracts.asyncapi import ASYNCAPI_PATH, document, render_asyncapi

    assert ASYNCAPI_PATH.read_text() == render_asyncapi(), "run `make schemas`"
    spec = Path(__file__).resolve().parents[2] / ".duet" / "asyncapi-specs-6.11.1" / \
        "package" / "schemas" / "3.0.0-without-$id.json"
    assert spec.exists(), "AsyncAPI's schema is fetched by scripts/bootstrap.sh (npm)"
    validator = jsonschema.Draft7Validator(json.loads(spec.read_text()))
    doc = document()
    assert list(validator.iter_errors(doc)) == []
    assert {"roomSocket", "deviceSocket", "roomMessages", "typingSignals", "presenceEvents",
            "readPositions", "storedNotices"} <= set(doc["channels"])
    doc["operations"]["deviceSocketSend"]["action"] = "push"
    assert list(validator.iter_errors(doc)) != []


def test_web_client_reads_the_one_table_of_codes() -> None:
    """web/codes.js is generated from contracts/codes.py, and the web client and the SDK
    import their close handling from it rather than keeping a copy."""
    from pathlib import Path

    from contracts.codes import CLOSES, ERRORS, as_js

    root = Path(__file__).resolve().parents[2]
    assert (root / "web" / "codes.js").read_text() == as_js(), "run `make schemas`"
    assert "from './codes.js'" in (root / "web" / "device.js").read_text()
    assert "from contracts.codes import CLOSES" in (root / "client" / "device.py").read_text()
    assert {c.retry for c in CLOSES.values()} == {"never", "backoff", "now"}
    code_files = [p for d in ("gateway", "persister", "client", "admin", "web")
                  for p in (root / d).rglob("*.[pj][ys]") if p.name != "codes.js"]
    assert len(code_files) > 40
    for path in code_files:
        text = path.read_text()
        for close in CLOSES:
            assert not re.search(rf"\b{close}\b", text), \
                f"{path.relative_to(root)} spells close code {close} itself"
        if path.parts[-2] in ("client", "cli", "web"):  # the clients read error codes too
            for code in ERRORS:
                assert not re.search(rf"(?<!ERRORS\[)[\"']{code}[\"']", text), \
                    f"{path.relative_to(root)} spells error code {code} itself"


def test_device_frames_validate_and_refuse_what_they_must() -> None:
    """v2 frames: send names a peer; sync takes a cursor per room; signals stay outside
    the chain (seq 0) and messages inside it (seq from 1)."""
    from contracts import device_client_frame, device_server_frame

    room = f"{A}.{B}"
    ok = [{"type": "send", "id": "s1", "peer": B, "kind": "text", "body": ENV},
          {"type": "send", "id": "r1", "peer": B, "kind": "receipt",
           "body": {**ENV, "kind": "receipt", "seq": 0}},
          {"type": "sync", "after": {room: None}}, {"type": "sync", "after": None},
          {"type": "sync", "after": {room: "0" * 32}, "rooms": [room]},
          {"type": "typing", "peer": B, "body": {**ENV, "kind": "typing", "seq": 0}},
          {"type": "read", "peer": B, "cursor": "0" * 32}]
    for frame in ok:
        assert device_client_frame.validate_python(frame).type == frame["type"]
    bad = [{"type": "send", "id": "s1", "kind": "text", "body": ENV},
           {"type": "send", "id": "s1", "peer": "x", "kind": "text", "body": ENV},
           {"type": "send", "id": "s1", "peer": B, "kind": "typing", "body": ENV},
           {"type": "send", "id": "r1", "peer": B, "kind": "receipt",
            "body": {**ENV, "kind": "receipt", "seq": 1}},
           {"type": "send", "id": "s1", "peer": B, "kind": "text", "body": {**ENV, "seq": 0}},
           {"type": "sync", "after": {"not-a-room": None}},
           {"type": "sync", "after": {room: "zz"}},
           {"type": "read", "peer": B, "cursor": {"$gt": ""}}]
    for frame in bad:
        with pytest.raises(ValidationError):
            device_client_frame.validate_python(frame)
    for frame in ({"type": "ready", "user": A, "protocol": 2},
                  {"type": "presence", "user": B, "online": True, "at": 1},
                  {"type": "read", "room": room, "cursor": "0" * 32, "unread": 0},
                  {"type": "typing", "room": room, "sender": B,
                   "body": {**ENV, "kind": "typing", "seq": 0}}):
        assert device_server_frame.validate_python(frame).type == frame["type"]


def test_protocol_page_lists_every_code_as_the_table_has_it() -> None:
    """docs/protocol.md's code tables say what contracts/codes.py says, row for row."""
    from pathlib import Path

    from contracts.codes import CLOSES, ERRORS

    page = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    for e in ERRORS.values():
        assert f"| `{e.code}` | {e.cause} |" in page, e.code
    for c in CLOSES.values():
        assert f"| {c.code} | `{c.name}` | {c.cause} | {c.retry} |" in page, c.code


# -- the canonical signature form (contracts.envelope.sig_is_canonical) --------------------
_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _canonical_by_digits(sig: str) -> bool:
    """The rule read digit by digit, as first written: the reference for the fast check."""
    if len(sig) != 86 or any(c not in _DIGITS for c in sig):
        return False
    value = 0
    for c in sig:
        value = value << 6 | _DIGITS.index(c)
    if value & 0xF:
        return False
    s = (value >> 4) & ((1 << 256) - 1)
    return 0 < s <= P256_N // 2


def _sig(r: int, s: int) -> str:
    return base64.urlsafe_b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()[:86]


@settings(max_examples=500, deadline=None)
@given(r=st.integers(0, 2**256 - 1), s=st.one_of(
    st.integers(0, 2**256 - 1), st.sampled_from([0, 1, P256_N // 2, P256_N // 2 + 1]),
    st.integers(P256_N // 2 - 3, P256_N // 2 + 3)), last=st.sampled_from(_DIGITS + "=+/ é"),
    cut=st.integers(84, 88))
def test_canonical_signature_check_agrees_with_the_digit_by_digit_rule(
        r: int, s: int, last: str, cut: int) -> None:
    good = _sig(r, s)
    for sig in (good, good[:-1] + last, (good + "AAAA")[:cut], good[:40] + last + good[41:]):
        assert sig_is_canonical(sig) == _canonical_by_digits(sig), sig
