"""Tables for people: they fit 80 columns without a cut cell, and ``--wide`` shows what was left out."""

from __future__ import annotations

import io
import logging

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from forecast.cli.render import (
    Column,
    compact,
    fit_columns,
    print_table,
    rate_with_interval,
    render_ingest,
    render_training,
    share,
)
from forecast.cli.revenue import render_revenue
from forecast.cli.tracking import _render_frame
from forecast.data.ingest import IngestReport
from forecast.logging import quiet_known_library_noise
from forecast.revenue.job import Goals, RevenueForecast
from forecast.training.job import TrainingSummary


def _console(width: int = 80) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=width, color_system=None, force_terminal=False), buffer


def _revenue_payload() -> RevenueForecast:
    rows = [
        {
            "period": f"2026-0{m}",
            "group": "(all)",
            "won_to_date": 20_345_678.0 * (m == 1),
            "expected": 90_000_000.0,
            "p10": 80_123_456.0,
            "p50": 92_345_678.0,
            "p90": 104_987_654.0,
            "quota": 95_000_000.0,
            "gap_to_goal": 74_654_322.0,
            "open_pipeline": 250_000_000.0,
            "p_hit_quota": 0.4321,
            "pipeline_coverage": 3.4,
            "deals_needed": 812.0,
        }
        for m in (1, 2, 3)
    ]
    goals = Goals(
        period="2026-01",
        goal=95e6,
        monthly_goal=95e6,
        weekly_goal=2.1e7,
        daily_goal=3e6,
        won_to_date=2e7,
        goal_to_date=3e7,
        pace_to_date=0.66,
        projected=9e7,
        projected_attainment=0.95,
        p_hit_quota=0.43,
    )
    return RevenueForecast(
        as_of=pd.Timestamp("2026-01-01T00:00:00"),
        by="month",
        group=None,
        simulations=10_000,
        models={"deal_win": "1", "time_to_close": "1"},
        warnings=[],
        open_deals=1234,
        open_pipeline=2.5e8,
        model_error={},
        forecast=rows,
        goals=goals,
        pacing=[],
    )


def test_revenue_fits_80_columns_with_its_essential_columns() -> None:
    console, out = _console()
    render_revenue(console, _revenue_payload())
    text = out.getvalue()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for header in ("period", "group", "won so far", "P10", "P50", "P90", "quota", "P(hit)"):
        assert header in text
    assert "92.3M" in text and "43%" in text
    assert "open pipeline" in text.split("not shown:")[1]  # named as left out


def test_revenue_wide_shows_every_column() -> None:
    console, out = _console()
    render_revenue(console, _revenue_payload(), wide=True)
    text = out.getvalue()
    assert "…" not in text
    assert "open pipeline" in text and "deals needed" in text and "not shown" not in text


def test_ingest_table_fits_and_drops_all_zero_columns() -> None:
    tables = {
        name: {"read": 1_234_567, "valid": 1_234_000, "rejected": 567, "inserted": 1_234_000}
        for name in ("engagement_events", "opportunities", "stage_history", "activities")
    }
    result = IngestReport(
        source_format="canonical",
        source_path="/data/crm",
        warehouse="wh.duckdb",
        as_of="2026-01-01T00:00:00",
        ingest_id=None,
        tables=tables,
        rejects_by_rule=[],
        sample_rejects=[],
        notes=[],
    )
    console, out = _console()
    render_ingest(console, result)
    text = out.getvalue()
    assert "…" not in text and "engagement_events" in text
    assert "updated" not in text.split("not shown:")[0]  # all zero: dropped
    wide_console, wide_out = _console()
    render_ingest(wide_console, result, wide=True)
    assert "updated" in wide_out.getvalue() and "unchanged" in wide_out.getvalue()


def _reps_frame(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    names = [f"Rep Number {i:02d}" for i in range(n)]
    frame = pd.DataFrame({"rep": names, "name": names})
    frame["calls"] = rng.integers(0, 500, n)
    frame["sms_sent"] = 0  # an activity nobody logs in this CRM
    frame["won_value"] = rng.uniform(1e5, 5e6, n)
    frame["win_rate"] = rng.uniform(0.1, 0.9, n)
    frame["win_rate_n"] = rng.integers(10, 100, n)
    frame["win_rate_lo"] = frame["win_rate"] - 0.08
    frame["win_rate_hi"] = frame["win_rate"] + 0.08
    for k in range(12):
        frame[f"extra_metric_{k}"] = rng.uniform(0, 1000, n)
    return frame


def test_metrics_by_rep_fits_without_repeating_the_name() -> None:
    frame = _reps_frame()
    console, out = _console()
    _render_frame(console, "performance", frame, "rep")
    text = out.getvalue()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    header = text.splitlines()[2]
    assert "rep" in header and " name " not in header
    assert "sms_sent" not in text.split("not shown:")[0]
    rate = f"{100 * frame['win_rate'][0]:.0f}% [{100 * frame['win_rate_lo'][0]:.0f}–"
    assert rate in text  # the rate with its interval
    assert "extra_metric_11" in text.split("not shown:")[1]
    wide_console, wide_out = _console()
    _render_frame(wide_console, "performance", frame, "rep", wide=True)
    wide = wide_out.getvalue()
    assert "sms_sent" in wide and "extra_metric_11" in wide and "n=" in wide


def test_few_groups_many_metrics_split_into_tables_that_fit() -> None:
    frame = _reps_frame(6)
    console, out = _console()
    _render_frame(console, "performance", frame, "rep")
    text = out.getvalue()
    assert "…" not in text and "(cont.)" in text
    assert all(f"Rep Number {i:02d}".split()[-1] in text for i in range(6))
    assert "sms_sent" not in text  # an all-zero metric row is dropped


def test_training_table_with_survival_metrics_fits() -> None:
    metrics = dict.fromkeys(("roc_auc", "pr_auc", "brier", "log_loss", "ece", "c_index", "ibs"), 0.123456)
    summary = TrainingSummary(
        model_name="time_to_close",
        version="3",
        run_id="abc",
        experiment="time_to_close",
        tracking_uri="sqlite:///mlflow.db",
        warnings=[],
        evaluation={
            "model_kind": "survival",
            "notes": [],
            "splits": {"method": "time", "gap_days": 30, "splits": {"train": {"rows": 1000}}},
            "metrics": metrics,
            "baselines": {"stage_and_age_baseline": metrics, "kaplan_meier_by_stage": metrics},
        },
    )
    console, out = _console()
    render_training(console, summary)
    text = out.getvalue()
    assert "…" not in text and "c_index" in text and "ibs" in text


def test_fit_columns_keeps_labels_and_drops_from_the_right() -> None:
    cols = [Column("id", "left", label=True), *(Column(f"c{i}") for i in range(20))]
    rows = [["x" * 10, *("123456" for _ in range(20))]]
    keep, hidden = fit_columns(cols, rows, 80)
    assert keep[0] == 0 and 1 + sum(w + 3 for w in [10] + [6] * (len(keep) - 1)) <= 80
    assert hidden == [f"c{i}" for i in range(len(keep) - 1, 20)]
    assert fit_columns(cols, rows, 80, wide=True) == (list(range(21)), [])


def test_print_table_names_what_it_left_out() -> None:
    console, out = _console(30)  # "b" is all zero, "c" too wide
    hidden = print_table(console, [Column("a", label=True), Column("b"), Column("c")], [["1", "0", "x" * 30]])
    assert hidden == ["b", "c"]
    said = " ".join(out.getvalue().split())
    assert "not shown: c (--wide shows them); 1 column with nothing in them" in said


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (950, "950"),
        (9_500, "9,500"),
        (95_000, "95.0k"),
        (950_000, "950k"),
        (1_234_567, "1.2M"),
        (-2_500_000_000, "-2.5B"),
        (None, "—"),
        (float("nan"), "—"),
    ],
)
def test_compact(value: float | None, text: str) -> None:
    assert compact(value) == text


def test_share_and_rate_with_interval() -> None:
    assert share(0.921) == "92%"
    assert rate_with_interval(1.0, 0.87, 1.0) == "100% [87–100]"
    assert rate_with_interval(0.5, 0.24, 0.76, 10) == "50% [24–76] n=10"
    assert rate_with_interval(float("nan"), float("nan"), float("nan"), 0) == "— (n=0)"


def test_known_harmless_library_records_are_dropped_and_others_kept(caplog: pytest.LogCaptureFixture) -> None:
    quiet_known_library_noise()
    with caplog.at_level(logging.INFO):
        logging.getLogger("mlflow.sklearn").warning(
            "Saving scikit-learn models in the pickle or cloudpickle ..."
        )
        logging.getLogger("mlflow.utils.environment").warning("Failed to resolve installed pip version.")
        logging.getLogger("mlflow.sklearn").warning("something else went wrong")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["something else went wrong"]


def test_quality_table_of_the_run_summary_fits() -> None:
    from forecast.cli.render import render_quality

    completeness = {f"a_rather_long_column_name_{i}": 0.5 + i / 10 for i in range(4)}
    table = {"rows": 1_234_567, "from": "2024-01-01T00:00:00", "to": "2025-12-31T00:00:00"}
    summary = {
        "warehouse": "/some/where/warehouse.duckdb",
        "tables": {name: {**table, "completeness": completeness} for name in ("engagement_events", "leads")},
        "facts": {
            "lead_conversion_rate": 0.2,
            "win_rate_closed": 0.3,
            "median_cycle_days_won": 40,
            "opportunities_by_outcome": {},
            "email_reply_rate": 0.1,
            "activities_by_type": {},
        },
        "warnings": [],
    }
    console, out = _console()
    render_quality(console, summary)
    text = out.getvalue()
    assert "…" not in text and "engagement_events" in text and "1,234,567" in text
