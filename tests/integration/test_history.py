"""History over REST and the `sync` frame."""

from __future__ import annotations

import asyncio

import httpx
from support import Gateway, User, befriend, envelope, open_socket, signup


async def pair_with_messages(gw: Gateway, http: httpx.AsyncClient, count: int,
                             stem: str) -> tuple[User, User, list[dict]]:
    """A and B are friends and A has sent `count` messages, all stored."""
    a, b = await signup(http, gw.http), await signup(http, gw.http)
    await befriend(http, gw.http, a, b)
    async with open_socket(gw, a, b) as sa:
        for i in range(count):
            await sa.send({"type": "send", "id": f"{stem}{i}", "kind": "text",
                           "body": envelope(a, b, i)})
        acks = await sa.collect("ack", count)
        stored = await sa.collect("stored", count)
    assert {s["id"] for s in stored} == {a["id"] for a in acks}
    return a, b, acks


async def test_history_pages_250_messages_forward_without_gap_or_duplicate(gw: Gateway) -> None:
    """limit=100 pages forward through 250 messages: 100, 100, 50, in send order."""
    async with httpx.AsyncClient() as http:
        a, b, _ = await pair_with_messages(gw, http, 250, "h")
        pages, after = [], None
        while True:
            params = {"limit": 100, **({"after": after} if after else {})}
            r = await http.get(f"{gw.http}/api/rooms/{a.user_id}/messages", params=params,
                               headers=b.auth)
            assert r.status_code == 200, r.text
            page = r.json()
            pages.append(page["messages"])
            if page["next"] is None:
                break
            after = page["next"]
    assert [len(p) for p in pages] == [100, 100, 50]
    ids = [m["id"] for p in pages for m in p]
    assert ids == [f"h{i}" for i in range(250)]
    cursors = [m["cursor"] for p in pages for m in p]
    assert cursors == sorted(cursors) and len(set(cursors)) == 250


async def test_history_pages_backward_from_latest(gw: Gateway) -> None:
    """before=latest gives the newest page; `next` pages back to the first message."""
    async with httpx.AsyncClient() as http:
        a, b, _ = await pair_with_messages(gw, http, 250, "r")
        pages, before = [], "latest"
        while before:
            r = await http.get(f"{gw.http}/api/rooms/{b.user_id}/messages",
                               params={"limit": 100, "before": before}, headers=a.auth)
            page = r.json()
            pages.append([m["id"] for m in page["messages"]])
            before = page["next"]
    assert [len(p) for p in pages] == [100, 100, 50]
    assert [i for p in reversed(pages) for i in p] == [f"r{i}" for i in range(250)]


async def test_history_for_non_member_returns_403_problem(gw: Gateway) -> None:
    """A stranger cannot read a room: 403 problem JSON; bad cursors get 422."""
    async with httpx.AsyncClient() as http:
        a, b, _ = await pair_with_messages(gw, http, 3, "s")
        c = await signup(http, gw.http)
        r = await http.get(f"{gw.http}/api/rooms/{a.user_id}/messages", headers=c.auth)
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        r = await http.get(f"{gw.http}/api/rooms/{a.user_id}/messages")
        assert r.status_code == 401
        r = await http.get(f"{gw.http}/api/rooms/{a.user_id}/messages",
                           params={"after": {"$gt": ""}}, headers=b.auth)
        assert r.status_code == 422
        r = await http.get(f"{gw.http}/api/rooms/{a.user_id}/messages",
                           params={"limit": 0}, headers=b.auth)
        assert r.status_code == 422


async def test_sync_after_cursor_replays_exactly_the_later_messages_then_live(
        gw: Gateway) -> None:
    """sync after message 20's cursor replays 21..49, says synced, then live ones follow."""
    async with httpx.AsyncClient() as http:
        a, b, acks = await pair_with_messages(gw, http, 50, "y")
    cursor = next(x["cursor"] for x in acks if x["id"] == "y20")
    async with open_socket(gw, b, a) as sb:
        await sb.send({"type": "sync", "after": cursor})
        replayed = await sb.collect("message", 29)
        synced = await sb.recv_type("synced")
        assert [m["id"] for m in replayed] == [f"y{i}" for i in range(21, 50)]
        assert synced["count"] == 29 and synced["cursor"] == replayed[-1]["cursor"]
        async with open_socket(gw, a, b) as sa:
            await sa.send({"type": "send", "id": "live1", "kind": "text",
                           "body": envelope(a, b, 0)})
            live = await sb.recv_type("message")
        assert live["id"] == "live1"
        assert await sb.quiet("message", 0.3) == []


async def test_sync_from_start_with_concurrent_sends_has_no_gap_or_duplicate(
        gw: Gateway) -> None:
    """Messages sent while a sync replays arrive once each, after the replay."""
    async with httpx.AsyncClient() as http:
        a, b, _ = await pair_with_messages(gw, http, 300, "z")
    async with open_socket(gw, a, b) as sa, open_socket(gw, b, a) as sb:
        async def more() -> None:
            for i in range(100):
                await sa.send({"type": "send", "id": f"late{i}", "kind": "text",
                               "body": envelope(a, b, i)})
        sender = asyncio.create_task(more())
        await sb.send({"type": "sync", "after": None})
        got = await sb.collect("message", 400, timeout=30)
        await sender
        assert await sb.quiet("message", 0.5) == []
    ids = [m["id"] for m in got]
    assert len(ids) == len(set(ids)) == 400
    assert [i for i in ids if i.startswith("z")] == [f"z{i}" for i in range(300)]
    assert [i for i in ids if i.startswith("late")] == [f"late{i}" for i in range(100)]
