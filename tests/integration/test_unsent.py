"""A message the broker routed to the gateways but did not confirm (duet.persist refused
it) is pushed live, then said `unsent`: the receiver shows it as not sent until its
sender's resend is confirmed and it comes again. Nothing stays shown as delivered with
nothing behind it.

The refusal is real: duet.persist is declared here, before the gateway starts, as a
quorum queue of at most one message that rejects publishes past that (`x-overflow:
reject-publish`) and is filled past it, so RabbitMQ nacks the chat message while still
routing it to the gateways."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import Stack, declare_small_persist_queue, drop_broker_names, purge, unique_name

from client import Client, Message, Unsent
from contracts import Names

pytestmark = pytest.mark.timeout(120)


async def test_a_message_the_broker_refused_is_unsent_on_the_other_side_until_resent(
        amqp_url: str, mongo_url: str, tmp_path: Path) -> None:
    stack = Stack(amqp_url, mongo_url, tmp_path / "logs")
    names = Names(prefix=stack.prefix)
    await declare_small_persist_queue(amqp_url, names)
    gw = stack.gateway(DUET_DECLARE_TOPOLOGY="false", DUET_PUBLISH_TIMEOUT_S="2")
    alice = Client(gw.http, home=tmp_path / "a", passphrase="unsent passphrase")
    bob = Client(gw.http, home=tmp_path / "b", passphrase="unsent passphrase")
    na, nb = unique_name("ua"), unique_name("ub")
    events: list[Message | Unsent] = []
    try:
        await alice.register(na, "password-a-123")
        await bob.register(nb, "password-b-123")
        await alice.add_friend(nb)
        await bob.accept_friend(na)
        ready = asyncio.Event()

        async def listen() -> None:
            async for event in bob.listen(on_ready=ready.set):
                if isinstance(event, Message | Unsent):
                    events.append(event)

        listener = asyncio.create_task(listen())
        await asyncio.wait_for(ready.wait(), 30)
        # Refused; the SDK resends it until it is confirmed.
        sending = asyncio.create_task(alice.send_text(nb, "refused", message_id="over"))

        def seen(kind: type, mid: str) -> int:
            return sum(1 for e in events if isinstance(e, kind) and e.id == mid)

        async def until(check: object, what: str) -> None:
            for _ in range(150):
                if check():  # type: ignore[operator]
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"{what}: {events}")

        await until(lambda: seen(Unsent, "over") >= 1, "the refused message said unsent")
        first = next(i for i, e in enumerate(events) if e.id == "over")
        assert isinstance(events[first], Message)  # shown live first: the broker routed it
        assert not sending.done()  # still unconfirmed: no ack for the sender
        await purge(amqp_url, names.persist_queue)  # room again: the next resend is confirmed
        await asyncio.wait_for(sending, 30)
        await until(lambda: isinstance([e for e in events if e.id == "over"][-1], Message),
                    "the resent message shown again")
        await asyncio.sleep(0.5)
        last = [e for e in events if e.id == "over"][-1]
        assert isinstance(last, Message) and last.text == "refused"
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    finally:
        await alice.close()
        await bob.close()
        stack.stop()
        await asyncio.to_thread(drop_broker_names, stack)
