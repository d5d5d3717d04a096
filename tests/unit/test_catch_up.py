"""After `sync_needed` the SDK syncs from cursors at least CATCH_UP_S old: live frames
that overtook the notice moved its cursors past what the gateway lost meanwhile."""

from __future__ import annotations

from pathlib import Path

from client import sdk
from client.sdk import Client, _Listener


def test_catch_up_sync_reaches_back_past_live_frames(tmp_path: Path,
                                                     monkeypatch: object) -> None:
    """Cursors snapshot every CATCH_UP_S: the catch-up sync names the older snapshot's
    cursor (a room first seen since, from its start); the ordinary sync the newest."""
    c = Client("http://127.0.0.1:9", home=tmp_path, passphrase="p")
    c.user_id = "a" * 24
    c._listeners.append(_Listener(None))
    c._cursors = {"r1": "01"}
    c._earlier = {"r1": "01"}
    clock = [c._snapped + sdk.CATCH_UP_S]
    monkeypatch.setattr(sdk.time, "monotonic", lambda: clock[0])  # type: ignore[attr-defined]
    for cursor in ("05", "09"):  # two snapshots, CATCH_UP_S apart
        c._cursors["r1"] = cursor
        c._cursors["r2"] = cursor
        c._snapshot_cursors()
        clock[0] += sdk.CATCH_UP_S
    assert c._sync_frame() == {"type": "sync", "after": {"r1": "09", "r2": "09"}}
    assert c._sync_frame(catch_up=True) == {"type": "sync", "after": {"r1": "05", "r2": "05"}}
    c._earlier = {"r1": "05"}
    assert c._sync_frame(catch_up=True) == {"type": "sync", "after": {"r1": "05", "r2": None}}
