"""The benchmark's command line, its profile summary and its signal frames (not the
benchmark itself)."""

from __future__ import annotations

import pytest

from bench.__main__ import parse_args
from bench.envelopes import SIGNAL_CT_BYTES, SendFrames, typing_frame
from bench.profile import top_functions
from contracts import DeviceSendFrame, TypingFrame, room_id
from contracts.envelope import MAX_SIGNAL_BYTES, ct_limit

# py-spy's raw format with --threads: one line per distinct stack, root first, then a count.
RAW = """\
thread (0x1);_run_module_as_main (<frozen runpy>:198);main (persister/__main__.py:82);\
get_frame (/x/site-packages/aiormq/connection.py:175) 30
thread (0x1);_run_module_as_main (<frozen runpy>:198);main (persister/__main__.py:82);\
_prepare (/work/main/persister/service.py:154);\
validate_json (/x/site-packages/pydantic/type_adapter.py:492) 10
thread (0x2);_bootstrap (threading.py:1002);wait (threading.py:327) 99
"""


def test_profile_target_defaults_to_the_gateway_and_takes_the_others() -> None:
    assert parse_args(["--profile"]).profile == "gateway"
    args = parse_args(["--profile", "persister", "--frames", "8"])
    assert (args.profile, args.frames) == ("persister", 8)
    assert parse_args(["--profile", "broker"]).profile == "broker"
    assert parse_args(["--profile", "bindings"]).profile == "bindings"
    assert parse_args([]).profile is None
    with pytest.raises(SystemExit):
        parse_args(["--profile", "mongod"])


def test_profile_summary_counts_the_main_thread_only() -> None:
    text = top_functions(RAW)
    assert text.startswith("40 samples of the event-loop thread (99 of other threads")
    own = text.split("Top 15 by inclusive")[0]
    assert "75.0%       30  get_frame (aiormq/connection.py)" in own
    assert "25.0%       10  validate_json (pydantic/type_adapter.py)" in own
    by_package = text.split("Own time by package")[1]
    assert "75.0%       30  aiormq" in by_package
    assert "wait (threading.py)" not in text


def test_series_repeats_the_fixed_rates() -> None:
    assert parse_args(["--series", "10"]).series == 10
    assert parse_args([]).series == 0


def test_profile_takes_signals_and_pairs() -> None:
    args = parse_args(["--profile", "--signals", "paced", "--pairs", "100"])
    assert (args.signals, args.pairs) == ("paced", 100)
    with pytest.raises(SystemExit):
        parse_args(["--profile", "--signals", "sometimes"])


def test_signal_frames_are_what_the_gateway_accepts() -> None:
    """(g)'s receipts and typing signals: outside the chain (seq 0, prev ""), of their
    kind, within the signal size, valid device-socket frames."""
    a, b = "a" * 24, "b" * 24
    receipt = DeviceSendFrame.model_validate_json(
        SendFrames(a, b, kind="receipt", ct_bytes=SIGNAL_CT_BYTES, protocol=2).frame("r-1", 0))
    typing = TypingFrame.model_validate_json(typing_frame(a, b))
    for env, kind in ((receipt.body, "receipt"), (typing.body, "typing")):
        assert (env.seq, env.prev, env.kind, env.room) == (0, "", kind, room_id(a, b))
        assert len(env.ct) <= ct_limit(MAX_SIGNAL_BYTES)
