"""Hash chains: ok, duplicate, gap, replay and fork, each told apart."""

from __future__ import annotations

from client.chain import Chains


def test_chain_verdicts_in_order() -> None:
    """A run of envelopes from one device gets each verdict once."""
    c = Chains()
    assert c.check("r", "d", 1, "", "h1", "m1").kind == "ok"
    assert c.check("r", "d", 2, "h1", "h2", "m2").kind == "ok"
    assert c.check("r", "d", 2, "h1", "h2", "m2").kind == "duplicate"
    assert c.check("r", "d", 1, "", "h1", "m9").kind == "replay"
    assert c.check("r", "d", 4, "h3", "h4", "m4").kind == "gap"
    assert c.check("r", "d", 5, "zz", "h5", "m5").kind == "fork"
    assert c.check("r", "d", 3, "h2", "h3", "m3").kind == "late"  # the gap, filled late
    assert c.check("r", "d", 3, "h2", "h3", "m3").kind == "duplicate"


def test_chains_are_per_device_and_room_and_persist() -> None:
    """Another device or room starts its own chain; state survives a JSON round trip."""
    c = Chains()
    c.check("r", "d1", 1, "", "a", "m1")
    assert c.check("r", "d2", 1, "", "b", "m2").kind == "ok"
    assert c.check("s", "d1", 1, "", "c", "m3").kind == "ok"
    again = Chains(c.to_json())
    assert again.check("r", "d1", 2, "a", "d", "m4").kind == "ok"
    assert again.check("r", "d1", 1, "", "a", "m1").kind == "duplicate"
