"""How command blocks and their ``doc-test`` directives are read from a page."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.blocks import DirectiveError, extract_blocks, hidden_commands

PAGE = """# A page

```bash
forecast quality
```

<!-- doc-test: skip needs a PostgreSQL server, absent here -->
```bash
forecast ingest postgres://x
```

Text.

<!-- doc-test: state empty -->

<!-- doc-test: replace --leads 20000 => --leads 2000 -->
<!-- doc-test: server mlflow ui -->
```sh
forecast simulate --out crm --leads 20000
uv run mlflow ui --port 5000
```

```console
$ forecast quality --json
{"ok": true}
```

```python
print("not a command block")
```
"""


def _blocks(tmp_path: Path, text: str = PAGE) -> list:
    (tmp_path / "page.md").write_text(text, encoding="utf-8")
    return extract_blocks(tmp_path / "page.md", tmp_path)


def test_blocks_carry_their_directives_and_groups(tmp_path: Path) -> None:
    plain, skipped, reduced, console = _blocks(tmp_path)
    assert (plain.line, plain.text, plain.skip, plain.group) == (3, "forecast quality\n", None, 0)
    assert skipped.skip == "needs a PostgreSQL server, absent here" and skipped.group == 0
    assert reduced.state == "empty" and reduced.group == 1 and reduced.server == "mlflow ui"
    assert reduced.id == "page.md:18 (reduced)"
    assert reduced.script(5001).startswith("forecast simulate --out crm --leads 2000\n")
    assert console.text == "forecast quality --json\n" and console.group == 1


def test_a_replacement_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    (block,) = _blocks(tmp_path, "<!-- doc-test: replace --x 1 => --x 2 -->\n```bash\nforecast run\n```\n")
    with pytest.raises(DirectiveError, match="not in the block"):
        block.script(0)


@pytest.mark.parametrize(
    "directive", ["skip", "replace --a", "state full", "serve it", "server"], ids=lambda d: d
)
def test_malformed_directives_are_errors(tmp_path: Path, directive: str) -> None:
    with pytest.raises(DirectiveError):
        _blocks(tmp_path, f"<!-- doc-test: {directive} -->\n```bash\nforecast run\n```\n")


def test_a_command_in_an_unlabelled_block_is_found(tmp_path: Path) -> None:
    (tmp_path / "page.md").write_text("```\nforecast run\n```\n\n```\noutput\n```\n", encoding="utf-8")
    assert hidden_commands(tmp_path / "page.md", tmp_path) == ["page.md:1: forecast run"]
