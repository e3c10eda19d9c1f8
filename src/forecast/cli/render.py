"""Human-readable rendering of command results (rich tables on stdout)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from forecast.data.validate import RULES


def _render_training(console: Console, summary: dict[str, Any]) -> None:
    console.print(
        f"[bold]{summary['model_name']}[/bold] v{summary['version']} ({summary['model_kind']}) logged to "
        f"{summary['tracking_uri']}, experiment {summary['experiment']!r}, run {summary['run_id']}"
    )
    for note in summary["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(_split_words(summary.get("splits") or {}))
    survival = "c_index" in summary["metrics"]
    title = "Test slice: model against baselines"
    if survival:
        title += " (roc_auc ... ece: P(close within 30 days); c_index, ibs: the whole close-date curve)"
    columns = ["roc_auc", "pr_auc", "brier", "log_loss", "ece", *(["c_index", "ibs"] if survival else [])]
    table = Table(title=title)
    for c in ("model", *columns):
        table.add_column(c, justify="right" if c != "model" else "left")
    rows = [("model", summary["metrics"]), *summary["baselines"].items()]
    for name, m in rows:
        table.add_row(name, *(_num(m.get(k)) for k in columns))
    console.print(table)
    if "promotion" in summary:
        p = summary["promotion"]
        console.print(f"promotion: {'promoted' if p['promoted'] else 'not promoted'} ({p['reason']})")


def _split_words(splits: dict[str, Any]) -> str:
    """One line on how the rows were split (method, gap, rows per part)."""
    parts = splits.get("splits") or {}
    rows = ", ".join(f"{k} {v.get('rows', '?'):,}" for k, v in parts.items() if isinstance(v, dict))
    gap = f", gap {splits['gap_days']:g} days" if splits.get("gap_days") is not None else ""
    return f"split: {splits.get('method', '?')}{gap}" + (f" ({rows} rows)" if rows else "")


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# ---------------------------------------------------------------------------- rendering


def _render_counts(console: Console, title: str, rows: dict[str, int]) -> None:
    table = Table(title=title)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in rows.items():
        table.add_row(name, f"{n:,}")
    console.print(table)


def _render_ingest(console: Console, result: dict[str, Any]) -> None:
    written = result["warehouse"] is not None
    verb = "Ingested" if written else "Validated (dry run)"
    title = f"{verb}: {result['source_path']} ({result['source_format']})"
    table = Table(title=title)
    cols = ["read", "valid", "rejected"] + (["inserted", "updated", "unchanged"] if written else [])
    table.add_column("table")
    for c in cols:
        table.add_column(c, justify="right")
    for name, t in result["tables"].items():
        table.add_row(name, *(f"{t.get(c, 0):,}" for c in cols))
    console.print(table)
    if result["rejects_by_rule"]:
        rej = Table(title="Rejects by rule (details in the warehouse's rejects table)")
        for c in ("table", "column", "rule", "records"):
            rej.add_column(c)
        for r in result["rejects_by_rule"][:15]:
            rej.add_row(r["table"], str(r["column"]), r["rule"], f"{r['records']:,}")
        console.print(rej)
        for r in result["sample_rejects"][:5]:
            console.print(
                f"  {r['source_file']} row {r['source_row']} [{r['key']}] {r['column']}: "
                f"{r['rule']} - {r['message']} (value {r['value']!r})"
            )
    for r in result.get("excessive_rejects", []):
        if r.get("expected"):
            console.print(f"[dim]known loss of this source: {escape(r['message'])}[/dim]")
        else:
            console.print(f"[bold red]refused:[/bold red] {escape(r['message'])}")
    for note in result["notes"]:
        console.print(f"[dim]note: {note}[/dim]")


def _render_quality(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title=f"Data quality: {summary['warehouse']}")
    for c in ("table", "rows", "from", "to", "least complete columns"):
        table.add_column(c)
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


def _render_features(console: Console, summary: dict[str, Any]) -> None:
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


def _render_rules(console: Console) -> None:
    table = Table(title="Validation rules")
    table.add_column("rule")
    table.add_column("meaning")
    for rule, meaning in RULES.items():
        table.add_row(rule, meaning)
    console.print(table)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
