"""Messages in flight (published, not yet stored) while a client was away reach it."""

from __future__ import annotations

from support import Stack, envelope, friends, open_socket


async def test_sync_receives_messages_stored_after_history_read(stack: Stack) -> None:
    """Sent while no persister runs, B syncs (history lacks them), then they are stored:
    B gets each exactly once, through the persister's stored notice."""
    gw = stack.gateway()
    a, b = await friends(gw)
    async with open_socket(gw, a, b) as sa:
        for i in range(30):
            await sa.send({"type": "send", "id": f"f{i}", "kind": "text",
                           "body": envelope(a, b, i)})
        await sa.collect("ack", 30)  # durable in duet.persist, not yet in MongoDB
        async with open_socket(gw, b, a) as sb:
            await sb.send({"type": "sync", "after": None})
            synced = await sb.recv_type("synced")
            assert synced["count"] == 0
            for i in range(30, 40):  # live ones, sent after B joined
                await sa.send({"type": "send", "id": f"f{i}", "kind": "text",
                               "body": envelope(a, b, i)})
            stack.persister()
            got = await sb.collect("message", 40, timeout=10)
            assert await sb.quiet("message", 1.0) == []  # and nothing twice
    ids = [m["id"] for m in got]
    assert sorted(ids) == sorted(f"f{i}" for i in range(40)) and len(set(ids)) == 40
    live = [i for i in ids if int(i[1:]) >= 30]
    assert live == [f"f{i}" for i in range(30, 40)]  # one sender's live order is kept
