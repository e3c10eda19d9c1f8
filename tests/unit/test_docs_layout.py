"""The README's layout names every package, and the test split keeps CI running every test."""

from __future__ import annotations

import re

from tests.conftest import REPO

SRC = REPO / "src" / "forecast"


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_readme_layout_names_every_top_level_package() -> None:
    layout = _section((REPO / "README.md").read_text(encoding="utf-8"), "Layout")
    packages = sorted(p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert [p for p in packages if f"{p}/" not in layout] == []


def test_make_test_deselects_slow_tests_only_outside_ci() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    target = makefile.split("\ntest:\n", 1)[1].split("\n\n", 1)[0]
    assert '-m "not slow"' in target and "FORECAST_ALL_TESTS" in target and "CI" in target
    assert "\ntest-all:\n" in makefile
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "export CI=true" in ci and "make test" in ci


def test_the_code_cites_only_files_of_the_repository() -> None:
    """Docstrings and comments point at docs in the repository, never at a design file outside it."""
    cited: set[str] = set()
    for path in (REPO / "src" / "forecast").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "DESIGN" not in text, f"{path.relative_to(REPO)} cites a design file outside the repository"
        cited |= set(re.findall(r"\b(?:docs|benchmarks|training)/[\w./-]+\.(?:md|yaml)\b", text))
    assert cited, "no doc cited at all: the pattern is broken"
    missing = sorted(c for c in cited if not (REPO / c).is_file())
    assert missing == [], missing
