"""The command blocks of the README and ``docs/*.md``, with their ``doc-test`` directives.

A fenced block whose language is ``bash``, ``sh``, ``shell`` or ``console`` is a command block: the
test runs it as written (``console``: the lines after a ``$`` prompt). HTML comments just before
the fence (invisible on the rendered page) tell the test what it cannot guess::

    <!-- doc-test: skip REASON -->               not run; the reason is printed with the skip
    <!-- doc-test: replace OLD => NEW -->        run with OLD replaced by NEW (a reduced size);
                                                 ``{port}`` in NEW is a free port of this machine
    <!-- doc-test: server TEXT -->               the line containing TEXT starts a server: it runs
                                                 in the background and the next lines run once
                                                 ``{port}`` answers; it is stopped after the block
    <!-- doc-test: given TEXT -->                the line containing TEXT is what the ``base`` state
                                                 already ran at a reduced size (``forecast run``):
                                                 it is not run again
    <!-- doc-test: state base|empty -->          this block and the page's next ones run in a new
                                                 project state: ``base`` (a small simulated CRM
                                                 ingested, its champions trained) or ``empty``

Blocks of one page share one state and run in order; a page starts in the ``base`` state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

COMMAND_LANGS = ("bash", "sh", "shell", "console")
"""Fence languages whose blocks are commands."""

STATES = ("base", "empty")
"""The project states a group of blocks may start from."""

_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_DIRECTIVE = re.compile(r"<!--\s*doc-test:\s*(.*?)\s*-->", re.S)
_COMMAND_START = re.compile(r"^\s*(?:\$ )?(?:uv run |forecast |make |python3? |nice |curl |export |mlflow )")


class DirectiveError(ValueError):
    """A ``doc-test`` directive the test does not understand."""


@dataclass
class Block:
    """One command block and what its directives ask.

    Attributes:
        page: The Markdown file, relative to the repository (``README.md``, ``docs/flags.md``).
        line: Line of the opening fence (1-based).
        lang: The fence's language.
        text: The commands, as written on the page (``console``: the prompt lines, prompt removed).
        skip: Why the block is not run (``None``: it is run).
        replacements: ``(old, new)`` pairs applied before running (reduced sizes).
        server: Text of the line that starts a server, or ``None``.
        given: Texts of lines the ``base`` state already ran (not run again).
        state: ``base`` or ``empty`` when the block starts a new state, else ``None``.
        group: Index of the block's state within its page (blocks of one group share a state).
    """

    page: str
    line: int
    lang: str
    text: str
    skip: str | None = None
    replacements: list[tuple[str, str]] = field(default_factory=list)
    server: str | None = None
    given: list[str] = field(default_factory=list)
    state: str | None = None
    group: int = 0

    @property
    def id(self) -> str:
        """``page:line``, with ``(reduced)`` when the block runs at a reduced size."""
        return f"{self.page}:{self.line}" + (" (reduced)" if self.replacements or self.given else "")

    def script(self, port: int) -> str:
        """The commands with the replacements applied and ``{port}`` filled in."""
        text = self.text
        for old, new in self.replacements:
            if old not in text:
                raise DirectiveError(f"{self.page}:{self.line}: replace: {old!r} is not in the block")
            text = text.replace(old, new.replace("{port}", str(port)))
        for given in self.given:
            lines = text.splitlines(keepends=True)
            hits = [i for i, line in enumerate(lines) if given in line]
            if len(hits) != 1:
                raise DirectiveError(
                    f"{self.page}:{self.line}: given: {given!r} is on {len(hits)} lines, not 1"
                )
            lines[hits[0]] = ": base state: " + lines[hits[0]].replace("#", "")
            text = "".join(lines)
        return text


def _directives(before: str) -> list[str]:
    """The ``doc-test`` directives in the comments that end ``before`` (blank lines allowed)."""
    found: list[str] = []
    rest = before.rstrip()
    while rest.endswith("-->"):
        start = rest.rfind("<!--")
        if start < 0:
            break
        match = _DIRECTIVE.fullmatch(rest[start:])
        if match is None:
            break
        found.insert(0, match.group(1))
        rest = rest[:start].rstrip()
    return found


def _apply(block: Block, directive: str) -> None:
    verb, _, arg = directive.partition(" ")
    arg = arg.strip()
    where = f"{block.page}:{block.line}"
    if verb == "skip":
        if not arg:
            raise DirectiveError(f"{where}: skip needs a reason")
        block.skip = arg
    elif verb == "replace":
        old, sep, new = arg.partition(" => ")
        if not sep or not old:
            raise DirectiveError(f"{where}: replace needs 'OLD => NEW', got {arg!r}")
        block.replacements.append((old, new))
    elif verb == "server":
        if not arg:
            raise DirectiveError(f"{where}: server needs the text of the line that starts it")
        block.server = arg
    elif verb == "given":
        if not arg:
            raise DirectiveError(f"{where}: given needs the text of the line the base state ran")
        block.given.append(arg)
    elif verb == "state":
        if arg not in STATES:
            raise DirectiveError(f"{where}: state must be one of {STATES}, got {arg!r}")
        block.state = arg
    else:
        raise DirectiveError(f"{where}: unknown doc-test directive {directive!r}")


def _commands(lang: str, body: str) -> str:
    if lang != "console":
        return body
    return "".join(line[2:] + "\n" for line in body.splitlines() if line.startswith("$ "))


def extract_blocks(page: Path, root: Path) -> list[Block]:
    """The command blocks of one Markdown page, in order, with their directives applied.

    Args:
        page: The Markdown file.
        root: The repository root (block pages are named relative to it).

    Returns:
        The blocks; ``group`` counts the ``state`` directives met so far on the page.

    Raises:
        DirectiveError: A directive is malformed or unknown.
    """
    text = page.read_text(encoding="utf-8")
    blocks: list[Block] = []
    group = 0
    for match in _FENCE.finditer(text):
        lang = match.group(1)
        if lang not in COMMAND_LANGS:
            continue
        line = text.count("\n", 0, match.start()) + 1
        block = Block(str(page.relative_to(root)), line, lang, _commands(lang, match.group(2)))
        for directive in _directives(text[: match.start()]):
            _apply(block, directive)
        if block.state is not None and blocks:
            group += 1
        block.group = group
        blocks.append(block)
    return blocks


def hidden_commands(page: Path, root: Path) -> list[str]:
    """Fenced blocks that are not command blocks yet start with a command (``page:line: text``).

    A command in an unlabelled or ``text`` block would escape the test: such a block should be
    ``bash`` (and run), or hold no command.
    """
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        first = match.group(2).lstrip("\n").split("\n", 1)[0]
        if match.group(1) not in COMMAND_LANGS and _COMMAND_START.match(first):
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{page.relative_to(root)}:{line}: {first.strip()}")
    return found


def pages(root: Path) -> list[Path]:
    """``README.md`` and ``docs/*.md`` of the repository at ``root``."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]
