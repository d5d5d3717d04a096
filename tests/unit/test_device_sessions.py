"""A device's sessions and prekeys at rest (client.sessions over client.vault): X3DH from a
claimed bundle, the one-time prekey used once, signed prekey rotation, both devices
starting a session at once, and the RSA entry for a device without a bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from client import crypto
from client.errors import CryptoError
from client.ratchet import RatchetError
from client.sessions import OLD_SPKS, SPK_ROTATE_DAYS, DeviceSessions, Target, bundle_verifies
from client.vault import Vault

DAY_MS = 86_400_000
KEYS = {name: crypto.DeviceKeys.generate() for name in ("alice", "bob")}


class Device:
    def __init__(self, home: Path, name: str) -> None:
        self.keys = KEYS[name]
        self.user = f"{name:0<24}"[:24]
        self.sessions = DeviceSessions(Vault(home / name, "sessions", "passphrase"))
        self.upload: dict[str, Any] = {}

    def publish(self, now: int, want: int = 3) -> dict[str, Any]:
        self.upload = self.sessions.prekey_upload(self.keys, self.user, want, now)
        return self.upload

    def target(self, one_time: int | None = 0) -> Target:
        """This device as a sender sees it after claiming its bundle."""
        return Target(self.keys.kid, self.keys.enc.public_key(), self.upload["bundle"],
                      self.upload["one_time"][one_time] if one_time is not None else None)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Device, Device]:
    return Device(tmp_path, "alice"), Device(tmp_path, "bob")


def test_bundle_is_signed_by_its_device_and_verified_for_it(pair: Any) -> None:
    """The uploaded bundle verifies for its user and device only."""
    _, bob = pair
    bundle = bob.publish(0)["bundle"]
    assert bundle_verifies(bundle, bob.user, bob.keys.kid, bob.keys.sig_spki)
    assert not bundle_verifies(bundle, "x" * 24, bob.keys.kid, bob.keys.sig_spki)
    assert not bundle_verifies(bundle, bob.user, bob.keys.kid, KEYS["alice"].sig_spki)


def test_a_one_time_prekey_opens_one_session_only(pair: Any) -> None:
    """A session built on a one-time prekey opens; the private half is then gone, so a
    second session built on the same claimed key is prekey_gone."""
    alice, bob = pair
    bob.publish(0)
    [entry] = alice.sessions.seal(b"k" * 32, [bob.target()])
    assert entry["pre"]["opk"] == bob.upload["one_time"][0]["id"]
    assert bob.sessions.open(alice.keys.kid, entry) == b"k" * 32
    other = Device(alice.sessions.vault.path.parent.parent, "alice")
    other.sessions = DeviceSessions(Vault(alice.sessions.vault.path.parent.parent / "a2",
                                          "sessions", "passphrase"))
    other.publish(0)
    [replayed] = other.sessions.seal(b"j" * 32, [bob.target()])
    with pytest.raises(RatchetError) as caught:
        bob.sessions.open(alice.keys.kid, replayed)
    assert caught.value.code == "prekey_gone"


def test_a_replaced_signed_prekey_still_opens_what_was_built_on_it(pair: Any) -> None:
    """Bundle claimed with signed prekey 1; Bob rotates it (SPK_ROTATE_DAYS later) before
    the message arrives: it opens with the kept previous key. After OLD_SPKS more rotations,
    a message built on prekey 1 is prekey_gone."""
    alice, bob = pair
    bob.publish(0)
    claimed = bob.target(one_time=None)
    assert not bob.sessions.spk_due(DAY_MS)
    now = (SPK_ROTATE_DAYS + 1) * DAY_MS
    assert bob.sessions.spk_due(now)
    assert bob.publish(now)["bundle"]["spk"]["id"] == 2
    [entry] = alice.sessions.seal(b"k" * 32, [claimed])
    assert entry["pre"]["spk"] == 1 and entry["pre"]["opk"] is None
    assert bob.sessions.open(alice.keys.kid, entry) == b"k" * 32
    for i in range(OLD_SPKS):
        now += (SPK_ROTATE_DAYS + 1) * DAY_MS
        assert bob.publish(now)["bundle"]["spk"]["id"] == 3 + i
    late = Device(alice.sessions.vault.path.parent.parent, "alice")
    late.sessions = DeviceSessions(Vault(alice.sessions.vault.path.parent.parent / "a3",
                                         "sessions", "passphrase"))
    late.publish(0)
    [entry] = late.sessions.seal(b"k" * 32, [claimed])
    with pytest.raises(RatchetError) as caught:
        bob.sessions.open(alice.keys.kid, entry)
    assert caught.value.code == "prekey_gone"


def test_both_devices_starting_at_once_converge(pair: Any) -> None:
    """Alice and Bob each build a session from the other's bundle before hearing from the
    other: each opens the other's first message (two sessions each), and from then on
    messages each way open, sent on the session that last opened one."""
    alice, bob = pair
    alice.publish(0)
    bob.publish(0)
    [to_bob] = alice.sessions.seal(b"a" * 32, [bob.target()])
    [to_alice] = bob.sessions.seal(b"b" * 32, [alice.target()])
    assert bob.sessions.open(alice.keys.kid, to_bob) == b"a" * 32
    assert alice.sessions.open(bob.keys.kid, to_alice) == b"b" * 32
    for i in range(4):
        [e] = alice.sessions.seal(bytes([i]) * 32, [bob.target()])
        assert bob.sessions.open(alice.keys.kid, e) == bytes([i]) * 32
        [e] = bob.sessions.seal(bytes([i + 10]) * 32, [alice.target()])
        assert alice.sessions.open(bob.keys.kid, e) == bytes([i + 10]) * 32
    held = alice.sessions.vault.read()["sessions"][bob.keys.kid]
    assert len(held) == 2


def test_a_device_without_session_or_bundle_gets_rsa(pair: Any) -> None:
    """No session and no bundle: the entry is the RSA-OAEP wrap, which its key opens."""
    alice, bob = pair
    [entry] = alice.sessions.seal(b"k" * 32, [Target(bob.keys.kid, bob.keys.enc.public_key())])
    assert set(entry) == {"kid", "wk"}
    assert crypto.unwrap(bob.keys.enc, crypto.unb64u(entry["wk"])) == b"k" * 32


def test_the_vault_is_sealed_under_the_passphrase(pair: Any, tmp_path: Path) -> None:
    """The sessions file holds no key in the clear, and another passphrase opens nothing."""
    _, bob = pair
    upload = bob.publish(0)
    raw = bob.sessions.vault.path.read_text()
    assert upload["bundle"]["ik"] not in raw and "private" not in raw
    with pytest.raises(CryptoError):
        Vault(tmp_path / "bob", "sessions", "another passphrase").read()


def test_kept_history_is_a_sealed_journal_read_from_where_it_was(tmp_path: Path) -> None:
    """Each kept message is one sealed line (no plaintext in the file); a reader sees what
    another writer of the same home appended since; a line torn by a crash is skipped and
    cut before the next one is written."""
    from client.localhistory import LocalHistory
    writer, reader = (LocalHistory(tmp_path, "passphrase") for _ in range(2))
    frame = {"room": "r", "id": "1", "kind": "text", "body": {"ct": "secret words"}}
    writer.add(frame, "h1", b"k" * 32)
    assert reader.key("r", "h1") == b"k" * 32
    writer.add({**frame, "id": "2"}, "h2", b"j" * 32)
    path = tmp_path / "history" / "r.journal"
    assert "secret words" not in path.read_text()
    assert len(path.read_text().splitlines()) == 3  # the salt, then one line a message
    with path.open("a") as f:
        f.write('{"iv": "torn')  # a crash mid-line
    assert set(reader.room("r")) == {"h1", "h2"}
    writer.add({**frame, "id": "3"}, "h3", b"i" * 32)
    assert set(reader.room("r")) == {"h1", "h2", "h3"}
    assert set(LocalHistory(tmp_path, "passphrase").room("r")) == {"h1", "h2", "h3"}
    assert reader.keys() == {"h1": b"k" * 32, "h2": b"j" * 32, "h3": b"i" * 32}


def test_open_keeps_before_the_session_moves_on(pair: Any) -> None:
    """The content key is kept (keep) before the sessions are written: if keeping fails
    (a crash), the session is as it was and the message opens again; once kept, a second
    open finds it (kept) without touching the session."""
    alice, bob = pair
    bob.publish(0)
    [entry] = alice.sessions.seal(b"k" * 32, [bob.target()])
    before = bob.sessions.vault.path.read_bytes() if bob.sessions.vault.path.exists() else b""

    def crash(key: bytes) -> None:
        raise OSError("disk full")
    with pytest.raises(OSError):
        bob.sessions.open(alice.keys.kid, entry, keep=crash)
    assert (bob.sessions.vault.path.read_bytes() if bob.sessions.vault.path.exists()
            else b"") == before
    kept: list[bytes] = []
    assert bob.sessions.open(alice.keys.kid, entry, keep=kept.append) == b"k" * 32
    assert kept == [b"k" * 32]
    assert bob.sessions.open(alice.keys.kid, entry, kept=lambda: kept[0]) == b"k" * 32
    with pytest.raises(RatchetError) as caught:  # without the kept copy: opened once only
        bob.sessions.open(alice.keys.kid, entry)
    assert caught.value.code == "key_gone"


def test_a_bundle_with_a_low_order_key_gets_the_rsa_entry(pair: Any) -> None:
    """A one-time prekey of low order (the directory serves them unsigned) makes X3DH
    refuse: that device gets the RSA-OAEP entry, the send goes on."""
    alice, bob = pair
    bob.publish(0)
    bad = Target(bob.keys.kid, bob.keys.enc.public_key(), bob.upload["bundle"],
                 {"id": 9, "key": crypto.b64u(bytes(32))})
    [entry] = alice.sessions.seal(b"k" * 32, [bad])
    assert set(entry) == {"kid", "wk"}
    assert not alice.sessions.has_session(bob.keys.kid)


def test_journal_survives_a_torn_image_record_and_a_torn_header(tmp_path: Path) -> None:
    """A multi-megabyte record torn by a crash is cut before the next append; an empty or
    header-torn journal reads as empty and the next append starts it afresh."""
    from client.localhistory import LocalHistory
    from client.vault import Journal
    history = LocalHistory(tmp_path, "passphrase")
    frame = {"room": "r", "id": "1", "kind": "image", "body": {"ct": "x" * 10}}
    history.add(frame, "h1", b"k" * 32)
    path = tmp_path / "history" / "r.journal"
    with path.open("a") as f:
        f.write('{"iv": "' + "A" * (3 << 20))  # a 3 MB image record, torn
    history.add({**frame, "id": "2"}, "h2", b"j" * 32)
    assert set(LocalHistory(tmp_path, "passphrase").room("r")) == {"h1", "h2"}
    for torn in (b"", b'{"v": 1, "sa'):
        other = tmp_path / "other"
        other.mkdir(exist_ok=True)
        (other / "t.journal").write_bytes(torn)
        journal = Journal(other, "t", "passphrase")
        assert journal.read() == ([], 0)
        journal.append({"n": 1})
        assert journal.read()[0] == [{"n": 1}]
