"""Tests of the bring-your-own flat export path (role inference, placeholders, target, leakage)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.features.tabular import (
    AS_OF,
    ENTITY_ID,
    LABEL,
    OTHER_LEVEL,
    FlatExport,
    detect_leakage,
    infer_roles,
    load_flat_export,
    normalise_missing,
    outcome_words,
    parse_target,
    prepare_flat_export,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
N = 400


def _export(seed: int = 7, n: int = N) -> pd.DataFrame:
    """A hand-made CRM deal report with honest, useless and leaky columns."""
    rng = np.random.default_rng(seed)
    won = rng.random(n) < 0.35
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    first_contact = created - pd.to_timedelta(rng.integers(1, 60, n), unit="D")
    last_activity = created + pd.to_timedelta(rng.integers(0, 90, n), unit="D")
    amount = rng.integers(500, 90_000, n)
    amount_text = [f"€{a:,}" if i % 3 == 0 else f"{a:,}" for i, a in enumerate(amount)]
    industry = rng.choice(["software", "retail", "banking", "health"], n)
    industry[:3] = "mining"  # a rare level
    budget = rng.choice(["Low", "High", "Select", ""], n, p=[0.35, 0.35, 0.2, 0.1]).astype(object)
    budget[rng.random(n) < 0.1] = np.nan  # never shown
    invoice = np.where(won & (rng.random(n) < 0.8), rng.integers(1000, 9999, n).astype(str), None)
    honest = won * 0.5 + rng.normal(0, 1, n)
    notes = [
        f"Talked to {w} about the {i}th proposal, follow up next week with pricing details"
        for i, w in zip(range(n), rng.choice(["Ana", "Ben", "Eva"], n), strict=True)
    ]
    return pd.DataFrame(
        {
            "Record ID": [f"D{i:05d}" for i in range(n)],
            "Created": created.strftime("%Y-%m-%d"),
            "Amount": amount_text,
            "Discount": [f"{d}%" for d in rng.integers(0, 40, n)],
            "Newsletter": rng.choice(["yes", "no"], n),
            "First Contact": first_contact.strftime("%Y-%m-%d"),
            "Industry": industry,
            "Budget": budget,
            "Notes": notes,
            "Email": [f"buyer{i}@example.com" for i in range(n)],
            "Country": "ES",
            "honest_score": honest.round(3),
            "flag_x": np.where(won, "Won", "Lost"),
            "invoice_number": invoice,
            "Last Activity Date": last_activity.strftime("%Y-%m-%d"),
            "deal_status": rng.choice(["a", "b", "c"], n),
            "Outcome": np.where(won, "Won", "Lost"),
        }
    )


@pytest.fixture(scope="module")
def export() -> FlatExport:
    return prepare_flat_export(_export(), target="Outcome", time_column="Created")


def _role(fx: FlatExport, name: str) -> str:
    return {r.name: r.role for r in fx.roles}[name]


# --- roles -----------------------------------------------------------------------------------------
def test_roles_are_inferred(export: FlatExport) -> None:
    roles = {r.name: r.role for r in export.roles}
    assert roles["Record ID"] == "id"
    assert roles["Outcome"] == "target"
    assert roles["Created"] == "time"
    assert roles["Amount"] == "numeric"
    assert roles["Discount"] == "numeric"
    assert roles["Newsletter"] == "boolean"
    assert roles["First Contact"] == "datetime"
    assert roles["Industry"] == "categorical"
    assert roles["Notes"] == "text"
    assert roles["Email"] == "id"
    assert roles["Country"] == "constant"
    assert roles["honest_score"] == "numeric"
    assert export.id_column == "Record ID"
    for dropped in ("Notes", "Email", "Country"):
        assert dropped in export.excluded


def test_values_are_converted(export: FlatExport) -> None:
    raw = _export()
    table = export.table
    amount = raw["Amount"].str.replace("€", "").str.replace(",", "").astype(float)
    np.testing.assert_allclose(table["Amount"], amount)
    assert raw["Amount"].str.startswith("€").any() and raw["Amount"].str.contains(",").any()
    np.testing.assert_allclose(table["Discount"], raw["Discount"].str.rstrip("%").astype(float))
    assert set(table["Newsletter"]) == {0.0, 1.0}
    assert (table.loc[raw["Newsletter"] == "yes", "Newsletter"] == 1.0).all()
    days = table["First Contact__days_before_as_of"]
    assert (days > 0).all() and days.max() < 60
    assert "mining" not in set(table["Industry"]) and OTHER_LEVEL in set(table["Industry"])


def test_small_frames_role_edge_cases() -> None:
    frame = pd.DataFrame(
        {
            "id": range(30),
            "y": ["yes", "no"] * 15,
            "thousands": ["1,234", "12", "1,000,000"] * 10,
            "flag": [True, False, True] * 10,
            "only_x": ["x", None, None] * 10,
            "nothing": [None] * 30,
            "when": ["2024-03-01", "2024-03-05", "2024-04-10"] * 10,
        }
    )
    roles = {r.name: r for r in infer_roles(frame, id_column="id", target_column="y", time_column=None)}
    assert roles["thousands"].role == "numeric"
    assert roles["flag"].role == "boolean"
    assert roles["only_x"].role == "boolean" and "indicator" in roles["only_x"].note
    assert roles["nothing"].role == "constant"
    assert roles["when"].role == "datetime"
    fx = prepare_flat_export(frame, target="y")
    assert fx.table["thousands"].tolist()[:3] == [1234.0, 12.0, 1_000_000.0]
    assert "when" in fx.excluded  # dates without a time column
    assert "time column" in {r.name: r for r in fx.roles}["when"].note
    assert fx.table[AS_OF].isna().all() and fx.table[AS_OF].dtype == "datetime64[ns]"


# --- placeholders ----------------------------------------------------------------------------------
def test_placeholders_become_missing_and_kind_is_kept() -> None:
    frame = pd.DataFrame(
        {
            "form": ["Select", "", "N/A", "-", "unknown", "Small", None, "  ", "-- Select --", "Big"],
            "only_unknown": ["Unknown", "a", "b", "a", "b", "a", "b", "a", "b", "a"],
            "numbers": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
        }
    )
    out = normalise_missing(frame)
    assert out["form"].isna().tolist() == [True] * 5 + [False, True, True, True, False]
    kinds = out["form__missing_kind"].tolist()
    assert kinds == [
        "placeholder:select",
        "blank",
        "placeholder:na",
        "placeholder:dash",
        "placeholder:unknown",
        "present",
        "blank",
        "blank",
        "placeholder:select",
        "present",
    ]
    assert out.columns.tolist() == ["form", "form__missing_kind", "only_unknown", "numbers"]
    assert out["only_unknown"].isna().sum() == 1  # one kind only: no extra column
    assert "NA" not in set(normalise_missing(pd.DataFrame({"r": ["NA", "EMEA"]}))["r"].isna().map(str))


def test_select_left_untouched_differs_from_never_shown(export: FlatExport) -> None:
    raw = _export()
    kind = export.table["Budget__missing_kind"]
    assert (
        export.table["Budget"].isna().sum()
        == (raw["Budget"].isin(["Select", ""]) | raw["Budget"].isna()).sum()
    )
    assert set(kind[raw["Budget"] == "Select"]) == {"placeholder:select"}
    assert set(kind[raw["Budget"].isna() | (raw["Budget"] == "")]) == {"blank"}
    assert set(kind[raw["Budget"].isin(["Low", "High"])]) == {"present"}


# --- target ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "expected", "positive"),
    [
        (["Won", "Lost", "won", "LOST"], [1, 0, 1, 0], "Won / won"),
        (["yes", "no", "no", "Yes"], [1, 0, 0, 1], "yes / Yes"),
        ([1, 0, 0, 1], [1, 0, 0, 1], "1"),
        (["1", "0", "0", "1"], [1, 0, 0, 1], "1"),
        (["Closed Won", "Closed Lost", "closed_won", "Closed-Lost"], [1, 0, 1, 0], "Closed Won / closed_won"),
        (["true", "false", "TRUE", "False"], [1, 0, 1, 0], "true / TRUE"),
        (["Converted", "Not Converted", "Converted", "not converted"], [1, 0, 1, 0], "Converted"),
        (["Member", "Guest", "Guest", "Guest"], [1, 0, 0, 0], "Member"),
    ],
)
def test_parse_target(values: list[object], expected: list[int], positive: str) -> None:
    labels, label = parse_target(pd.Series(values))
    assert labels.tolist() == expected
    assert str(labels.dtype) == "Int64"
    assert label == positive


def test_parse_target_missing_and_open_are_unlabelled() -> None:
    labels, _ = parse_target(pd.Series(["Won", None, "", "Open", "N/A", "Lost"]))
    assert labels.isna().tolist() == [False, True, True, True, True, False]


def test_unmappable_target_names_its_values() -> None:
    with pytest.raises(ValueError, match=r"Gold.*Silver|Bronze"):
        parse_target(pd.Series(["Gold", "Silver", "Bronze", "Gold"]))
    with pytest.raises(ValueError, match="maybe"):
        parse_target(pd.Series(["yes", "no", "maybe"]))


def test_rows_without_target_are_kept_and_counted() -> None:
    frame = _export(n=200)
    frame.loc[:9, "Outcome"] = ""
    fx = prepare_flat_export(frame, target="Outcome", time_column="Created")
    assert len(fx.table) == 200
    assert fx.table[LABEL].isna().sum() == 10
    summary = fx.summary()
    assert summary["rows_unlabelled"] == 10 and summary["rows_labelled"] == 190
    assert any("10 row(s) have no value" in w for w in fx.warnings)


# --- leakage ---------------------------------------------------------------------------------------
def _flags(fx: FlatExport) -> dict[str, str]:
    return {f.column: f.reason for f in fx.leakage}


def test_copy_of_target_is_flagged_and_excluded(export: FlatExport) -> None:
    flag = next(f for f in export.leakage if f.column == "flag_x")
    assert "almost perfectly" in flag.reason
    assert flag.evidence["auc"] >= 0.98
    assert "flag_x" in export.excluded and "flag_x" not in export.table.columns
    (warning,) = [w for w in export.warnings if "'flag_x'" in w]
    assert warning.startswith(
        "excluded column 'flag_x' as likely leakage (high confidence): predicts the target"
    )
    assert "AUC 1.000" in warning and "--keep-column 'flag_x'" in warning


def test_column_filled_only_for_converted_rows_is_flagged(export: FlatExport) -> None:
    reason = _flags(export)["invoice_number"]
    assert "filled almost only for positive ('Won') rows" in reason
    flag = next(f for f in export.leakage if f.column == "invoice_number")
    assert flag.evidence["filled_class_purity"] == 1.0 and flag.evidence["fill_share_gap"] >= 0.5
    assert "invoice_number" not in export.table.columns


def test_outcome_names_are_flagged(export: FlatExport) -> None:
    flags = _flags(export)
    assert "'last'" not in flags["Last Activity Date__days_before_as_of"]
    assert "'last activity'" in flags["Last Activity Date__days_before_as_of"]
    assert "'status'" in flags["deal_status"]
    assert "deal_status" in export.excluded
    assert not any(c.startswith("Last Activity Date") for c in export.table.columns)


@pytest.mark.parametrize(
    ("name", "flagged"),
    [
        ("Last Activity Date", True),
        ("deal_status", True),
        ("IsWon", True),
        ("hs_lastactivitydate", True),
        ("CloseDate", True),
        ("Lost Reason", True),
        ("StageName", True),
        ("poutcome", False),
        ("closeness_score", False),
        ("Industry", False),
    ],
)
def test_outcome_name_rule(name: str, flagged: bool) -> None:
    assert bool(outcome_words(name)) is flagged


def test_honest_columns_are_not_flagged(export: FlatExport) -> None:
    flags = _flags(export)
    for honest in (
        "honest_score",
        "Amount",
        "Discount",
        "Newsletter",
        "Industry",
        "Budget",
        "Budget__missing_kind",
    ):
        assert honest not in flags
        assert honest in export.table.columns
    assert 0.55 < export.column_auc["honest_score"] < 0.9


def test_leakage_flags_on_a_tiny_frame_without_names() -> None:
    rng = np.random.default_rng(1)
    y = pd.Series((rng.random(300) < 0.4).astype(int)).astype("Int64")
    features = pd.DataFrame(
        {
            "copy": y.astype(float),
            "noise": rng.normal(size=300),
            "only_pos": np.where(y == 1, "x", None),
            "level": np.where((y == 1) & (rng.random(300) < 0.5), "gold", rng.choice(["a", "b"], 300)),
        }
    )
    flags = {f.column: f for f in detect_leakage(features, y, [])}
    assert set(flags) == {"copy", "only_pos", "level"}
    assert "'gold'" in flags["level"].reason and flags["level"].evidence["value_class_purity"] == 1.0


def test_keep_columns_override(tmp_path: Path) -> None:
    fx = prepare_flat_export(_export(), target="Outcome", time_column="Created", keep_columns=["deal_status"])
    assert fx.kept_despite_flag == ["deal_status"]
    assert "deal_status" in fx.table.columns
    assert any(w.startswith("kept column 'deal_status' despite a leakage flag") for w in fx.warnings)
    with pytest.raises(ValueError, match=r"keep column.*'nope'.*available"):
        prepare_flat_export(_export(), target="Outcome", keep_columns=["nope"])


def test_table_follows_the_contract(export: FlatExport) -> None:
    table = export.table
    assert table.columns[:2].tolist() == [ENTITY_ID, AS_OF] and table.columns[-1] == LABEL
    assert table[ENTITY_ID].is_unique and table[ENTITY_ID].iloc[0] == "D00000"
    assert str(table[AS_OF].dtype) == "datetime64[ns]" and table[AS_OF].notna().all()
    assert str(table[LABEL].dtype) == "Int64" and set(table[LABEL]) == {0, 1}
    leaky = {"Outcome", "flag_x", "invoice_number", "deal_status", "Record ID", "Created", "Notes", "Email"}
    assert not leaky & set(table.columns)
    for column in export.feature_columns:
        dtype = table[column].dtype
        assert pd.api.types.is_float_dtype(dtype) or pd.api.types.is_object_dtype(dtype), column
    json.dumps(export.summary())


def test_deterministic() -> None:
    a = prepare_flat_export(_export(), target="Outcome", time_column="Created")
    b = prepare_flat_export(_export(), target="Outcome", time_column="Created")
    pd.testing.assert_frame_equal(a.table, b.table)
    assert a.leakage == b.leakage and a.summary() == b.summary()


def test_row_id_and_duplicates_when_no_id() -> None:
    frame = _export(n=120).drop(columns=["Record ID", "Email", "Notes"])
    frame = pd.concat([frame, frame.iloc[:5]], ignore_index=True)
    fx = prepare_flat_export(frame, target="Outcome")
    assert fx.id_column == "row_id" and fx.table[ENTITY_ID].tolist() == list(range(1, 126))
    assert fx.duplicate_rows == 5 and any("note: 5 row(s) have the same values" in w for w in fx.warnings)


def test_missing_columns_are_named() -> None:
    frame = _export(n=50)
    with pytest.raises(ValueError, match=r"target column 'won'.*available columns.*Outcome"):
        prepare_flat_export(frame, target="won")
    with pytest.raises(ValueError, match="id column 'Deal Id'"):
        prepare_flat_export(frame, target="Outcome", id_column="Deal Id")
    with pytest.raises(ValueError, match="time column 'Date'"):
        prepare_flat_export(frame, target="Outcome", time_column="Date")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_load_flat_export_reads_csv_and_parquet(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"export{suffix}"
    frame = _export(n=150)
    if suffix == ".csv":
        frame.to_csv(path, index=False, sep=";")
        fx = load_flat_export(path, target="Outcome", time_column="Created", delimiter=";")
    else:
        frame.to_parquet(path, index=False)
        fx = load_flat_export(path, target="Outcome", time_column="Created")
    assert len(fx.table) == 150 and "flag_x" in fx.excluded and "honest_score" in fx.table.columns


# --- real exports ----------------------------------------------------------------------------------
def _shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"../shared/data/{relative} is absent: this test needs the project's shared datasets")
    return path


@pytest.mark.shared_data
def test_uci_bank_marketing() -> None:
    fx = load_flat_export(_shared("uci-bank-marketing/bank-additional-full.csv"), target="y", delimiter=";")
    summary = fx.summary()
    assert summary["rows"] == 41188 and summary["positive_label"] == "yes"
    assert summary["label_rate"] == pytest.approx(0.1127, abs=1e-4)
    assert fx.duplicate_rows == 12
    # The known leak `duration` (only known after the call) is NOT caught by the statistical rules:
    # it is the strongest single column but far below the AUC threshold, and its name is innocent.
    assert fx.leakage == []
    assert max(fx.column_auc, key=lambda c: fx.column_auc[c]) == "duration"
    assert 0.80 < fx.column_auc["duration"] < 0.85
    assert "duration" in fx.table.columns
    assert _role(fx, "job") == "categorical" and _role(fx, "default") == "boolean"


@pytest.mark.shared_data
def test_salvirt_b2b() -> None:
    fx = load_flat_export(
        _shared("salvirt-b2b-sales/Salvirt_B2B_ML_dataset.csv"), target="Status", delimiter=";"
    )
    assert fx.positive_label == "Won" and fx.summary()["label_rate"] == pytest.approx(227 / 448, abs=1e-4)
    assert fx.duplicate_rows == 83
    assert any("note: 83 row(s) have the same values" in w for w in fx.warnings)
    assert fx.leakage == [] and len(fx.feature_columns) == 22
    assert fx.id_column == "row_id"


# --- numeric ids -----------------------------------------------------------------------------------
def _ids_frame(n: int = 300, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "Lead Number": 660_000 + np.cumsum(rng.integers(1, 9, n)),  # a sequence, named like one
            "Account No": rng.permutation(n) + 10_000,  # unique, shuffled, named like an id
            "ticket": np.arange(n) * 3 + 7,  # unique sequence, innocent name
            "Customer Code": np.where(rng.random(n) < 0.97, rng.integers(0, 10**7, n), np.nan),
            "amount": rng.permutation(n) * 10 + 500,  # unique but shuffled, an honest amount
            "No of calls": rng.poisson(3, n),  # a count named with "no"
            "nr.employed": rng.choice([5191, 5099, 5228], n),  # UCI's, not an id
            "Converted": rng.choice(["Yes", "No"], n),
        }
    )


def test_numeric_ids_are_detected_with_their_evidence() -> None:
    fx = prepare_flat_export(_ids_frame(), target="Converted")
    roles = {r.name: r for r in fx.roles}
    for name in ("Lead Number", "Account No", "ticket", "Customer Code"):
        assert roles[name].role == "id", (name, roles[name])
        assert name in fx.excluded and name not in fx.feature_columns
    assert "a sequence in row order" in roles["Lead Number"].note
    assert "named like an id ('number')" in roles["Lead Number"].note
    assert "named like an id ('no')" in roles["Account No"].note
    assert "'named like" not in roles["ticket"].note and "sequence" in roles["ticket"].note
    for name in ("amount", "No of calls", "nr.employed"):
        assert roles[name].role == "numeric", (name, roles[name])
        assert name in fx.feature_columns
    summary_roles = {r["name"]: r["role"] for r in fx.summary()["roles"]}
    assert summary_roles["Lead Number"] == "id"


def test_a_sparse_number_filled_after_the_outcome_is_a_leak_not_an_id(export: FlatExport) -> None:
    assert _role(export, "invoice_number") == "numeric"
    assert "invoice_number" in {f.column for f in export.leakage}


# --- leak or strong predictor ----------------------------------------------------------------------
def _leads_with_tags(n: int = 1500, seed: int = 4) -> pd.DataFrame:
    """An X-Education-like lead export: tags and a quality score written after the outcome."""
    rng = np.random.default_rng(seed)
    visits = rng.poisson(3, n)
    converted = rng.random(n) < 1 / (1 + np.exp(-(-1.5 + 0.3 * visits)))
    tags = np.where(
        converted,
        rng.choice(
            ["Closed by Horizzon", "Will revert after reading the email", "Busy"], n, p=[0.6, 0.3, 0.1]
        ),
        rng.choice(
            ["Ringing", "Lost to EINS", "Interested in other courses", "Busy"], n, p=[0.4, 0.2, 0.3, 0.1]
        ),
    )
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    closed = created + pd.to_timedelta(rng.integers(5, 90, n), unit="D")
    return pd.DataFrame(
        {
            "Prospect ID": [f"P{i}" for i in range(n)],
            "Created": created.strftime("%Y-%m-%d"),
            "TotalVisits": visits,
            "Tags": tags,
            "Lead Quality Score": np.where(converted, rng.integers(80, 100, n), rng.integers(0, 79, n)),
            "Decision Date": closed.strftime("%Y-%m-%d"),  # written when the outcome was known
            "Converted": np.where(converted, "1", "0"),
        }
    )


def test_after_the_outcome_tags_scores_and_dates_are_flagged_with_evidence() -> None:
    fx = prepare_flat_export(_leads_with_tags(), target="Converted", time_column="Created")
    flags = {f.column: f for f in fx.leakage}
    tags = flags["Tags"]
    assert "written after the outcome" in tags.reason and "'Closed by Horizzon'" in tags.reason
    assert tags.evidence["after_outcome_text_share"] > 0.3 and tags.confidence in ("high", "medium")
    score = flags["Lead Quality Score"]
    assert score.evidence["auc"] >= 0.98 and score.confidence == "high"
    dates = flags["Decision Date__days_before_as_of"]
    assert dates.evidence["share_after_time"] == 1.0 and "after the --time column" in dates.reason
    for column in ("Tags", "Lead Quality Score", "Decision Date__days_before_as_of"):
        assert column in fx.excluded
        assert any(f"{column!r} as likely leakage (" in w for w in fx.warnings)
    assert "TotalVisits" not in flags and "TotalVisits" in fx.feature_columns
    leak_summary = {f["column"]: f for f in fx.summary()["leakage"]}
    assert leak_summary["Tags"]["confidence"] == tags.confidence and leak_summary["Tags"]["evidence"]


def test_a_strong_but_imperfect_predictor_stays_in() -> None:
    """Telecom churn: a two-year contract is 97% non-churn; that is a predictor, not a leak."""
    rng = np.random.default_rng(8)
    n = 3000
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.55, 0.21, 0.24])
    rate = np.select([contract == "Month-to-month", contract == "One year"], [0.43, 0.11], 0.03)
    churn = rng.random(n) < rate
    frame = pd.DataFrame(
        {
            "customerID": [f"{i:04d}-ABCD" for i in range(n)],
            "Contract": contract,
            "tenure": rng.integers(0, 72, n),
            "PaperlessBilling": rng.choice(["Yes", "No"], n),
            "Churn": np.where(churn, "Yes", "No"),
        }
    )
    fx = prepare_flat_export(frame, target="Churn")
    two_year = frame.loc[frame["Contract"] == "Two year", "Churn"]
    assert (two_year == "No").mean() > 0.95  # a level almost only of one outcome…
    assert fx.leakage == []  # …yet nothing says it was written after the outcome
    assert "Contract" in fx.feature_columns
