"""The features command: point-in-time snapshots or a flat export's feature table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from forecast.cli.main import (
    DelimiterOpt,
    EncodingOpt,
    IdOpt,
    JsonOpt,
    KeepOpt,
    TargetOpt,
    TimeOpt,
    app,
    context_settings,
    emit,
    fail,
    parse_date,
    progress_bar,
)
from forecast.cli.render import (
    render_features,
)
from forecast.config import Settings
from forecast.data.sources.base import SourceError
from forecast.errors import cli_message
from forecast.logging import get_logger

# ---------------------------------------------------------------------------- features


@app.command()
def features(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Parquet file for the snapshot table.")],
    entity: Annotated[str | None, typer.Option(help="lead or opportunity (warehouse snapshots).")] = None,
    as_of: Annotated[
        list[str] | None, typer.Option("--as-of", help="An as_of date (repeat for several).")
    ] = None,
    as_of_every: Annotated[
        str | None, typer.Option("--as-of-every", help="Cadence such as 7d, 2w or 1m.")
    ] = None,
    date_from: Annotated[
        str | None, typer.Option("--from", help="First as_of (default: first event).")
    ] = None,
    date_to: Annotated[
        str | None, typer.Option("--to", help="Last as_of (default: midnight after the data's last day).")
    ] = None,
    horizon_days: Annotated[
        int | None, typer.Option(min=1, help="Label horizon in days (default 90).")
    ] = None,
    table: Annotated[
        Path | None, typer.Option(help="A flat CRM export (CSV/Parquet) instead of the warehouse.")
    ] = None,
    target: TargetOpt = None,
    id_column: IdOpt = None,
    time_column: TimeOpt = None,
    keep_column: KeepOpt = None,
    encoding: EncodingOpt = "utf-8",
    delimiter: DelimiterOpt = ",",
    as_json: JsonOpt = False,
) -> None:
    """Write a point-in-time snapshot feature table (warehouse) or a flat export's feature table."""
    if table is not None:
        summary = _flat_features(
            table, target, id_column, time_column, keep_column or [], encoding, delimiter, out, as_json
        )
    else:
        summary = _warehouse_features(
            context_settings(ctx), entity, as_of, as_of_every, date_from, date_to, horizon_days, out, as_json
        )
    emit(as_json, {"ok": True, **summary}, lambda c: render_features(c, summary))


def _warehouse_features(
    settings: Settings,
    entity: str | None,
    as_of: list[str] | None,
    every: str | None,
    date_from: str | None,
    date_to: str | None,
    horizon_days: int | None,
    out: Path,
    as_json: bool,
) -> dict[str, Any]:
    from forecast.features.build import build_feature_table
    from forecast.features.snapshots import LabelConfig, as_of_grid, parse_every
    from forecast.features.source import warehouse_source
    from forecast.io import write_frame

    if entity not in ("lead", "opportunity"):
        fail(as_json, "--entity must be lead or opportunity (or give --table for a flat export)")
    if bool(as_of) == bool(every):
        fail(as_json, "give either --as-of DATE (repeatable) or --as-of-every CADENCE")
    labels = LabelConfig() if horizon_days is None else LabelConfig.both(horizon_days)
    try:
        with warehouse_source(settings.warehouse) as src, progress_bar(f"features ({entity})") as update:
            if as_of:
                dates = [parse_date(d, "--as-of", as_json) for d in as_of]
            else:
                assert every is not None
                start = parse_date(date_from, "--from", as_json) if date_from else _first_event(src)
                end = parse_date(date_to, "--to", as_json) if date_to else src.default_as_of()
                dates = as_of_grid(start, end, parse_every(every))
            table = build_feature_table(
                src,
                entity,  # type: ignore[arg-type]
                dates,
                labels,
                progress=lambda m: update(m, None),
            )
            update("writing", None)
            write_frame(table.frame, out)
    except (FileNotFoundError, ValueError) as exc:
        fail(as_json, cli_message(exc))
    return {"out": str(out), **table.summary(), "features": table.catalogue()}


def _first_event(src: Any) -> pd.Timestamp:
    """The day after the first lead or deal was created (the first date anything is alive)."""
    row = src.con.execute(
        "SELECT least((SELECT min(created_at) FROM leads), (SELECT min(created_at) FROM opportunities))"
    ).fetchone()
    if not row or row[0] is None:
        raise ValueError("the warehouse has no leads or opportunities")
    return pd.Timestamp(row[0]).normalize() + pd.Timedelta(days=1)


def _flat_features(
    table: Path,
    target: str | None,
    id_column: str | None,
    time_column: str | None,
    keep: list[str],
    encoding: str,
    delimiter: str,
    out: Path,
    as_json: bool,
) -> dict[str, Any]:
    from forecast.features.tabular import load_flat_export
    from forecast.io import write_frame

    if not target:
        fail(as_json, "--table needs --target COLUMN")
    try:
        export = load_flat_export(
            table,
            target=target,
            id_column=id_column,
            time_column=time_column,
            keep_columns=keep,
            encoding=encoding,
            delimiter=delimiter,
        )
    except (SourceError, ValueError) as exc:
        fail(as_json, cli_message(exc))
    for warning in export.warnings:
        get_logger("features").warning(warning)
    write_frame(export.table, out)
    return {"out": str(out), "entity": "flat_export", **export.summary()}
