"""Model commands: train, promote, score."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from forecast.cli.main import (
    ChurnModelOpt,
    CloseModelOpt,
    DelimiterOpt,
    EncodingOpt,
    IdOpt,
    JsonOpt,
    KeepOpt,
    ModelsOpt,
    TargetOpt,
    TimeOpt,
    app,
    as_of_option,
    context_settings,
    emit,
    fail,
    input_errors,
    parse_as_of,
    progress_bar,
    refs_or_exit,
)
from forecast.cli.render import (
    render_training,
)
from forecast.config import config_file
from forecast.data.sources.base import SourceError
from forecast.errors import cli_message
from forecast.logging import get_logger
from forecast.models.names import (
    CHURN_RISK,
    CHURN_RISK_LEADS,
    DEAL_WIN,
    LEAD_SCORING,
    MODEL_NAMES,
    TIME_TO_CLOSE,
    cli_name,
)

# ---------------------------------------------------------------------------- train / promote

train_app = typer.Typer(
    help="Train a model, log it to MLflow and register it as challenger.", no_args_is_help=True
)
promote_app = typer.Typer(
    help="Apply the promotion gate: challenger replaces champion if better.", no_args_is_help=True
)
app.add_typer(train_app, name="train")
app.add_typer(promote_app, name="promote")

MODELS = {cli_name(name): name for name in MODEL_NAMES}
"""CLI model names and their config stems (``training/<stem>.yaml``)."""


def default_config(stem: str) -> Path:
    """``<config_dir>/<stem>.yaml`` (``FORECAST_CONFIG_DIR``, default: the repository's ``training/``)."""
    return config_file(f"{stem}.yaml")


def load_config(stem: str, path: Path | None, as_json: bool, model_name: str | None) -> Any:
    """The training config `<config_dir>/<stem>.yaml` (or `path`), named `model_name`; bad: exit 2."""
    from forecast.models.config import TrainingConfig

    config_path = path or default_config(stem)
    try:
        config = TrainingConfig.from_yaml(config_path)
    except ValueError as exc:
        fail(as_json, cli_message(exc))
    if model_name is not None:
        check_model_name(model_name, "--model-name", as_json)
        config = config.model_copy(update={"model_name": model_name})
    return config


def check_model_name(value: str, option: str, as_json: bool) -> str:
    """``value`` if it is a valid model name (:func:`forecast.name_rules.check_name`), else exit 2."""
    from forecast.name_rules import check_name

    try:
        return check_name(value, option)
    except ValueError as exc:
        fail(as_json, cli_message(exc))


TableOpt = Annotated[Path | None, typer.Option(help="Train on a flat CRM export (CSV/Parquet) instead.")]
DropOpt = Annotated[
    list[str] | None,
    typer.Option("--drop-column", help="Leave a column of --table out (e.g. known only later)."),
]
SplitOpt = Annotated[
    str | None,
    typer.Option(
        "--split",
        help=(
            "time (needs --time), order (the file's own row order, last rows as test: an export kept "
            "in time order), random or stratified (default: time with --time, else the config's)."
        ),
    ),
]
GapOpt = Annotated[
    float | None,
    typer.Option(
        "--gap-days", help="Days left out before the test slice of a time split (flat export default: 0)."
    ),
]
PromoteOpt = Annotated[
    bool, typer.Option("--promote/--no-promote", help="Apply the promotion gate after training.")
]
ConfigOpt = Annotated[Path | None, typer.Option(help="Training config (default: training/<model>.yaml).")]
ModelNameOpt = Annotated[str | None, typer.Option(help="Registered model name (default: from the config).")]
ReasonsOpt = Annotated[
    bool,
    typer.Option(
        "--reasons/--no-reasons",
        help="Add the top reasons up and down (TreeSHAP: most of the cost of scoring a large file).",
    ),
]
EngineOpt = Annotated[
    str,
    typer.Option(
        help="local: score in this process; spark: on Apache Spark (--input and --output are Parquet "
        "files or folders, paths or URIs; docs/scale.md).",
    ),
]
BatchRowsOpt = Annotated[
    int,
    typer.Option(
        "--batch-rows",
        min=0,
        help="With --engine local, a Parquet --input (a file or a folder of part files) is read, scored "
        "and written this many rows at a time (memory bounded by the batch, the same output); 0 reads "
        "it whole. CSV inputs and flat-export models are read whole.",
    ),
]
DEFAULT_BATCH_ROWS = 100_000
"""``forecast.batch_stream.DEFAULT_BATCH_ROWS`` (not imported: it would load pandas for ``--help``)."""
MasterOpt = Annotated[
    str | None,
    typer.Option(
        help="With --engine spark: the Spark master to start (e.g. local[2]); default: spark-submit's "
        "session, else local[*]."
    ),
]
FlagsOpt = Annotated[
    bool,
    typer.Option(
        "--flags/--no-flags",
        help="Add the flags (and p_churn with a churn champion) when scoring from the warehouse.",
    ),
]


def _train(
    ctx: typer.Context,
    stem: str,
    config: Path | None,
    model_name: str | None,
    promote_after: bool,
    as_json: bool,
    split: str | None = None,
    gap_days: float | None = None,
    **table_options: Any,
) -> None:
    from forecast.errors import InsufficientDataError
    from forecast.training.job import train_model_job

    settings = context_settings(ctx)
    cfg = load_config(stem, config, as_json, model_name)
    if split is not None or gap_days is not None:
        if split not in (None, "time", "order", "random", "stratified"):
            fail(as_json, f"--split {split!r}: use time, order, random or stratified")
        if gap_days is not None and gap_days < 0:
            fail(as_json, f"--gap-days {gap_days}: must be 0 or more")
        changes = {k: v for k, v in (("method", split), ("gap_days", gap_days)) if v is not None}
        cfg = cfg.model_copy(update={"split": cfg.split.model_copy(update=changes)})
    with (
        input_errors(as_json, (InsufficientDataError, SourceError, FileNotFoundError, LookupError)),
        progress_bar(f"train {cfg.model_name}") as update,
    ):
        summary = train_model_job(
            settings,
            cfg,
            promote_after=promote_after,
            progress=lambda m: update(m, None),
            **table_options,
        )
    for warning in summary.warnings:
        get_logger("train").warning(warning)
    emit(as_json, summary.to_dict(), lambda c: render_training(c, summary))


def _table_options(
    table: Path | None,
    target: str | None,
    id_column: str | None,
    time_column: str | None,
    keep_column: list[str] | None,
    drop_column: list[str] | None,
    encoding: str,
    delimiter: str,
) -> dict[str, Any]:
    return {
        "table": table,
        "target": target,
        "id_column": id_column,
        "time_column": time_column,
        "keep_columns": keep_column or [],
        "drop_columns": drop_column or [],
        "encoding": encoding,
        "delimiter": delimiter,
    }


def _table_train_command(cli_name: str, stem: str, summary: str) -> None:
    """Register ``forecast train <cli_name>``: the warehouse's snapshots, or a flat export (--table)."""

    @train_app.command(cli_name, help=summary)
    def command(
        ctx: typer.Context,
        config: ConfigOpt = None,
        table: TableOpt = None,
        target: TargetOpt = None,
        id_column: IdOpt = None,
        time_column: TimeOpt = None,
        keep_column: KeepOpt = None,
        drop_column: DropOpt = None,
        model_name: ModelNameOpt = None,
        promote_after: PromoteOpt = False,
        encoding: EncodingOpt = "utf-8",
        delimiter: DelimiterOpt = ",",
        split: SplitOpt = None,
        gap_days: GapOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        options = _table_options(
            table, target, id_column, time_column, keep_column, drop_column, encoding, delimiter
        )
        _train(
            ctx, stem, config, model_name, promote_after, as_json, split=split, gap_days=gap_days, **options
        )


def _warehouse_train_command(cli_name: str, stem: str, summary: str) -> None:
    """Register ``forecast train <cli_name>`` for a model trained on the warehouse's snapshots only."""

    @train_app.command(cli_name, help=summary)
    def command(
        ctx: typer.Context,
        config: ConfigOpt = None,
        model_name: ModelNameOpt = None,
        promote_after: PromoteOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        _train(ctx, stem, config, model_name, promote_after, as_json)


_table_train_command(
    "lead-scoring",
    LEAD_SCORING,
    "Train lead scoring on the warehouse's lead snapshots, or on a flat export (--table).",
)
_table_train_command(
    "deal-win",
    DEAL_WIN,
    "Train deal win probability on the warehouse's deal snapshots, or on a flat export (--table).",
)
_warehouse_train_command(
    "time-to-close",
    TIME_TO_CLOSE,
    "Train the time-to-close survival model on the warehouse's deal snapshots.",
)
_warehouse_train_command(
    "churn-risk",
    CHURN_RISK,
    "Train p_churn of open deals (lost or silent within 30 days) on the warehouse's deal snapshots.",
)
_warehouse_train_command(
    "churn-risk-leads",
    CHURN_RISK_LEADS,
    "Train p_churn of open leads (disqualified or silent within 30 days) on the lead snapshots.",
)


def _promote_command(cli_name: str, stem: str) -> None:
    @promote_app.command(cli_name, help=f"Promote the {cli_name} challenger if it passes the gate.")
    def command(
        ctx: typer.Context,
        model_name: ModelNameOpt = None,
        config: Annotated[Path | None, typer.Option(help="Config with the promotion gate.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        _promote(ctx, stem, model_name, config, as_json)


def _promote(
    ctx: typer.Context, stem: str, model_name: str | None, config: Path | None, as_json: bool
) -> None:
    from forecast.registry import promote

    settings = context_settings(ctx)
    cfg = load_config(stem, config, as_json, model_name)
    try:
        decision = promote(cfg.model_name, settings, max_auc_drop=cfg.promotion.max_auc_drop)
    except LookupError as exc:
        fail(as_json, cli_message(exc).strip("'\""))
    payload = {"ok": True, **decision.as_dict()}

    def render(c: Console) -> None:
        verdict = "promoted" if decision.promoted else "kept the champion"
        c.print(f"{decision.model_name} v{decision.challenger_version}: {verdict} ({decision.reason})")

    emit(as_json, payload, render)


for _cli_name, _stem in MODELS.items():
    _promote_command(_cli_name, _stem)

score_app = typer.Typer(
    help="Batch scoring with the champion model (every row scored or rejected).", no_args_is_help=True
)
app.add_typer(score_app, name="score")


@score_app.command("leads")
def score_leads(
    ctx: typer.Context,
    output: Annotated[str, typer.Option(help="Output file (.csv or .parquet); rejects go next to it.")],
    input_path: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="A file in the shape the model was trained on (or a folder of Parquet part files).",
        ),
    ] = None,
    from_warehouse: Annotated[
        bool, typer.Option("--from-warehouse", help="Score the warehouse's open leads.")
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            help="Registered model: NAME, NAME@alias or NAME:version (default: lead_scoring's champion, "
            "which must have been trained on this warehouse to score it). A named model is used even "
            "if trained on another warehouse or a flat export (with a warning)."
        ),
    ] = None,
    alias: Annotated[
        str, typer.Option(help="Score with this alias of --model (e.g. challenger).")
    ] = "champion",
    version: Annotated[
        int | None, typer.Option(help="Score with this exact version of --model (overrides --alias).")
    ] = None,
    keep_columns: Annotated[
        str | None,
        typer.Option(
            "--keep-columns", help="Carry input columns to the output: all, or a comma-separated list."
        ),
    ] = None,
    as_of: Annotated[
        str | None, as_of_option("Score as of this time (default: midnight after the warehouse's last day).")
    ] = None,
    write_back: Annotated[
        bool, typer.Option("--write-back", help="Also store the scores in the warehouse.")
    ] = False,
    with_flags: FlagsOpt = True,
    reasons: ReasonsOpt = True,
    churn_model: ChurnModelOpt = None,
    models: ModelsOpt = None,
    encoding: EncodingOpt = "utf-8",
    delimiter: DelimiterOpt = ",",
    engine: EngineOpt = "local",
    master: MasterOpt = None,
    batch_rows: BatchRowsOpt = DEFAULT_BATCH_ROWS,
    as_json: JsonOpt = False,
) -> None:
    """Score leads: p_convert, score 0-100, band A-D and the top reasons, for every row.

    From the warehouse, also the flags (training/flags.yaml) and p_churn when a churn_risk_leads
    champion exists. Roles of --models: lead_scoring, churn_risk_leads.
    """
    refs = refs_or_exit(
        as_json,
        {LEAD_SCORING: (LEAD_SCORING, "--model"), CHURN_RISK_LEADS: (CHURN_RISK_LEADS, "--churn-model")},
        {LEAD_SCORING: model, CHURN_RISK_LEADS: churn_model},
        models,
    )
    lead = _with_alias(refs[LEAD_SCORING], alias, version, as_json)
    _score(
        ctx,
        output,
        input_path,
        from_warehouse,
        lead,
        as_of,
        write_back,
        encoding,
        delimiter,
        as_json,
        churn_model=refs[CHURN_RISK_LEADS],
        with_flags=with_flags,
        reasons=reasons,
        keep_columns=keep_columns,
        engine=engine,
        master=master,
        batch_rows=batch_rows,
    )


def _with_alias(ref: Any, alias: str, version: int | None, as_json: bool) -> Any:
    """``ref`` with ``--alias`` / ``--version`` applied (either makes the choice explicit)."""
    from dataclasses import replace

    if version is None and alias == "champion":
        return ref
    if ref.version is not None or ref.alias != "champion":
        fail(as_json, f"--model {ref} already names its alias or version: drop --alias / --version")
    if version is not None:
        return replace(ref, version=str(version), explicit=True)
    return replace(ref, alias=alias, explicit=True)


@score_app.command("deals")
def score_deals(
    ctx: typer.Context,
    output: Annotated[str, typer.Option(help="Output file (.csv or .parquet); rejects go next to it.")],
    input_path: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="Deal snapshots as written by `forecast features --entity opportunity` (a file, or a "
            "folder of Parquet part files).",
        ),
    ] = None,
    from_warehouse: Annotated[
        bool, typer.Option("--from-warehouse", help="Score the deals open in the warehouse at --as-of.")
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            help="Win-probability model: NAME, NAME@alias or NAME:version (default: deal_win's champion, "
            "which must have been trained on this warehouse to score it); a named one is used even if "
            "trained elsewhere (with a warning)."
        ),
    ] = None,
    close_model: CloseModelOpt = None,
    churn_model: ChurnModelOpt = None,
    models: ModelsOpt = None,
    as_of: Annotated[
        str | None, as_of_option("Score as of this time (default: midnight after the warehouse's last day).")
    ] = None,
    write_back: Annotated[
        bool,
        typer.Option("--write-back", help="Also store the scores in the warehouse (opportunity_scores)."),
    ] = False,
    with_flags: FlagsOpt = True,
    reasons: ReasonsOpt = True,
    encoding: EncodingOpt = "utf-8",
    delimiter: DelimiterOpt = ",",
    engine: EngineOpt = "local",
    master: MasterOpt = None,
    batch_rows: BatchRowsOpt = DEFAULT_BATCH_ROWS,
    as_json: JsonOpt = False,
) -> None:
    """Score open deals: p_win and reasons, close-date distribution and slip risk, for every row.

    Adds P(close within 30 / 60 / 90 days), close-date quantiles and the slip risk from the
    time-to-close champion; from the warehouse, also the flags and p_churn (churn_risk champion).
    Roles of --models: deal_win, time_to_close, churn_risk.
    """
    refs = refs_or_exit(
        as_json,
        {
            DEAL_WIN: (DEAL_WIN, "--model"),
            TIME_TO_CLOSE: (TIME_TO_CLOSE, "--close-model"),
            CHURN_RISK: (CHURN_RISK, "--churn-model"),
        },
        {DEAL_WIN: model, TIME_TO_CLOSE: close_model, CHURN_RISK: churn_model},
        models,
    )
    _score(
        ctx,
        output,
        input_path,
        from_warehouse,
        refs[DEAL_WIN],
        as_of,
        write_back,
        encoding,
        delimiter,
        as_json,
        close_model=refs[TIME_TO_CLOSE],
        churn_model=refs[CHURN_RISK],
        with_flags=with_flags,
        reasons=reasons,
        engine=engine,
        master=master,
        batch_rows=batch_rows,
    )


def _score(
    ctx: typer.Context,
    output: str,
    input_path: str | None,
    from_warehouse: bool,
    model: Any,
    as_of: str | None,
    write_back: bool,
    encoding: str,
    delimiter: str,
    as_json: bool,
    close_model: Any = None,
    churn_model: Any = None,
    with_flags: bool = False,
    reasons: bool = True,
    keep_columns: str | None = None,
    engine: str = "local",
    master: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> None:
    """Run :func:`forecast.batch.score_job` with the models chosen (``ModelRef``) and print the summary.

    With ``engine="spark"``, :func:`forecast.scale.job.spark_score_job` scores the ``--input`` file
    or folder on Spark instead (the same rows, scores, reasons and rejects).
    """
    from forecast.errors import ScoringError
    from forecast.registry import client

    if (input_path is None) == (not from_warehouse):
        fail(as_json, "give exactly one of --input FILE or --from-warehouse")
    settings = context_settings(ctx)
    client(settings)
    when = parse_as_of(as_of or None, as_json)  # "" scores at the default, as it always has
    if engine not in ("local", "spark"):
        fail(as_json, f"--engine must be local or spark, not {engine!r}")
    if engine == "spark":
        summary = _score_on_spark(
            settings,
            model,
            output,
            input_path,
            write_back,
            keep_columns,
            as_of,
            master,
            as_json,
            close_model=close_model,
            with_flags=with_flags,
            reasons=reasons,
        )
    elif master is not None:
        fail(as_json, "--master is for --engine spark")
    else:
        with (
            input_errors(as_json, (ScoringError, SourceError, LookupError, FileNotFoundError)),
            progress_bar("score") as update,
        ):
            summary = _local_job(
                settings,
                model,
                output,
                input_path,
                when,
                write_back,
                encoding,
                delimiter,
                update,
                close_model=close_model,
                churn_model=churn_model,
                with_flags=with_flags,
                reasons=reasons,
                keep_columns=keep_columns,
                batch_rows=batch_rows,
            )

    def render(c: Console) -> None:
        c.print(
            f"scored {summary.scored:,} of {summary.rows_in:,} rows with {summary.model_name} "
            f"v{summary.model_version}"
            + (f" as of {summary.as_of.isoformat()}" if summary.as_of is not None else "")
            + f"; {summary.rejected:,} rejected"
        )
        c.print(f"  output: {summary.output}\n  rejects: {summary.rejects}\n  bands: {summary.bands}")

    emit(as_json, summary.to_dict(), render)


def _local_job(
    settings: Any,
    model: Any,
    output: str,
    input_path: str | None,
    when: Any,
    write_back: bool,
    encoding: str,
    delimiter: str,
    update: Any,
    *,
    close_model: Any,
    churn_model: Any,
    with_flags: bool,
    reasons: bool,
    keep_columns: str | None,
    batch_rows: int,
) -> Any:
    """:func:`forecast.batch.score_job` with the command's options (the local engine)."""
    from forecast.batch import score_job

    return score_job(
        settings,
        model_name=model,
        output=Path(output),
        input_path=None if input_path is None else Path(input_path),
        as_of=when,
        write_to_warehouse=write_back,
        encoding=encoding,
        delimiter=delimiter,
        progress=update,
        close_model=close_model,
        churn_model=churn_model if churn_model is not None and churn_model.explicit else None,
        with_flags=with_flags,
        reasons=reasons,
        keep_columns=keep_columns,
        batch_rows=batch_rows,
    )


def _score_on_spark(
    settings: Any,
    model: Any,
    output: str,
    input_path: str | None,
    write_back: bool,
    keep_columns: str | None,
    as_of: str | None,
    master: str | None,
    as_json: bool,
    *,
    close_model: Any,
    with_flags: bool,
    reasons: bool,
) -> Any:
    """:func:`forecast.scale.job.spark_score_job` with the command's options (what it cannot do: exit 2)."""
    from forecast.errors import InputError, ScoringError

    if input_path is None:
        fail(as_json, "--engine spark scores a Parquet file or folder: give --input (not --from-warehouse)")
    for given, option in ((write_back, "--write-back"), (keep_columns, "--keep-columns"), (as_of, "--as-of")):
        if given:
            fail(as_json, f"{option} is not available with --engine spark: use --engine local")
    from forecast.scale.job import spark_score_job

    notes = ["flags need the warehouse's history: score --from-warehouse to get them"] if with_flags else []
    with input_errors(as_json, (ScoringError, InputError, LookupError)):
        return spark_score_job(
            settings,
            model=model,
            input_path=str(input_path),
            output=output,
            master=master,
            close_model=close_model,
            reasons=reasons,
            notes=notes,
        )
