"""The documentation says what the code does: docs/configuration.md against the settings
classes and the launcher's options, and the README's length and links."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from persister.settings import PersisterSettings
from service.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
BENCH_README = ROOT / "bench" / "README.md"
README_MAX_LINES = 250

_ROW = re.compile(r"^\|\s*`(?P<name>DUET_[A-Z0-9_]+)`\s*\|\s*(?P<default>[^|]*?)\s*\|"
                  r"\s*(?P<meaning>.*?)\s*\|$")
_OPTION_ROW = re.compile(r"^\|\s*`(?P<option>--[a-z-]+)")
_VARIABLE = re.compile(r"\bDUET_[A-Z0-9_]*[A-Z0-9]")
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _sections(path: Path) -> dict[str, list[str]]:
    """`## ` heading → the lines under it, outside code fences."""
    out: dict[str, list[str]] = {"": []}
    current = ""
    for line in _prose_lines(path):
        if line.startswith("## "):
            current = line[3:].strip()
            out[current] = []
        else:
            out[current].append(line)
    return out


def _prose_lines(path: Path) -> Iterator[str]:
    """The lines of a Markdown file that are not inside a fenced code block."""
    fenced = False
    for line in path.read_text().splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def _section_of(path: Path, marker: str) -> list[str]:
    matches = [lines for heading, lines in _sections(path).items() if marker in heading]
    assert len(matches) == 1, f"{path.name}: one `## ` heading naming {marker!r} expected"
    return matches[0]


def _own_fields(cls: type[BaseSettings]) -> dict[str, FieldInfo]:
    """The fields `cls` adds to its base settings class (all of ServiceSettings')."""
    inherited = set() if cls is ServiceSettings else set(ServiceSettings.model_fields)
    return {n: f for n, f in cls.model_fields.items() if n not in inherited}


def _env_name(cls: type[BaseSettings], field: str) -> str:
    return f"{cls.model_config.get('env_prefix', '')}{field}".upper()


def _shown_default(info: FieldInfo) -> str:
    """How the table writes a field's default: `value`, empty, — (none) or random."""
    if info.default_factory is not None:
        first, second = info.default_factory(), info.default_factory()  # type: ignore[call-arg]
        if first != second:
            return "random"
        value = first
    else:
        value = info.default
    if value is None:
        return "—"
    if value in ("", []):
        return "empty"
    if isinstance(value, Path):
        return f"`{value.relative_to(ROOT).as_posix()}/`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def _settings_env_names() -> set[str]:
    return {_env_name(cls, field) for cls in (ServiceSettings, GatewaySettings,
                                              PersisterSettings)
            for field in cls.model_fields}


def _variables_in_code() -> set[str]:
    """DUET_ names the Python packages and scripts mention (tests left out)."""
    packages = [p for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"]
    files = [f for p in packages for f in p.rglob("*.py")]
    files += list((ROOT / "scripts").glob("*.sh"))
    return {name for f in files for name in _VARIABLE.findall(f.read_text())}


def _markdown_pages() -> list[Path]:
    return [README, BENCH_README, *sorted(DOCS.glob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in _prose_lines(path):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = _slug(m[1])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _relative_links(path: Path) -> Iterator[tuple[str, Path, str]]:
    """(link as written, the file it names, its #anchor or "") for every relative link."""
    for line in _prose_lines(path):
        for m in _LINK.finditer(line):
            target = m["target"]
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            yield target, resolved, anchor


def test_every_setting_is_documented_with_its_env_name_and_default() -> None:
    """Each settings class has a table in docs/configuration.md listing exactly its fields,
    under their DUET_ names, with their defaults and a meaning."""
    for cls in (ServiceSettings, GatewaySettings, PersisterSettings):
        rows = {m["name"]: m for line in _section_of(CONFIGURATION, f"`{cls.__name__}`")
                if (m := _ROW.match(line))}
        fields = {_env_name(cls, name): info for name, info in _own_fields(cls).items()}
        assert sorted(set(fields) - set(rows)) == [], f"{cls.__name__}: undocumented"
        assert sorted(set(rows) - set(fields)) == [], f"{cls.__name__}: not its fields"
        for name, info in fields.items():
            shown = _shown_default(info)
            assert rows[name]["default"].startswith(shown), (name, rows[name]["default"], shown)
            assert rows[name]["meaning"], f"{name}: no meaning given"


def test_every_duet_variable_in_the_docs_exists() -> None:
    """Every DUET_ variable the README, docs/ or bench/README.md names is a settings field
    or read somewhere in the code."""
    known = _settings_env_names() | _variables_in_code()
    for page in _markdown_pages():
        unknown = sorted(set(_VARIABLE.findall(page.read_text())) - known)
        assert unknown == [], f"{page.relative_to(ROOT)} names variables nothing reads"


def test_make_run_options_match_the_launcher() -> None:
    """docs/configuration.md's `make run` table lists exactly devstack's options."""
    source = (ROOT / "devstack" / "__main__.py").read_text()
    options = set(re.findall(r"add_argument\(\s*\"(--[a-z-]+)\"", source))
    documented = {m["option"] for line in _section_of(CONFIGURATION, "devstack")
                  if (m := _OPTION_ROW.match(line))}
    assert options and documented == options


def test_readme_is_short_and_links_every_page() -> None:
    """README.md stays within its line budget and links every docs/ page and the bench's."""
    assert len(README.read_text().splitlines()) <= README_MAX_LINES
    linked = {resolved for _, resolved, _ in _relative_links(README)}
    pages = {p.resolve() for p in [*DOCS.glob("*.md"), BENCH_README]}
    assert sorted(str(p.relative_to(ROOT)) for p in pages - linked) == []


def test_relative_links_in_the_docs_resolve() -> None:
    """Every relative link in README.md, bench/README.md and docs/*.md names a file that
    exists and, into a Markdown page, a heading it has."""
    broken = []
    for page in _markdown_pages():
        for target, resolved, anchor in _relative_links(page):
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []
