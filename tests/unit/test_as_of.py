"""One meaning of "as of" (issue 17 item 5): every command and the API default to the same time.

The CRM here is the tiny one with a lost deal closed at 15:00 on the data's last day (2024-03-05),
the day another deal closed at midnight. Its as-of is midnight after that day, 2024-03-06T00:00,
for every command; both deals closed that day are closed, never scored or flagged as open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecast.config import Settings
from forecast.data.ingest import ingest
from forecast.data.warehouse import Warehouse
from forecast.features.source import warehouse_source
from forecast.timeutil import as_of_after, parse_time, resolve_as_of
from tests.conftest import tiny_tables, write_tables

LAST_DAY_CLOSE = pd.Timestamp("2024-03-05T15:00:00")
AS_OF = pd.Timestamp("2024-03-06")
LATE = "O3"  # lost at 15:00 on the last day
OPEN = "O2"


def _tables() -> dict[str, pd.DataFrame]:
    tables = tiny_tables()
    late = {
        "opportunity_id": LATE,
        "account_id": "A2",
        "lead_id": None,
        "rep_id": "R2",
        "product": "basic",
        "created_at": "2024-02-12",
        "amount": "5000",
        "stage": "closed_lost",
        "expected_close_date": "2024-03-31",
        "closed_at": LAST_DAY_CLOSE.isoformat(),
        "outcome": "lost",
        "loss_reason": "price",
    }
    tables["opportunities"] = pd.concat([tables["opportunities"], pd.DataFrame([late])], ignore_index=True)
    stages = pd.DataFrame(
        {
            "opportunity_id": [LATE, LATE],
            "stage": ["qualification", "closed_lost"],
            "entered_at": ["2024-02-12", LAST_DAY_CLOSE.isoformat()],
            "amount": ["5000", "5000"],
            "expected_close_date": ["2024-03-31", "2024-03-31"],
        }
    )
    tables["stage_history"] = pd.concat([tables["stage_history"], stages], ignore_index=True)
    return tables


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("asof")
    crm = write_tables(root / "crm", _tables())
    path = root / "crm.duckdb"
    report = ingest(crm, "canonical", Warehouse(path), as_of=pd.Timestamp("2025-01-01"))
    assert report.tables["opportunities"]["valid"] == 3, (report.tables, report.sample_rejects)
    return Settings(
        warehouse=path,
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        models_dir=root / "models",
        serve_warehouse=True,
    )


# --- the rule ----------------------------------------------------------------------------------
def test_as_of_after_is_midnight_after_the_last_day() -> None:
    assert as_of_after(LAST_DAY_CLOSE) == AS_OF
    assert as_of_after(pd.Timestamp("2017-12-31T00:00")) == pd.Timestamp("2018-01-01")  # Maven's dates
    assert as_of_after(pd.Timestamp("2024-03-05T23:30-02:00")) == AS_OF + pd.Timedelta(days=1)  # UTC day


def test_an_explicit_date_is_its_midnight_everywhere() -> None:
    """``--as-of 2024-03-05`` is 2024-03-05T00:00: what happened that day is not known yet."""
    assert parse_time("2024-03-05") == pd.Timestamp("2024-03-05T00:00")
    assert resolve_as_of("2024-03-05", lambda: AS_OF) == pd.Timestamp("2024-03-05T00:00")
    assert resolve_as_of(None, lambda: AS_OF) == AS_OF


# --- every resolver gives the same time ---------------------------------------------------------
def test_every_resolver_gives_the_same_as_of(settings: Settings) -> None:
    from forecast.serving.scoring import warehouse_as_of
    from forecast.tracking.api import open_warehouse
    from forecast.tracking.data import default_as_of, read_frames

    with warehouse_source(settings.warehouse) as src:
        assert src.data_end() == LAST_DAY_CLOSE
        assert src.default_as_of() == AS_OF  # score, flags, features, monitor
        frames, _ = read_frames(src.con)
    assert default_as_of(frames) == AS_OF  # revenue, metrics, reports
    assert open_warehouse(settings.warehouse).as_of == AS_OF
    assert warehouse_as_of(settings) == AS_OF  # the API with --warehouse
    assert warehouse_as_of(settings.model_copy(update={"serve_warehouse": False})) is None  # the clock


# --- one test per command -------------------------------------------------------------------------
class _Meta:
    entity = "opportunity"
    is_warehouse = True
    horizon_days = 90


class _Model:
    meta = _Meta()
    pipeline = None
    name, version = "deal_win", "1"


def test_score_deals_default_is_the_data_as_of(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from forecast import batch

    def fake_scores(model: Any, frame: pd.DataFrame, ids: pd.Series, **_: Any) -> pd.DataFrame:
        return pd.DataFrame({"id": ids.to_numpy(), "p": 0.5})

    monkeypatch.setattr(batch, "score_frame", fake_scores)
    monkeypatch.setattr(batch, "warnings_column", lambda _p, f: np.full(len(f), "", dtype=object))
    scored, when, id_col = batch.score_warehouse(_Model(), settings, None)  # type: ignore[arg-type]
    assert when == AS_OF
    ids = set(scored.scores[id_col])
    assert ids == {OPEN}, "deals closed on the data's last day (00:00 and 15:00) are not open"
    # an explicit time keeps its meaning: at 15:00 sharp the 15:00 close has not happened yet
    scored, when, _ = batch.score_warehouse(_Model(), settings, LAST_DAY_CLOSE)  # type: ignore[arg-type]
    assert when == LAST_DAY_CLOSE and set(scored.scores[id_col]) == {OPEN, LATE}


def test_score_leads_default_is_the_data_as_of(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from forecast import batch

    class _LeadMeta(_Meta):
        entity = "lead"

    class _LeadModel(_Model):
        meta = _LeadMeta()

    monkeypatch.setattr(batch, "score_frame", lambda m, f, ids, **_: pd.DataFrame({"id": ids.to_numpy()}))
    monkeypatch.setattr(batch, "warnings_column", lambda _p, f: np.full(len(f), "", dtype=object))
    scored, when, id_col = batch.score_warehouse(_LeadModel(), settings, None)  # type: ignore[arg-type]
    assert when == AS_OF
    assert set(scored.scores[id_col]) == {"L2"}  # L1 and L3 converted, L2 still working


def test_flags_default_is_the_data_as_of(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from forecast.flags import job as jobs
    from forecast.flags.config import FlagsConfig

    monkeypatch.setattr(jobs, "champion_scorer", lambda *_: (None, "no champion", []))
    result = jobs.flags_job(settings, as_of=None, entities=["opportunity"], config=FlagsConfig())
    assert pd.Timestamp(result.as_of) == AS_OF
    (entity,) = result.entities.values()
    assert entity.open == 1, "only O2 is open: O3 closed at 15:00 on the last day"
    assert LATE not in {row["id"] for row in result.top}


def test_metrics_default_is_the_data_as_of(settings: Settings) -> None:
    from forecast.tracking.api import open_warehouse

    data = open_warehouse(settings.warehouse)
    assert data.as_of == AS_OF
    deals = data.opportunities.set_index("opportunity_id")
    assert deals.loc[LATE, "outcome"] == "lost" and deals.loc["O1", "outcome"] == "won"
    assert (deals["outcome"] == "open").sum() == 1


class _StopError(Exception):
    pass


def test_revenue_default_is_the_data_as_of(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from forecast.revenue import job as run

    seen: dict[str, Any] = {}

    def capture(frames: Any, pipeline: Any, when: pd.Timestamp, *_: Any, **__: Any) -> Any:
        seen["when"] = when
        raise _StopError

    monkeypatch.setattr(run, "forecast_with_open_deals", capture)
    with pytest.raises(_StopError):
        run.revenue_job(settings, as_of=None, periods=1, by="month", group=None, n_sims=100, models=object())  # type: ignore[arg-type]
    assert seen["when"] == AS_OF


def test_features_default_grid_ends_at_the_data_as_of(settings: Settings, tmp_path: Path) -> None:
    from forecast.cli.features import _warehouse_features

    out = tmp_path / "features.parquet"
    _warehouse_features(settings, "opportunity", None, "1d", "2024-03-04", None, 30, out, True)
    frame = pd.read_parquet(out)
    assert pd.to_datetime(frame["as_of"]).max() == AS_OF
    last = frame[pd.to_datetime(frame["as_of"]) == AS_OF]
    assert set(last["opportunity_id"]) == {OPEN}


def test_monitor_current_window_ends_at_the_data_as_of(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from forecast.models.config import TrainingConfig
    from forecast.monitoring import job
    from forecast.monitoring.policy import MonitoringPolicy
    from forecast.training import datasets

    seen: dict[str, Any] = {}

    def capture(src: Any, cfg: Any, labels: Any, data_end: Any = None, **_: Any) -> Any:
        seen["to"], seen["data_end"] = cfg.snapshots.date_to, data_end
        raise _StopError

    monkeypatch.setattr(datasets, "snapshot_table", capture)
    with pytest.raises(_StopError):
        job.current_side(_Model(), settings, TrainingConfig(), MonitoringPolicy(), None, lambda _m: None)  # type: ignore[arg-type]
    assert pd.Timestamp(seen["to"]) == AS_OF
    assert seen["data_end"] == LAST_DAY_CLOSE  # labels are still censored at the last event


def test_api_without_as_of_uses_the_warehouse_as_of(settings: Settings) -> None:
    """The records' default as-of is the warehouse's when served with one (close dates count from it)."""
    from forecast.serving import scoring
    from forecast.serving.schemas import record_model

    default = scoring.warehouse_as_of(settings)
    assert default == AS_OF
    records = [record_model("opportunity")(opportunity_id="O9")]
    frame = scoring.records_frame(records, "opportunity", default)
    assert frame["as_of"].iloc[0] == AS_OF
