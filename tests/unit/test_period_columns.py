"""Period-level columns: what describes when a row was recorded is told from what describes the row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.features.period_columns import PERIOD_MIN_ROWS, lag_agreement_kappa, period_level_columns
from forecast.features.tabular import prepare_flat_export

N = 1200


def _export(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    month = np.repeat([f"m{i:02d}" for i in range(12)], N // 12)  # one value per run of 100 rows
    rate = np.repeat(rng.normal(4.0, 1.0, 12).round(3), N // 12)  # a monthly index
    return pd.DataFrame(
        {
            "month": month,
            "euribor": rate,
            "job": rng.choice(["admin", "blue", "tech", "retired"], N),  # a property of the row
            "default": np.where(rng.random(N) < 0.97, "no", "yes"),  # one dominant value, no runs
            "age": rng.integers(18, 90, N),
            "y": np.where(rng.random(N) < 0.3, "yes", "no"),
        }
    )


def test_runs_of_one_value_are_period_level_and_row_properties_are_not() -> None:
    frame = _export()
    found = period_level_columns(frame.drop(columns="y"))
    assert set(found) == {"month", "euribor"}
    assert all(k > 0.95 for k in found.values())
    # A dominant value repeats the row before 94% of the time by chance alone: not a run.
    assert abs(lag_agreement_kappa(frame["default"])) < 0.1


def test_shuffled_rows_have_no_period_columns_unless_the_time_column_orders_them() -> None:
    frame = _export().sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert period_level_columns(frame.drop(columns="y")) == {}
    days = pd.Series(pd.to_datetime("2024-01-01") + pd.to_timedelta(np.arange(N), unit="D"))
    times = days.sample(frac=1.0, random_state=3).reset_index(drop=True)  # shuffled like the rows
    ordered = period_level_columns(frame.drop(columns="y"), order=times)
    assert set(ordered) == {"month", "euribor"}


def test_a_short_or_constant_column_says_nothing() -> None:
    assert period_level_columns(_export().head(PERIOD_MIN_ROWS - 1)) == {}
    assert lag_agreement_kappa(pd.Series(["a"] * 500)) == 0.0


def test_the_export_summary_names_them_with_a_warning() -> None:
    export = prepare_flat_export(_export(), target="y")
    assert set(export.period_columns) == {"month", "euribor"}
    assert set(export.summary()["period_columns"]) == {"month", "euribor"}
    assert any("period-level column(s) 'month'" in w for w in export.warnings)


def _trained(tmp_path, method: str):  # type: ignore[no-untyped-def]
    from forecast.models.config import TrainingConfig
    from forecast.models.pipeline import CalibratedLGBMClassifier
    from forecast.training.binary import train_binary
    from forecast.training.datasets import export_input
    from tests.conftest import REPO

    path = tmp_path / "export.csv"
    _export().to_csv(path, index=False)
    data, *_ = export_input(path, target="y")
    config = TrainingConfig.from_yaml(REPO / "training" / "lead_scoring.yaml")
    config = config.model_copy(
        update={
            "split": config.split.model_copy(update={"method": method}),
            "segments": [],
            "monotone_increasing": [],
            "monotone_decreasing": [],
            "lightgbm": config.lightgbm.model_copy(update={"n_estimators": 60}),
        }
    )
    result = train_binary(data, config)
    model = result.pipeline.named_steps["model"]
    assert isinstance(model, CalibratedLGBMClassifier)
    return result, model


def test_a_time_ordered_split_keeps_period_columns_out_of_the_trees(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result, model = _trained(tmp_path, "order")
    assert result.splits["method"] == "row_order"
    assert set(result.fit["period_features"]) == {"month", "euribor"}
    assert not {"month", "euribor"} & set(model.tree_features_)
    assert {"month", "euribor"} <= set(model.prior_features)
    assert any("period-level column(s)" in n for n in result.notes)


def test_a_stratified_split_leaves_the_trees_every_column(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result, model = _trained(tmp_path, "stratified")
    assert result.fit["period_features"] == []
    assert {"month", "euribor"} <= set(model.tree_features_)
    assert not model.prior_features
