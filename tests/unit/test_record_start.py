"""A deal history whose closes before some date were left out of the export (left truncation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.data.simulate import Simulation, simulate_crm
from forecast.data.simulation.worlds import load_world
from forecast.features.horizon import follow_up_quantile, km_cdf, km_quantile, win_time_quantile
from forecast.features.record_start import outcome_record_start
from forecast.features.snapshots import LabelConfig
from forecast.features.source import frames_source
from forecast.models.config import TrainingConfig
from forecast.training.binary import train_binary
from forecast.training.datasets import resolve_horizon, snapshot_table, table_input
from forecast.training.survival import train_time_to_close
from tests.conftest import REPO

WIN = TrainingConfig.from_yaml(REPO / "training" / "deal_win.yaml")
CLOSE = TrainingConfig.from_yaml(REPO / "training" / "time_to_close.yaml")
WORLD = load_world("history-6m").model_copy(update={"leads_per_month": 500.0, "seed": 3})


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate_crm(WORLD.to_config())


def _truncated(sim: Simulation, at: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The CRM as an export holding only the deals still open on ``at`` or created after it."""
    opps = sim.tables["opportunities"]
    closed = pd.to_datetime(opps["closed_at"])
    kept = opps[closed.isna() | (closed >= at)]
    ids = set(kept["opportunity_id"])
    tables = dict(sim.tables)
    tables["opportunities"] = kept.reset_index(drop=True)
    history = tables["stage_history"]
    tables["stage_history"] = history[history["opportunity_id"].isin(ids)].reset_index(drop=True)
    return tables


def _start(sim: Simulation) -> pd.Timestamp:
    """Two months into the history: the export's first day."""
    first = pd.to_datetime(sim.tables["opportunities"]["created_at"]).min()
    return (first + pd.Timedelta(days=61)).normalize()


def test_km_cdf_reads_the_share_closed_by_each_time() -> None:
    d = np.array([1.0, 2.0, 3.0, 4.0])
    e = np.array([True, True, False, True])
    f = km_cdf(d, e, np.array([0.5, 1.0, 2.5, 3.5, 10.0]))
    # at risk 4, 3, (censored at 3), 1: S = 3/4, 1/2, then 0 at 4
    assert f == pytest.approx([0.0, 0.25, 0.5, 0.5, 1.0])
    assert km_cdf(d, np.zeros(4, dtype=bool), np.array([5.0])) == pytest.approx([0.0])


def test_delayed_entry_undoes_the_long_cycles_a_truncated_history_shows() -> None:
    rng = np.random.default_rng(0)
    true = rng.exponential(30, 20_000)
    created = rng.uniform(-200, 100, 20_000)  # days; the record of closes starts at day 0
    kept = created + true >= 0  # deals closed before day 0 are not in the export
    d, c = true[kept], created[kept]
    entry = np.maximum(-c, 0.0)
    observed = np.ones(len(d), dtype=bool)
    naive = km_quantile(d, observed, 0.5)
    fixed = km_quantile(d, observed, 0.5, entry)
    assert naive is not None and fixed is not None
    assert naive > 30 * np.log(2) + 4  # the slow survivors of the early months
    assert abs(fixed - 30 * np.log(2)) < 1.5
    outcome = np.where(rng.random(len(d)) < 0.4, "won", "lost")
    win = win_time_quantile(d, outcome, 0.5, entry)
    assert win is not None and abs(win - 30 * np.log(2)) < 2.0
    assert (win_time_quantile(d, outcome, 0.5) or 0.0) > win + 4


def test_a_close_on_the_day_a_deal_is_first_watched_counts_and_one_before_it_does_not() -> None:
    """Delayed entry: at risk from ``entry`` on, that day included; closed before it: not watched."""
    observed = np.ones(3, dtype=bool)
    # two closes at day 5, one of a deal watched from day 5: all three at risk then (cdf 2/3)
    assert km_quantile(np.array([5.0, 5.0, 10.0]), observed, 0.9, np.array([5.0, 0.0, 0.0])) == 10.0
    # a deal closed at day 3 but watched only from day 5 is out of the curve (not a close at 3)
    assert km_quantile(np.array([3.0, 10.0, 10.0]), observed, 0.3, np.array([5.0, 0.0, 0.0])) == 10.0
    outcome = np.array(["won", "won", "lost"])
    assert win_time_quantile(np.array([3.0, 10.0, 10.0]), outcome, 0.3, np.array([5.0, 0.0, 0.0])) == 10.0


def test_a_history_that_started_empty_is_read_whole(sim: Simulation) -> None:
    with frames_source(sim.tables, WORLD.pipeline()) as src:
        assert outcome_record_start(src) is None
        config = resolve_horizon(src, WIN)
    assert config.snapshots.first_close is None
    assert config.snapshots.outcomes_note() is None


def _mode(mode: str, config: TrainingConfig = WIN) -> TrainingConfig:
    snapshots = config.snapshots.model_copy(update={"truncated_history": mode})
    return config.model_copy(update={"snapshots": snapshots})


def test_an_export_without_its_early_closes_is_told_so_and_can_be_read_from_its_first_close(
    sim: Simulation,
) -> None:
    at = _start(sim)
    tables = _truncated(sim, at)
    first = pd.to_datetime(tables["opportunities"]["closed_at"]).min()
    with frames_source(tables, WORLD.pipeline()) as src:
        record = outcome_record_start(src)
        assert record is not None and record.at == first.ceil("D") and first >= at
        assert record.expected_closes >= 10 and record.deals_before > 0
        noted = resolve_horizon(src, WIN)  # the default: said, the whole history read
        read = resolve_horizon(src, _mode("read_from_first_close"))
        off = resolve_horizon(src, _mode("off"))
        h = read.snapshots.horizon_days
        whole = snapshot_table(src, noted, LabelConfig(h, h))
        table = snapshot_table(src, read, LabelConfig(h, h))
    assert noted.snapshots.first_close == read.snapshots.first_close == record.at.isoformat()
    assert off.snapshots.first_close is None and off.snapshots.outcomes_note() is None
    assert noted.snapshots.read_from() is None and read.snapshots.read_from() == record.at.isoformat()
    assert "left-truncated" in (noted.snapshots.outcomes_note() or "")
    assert "read_from_first_close reads it" in (noted.snapshots.outcomes_note() or "")
    assert "are read from" in (read.snapshots.outcomes_note() or "")
    # read from the first close: no snapshot (weekly or at creation) before it, and from its first week
    assert whole.frame["as_of"].min() < at
    assert table.frame["as_of"].min() >= first
    assert (table.frame["as_of"] < first + pd.Timedelta(days=8)).any()
    # the history's length is read from there, so the horizon is at most about half of that
    end = pd.to_datetime(tables["opportunities"]["created_at"]).max()
    assert h <= 7 * np.ceil(max((end - first).days / 2, 1) / 7) + 7 < noted.snapshots.horizon_days
    result = train_binary(table_input(table, read.label), read)
    assert any("left-truncated" in n for n in result.notes)


def test_the_follow_up_and_the_time_to_close_read_from_the_first_close_too(sim: Simulation) -> None:
    tables = _truncated(sim, _start(sim))
    with frames_source(tables, WORLD.pipeline()) as src:
        end = src.data_end()
        close = resolve_horizon(src, _mode("read_from_first_close", CLOSE))
        since = pd.Timestamp(close.snapshots.first_close)
        longest = follow_up_quantile(src, 0.01, end, since)
        whole = follow_up_quantile(src, 0.01, end)
        h = close.snapshots.horizon_days
        table = snapshot_table(src, close, LabelConfig(h, h))
    assert longest is not None and whole is not None
    assert longest <= (end - since) / pd.Timedelta(days=1) < whole
    result = train_time_to_close(table_input(table, close.label), close)
    assert any("left-truncated" in n for n in result.notes)
