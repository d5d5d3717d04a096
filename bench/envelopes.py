"""Shape-valid random envelopes, the `send` frames that carry them, and broker bodies.

The servers check only an envelope's outer shape (contracts/envelope.py): the room is
`<lo>.<hi>` of the two user ids, the sender is the socket's user, the kind matches the
frame, and every binary field is base64url of the right length. Each message gets a
fresh 256-byte random `ct`; the other binary fields are random once per sender, which
the servers cannot tell from real ones.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import orjson

from contracts import DeviceSendFrame, SendFrame, room_id

CT_BYTES = 256  # "256-byte ciphertext bodies"
# A receipt's ciphertext as clients seal it: 4 + its metadata ({"mime":"application/vnd.duet.
# receipt+json"}) + two cursors' canonical JSON + the 16-byte tag.
SIGNAL_CT_BYTES = 160
SIGNALS = frozenset({"receipt", "typing"})  # outside the chain: seq 0, prev ""
RSA_BYTES = 256  # an RSA-2048 OAEP-wrapped content key
_SEQ_MARK = 987654321987654  # stands for the sequence number in the frame template


def b64u(n: int) -> str:
    """n random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(os.urandom(n)).rstrip(b"=").decode()


def envelope(sender: str, peer: str, seq: int, *, kind: str = "text",
             ct_bytes: int = CT_BYTES) -> dict[str, Any]:
    """One envelope v1 from `sender` to `peer`, wrapped for one device of each; a signal
    (receipt, typing) has seq 0."""
    if kind in SIGNALS:
        seq = 0
    return {
        "v": 1, "alg": "RSA-OAEP-256+A256GCM+ES256",
        "room": room_id(sender, peer), "sender": sender,
        "from": b64u(32), "seq": seq, "prev": b64u(32) if seq > 1 else "",
        "kind": kind,
        "keys": [{"kid": b64u(32), "wk": b64u(RSA_BYTES)},
                 {"kid": b64u(32), "wk": b64u(RSA_BYTES)}],
        "iv": b64u(12), "ct": b64u(ct_bytes), "sig": b64u(64),
    }


class SendFrames:
    """The `send` frames of one sender in one room; per message only id, seq and ct change
    (a receipt's seq stays 0).

    The JSON is cut once around those three values, so a frame costs one f-string and
    256 random bytes, and the loader's CPU goes to the sockets, not to serialising.
    """

    def __init__(self, sender: str, peer: str, *, kind: str = "text",
                 ct_bytes: int = CT_BYTES, protocol: int = 1) -> None:
        self.ct_bytes = ct_bytes
        env = envelope(sender, peer, 2, kind=kind, ct_bytes=ct_bytes)
        self._chained = kind not in SIGNALS
        if self._chained:
            env["seq"] = _SEQ_MARK
        # "@" is in no base64url or hex field, so the marks cannot occur anywhere else.
        id_mark, ct_mark = "@id@", "@ct@"
        env["ct"] = ct_mark
        frame: dict[str, Any] = {"type": "send", "id": id_mark, "kind": kind, "body": env}
        if protocol == 2:  # the device socket: the frame names the peer
            frame["peer"] = peer
        text = orjson.dumps(frame).decode()
        head, _, rest = text.partition(id_mark)
        mid, _, rest = rest.partition(str(_SEQ_MARK)) if self._chained else ("", "", rest)
        tail_a, _, tail_b = rest.partition(ct_mark)
        self._parts = (head, mid, tail_a, tail_b)
        # Refuse to run with frames the gateway would reject.
        (DeviceSendFrame if protocol == 2 else SendFrame).model_validate_json(
            self.frame("m1", 1))

    def frame(self, message_id: str, seq: int) -> str:
        head, mid, tail_a, tail_b = self._parts
        if not self._chained:
            return f"{head}{message_id}{tail_a}{b64u(self.ct_bytes)}{tail_b}"
        return f"{head}{message_id}{mid}{seq}{tail_a}{b64u(self.ct_bytes)}{tail_b}"


def typing_frame(sender: str, peer: str) -> str:
    """A v2 `typing` frame (never stored): the envelope of a signal, a fresh ciphertext."""
    body = envelope(sender, peer, 0, kind="typing", ct_bytes=SIGNAL_CT_BYTES)
    return orjson.dumps({"type": "typing", "peer": peer, "body": body}).decode()


class Cursors:
    """Cursors in the gateway's format (32 hex digits: µs, node, counter), increasing."""

    def __init__(self, node: int) -> None:
        self._node = node & 0xFFFFFFFF
        self._last = 0
        self._n = 0

    def next(self) -> tuple[str, int]:
        now = max(time.time_ns() // 1000, self._last + 1)
        self._last = now
        self._n = (self._n + 1) & 0xFFFFFFFF
        return f"{now:016x}{self._node:08x}{self._n:08x}", now // 1000


def room_message(sender: str, peer: str, message_id: str, seq: int,
                 cursors: Cursors) -> tuple[bytes, str]:
    """(body, cursor) of a chat message exactly as a gateway publishes it (gateway/socket.py)."""
    cursor, ts = cursors.next()
    body = {"type": "message", "id": message_id, "sender": sender,
            "room": room_id(sender, peer), "kind": "text",
            "body": envelope(sender, peer, seq), "ts": ts, "cursor": cursor}
    return orjson.dumps(body), cursor
