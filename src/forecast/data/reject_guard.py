"""The ingest guard: refuse an import that loses more than a set share of a table to one rule.

A few bad rows are the normal state of a CRM export and go to ``rejects``. Losing a large share of
a table to one rule is not: it means the export and the project disagree on something systematic
(the stage names, a date format, a column mapped to the wrong field), and every later number would
be computed on what is left. :func:`excessive_rejects` finds such rules; the ingest refuses before
writing anything and says the rule, the count, examples and the fix. Losses an adapter knows its
source always has (e.g. Maven's prospecting deals, which have no engage date) are declared by the
adapter (:attr:`forecast.data.sources.base.SourceBatch.expected_rejects`), reported, and not refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

MIN_ROWS = 20
"""A rule must reject more than this many rows too: one bad row of a ten-row file is not systematic."""

FIXES: dict[str, str] = {
    "unknown_stage": (
        "the export's stage names are not the pipeline's: pass the CRM's own pipeline with "
        "--pipeline FILE (docs/sources.md shows the format)"
    ),
    "foreign_key": (
        "the referenced rows are missing or were rejected themselves: fix the rule that rejected "
        "them first (listed above), or import the referenced table too"
    ),
    "unparseable_timestamp": "write dates as ISO 8601 (YYYY-MM-DD[THH:MM:SS]) or use the adapter of your CRM",
    "not_a_number": "the column holds text: check that the right column is mapped to it",
    "required": "the column is empty in these rows: fill it in the export or map another column to it",
    "allowed_values": "the column's values are not the allowed set (forecast validate --rules lists them)",
    "future_timestamp": "the export is dated after the ingest time: pass --as-of with the export's date",
}
"""What to do about a rule that rejects a large share (a generic hint for the others)."""


@dataclass(frozen=True)
class ExcessiveRule:
    """One rule that rejected a large share of a table's rows.

    Attributes:
        table: The canonical table.
        rule: The broken rule.
        column: The column it was checked on.
        rows: Distinct source rows it rejected.
        read: Rows of the table read.
        examples: A few rejected values (truncated by validation).
        expected: The adapter's reason when the loss is declared as known, else ``None``.
    """

    table: str
    rule: str
    column: str
    rows: int
    read: int
    examples: tuple[str, ...]
    expected: str | None = None

    @property
    def share(self) -> float:
        """Rejected rows over rows read."""
        return self.rows / self.read if self.read else 0.0

    def message(self) -> str:
        """One paragraph: the rule, the count, examples and the fix."""
        seen = ", ".join(repr(e) for e in self.examples) or "(empty)"
        head = (
            f"{self.table}: rule {self.rule} on column {self.column!r} rejected {self.rows:,} of "
            f"{self.read:,} rows ({self.share:.1%}); e.g. {seen}"
        )
        if self.expected is not None:
            return f"{head}. Expected: {self.expected}"
        fix = FIXES.get(self.rule, "forecast validate PATH --json lists every rejected row with its reason")
        return f"{head}. Fix: {fix}"

    def as_dict(self) -> dict[str, object]:
        """Plain dict for JSON output."""
        return {
            "table": self.table,
            "rule": self.rule,
            "column": self.column,
            "rows": self.rows,
            "read": self.read,
            "share": round(self.share, 4),
            "examples": list(self.examples),
            "expected": self.expected,
        }


def excessive_rejects(
    rejects: pd.DataFrame,
    read: Mapping[str, int],
    max_share: float,
    expected: Mapping[tuple[str, str, str], str] | None = None,
) -> list[ExcessiveRule]:
    """Rules that rejected more than ``max_share`` of a table's rows (and over MIN_ROWS), largest share first.

    Args:
        rejects: Reject records (``table``, ``source_file``, ``source_row``, ``column``, ``rule``,
            ``value``); a row breaking one rule on several columns counts once per column.
        read: Rows read per table.
        max_share: The largest share one rule may reject (``1`` never refuses).
        expected: Known losses of the adapter, ``(table, rule, column) -> reason``; returned with
            their reason so that they are reported, not refused.

    Returns:
        The excessive rules (declared ones included, with ``expected`` set).
    """
    if rejects.empty:
        _check_share(max_share)
        return []
    keys = ["table", "rule", "column"]
    groups = rejects.groupby(keys, sort=True, dropna=False)
    distinct = rejects.drop_duplicates([*keys, "source_file", "source_row"])
    frame = distinct.groupby(keys, sort=True, dropna=False).size().rename("rows").reset_index()

    def examples(table: str, rule: str, column: str) -> tuple[str, ...]:
        part = groups.get_group((table, rule, column))
        return tuple(part["value"].dropna().astype(str).drop_duplicates().head(3))

    return excessive_from_counts(frame, read, max_share, expected, examples)


def _check_share(max_share: float) -> None:
    if not 0.0 <= max_share <= 1.0:
        raise ValueError(f"max_share must be between 0 and 1, got {max_share!r}")


def excessive_from_counts(
    counts: pd.DataFrame,
    read: Mapping[str, int],
    max_share: float,
    expected: Mapping[tuple[str, str, str], str] | None,
    examples: Callable[[str, str, str], tuple[str, ...]],
) -> list[ExcessiveRule]:
    """:func:`excessive_rejects` from counts already made (a streamed import counts them in SQL).

    Args:
        counts: One row per (``table``, ``rule``, ``column``) with ``rows``, the distinct source
            rows the rule rejected there.
        read: Rows read per table.
        max_share: The largest share one rule may reject.
        expected: Known losses of the adapter.
        examples: Up to three distinct rejected values of a (table, rule, column), in record order.

    Returns:
        The excessive rules, largest share first.
    """
    _check_share(max_share)
    known = dict(expected or {})
    out: list[ExcessiveRule] = []
    for table, rule, column, rows in counts[["table", "rule", "column", "rows"]].itertuples(index=False):
        n_read = int(read.get(str(table), 0))
        if n_read == 0 or int(rows) <= MIN_ROWS or int(rows) / n_read <= max_share:
            continue
        out.append(
            ExcessiveRule(
                table=str(table),
                rule=str(rule),
                column=str(column),
                rows=int(rows),
                read=n_read,
                examples=examples(table, rule, column),
                expected=known.get((str(table), str(rule), str(column))),
            )
        )
    return sorted(out, key=lambda r: (-r.share, r.table, r.rule, r.column))
