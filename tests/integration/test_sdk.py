"""The Python SDK end to end: keys, envelopes, verification, over real services."""

from __future__ import annotations

import asyncio
from pathlib import Path

from support import Gateway

from client import Alert, Client, Message

PASS = "test passphrase"


async def collect(client: Client, friend: str, count: int, timeout: float = 20.0,
                  **kw: object) -> list[Message | Alert]:
    out: list[Message | Alert] = []

    async def run() -> None:
        async for event in client.listen(friend, **kw):
            out.append(event)
            if len(out) >= count:
                return

    try:
        await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        raise AssertionError(f"only {len(out)} of {count} events: {out}") from None
    return out


async def test_sdk_text_round_trip_verified_and_decrypted(sdk_pair) -> None:
    """A sends text; B receives it verified and decrypted, and B's reply reaches A."""
    a, b, na, nb = sdk_pair
    await a.send_text(nb, "hello bob")
    [got] = await collect(b, na, 1)
    assert isinstance(got, Message) and got.text == "hello bob" and got.sender_name == na
    await b.send_text(na, "hi alice")
    mine, back = await collect(a, nb, 2)  # A's own first message comes back from history too
    assert isinstance(mine, Message) and mine.own and mine.text == "hello bob"
    assert isinstance(back, Message) and back.text == "hi alice" and not back.own


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2a2a0c20000000049454e44ae426082")


async def test_sdk_image_and_second_device_reads_own_history(sdk_pair, gw: Gateway,
                                                              tmp_path: Path) -> None:
    """An image arrives byte for byte; A's second device decrypts A's own sent messages."""
    a, b, na, nb = sdk_pair
    a2 = Client(gw.http, home=tmp_path / "a2", passphrase=PASS)
    await a2.login(na, "password-a-123")  # a second device, approved before sending
    await a.approve_device(a2.link_code)
    try:
        await a.send_text(nb, "text first")
        await a.send_image(nb, PNG, mime="image/png", name="dot.png")
        got = await collect(b, na, 2)
        assert [m.kind for m in got] == ["text", "image"]
        assert got[1].content.data == PNG and got[1].content.meta["name"] == "dot.png"
        own = await a2.history(nb)
        assert [(m.own, m.kind) for m in own] == [(True, "text"), (True, "image")]
        assert own[0].text == "text first" and own[1].content.data == PNG
    finally:
        await a2.close()


async def test_sdk_safety_numbers_match_and_stay_when_devices_are_added(
        sdk_pair, gw: Gateway, tmp_path: Path) -> None:
    """Both friends compute the same safety number; an approved new device on either side
    changes neither it nor raises an alert, and its messages arrive verified."""
    a, b, na, nb = sdk_pair
    sa, sb = await a.safety_number(nb), await b.safety_number(na)
    assert sa == sb and len(sa.split()) == 12
    await a.send_text(nb, "before")
    assert [m.text for m in await collect(b, na, 1)] == ["before"]
    b2 = Client(gw.http, home=tmp_path / "b2", passphrase=PASS)
    await b2.login(nb, "password-b-123")
    await b.approve_device(b2.link_code)
    await b2.close()
    assert await a.safety_number(nb) == sa
    a3 = Client(gw.http, home=tmp_path / "a3", passphrase=PASS)
    await a3.login(na, "password-a-123")
    await a.approve_device(a3.link_code)
    await a3.send_text(nb, "from a new device")
    await a3.close()
    [event] = await collect(b, na, 1)
    assert isinstance(event, Message) and event.text == "from a new device"
    # Only each one's own devices while they waited for approval; nothing about the friend.
    assert [w for w in a.warnings + b.warnings if w.sender not in (a.user_id, b.user_id)
            or w.kind != "unapproved_device"] == []
    assert [w for w in a.warnings if w.sender == b.user_id] == []
    assert [w for w in b.warnings if w.sender == a.user_id] == []
