"""``forecast sync``: ingest new exports from a folder, rescore, write the changed scores (docs/sync.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from forecast.cli.main import FormatOpt, JsonOpt, app, context_settings, fail, input_errors

if TYPE_CHECKING:
    from forecast.sync.report import CycleReport


@app.command("sync")
def sync_command(
    ctx: typer.Context,
    source: Annotated[Path, typer.Option("--source", help="The folder the CRM's exports are dropped in.")],
    file_format: FormatOpt = "canonical",
    every: Annotated[
        str | None,
        typer.Option("--every", help="Run a cycle every interval (90s, 15m, 1h, 1d) until SIGINT/SIGTERM."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Run one cycle (the default without --every).")
    ] = False,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Also write the changed scores: salesforce, hubspot or canonical."),
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Folder for the import files (with --to).")
    ] = None,
    mapping: Annotated[
        Path | None, typer.Option(help="YAML: field -> column per entity (as forecast export scores).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest the new exports of --source, rescore what changed, write the changed scores; log each cycle.

    A cycle's state is committed at its end: stopped anywhere, the next cycle redoes it. A bad
    export is rejected with the reason and the loop goes on. With --json, one JSON document per
    cycle on stdout.
    """
    from forecast.sync.cycle import SyncConfig
    from forecast.sync.runner import parse_interval, run_sync

    if every is not None and once:
        fail(as_json, "give --every INTERVAL or --once, not both")
    config = SyncConfig(source, file_format, to, output_dir, mapping)
    errors: list[str] = []

    def on_cycle(report: CycleReport) -> None:
        errors[:] = report.errors
        if as_json:
            sys.stdout.write(json.dumps({"ok": not report.errors, **report.to_dict()}, default=str) + "\n")
            sys.stdout.flush()
        else:
            _render(Console(), report)

    with input_errors(as_json, (FileNotFoundError,)):
        interval = None if every is None else parse_interval(every)
        run_sync(context_settings(ctx), config, every=interval, on_cycle=on_cycle)
    if interval is None and errors:
        raise typer.Exit(1)


def _render(c: Console, report: CycleReport) -> None:
    c.print(escape(report.log_line()))
    for outcome in report.outcomes:
        detail = outcome.reason if outcome.status == "rejected" else f"{outcome.rows_written:,} rows written"
        c.print(f"  {outcome.status}: {escape(str(outcome.export.path))}: {escape(str(detail))}")
    for path in report.export_files:
        c.print(f"  wrote {escape(path)}")
    for line in report.errors:
        c.print(f"  [red]error:[/red] {escape(line)}")
    for note in report.notes:
        c.print(f"  note: {escape(note)}")
