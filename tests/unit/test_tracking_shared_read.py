"""The revenue forecast beside the tracking reports shares their read of the CRM: the same tables.

:func:`forecast.tracking.data.crm_frames` takes the activities and engagement events from a prepared
:class:`~forecast.tracking.data.TrackingData` instead of reading them again. The forecast only uses
the CRM cut at its as-of (:func:`forecast.data.as_of.crm_as_of`), so that cut must be the same, to the
last value, as the cut of every table read from the warehouse.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from forecast.data.as_of import crm_as_of
from forecast.data.ingest import ingest
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.data.warehouse import Warehouse
from forecast.tracking.data import NONE_LABEL, TrackingData, crm_frames, load, read_frames


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shared")
    crm = simulate_crm(SimulationConfig(n_leads=1500, seed=7, months=10))
    acts = crm.tables["activities"]
    acts.loc[acts.index[::97], "rep_id"] = None  # activities of no rep: prepare labels them (none)
    crm.write(root / "crm")
    path = root / "crm.duckdb"
    ingest(root / "crm", "canonical", Warehouse(path), as_of=pd.Timestamp("2030-01-01"))
    return path


def _cut(
    path: Path, as_of: pd.Timestamp | None
) -> tuple[TrackingData, dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    with Warehouse(path).connect(read_only=True) as con:
        data = load(con, as_of)
        shared, pipeline = crm_frames(con, data)
        whole, _ = read_frames(con)
    return data, crm_as_of(shared, data.as_of, pipeline), crm_as_of(whole, data.as_of, pipeline)


@pytest.mark.parametrize("as_of", [None, pd.Timestamp("2024-07-10T13:00")])
def test_the_shared_frames_cut_at_the_as_of_equal_the_read_ones(
    warehouse: Path, as_of: pd.Timestamp | None
) -> None:
    data, shared, whole = _cut(warehouse, as_of)
    assert (data.activities["rep_id"] == NONE_LABEL).any()  # the restored ids are tested
    assert shared.keys() == whole.keys()
    for name in whole:
        pd.testing.assert_frame_equal(shared[name], whole[name], check_exact=True, obj=name)
    assert len(whole["activities"]) > 1000 and len(whole["engagement_events"]) > 100


def test_the_shared_frames_leave_the_tracking_view_as_it_was(warehouse: Path) -> None:
    with Warehouse(warehouse).connect(read_only=True) as con:
        data = load(con)
        before = data.activities.copy()
        crm_frames(con, data)
    pd.testing.assert_frame_equal(data.activities, before, check_exact=True)
