"""The README's configuration table says what the services' settings default to."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gateway.settings import GatewaySettings
from persister.settings import PersisterSettings

README = Path(__file__).resolve().parents[2] / "README.md"
_ROW = re.compile(r"^\| (?P<names>`DUET_[^|]*) \| (?P<defaults>[^|]*) \|")
_CODE = re.compile(r"`([^`]*)`")


def _documented() -> dict[str, str]:
    """DUET_ name → the default the table gives in backticks (`A` / `B` rows split)."""
    out: dict[str, str] = {}
    for line in README.read_text().splitlines():
        m = _ROW.match(line)
        if not m:
            continue
        names = [n.strip() for n in m["names"].split("/")]
        defaults = [d.strip() for d in m["defaults"].split(" / ")]
        if len(names) != len(defaults):
            continue
        first = _CODE.search(names[0])
        assert first, line
        for name, default in zip(names, defaults, strict=True):
            code = _CODE.fullmatch(name)
            # `DUET_X_PER_USER` / `_PER_IP`: the second name continues the first's stem.
            full = code[1] if code else ""
            if full.startswith("_"):
                full = first[1].rsplit("_", 2)[0] + full
            value = _CODE.fullmatch(default)
            if full and value:
                out[full] = value[1]
    return out


def _shown(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_every_plain_default_in_the_table_is_the_settings_default() -> None:
    documented = _documented()
    checked = []
    for settings in (GatewaySettings, PersisterSettings):
        for field, info in settings.model_fields.items():
            name = f"DUET_{field.upper()}"
            shown = _shown(info.default)
            if name in documented and shown is not None:
                assert documented[name] == shown, (name, documented[name], info.default)
                checked.append(name)
    # The table's hot-path knobs are among those checked, so a parse that found nothing
    # cannot pass.
    assert {"DUET_PUBLISH_IN_FLIGHT", "DUET_PUBLISH_INTERVAL_MS", "DUET_PUBLISH_BATCH",
            "DUET_MAX_IN_FLIGHT", "DUET_PREFETCH", "DUET_BATCH_SIZE",
            "DUET_BATCH_MS"} <= set(checked)
