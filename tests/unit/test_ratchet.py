"""The Double Ratchet's promises (client.ratchet): forward secrecy and post-compromise
security against a copy of a device's session state, late and reordered messages within
the bound, and a named error (never a silent loss) beyond it."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from client.ratchet import (
    Header,
    RatchetError,
    Session,
    public_raw,
    x3dh_initiate,
    x3dh_respond,
)
from contracts.prekeys import MAX_SKIP, MAX_SKIPPED


def pair() -> tuple[Session, Session]:
    ika, ek, ikb, spkb, opkb = (X25519PrivateKey.generate() for _ in range(5))
    sk, ad = x3dh_initiate(ika, ek, public_raw(ikb), public_raw(spkb), public_raw(opkb))
    assert (sk, ad) == x3dh_respond(ikb, spkb, opkb, public_raw(ika), public_raw(ek))
    return (Session.initiate(sk, ad, public_raw(spkb), {"spk": 1}),
            Session.respond(sk, ad, spkb))


def test_a_copy_taken_at_t_cannot_read_after_the_next_ratchet_step() -> None:
    """Alice's whole session state copied at T (what stealing the device would give): it
    still opens what was in flight to her, but after Bob's next message ratchets her on, a
    message Bob sends then does not open with the copy; the live session opens it."""
    alice, bob = pair()
    bob.decrypt(*alice.encrypt(b"hello"))
    copy_at_t = alice.copy()
    in_flight = bob.encrypt(b"sent before T, delivered after")
    assert copy_at_t.copy().decrypt(*in_flight) == b"sent before T, delivered after"
    assert alice.decrypt(*in_flight) == b"sent before T, delivered after"
    bob.decrypt(*alice.encrypt(b"alice ratchets: a new DH key"))
    after = bob.encrypt(b"after the next step")
    assert after[0].dh != in_flight[0].dh  # Bob ratcheted too
    with pytest.raises(RatchetError) as caught:
        copy_at_t.decrypt(*after)
    assert caught.value.code == "bad_message"
    assert alice.decrypt(*after) == b"after the next step"


def test_current_keys_cannot_read_messages_received_before() -> None:
    """After T, the device's current state opens none of the messages it had received: each
    message key was deleted once used (the stored ciphertext stays unreadable)."""
    alice, bob = pair()
    received = []
    for i in range(6):
        message = alice.encrypt(f"a{i}".encode())
        bob.decrypt(*message)
        received.append(message)
        bob_reply = bob.encrypt(f"b{i}".encode())
        alice.decrypt(*bob_reply)
    for message in received:
        with pytest.raises(RatchetError) as caught:
            bob.copy().decrypt(*message)
        assert caught.value.code == "key_gone"
    assert not bob.state["skipped"]


def test_late_and_reordered_messages_within_the_bound_open() -> None:
    """Messages of several chains, shuffled, all open exactly once."""
    alice, bob = pair()
    rng = random.Random(7)
    pending = []
    for round_ in range(5):
        pending += [(f"a{round_}.{i}".encode(), alice.encrypt(f"a{round_}.{i}".encode()))
                    for i in range(8)]
        # Bob hears one message of the round, so the next round is a new chain.
        text, message = pending.pop(rng.randrange(len(pending)))
        assert bob.decrypt(*message) == text
        alice.decrypt(*bob.encrypt(b"ack"))
    rng.shuffle(pending)
    for text, message in pending:
        assert bob.decrypt(*message) == text


def test_a_gap_beyond_max_skip_is_a_named_error_and_loses_nothing() -> None:
    """A message more than MAX_SKIP ahead in its chain raises too_far_ahead and leaves the
    session as it was: the messages before it still open."""
    alice, bob = pair()
    messages = [alice.encrypt(b"m%d" % i) for i in range(MAX_SKIP + 2)]
    with pytest.raises(RatchetError) as caught:
        bob.decrypt(*messages[-1])
    assert caught.value.code == "too_far_ahead"
    assert bob.decrypt(*messages[0]) == b"m0"
    assert bob.decrypt(*messages[MAX_SKIP]) == b"m%d" % MAX_SKIP  # exactly the bound


def test_skipped_keys_are_bounded_and_a_dropped_one_is_named() -> None:
    """At most MAX_SKIPPED skipped keys are kept; a message whose key was dropped raises
    key_gone."""
    alice, bob = pair()
    first = alice.encrypt(b"first")
    for _round in range(3):
        batch = [alice.encrypt(b"x") for _ in range(MAX_SKIP)]
        bob.decrypt(*batch[-1])  # skips MAX_SKIP - 1 keys (plus `first` in round 0)
        alice.decrypt(*bob.encrypt(b"ack"))
    assert len(bob.state["skipped"]) == MAX_SKIPPED
    with pytest.raises(RatchetError) as caught:
        bob.decrypt(*first)
    assert caught.value.code == "key_gone"


def test_a_malformed_header_is_refused_by_name() -> None:
    """Headers with a short key or counters out of range are bad_message."""
    for bad in ({"dh": "AAAA", "pn": 0, "n": 0}, {"dh": "A" * 43, "pn": -1, "n": 0},
                {"dh": "A" * 43, "pn": 0, "n": 2**32}, {"pn": 0}):
        with pytest.raises(RatchetError) as caught:
            Header.from_wire(bad)
        assert caught.value.code == "bad_message"


def test_a_low_order_key_is_refused() -> None:
    """X3DH with an all-zero public key (low order) is bad_key, not a weak secret."""
    with pytest.raises(RatchetError) as caught:
        x3dh_initiate(X25519PrivateKey.generate(), X25519PrivateKey.generate(), bytes(32),
                      bytes(32), None)
    assert caught.value.code == "bad_key"
