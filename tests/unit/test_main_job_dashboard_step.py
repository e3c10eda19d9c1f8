"""The main job's last step (the dashboard's pages): a failure is said as one, and the run stands."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from forecast import main_job
from forecast.config import load_settings
from forecast.dashboard import warm
from forecast.models.names import DEAL_WIN, TIME_TO_CLOSE


def test_a_failing_dashboard_step_is_reported_as_failed_not_as_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> object:
        raise OSError("disk full")

    monkeypatch.setattr(warm, "prepare", broken)
    settings = load_settings(
        data_dir=tmp_path / "data",
        warehouse=tmp_path / "data" / "warehouse.duckdb",
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/m.db",
    )
    step = main_job._dashboard_pages(settings, main_job._silent)
    assert isinstance(step, str) and "OSError: disk full" in step
    part = SimpleNamespace(to_dict=dict, as_dict=dict)
    result = main_job.MainJobResult(
        simulation={},
        ingest=part,  # type: ignore[arg-type]
        quality={},
        lead_model=part,  # type: ignore[arg-type]
        lead_scores=part,  # type: ignore[arg-type]
        deal_models={DEAL_WIN: part, TIME_TO_CLOSE: part},  # type: ignore[dict-item]
        deal_scores="no champion",
        revenue="no champion",
        dashboard=step,
        outputs={},
    )
    out = result.to_dict()
    assert out["dashboard"] == {"failed": step}  # a step that ran and failed
    assert out["deal_scores"] == out["revenue"] == {"skipped": "no champion"}  # steps that could not run
