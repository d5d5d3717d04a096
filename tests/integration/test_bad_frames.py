"""Bad frames get an error frame with a machine code; the socket stays usable."""

from __future__ import annotations

import httpx
import pytest
from support import Gateway, befriend, envelope, friends, open_socket, signup

BAD_FRAMES = [
    ("{not json", "bad_json", None),
    ('["send"]', "invalid_frame", None),
    ('{"type":"shout","id":"q1"}', "unknown_type", "q1"),
    ('{"id":"q2","kind":"text","body":{}}', "unknown_type", "q2"),
    ('{"type":"send","kind":"text","body":{}}', "invalid_frame", None),
    ('{"type":"send","id":"q3","kind":"text"}', "invalid_frame", "q3"),
    ('{"type":"send","id":"q4","kind":"video","body":{}}', "invalid_frame", "q4"),
    ('{"type":"send","id":"bad id!","kind":"text","body":{}}', "invalid_frame", "bad id!"),
    ('{"type":"send","id":"q5","kind":"text","body":"plain"}', "invalid_frame", "q5"),
    ('{"type":"sync","after":{"$gt":""}}', "invalid_frame", None),
]


@pytest.mark.parametrize(("raw", "code", "frame_id"), BAD_FRAMES)
async def test_bad_frame_gets_error_and_socket_keeps_working(
        gw: Gateway, raw: str, code: str, frame_id: str | None) -> None:
    """The bad frame is answered with its code; a good send right after is acked."""
    a, b = await friends(gw)
    async with open_socket(gw, a, b) as sa:
        await sa.send(raw)
        error = await sa.recv_type("error")
        assert error["code"] == code and error["detail"]
        assert error.get("id") == frame_id
        await sa.send({"type": "send", "id": "after", "kind": "text", "body": envelope(a, b, 1)})
        assert (await sa.recv_type("ack"))["id"] == "after"


async def test_send_with_foreign_envelope_gets_envelope_mismatch(gw: Gateway) -> None:
    """An envelope for another room, from another sender, or of another kind is refused."""
    async with httpx.AsyncClient() as http:
        a, b, c = [await signup(http, gw.http) for _ in range(3)]
        await befriend(http, gw.http, a, b)
    async with open_socket(gw, a, b) as sa:
        for body, kind in ((envelope(a, c), "text"), (envelope(b, a), "text"),
                           (envelope(a, b, kind="image"), "text")):
            await sa.send({"type": "send", "id": "m", "kind": kind, "body": body})
            error = await sa.recv_type("error")
            assert (error["code"], error["id"]) == ("envelope_mismatch", "m")
        await sa.send({"type": "send", "id": "ok", "kind": "text", "body": envelope(a, b)})
        assert (await sa.recv_type("ack"))["id"] == "ok"


async def test_send_text_over_text_limit_gets_too_large(gw: Gateway) -> None:
    """A text envelope beyond DUET_MAX_TEXT_BYTES (but within the frame limit): too_large."""
    a, b = await friends(gw)
    async with open_socket(gw, a, b) as sa:
        await sa.send({"type": "send", "id": "t", "kind": "text",
                       "body": envelope(a, b, size=80 * 1024)})
        error = await sa.recv_type("error")
        assert (error["code"], error["id"]) == ("too_large", "t")
        await sa.send({"type": "send", "id": "i", "kind": "image",
                       "body": envelope(a, b, kind="image", size=80 * 1024)})
        assert (await sa.recv_type("ack"))["id"] == "i"


async def test_binary_frame_gets_error_and_socket_keeps_working(gw: Gateway) -> None:
    """A binary frame is refused with `binary_frame`."""
    a, b = await friends(gw)
    async with open_socket(gw, a, b) as sa:
        await sa.ws.send(b"\x00\x01")
        assert (await sa.recv_type("error"))["code"] == "binary_frame"
        await sa.send({"type": "send", "id": "ok", "kind": "text", "body": envelope(a, b, 1)})
        assert (await sa.recv_type("ack"))["id"] == "ok"


async def test_oversized_frame_closes_1009(gw: Gateway) -> None:
    """A frame over DUET_MAX_FRAME_BYTES closes the socket with 1009."""
    from websockets.exceptions import ConnectionClosed
    a, b = await friends(gw)
    async with open_socket(gw, a, b) as sa:
        huge = {"type": "send", "id": "big", "kind": "text",
                "body": {"ct": "A" * (9 * 1024 * 1024)}}
        with pytest.raises(ConnectionClosed):
            await sa.send(huge)
            await sa.recv(10)
        assert sa.ws.close_code == 1009
