"""Validation rules on the tiny canonical CRM: each bad value is rejected with its rule, nothing is lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.data.sources import canonical
from forecast.data.validate import RULES, ValidatedBatch, _Failures, coerce_frame, validate_batch
from tests.conftest import tiny_tables, write_tables

AS_OF = pd.Timestamp("2025-01-01")


def _validate(tmp_path: Path, tables: dict[str, pd.DataFrame]) -> ValidatedBatch:
    folder = write_tables(tmp_path / "crm", tables)
    result = validate_batch(canonical.load(folder), as_of=AS_OF)
    for counts in result.counts.values():
        assert counts.valid + counts.rejected == counts.read
    return result


def _only_reject(result: ValidatedBatch, table: str) -> pd.Series:
    """The one reject record of ``table`` (other tables may hold rows that referenced it)."""
    own = result.rejects[result.rejects.table == table]
    assert len(own) == 1, result.rejects.to_string()
    others = result.rejects[result.rejects.table != table]
    assert set(others["rule"]) <= {"foreign_key"}
    return own.iloc[0]


def test_the_tiny_crm_is_valid(tmp_path: Path) -> None:
    result = _validate(tmp_path, tiny_tables())
    assert result.rejects.empty
    assert result.counts["leads"].valid == 3
    leads = result.tables["leads"]
    assert str(leads["created_at"].dtype) == "datetime64[ns]"
    # "+01:00" is converted to UTC
    assert leads.loc[leads.lead_id == "L2", "created_at"].iloc[0] == pd.Timestamp("2024-01-10 11:30")
    assert "favourite_color" in leads.columns  # custom columns are kept
    assert result.tables["activities"]["email_replied"].dtype == "boolean"
    assert result.tables["accounts"]["employees"].dtype == "Int64"


@pytest.mark.parametrize(
    ("table", "row", "column", "value", "rule"),
    [
        ("opportunities", 0, "amount", "12k", "not_a_number"),
        ("accounts", 0, "employees", "12.5", "not_an_integer"),
        ("activities", 1, "email_opened", "maybe", "not_a_boolean"),
        ("leads", 1, "created_at", "10/01/2024", "unparseable_timestamp"),
        ("leads", 1, "created_at", "2024-02-30", "unparseable_timestamp"),
        ("opportunities", 1, "amount", "-5", "min_value"),
        ("opportunities", 1, "stage", "haggling", "unknown_stage"),
        ("opportunities", 1, "outcome", "maybe", "allowed_values"),
        ("leads", 1, "source", "carrier_pigeon", "allowed_values"),
        ("leads", 1, "status", None, "required"),
        ("activities", 0, "occurred_at", "2031-01-01", "future_timestamp"),
        ("opportunities", 0, "closed_at", "2024-01-01", "temporal_order"),
        ("opportunities", 0, "closed_at", None, "outcome_consistency"),
        ("activities", 0, "rep_id", "R999", "foreign_key"),
        ("stage_history", 3, "entered_at", "2024-02-01", "history_before_created"),
        ("accounts", 0, "employees", "inf", "not_a_number"),
        ("accounts", 0, "employees", "-inf", "not_a_number"),
        ("accounts", 0, "employees", "99999999999999999999", "out_of_range"),
        ("opportunities", 0, "amount", "inf", "not_a_number"),
        ("opportunities", 0, "expected_close_date", "9999-12-31", "out_of_range"),
        ("leads", 1, "created_at", "0001-01-01T00:00:00Z", "out_of_range"),
    ],
)
def test_a_bad_value_is_rejected_with_its_rule(
    tmp_path: Path, table: str, row: int, column: str, value: str | None, rule: str
) -> None:
    tables = tiny_tables()
    tables[table].loc[row, column] = value
    result = _validate(tmp_path, tables)
    reject = _only_reject(result, table)
    assert reject["source_row"] == row + 1  # 1-based data row
    assert reject["column"] == column
    assert reject["rule"] == rule
    assert reject["rule"] in RULES
    assert reject["source_file"].endswith(f"{table}.csv")
    assert result.counts[table].rejected == 1
    assert result.counts[table].valid == len(tables[table]) - 1


def test_duplicate_primary_key_keeps_the_first(tmp_path: Path) -> None:
    tables = tiny_tables()
    dup = tables["reps"].iloc[[0]].assign(name="Ana again")
    tables["reps"] = pd.concat([tables["reps"], dup], ignore_index=True)
    result = _validate(tmp_path, tables)
    reject = _only_reject(result, "reps")
    assert (reject["rule"], reject["source_row"], reject["key"]) == ("duplicate_key", 3, "R1")
    assert result.tables["reps"].set_index("rep_id").loc["R1", "name"] == "Ana"


def test_rejecting_a_deal_rejects_what_depends_on_it(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["opportunities"].loc[1, "amount"] = "-1"  # O2 rejected
    result = _validate(tmp_path, tables)
    rules = result.rejects.groupby("table")["rule"].apply(set).to_dict()
    assert rules["opportunities"] == {"min_value"}
    # O2's history, its activity and the lead that points to it become dangling references
    assert rules["stage_history"] == {"foreign_key"}
    assert rules["activities"] == {"foreign_key"}
    assert rules["leads"] == {"foreign_key"}
    assert result.counts["stage_history"].rejected == 2


def test_every_broken_rule_of_a_row_is_reported(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["opportunities"].loc[1, ["amount", "stage"]] = ["-1", "haggling"]
    result = _validate(tmp_path, tables)
    opp = result.rejects[result.rejects.table == "opportunities"]
    assert set(opp["rule"]) == {"min_value", "unknown_stage"}
    assert result.counts["opportunities"].rejected == 1


def test_header_only_file_is_an_empty_table(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["quotas"] = tables["quotas"].iloc[0:0]
    result = _validate(tmp_path, tables)
    assert result.counts["quotas"].read == 0
    assert result.rejects.empty


def test_parquet_input_with_native_types(tmp_path: Path) -> None:
    tables = tiny_tables()
    folder = tmp_path / "pq"
    folder.mkdir()
    opp = tables["opportunities"].copy()
    opp["amount"] = opp["amount"].astype(float)
    opp["created_at"] = pd.to_datetime(opp["created_at"]).dt.tz_localize("Europe/Madrid")
    tables["opportunities"] = opp
    for name, frame in tables.items():
        frame.to_parquet(folder / f"{name}.parquet")
    result = validate_batch(canonical.load(folder), as_of=AS_OF)
    assert result.rejects.empty, result.rejects.to_string()
    created = result.tables["opportunities"]["created_at"].iloc[0]
    assert created == pd.Timestamp("2024-01-19 23:00")  # midnight in Madrid is 23:00 UTC


def test_values_that_cannot_be_stored_are_rejects_with_clear_messages(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["accounts"].loc[0, "employees"] = "inf"
    tables["accounts"].loc[1, "employees"] = "99999999999999999999"
    tables["opportunities"].loc[1, "expected_close_date"] = "9999-12-31"
    result = _validate(tmp_path, tables)
    messages = dict(zip(result.rejects["value"], result.rejects["message"], strict=True))
    assert messages["inf"] == "employees: not a finite number"
    assert "64-bit integer range" in messages["99999999999999999999"]
    assert messages["9999-12-31"] == (
        "expected_close_date: outside the supported date range 1677-09-21 to 2262-04-11"
    )
    assert {"out_of_range", "not_a_number"} <= set(result.rejects["rule"])


def test_parquet_values_beyond_the_supported_ranges_are_rejects(tmp_path: Path) -> None:
    """Parquet keeps 9999-12-31 as datetime64[us] and infinities as floats; none may crash or land."""
    tables = tiny_tables()
    folder = tmp_path / "pq"
    folder.mkdir()
    opp = tables["opportunities"].copy()
    opp["amount"] = [float("inf"), 3000.0]
    opp["expected_close_date"] = np.array(["2024-03-01", "9999-12-31"], dtype="datetime64[us]")
    accounts = tables["accounts"].copy()
    accounts["employees"] = [float("-inf"), 1e20]
    tables["opportunities"], tables["accounts"] = opp, accounts
    for name, frame in tables.items():
        frame.to_parquet(folder / f"{name}.parquet")
    batch = canonical.load(folder)
    raw_opp = next(t for t in batch.tables if t.table == "opportunities")
    assert str(raw_opp.frame["expected_close_date"].dtype) == "datetime64[us]"
    result = validate_batch(batch, as_of=AS_OF)
    got = sorted(zip(result.rejects["table"], result.rejects["column"], result.rejects["rule"], strict=True))
    assert ("opportunities", "amount", "not_a_number") in got
    assert ("opportunities", "expected_close_date", "out_of_range") in got
    assert ("accounts", "employees", "not_a_number") in got
    assert ("accounts", "employees", "out_of_range") in got
    assert result.tables["opportunities"].empty  # both deals rejected, no inf amount lands


def test_custom_columns_are_kept_as_text(tmp_path: Path) -> None:
    tables = tiny_tables()
    folder = tmp_path / "pq"
    folder.mkdir()
    tables["leads"]["score"] = [1.0, 2.5, None]
    tables["leads"].to_parquet(folder / "leads.parquet")
    raw = canonical.load(folder / "leads.parquet").tables[0]
    frame = coerce_frame(raw, _Failures())
    assert frame["score"].tolist() == ["1", "2.5", None]


def test_reject_rows_match_the_file_lines_after_blank_lines(tmp_path: Path) -> None:
    """A blank line is kept as a row (one blank_row reject), so later rows keep their numbers."""
    folder = write_tables(tmp_path / "crm", tiny_tables())
    lines = (folder / "leads.csv").read_text().splitlines()
    # header, L1, <blank>, L2, L3 with a bad source, then trailing blank lines (ignored)
    lines[3] = lines[3].replace("referral", "carrier_pigeon")
    (folder / "leads.csv").write_text("\n".join([lines[0], lines[1], "", lines[2], lines[3]]) + "\n\n\n")
    result = validate_batch(canonical.load(folder), as_of=AS_OF)
    leads = result.rejects[result.rejects.table == "leads"]
    got = sorted(zip(leads["source_row"], leads["column"], leads["rule"], strict=True))
    assert got == [(2, "*", "blank_row"), (4, "source", "allowed_values")]  # source_row = line number - 1
    assert (result.counts["leads"].read, result.counts["leads"].valid) == (4, 2)
    assert "blank_row" in RULES


def test_present_columns_name_what_the_files_had(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["leads"] = tables["leads"].drop(columns=["industry", "title"])
    result = _validate(tmp_path, tables)
    present = result.present_columns["leads"]
    assert "industry" not in present and "title" not in present
    assert {"lead_id", "status", "favourite_color"} <= set(present)
    assert "industry" in result.tables["leads"].columns  # still added (as nulls) for validation
