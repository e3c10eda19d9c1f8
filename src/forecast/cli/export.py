"""``forecast export scores``: the stored scores as files the CRM's import tools accept (docs/export.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from forecast.cli.main import JsonOpt, app, context_settings, emit, input_errors

export_app = typer.Typer(help="Export results in a CRM's import format.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("scores")
def export_scores_command(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="salesforce, hubspot or canonical.")],
    output: Annotated[
        Path, typer.Option(help="The CSV to write (with --entity all: <stem>_<object>.csv per entity).")
    ],
    entity: Annotated[str, typer.Option(help="lead, deal or all.")] = "all",
    mapping: Annotated[
        Path | None, typer.Option(help="YAML: field -> column per entity, overriding the defaults.")
    ] = None,
    all_records: Annotated[
        bool, typer.Option("--all", help="Write every stored score, not only the changed ones.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the latest stored scores (score --write-back) as Salesforce, HubSpot or canonical CSVs.

    Only records whose exported values changed since the last export to the same target are
    written, unless --all; what was exported is kept in the warehouse table score_exports.
    """
    from forecast.crm_export.job import export_scores

    settings = context_settings(ctx)
    with input_errors(as_json, (FileNotFoundError,)):
        summary = export_scores(
            settings, target=to, output=output, entity=entity, mapping=mapping, all_records=all_records
        )

    def render(c: Console) -> None:
        for f in summary.files:
            c.print(
                f"{f.entity}: {f.rows:,} rows to {escape(str(f.path))} "
                f"({f.unchanged_skipped:,} unchanged skipped; {f.stored:,} stored scores)"
            )
        for note in summary.notes:
            c.print(f"note: {escape(note)}")

    emit(as_json, summary.to_dict(), render)
