"""Human-readable rendering of command results (rich tables on stdout).

Tables fit the console (80 columns when output is piped) without cutting a cell: :func:`print_table`
drops all-empty columns, keeps the essential ones and adds optional ones while they fit; ``--wide``
shows every column at its natural width. Numbers are compact (:func:`compact`, :func:`share`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from forecast.data.pipeline import SalesPipeline
from forecast.data.pipeline_learn import describe
from forecast.data.validate import RULES

if TYPE_CHECKING:
    from forecast.data.ingest import IngestReport
    from forecast.training.job import TrainingSummary

WideOpt = Annotated[
    bool,
    typer.Option("--wide", help="Show every column (default: the essential ones, fitted to the terminal)."),
]

EMPTY_CELLS = frozenset({"", "—", "-", "0", "0.0", "0.00", "0%", "0.0%", "n/a", "— (n=0)", "None"})
"""Cell texts that carry nothing: a column holding only these is dropped (``--wide`` keeps it)."""


@dataclass(frozen=True)
class Column:
    """One column of a table that :func:`print_table` fits to the console.

    Attributes:
        header: The column's name as printed.
        justify: ``"left"`` for labels, ``"right"`` for numbers.
        essential: Shown at any width (when not all empty); optional columns are added, in order,
            while they fit, and all of them with ``--wide``.
        label: Identifies the row (period, rep, table): always shown, even when empty.
    """

    header: str
    justify: Literal["left", "right"] = "right"
    essential: bool = True
    label: bool = False


def table_width(widths: Sequence[int]) -> int:
    """Width of a rich table with the default box and padding whose columns need ``widths``.

    Args:
        widths: The natural width of each column (its longest cell or header).

    Returns:
        Characters per line: one border, then each column's cells, two spaces of padding and a border.
    """
    return 1 + sum(w + 3 for w in widths)


def _natural_widths(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[int]:
    """Each column's width: its longest cell or its header (rich shrinks, and cuts, below that)."""
    return [max([cell_len(c.header), *(cell_len(r[i]) for r in rows)]) for i, c in enumerate(columns)]


def fit_columns(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, wide: bool = False
) -> tuple[list[int], list[str]]:
    """Choose the columns to show so the table fits ``width`` without cutting a cell.

    Columns whose cells are all in :data:`EMPTY_CELLS` are dropped (labels never are); then labels
    and essential columns are kept, and optional columns added in order while the table fits. If
    even those do not fit, columns are dropped from the right until it does (labels stay).

    Args:
        columns: The table's columns.
        rows: The cells, one sequence per row, in column order.
        width: The console width.
        wide: Keep every column (the ``--wide`` option): nothing is dropped.

    Returns:
        The indexes of the columns to show, and the headers of those left out.
    """
    natural = _natural_widths(columns, rows)
    if wide:
        return list(range(len(columns))), []
    filled = [i for i, c in enumerate(columns) if c.label or any(r[i] not in EMPTY_CELLS for r in rows)]
    keep = [i for i in filled if columns[i].label or columns[i].essential]
    for i in filled:
        if i not in keep and table_width([natural[j] for j in sorted([*keep, i])]) <= width:
            keep = sorted([*keep, i])
    while table_width([natural[j] for j in keep]) > width:
        droppable = [j for j in keep if not columns[j].label]
        if not droppable:
            break
        keep.remove(droppable[-1])
    return keep, [c.header for i, c in enumerate(columns) if i not in keep]


def print_table(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    title: str | None = None,
    wide: bool = False,
    hint: str = "--wide shows them",
    split: bool = False,
) -> list[str]:
    """Print a table fitted to the console by :func:`fit_columns`, and name what was left out.

    Args:
        console: Where to print.
        columns: The table's columns.
        rows: The cells (already formatted), one sequence per row.
        title: The table's title.
        wide: Show every column at its natural width (lines may exceed the console).
        hint: How to see the hidden columns, printed after their names.
        split: Print the columns that do not fit in further tables (labels repeated) instead of
            leaving them out; all-empty columns are still dropped.

    Returns:
        The headers of the columns left out of the last table printed.
    """
    keep, hidden = fit_columns(columns, rows, console.width, wide)
    natural = _natural_widths(columns, rows)
    while True:
        table = Table(title=title)
        for i in keep:
            table.add_column(columns[i].header, justify=columns[i].justify, no_wrap=columns[i].label)
        for r in rows:
            table.add_row(*(r[i] for i in keep))
        needed = table_width([natural[i] for i in keep])
        if wide and needed > console.width:  # rich clamps print(width=) to the console's width
            was = console.width
            console.width = needed
            console.print(table)
            console.width = was
        else:
            console.print(table)
        labels = [i for i, c in enumerate(columns) if c.label]
        rest = [i for i, c in enumerate(columns) if c.header in hidden and not c.label]
        if not (split and rest) or not any(r[i] not in EMPTY_CELLS for r in rows for i in rest):
            break
        columns = [columns[i] for i in labels + rest]
        rows = [[r[i] for i in labels + rest] for r in rows]
        title = f"{title} (cont.)" if title and not title.endswith("(cont.)") else title
        keep, hidden = fit_columns([replace(c, essential=True) for c in columns], rows, console.width)
        natural = _natural_widths(columns, rows)
        if len(keep) == len(labels):  # one column too wide for the console: show it anyway
            keep = sorted([*keep, len(labels)])
            hidden = [c.header for i, c in enumerate(columns) if i not in keep]
    if hidden:
        _say_hidden(console, columns, rows, hidden, hint)
    return hidden


def _say_hidden(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]], hidden: list[str], hint: str
) -> None:
    """Name the columns that did not fit; count those with nothing in them."""
    empty = {c.header for i, c in enumerate(columns) if all(r[i] in EMPTY_CELLS for r in rows)}
    crowded = [h for h in hidden if h not in empty]
    parts = [f"not shown: {', '.join(crowded)} ({hint})"] if crowded else []
    if n_empty := len(hidden) - len(crowded):
        parts.append(
            f"{n_empty} column{'s' if n_empty > 1 else ''} with nothing in them left out (--wide shows them)"
        )
    console.print(f"[dim]{'; '.join(parts)}[/dim]")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def compact(value: Any) -> str:
    """A number in at most about six characters: ``950``, ``9,500``, ``95.0k``, ``950k``, ``1.2M``.

    Args:
        value: A number, or None/NaN (printed as a dash).

    Returns:
        The text.
    """
    if _missing(value):
        return "—"
    v = float(value)
    a = abs(v)
    if a < 10_000:
        return f"{v:,.0f}"
    if a < 100_000:
        return f"{v / 1e3:.1f}k"
    if a < 999_500:
        return f"{v / 1e3:.0f}k"
    if a < 999_500_000:
        return f"{v / 1e6:.1f}M"
    return f"{v / 1e9:.1f}B"


def share(value: Any) -> str:
    """A fraction as a whole percentage (``0.92`` -> ``92%``); None/NaN as a dash."""
    return "—" if _missing(value) else f"{100 * float(value):.0f}%"


def rate_with_interval(value: Any, lo: Any, hi: Any, n: Any = None) -> str:
    """A rate with its 95% interval, ``51% [41–61]``, and ``n=`` when given.

    Args:
        value: The rate (a fraction), or None/NaN.
        lo: Lower end of its interval (a fraction), or None/NaN when none was computed.
        hi: Upper end.
        n: The number of trials, or None to leave it out.

    Returns:
        The text; a dash (with ``n=0`` when known) for a missing rate.
    """
    if _missing(value):
        return "— (n=0)" if n is not None and not _missing(n) and int(n) == 0 else "—"
    text = share(value)
    if not (_missing(lo) or _missing(hi)):
        text += f" [{100 * float(lo):.0f}–{100 * float(hi):.0f}]"
    if n is not None and not _missing(n):
        text += f" n={int(n):,}"
    return text


def render_training(console: Console, summary: TrainingSummary, wide: bool = False) -> None:
    """A training run: the model, its split, its test metrics against the baselines."""
    console.print(
        f"[bold]{summary.model_name}[/bold] v{summary.version} ({summary.model_kind}) logged to "
        f"{summary.tracking_uri}, experiment {summary.experiment!r}, run {summary.run_id}"
    )
    for note in summary.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(_split_words(summary.splits))
    survival = "c_index" in summary.metrics
    title = "Test slice: model against baselines"
    if survival:
        title += " (roc_auc ... ece: P(close within 30 days); c_index, ibs: the whole close-date curve)"
    columns = ["roc_auc", "pr_auc", "brier", "log_loss", "ece", *(["c_index", "ibs"] if survival else [])]
    optional = {"pr_auc", "log_loss"} if survival else set()
    cols = [Column("model", "left", label=True), *(Column(c, essential=c not in optional) for c in columns)]
    rows = [("model", summary.metrics), *summary.baselines.items()]
    print_table(
        console,
        cols,
        [[name, *(_num(m.get(k)) for k in columns)] for name, m in rows],
        title,
        wide,
        hint="in --json and the MLflow run",
    )
    if summary.promotion is not None:
        p = summary.promotion
        console.print(f"promotion: {'promoted' if p.promoted else 'not promoted'} ({p.reason})")


def _split_words(splits: dict[str, Any]) -> str:
    """One line on how the rows were split (method, gap, rows per part)."""
    parts = splits.get("splits") or {}
    rows = ", ".join(f"{k} {v.get('rows', '?'):,}" for k, v in parts.items() if isinstance(v, dict))
    gap = f", gap {splits['gap_days']:g} days" if splits.get("gap_days") is not None else ""
    return f"split: {splits.get('method', '?')}{gap}" + (f" ({rows} rows)" if rows else "")


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# ---------------------------------------------------------------------------- rendering


def render_counts(console: Console, title: str, rows: dict[str, int]) -> None:
    """Rows per table, under ``title``."""
    table = Table(title=title)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in rows.items():
        table.add_row(name, f"{n:,}")
    console.print(table)


def render_ingest(console: Console, report: IngestReport, wide: bool = False) -> None:
    """An import (or a dry run): rows read, kept and rejected per table, and the notes."""
    written = report.warehouse is not None
    verb = "Ingested" if written else "Validated (dry run)"
    title = f"{verb}: {report.source_path} ({report.source_format})"
    counts = ["read", "valid", "rejected"] + (["inserted", "updated", "unchanged"] if written else [])
    print_table(
        console,
        [Column("table", "left", label=True), *(Column(c, essential=c != "unchanged") for c in counts)],
        [[name, *(f"{t.get(c, 0):,}" for c in counts)] for name, t in report.tables.items()],
        title,
        wide,
    )
    if report.rejects_by_rule:
        rej = Table(title="Rejects by rule (details in the warehouse's rejects table)")
        for c in ("table", "column", "rule", "records"):
            rej.add_column(c)
        for r in report.rejects_by_rule[:15]:
            rej.add_row(r["table"], str(r["column"]), r["rule"], f"{r['records']:,}")
        console.print(rej)
        for r in report.sample_rejects[:5]:
            console.print(
                f"  {r['source_file']} row {r['source_row']} [{r['key']}] {r['column']}: "
                f"{r['rule']} - {r['message']} (value {r['value']!r})"
            )
    for r in report.excessive_rejects:
        if r.get("expected"):
            console.print(f"[dim]known loss of this source: {escape(r['message'])}[/dim]")
        else:
            console.print(f"[bold red]refused:[/bold red] {escape(r['message'])}")
    if report.pipeline_source == "learnt":
        _render_learnt_pipeline(console, report)
    for note in report.notes:
        console.print(f"[dim]note: {note}[/dim]")


def _render_learnt_pipeline(console: Console, report: IngestReport) -> None:
    """The pipeline an import learnt from its deals, and where it went."""
    line = describe(SalesPipeline.from_dict(report.pipeline))
    kept = "stored in the warehouse" if report.ingest_id else "not stored: nothing was written"
    console.print(
        f"pipeline learnt from the data ({kept}; --pipeline FILE overrides): {escape(line)}",
        soft_wrap=True,
    )


def render_quality(console: Console, summary: dict[str, Any]) -> None:
    """The warehouse's data-quality summary, one row per table."""
    table = Table(title=f"Data quality: {summary['warehouse']}")
    table.add_column("table", no_wrap=True)
    for c in ("rows", "from", "to"):
        table.add_column(c, justify="right" if c == "rows" else "left", no_wrap=True)
    table.add_column("least complete columns", overflow="fold")  # free text: folds, never cut
    for name, t in summary["tables"].items():
        worst = sorted(t["completeness"].items(), key=lambda kv: kv[1])[:3]
        gaps = ", ".join(f"{k} {v:.0%}" for k, v in worst if v < 1.0) or "complete"
        table.add_row(name, f"{t['rows']:,}", (t["from"] or "")[:10], (t["to"] or "")[:10], gaps)
    console.print(table)
    facts = summary["facts"]
    lines = [
        f"lead conversion rate: {_pct(facts['lead_conversion_rate'])}",
        f"win rate (closed deals): {_pct(facts['win_rate_closed'])}",
        f"median sales cycle (won): {facts['median_cycle_days_won']} days",
        f"opportunities: {facts['opportunities_by_outcome']}",
        f"email reply rate: {_pct(facts['email_reply_rate'])}",
        f"activities: {facts['activities_by_type']}",
    ]
    for line in lines:
        console.print(f"  {line}")
    for w in summary["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {w}")


def render_features(console: Console, summary: dict[str, Any]) -> None:
    """Where a feature table was written, and its size."""
    console.print(f"[bold]{summary.get('entity')}[/bold] feature table written to {summary['out']}")
    for key in (
        "rows",
        "entities",
        "as_of_dates",
        "as_of_from",
        "as_of_to",
        "data_end",
        "horizon_days",
        "n_features",
    ):
        if key in summary:
            console.print(f"  {key}: {summary[key]}")
    labels = summary.get("labels")
    if isinstance(labels, dict):
        for name, info in labels.items():
            console.print(f"  {name}: {info}")
    for warning in summary.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}")


def render_rules(console: Console) -> None:
    """The validation rules, one per row."""
    table = Table(title="Validation rules")
    table.add_column("rule")
    table.add_column("meaning")
    for rule, meaning in RULES.items():
        table.add_row(rule, meaning)
    console.print(table)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
