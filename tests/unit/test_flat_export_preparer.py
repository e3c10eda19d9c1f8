"""Tests of scoring new rows of a flat export: FlatExportPreparer and score_input_errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from sklearn.base import clone

from forecast.data.readers import read_table_file
from forecast.features.tabular import (
    OTHER_LEVEL,
    FlatExport,
    FlatExportPreparer,
    load_flat_export,
    prepare_flat_export,
    score_input_errors,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
N = 300


def _raw(seed: int = 5, n: int = N) -> pd.DataFrame:
    """A hand-made deal report, every value a string as a CSV is read."""
    rng = np.random.default_rng(seed)
    won = rng.random(n) < 0.4
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    contact = created - pd.to_timedelta(rng.integers(1, 60, n), unit="D")
    amount = rng.integers(500, 90_000, n)
    budget = rng.choice(["Low", "High", "Select", ""], n, p=[0.35, 0.35, 0.2, 0.1]).astype(object)
    budget[rng.random(n) < 0.1] = None
    industry = rng.choice(["software", "retail", "banking", "health"], n).astype(object)
    industry[:3] = "mining"  # rare: pooled as __other__
    industry[3:8] = "N/A"  # placeholder
    referral = np.where(rng.random(n) < 0.3, "yes", None)  # one value or blank
    return pd.DataFrame(
        {
            "Deal ID": [f"D{i:04d}" for i in range(n)],
            "Created": created.strftime("%d/%m/%Y"),  # day first (some days > 12)
            "Amount": [f"€{a:,}" if i % 3 == 0 else f"{a:,}" for i, a in enumerate(amount)],
            "Discount": [f"{d}%" for d in rng.integers(0, 40, n)],
            "Newsletter": rng.choice(["Yes", "No"], n),
            "Partner": rng.choice(["0", "1"], n),
            "Referral": referral,
            "First Contact": contact.strftime("%d/%m/%Y"),
            "Industry": industry,
            "Budget": budget,
            "Score": [f"{v:.3f}" for v in (won * 0.4 + rng.normal(0, 1, n))],
            "Outcome": np.where(won, "Won", "Lost"),
        }
    )


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return _raw()


@pytest.fixture(scope="module")
def export(raw: pd.DataFrame) -> FlatExport:
    return prepare_flat_export(raw, target="Outcome", time_column="Created")


def _row(raw: pd.DataFrame, **values: object) -> pd.DataFrame:
    row = raw.iloc[[10]].reset_index(drop=True).copy()
    for column, value in values.items():
        row[column.replace("_", " ")] = value
    return row


# --- the guarantee ---------------------------------------------------------------------------------
def test_the_export_is_what_was_expected(export: FlatExport) -> None:
    roles = {r.name: r.role for r in export.roles}
    assert roles["Amount"] == "numeric" and roles["Newsletter"] == "boolean" and roles["Partner"] == "boolean"
    assert roles["Referral"] == "boolean" and roles["Industry"] == "categorical"
    assert roles["First Contact"] == "datetime" and export.id_column == "Deal ID"
    assert "Budget__missing_kind" in export.feature_columns
    assert "First Contact__days_before_as_of" in export.feature_columns


def test_preparer_reproduces_the_training_table(export: FlatExport, raw: pd.DataFrame) -> None:
    prepared = export.preparer().transform(raw)
    assert list(prepared.columns) == export.feature_columns
    assert_frame_equal(prepared[export.feature_columns], export.table[export.feature_columns])


def test_preparer_reproduces_a_typed_export() -> None:
    raw = _raw(seed=8)
    typed = raw.assign(
        Partner=raw["Partner"].astype(int),
        Score=raw["Score"].astype(float),
        Created=pd.to_datetime(raw["Created"], dayfirst=True),
    )
    export = prepare_flat_export(typed, target="Outcome", time_column="Created")
    assert_frame_equal(export.preparer().transform(typed), export.table[export.feature_columns])
    # the same rows as text (a CSV of new rows) give the same features
    as_text = export.preparer().transform(raw)
    assert_frame_equal(as_text, export.table[export.feature_columns])


def test_preparer_reproduces_a_csv_round_trip(export: FlatExport, raw: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "deals.csv"
    raw.to_csv(path, index=False)
    loaded = load_flat_export(path, target="Outcome", time_column="Created")
    frame = read_table_file(path)
    assert_frame_equal(loaded.preparer().transform(frame), loaded.table[loaded.feature_columns])


def test_spec_is_json_and_the_preparer_is_picklable(export: FlatExport, raw: pd.DataFrame) -> None:
    spec = export.preparer_spec()
    assert json.loads(json.dumps(spec)) == spec
    assert (
        spec["id_column"] == "Deal ID" and spec["time_column"] == "Created" and spec["time_dayfirst"] is True
    )
    assert "Outcome" not in spec["inputs"] and spec["feature_columns"] == export.feature_columns
    kind = next(f for f in spec["features"] if f["name"] == "Budget__missing_kind")
    assert kind["source"] == "Budget" and kind["derived_from"] == "missing_kind"
    expected = export.table[export.feature_columns]
    for preparer in (
        FlatExportPreparer(json.loads(json.dumps(spec))),
        pickle.loads(pickle.dumps(export.preparer())),
        clone(export.preparer()).fit(raw),
    ):
        assert_frame_equal(preparer.transform(raw), expected)
    assert list(export.preparer().get_feature_names_out()) == export.feature_columns


def test_without_a_spec_the_preparer_refuses() -> None:
    with pytest.raises(ValueError, match="needs a spec"):
        FlatExportPreparer().fit(pd.DataFrame())


# --- new rows --------------------------------------------------------------------------------------
def test_new_rows_unseen_levels_placeholders_and_extra_columns(export: FlatExport, raw: pd.DataFrame) -> None:
    rows = pd.concat(
        [
            _row(raw, Industry="aerospace", Budget="Select", Amount="N/A"),
            _row(raw, Industry="mining", Budget=None, Newsletter="-"),
            _row(raw, Industry="software", Budget="High", Referral="yes"),
        ],
        ignore_index=True,
    )
    rows = rows.drop(columns=["Outcome"]).assign(extra_column="ignored")  # target not needed
    rows.index = pd.Index([70, 71, 72])
    out = export.preparer().transform(rows)
    assert out.index.equals(rows.index) and list(out.columns) == export.feature_columns
    assert (out.dtypes == export.table[export.feature_columns].dtypes).all()
    assert out["Industry"].tolist() == [OTHER_LEVEL, OTHER_LEVEL, "software"]  # unseen, rare, kept
    assert out["Budget"].isna().tolist() == [True, True, False]
    assert out["Budget__missing_kind"].tolist() == ["placeholder:select", "blank", "present"]
    assert np.isnan(out.loc[70, "Amount"]) and np.isnan(out.loc[71, "Newsletter"])
    assert out.loc[72, "Referral"] == 1.0


def test_new_rows_keep_the_training_date_order(export: FlatExport, raw: pd.DataFrame) -> None:
    # alone, "03/04/2024" would read month first; the training export read day first
    row = _row(raw, Created="10/04/2024", First_Contact="03/04/2024")
    out = export.preparer().transform(row)
    assert out.loc[0, "First Contact__days_before_as_of"] == 7.0


def test_a_missing_input_column_is_named(export: FlatExport, raw: pd.DataFrame) -> None:
    with pytest.raises(KeyError, match="Amount"):
        export.preparer().transform(raw.drop(columns=["Amount"]))
    with pytest.raises(KeyError, match="Created"):  # needed for the days-before features
        export.preparer().transform(raw.drop(columns=["Created"]))


# --- rejects ---------------------------------------------------------------------------------------
def test_score_input_errors(export: FlatExport, raw: pd.DataFrame) -> None:
    spec = export.preparer_spec()
    rows = pd.concat(
        [
            _row(raw, Deal_ID="D9001"),  # row 1: fine
            _row(raw, Deal_ID=None),  # 2: missing id
            _row(raw, Deal_ID="  "),  # 3: blank id
            _row(raw, Deal_ID="D9002", Amount="lots"),  # 4: not a number
            _row(raw, Deal_ID="D9003", Amount="N/A", Score="-"),  # 5: placeholders are fine
            _row(raw, Deal_ID="D9004", Created="someday"),  # 6: bad time column
            _row(raw, Deal_ID="D9005", First_Contact="31/31/2024"),  # 7: bad date feature
            _row(raw, Deal_ID="D9006"),  # 8: duplicate with 9
            _row(raw, Deal_ID="D9006", Partner="maybe"),  # 9: duplicate, and Partner is no 0/1
            _row(raw, Deal_ID="D9007", Industry="aerospace", Referral="whatever"),  # 10: fine
            _row(raw, Deal_ID="D9008", Newsletter="perhaps"),  # 11: a yes/no column
        ],
        ignore_index=True,
    )
    errors = score_input_errors(rows, spec)
    assert list(errors.columns) == ["row", "column", "rule", "value", "message"]
    found = set(zip(errors["row"], errors["column"], errors["rule"], strict=True))
    assert found == {
        (2, "Deal ID", "missing_id"),
        (3, "Deal ID", "missing_id"),
        (4, "Amount", "not_a_number"),
        (6, "Created", "unparseable_date"),
        (7, "First Contact", "unparseable_date"),
        (8, "Deal ID", "duplicate_id"),
        (9, "Deal ID", "duplicate_id"),
        (9, "Partner", "not_a_number"),
        (11, "Newsletter", "not_a_number"),
    }
    assert errors["row"].is_monotonic_increasing
    bad_amount = errors[errors["rule"] == "not_a_number"].iloc[0]
    assert bad_amount["value"] == "lots" and "Amount" in bad_amount["message"]
    assert "rows 8, 9" in errors[errors["rule"] == "duplicate_id"].iloc[0]["message"]
    clean = score_input_errors(rows.iloc[[0, 4, 9]], spec)
    assert clean.empty and list(clean.columns) == list(errors.columns)


def test_score_input_errors_without_an_id_column() -> None:
    raw = _raw(seed=9).drop(columns=["Deal ID"])
    export = prepare_flat_export(raw, target="Outcome", time_column="Created")
    spec = export.preparer_spec()
    assert spec["id_column"] is None and export.id_column == "row_id"
    assert score_input_errors(raw, spec).empty


# --- a real export ---------------------------------------------------------------------------------
@pytest.mark.shared_data
def test_salvirt_b2b_round_trip() -> None:
    path = SHARED_DATA / "salvirt-b2b-sales" / "Salvirt_B2B_ML_dataset.csv"
    if not path.is_file():
        pytest.skip(
            "../shared/data/salvirt-b2b-sales is absent: this test needs the project's shared datasets"
        )
    export = load_flat_export(path, target="Status", delimiter=";")
    frame = read_table_file(path, delimiter=";")
    prepared = export.preparer().transform(frame)
    assert_frame_equal(prepared[export.feature_columns], export.table[export.feature_columns])
    assert score_input_errors(frame, export.preparer_spec()).empty


def test_levels_pooled_by_the_preparer_are_one_category_of_the_encoder() -> None:
    """Regression: the preparer pools rare levels into __other__ and the encoder appended it again."""
    from forecast.models.pipeline import CategoryEncoder

    n = 400
    rng = np.random.default_rng(3)
    job = rng.choice(["admin", "technician"], n).astype(object)
    job[:40] = [f"rare{i}" for i in range(40)]  # 40 levels of one row each: 40 rows of __other__
    raw = pd.DataFrame({"job": job, "y": rng.choice(["yes", "no"], n)})
    prepared = prepare_flat_export(raw, target="y").table
    assert (prepared["job"] == OTHER_LEVEL).sum() == 40
    encoder = CategoryEncoder(["job"], min_count=10).fit(prepared)
    assert encoder.levels_["job"] == ["admin", "technician", OTHER_LEVEL]
    out = encoder.transform(prepared)
    assert (out["job"] == OTHER_LEVEL).sum() == 40
    np.testing.assert_array_equal(encoder.encode(prepared, ["job"])[:, 0], out["job"].cat.codes.to_numpy())
