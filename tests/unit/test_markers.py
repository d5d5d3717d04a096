"""Markers say what a test needs (conftest.py reads them off its fixtures), so `-m` can
leave out the tests whose services are missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def collected(expression: str, *paths: str) -> set[str]:
    """Node ids `pytest --collect-only -m expression` selects from `paths`, in a subprocess."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", expression, *paths],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    assert result.returncode in (0, 5), result.stdout[-2000:] + result.stderr[-2000:]
    return {line for line in result.stdout.splitlines() if "::" in line}


def test_service_free_selection_keeps_pure_tests_and_drops_service_tests() -> None:
    """Without broker, mongod and browser, a pure unit test stays; a stack test (broker and
    mongod by fixture), a mongod test (marked in its file) and a Chromium test go."""
    ids = collected("not broker and not mongod and not browser", "tests/unit/test_tokens.py",
                    "tests/unit/test_devstack.py", "tests/integration/test_inflight.py",
                    "tests/e2e/test_security.py")
    assert "tests/unit/test_tokens.py::test_rotated_secret_keeps_old_tokens_valid" in ids
    assert "tests/unit/test_devstack.py::test_run_stack_on_busy_port_fails_clearly" in ids
    assert "tests/e2e/test_security.py::test_scan_web_client_sources_uses_no_markup_sinks" in ids
    assert not any("test_inflight.py" in i for i in ids)
    assert "tests/unit/test_devstack.py::test_stop_mongod_twice_is_safe" not in ids
    assert not any("test_render_markup_message_as_text_runs_nothing" in i for i in ids)


def test_not_browser_keeps_service_tests_without_chromium() -> None:
    """`-m "not browser"` drops the Chromium tests only: an e2e test that needs the stack
    but no browser stays."""
    ids = collected("not browser", "tests/e2e/test_security.py")
    assert any(i.endswith("::test_refuse_websocket_from_foreign_origin_closes_1008") for i in ids)
    assert not any("test_render_markup_message_as_text_runs_nothing" in i for i in ids)
