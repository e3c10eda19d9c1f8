"""Tests of the Maven CRM sample adapter."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from forecast.data.pipeline import MAVEN_PIPELINE
from forecast.data.sources import maven
from forecast.data.sources.base import SourceBatch, SourceError

MAVEN_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "maven-crm-sales-opportunities"


def _table(batch: SourceBatch, name: str) -> pd.DataFrame:
    (table,) = [t for t in batch.tables if t.table == name]
    return table.frame


@pytest.fixture(scope="module")
def batch() -> SourceBatch:
    if not MAVEN_DIR.is_dir():
        pytest.skip(f"../shared/data/maven-crm-sales-opportunities is absent: {MAVEN_DIR} not found")
    return maven.load(MAVEN_DIR)


def _write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text, encoding="utf-8")


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    """A four-file Maven-shaped sample with the known quirks and one bad stage."""
    _write(
        tmp_path,
        "sales_pipeline.csv",
        "opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value\n"
        "A1,Ann Lee,GTXPro,Acme,Won,2017-01-02,2017-02-01,4500\n"
        "A2,Ann Lee,MG Special,,Prospecting,,,\n"
        "A3,Bob Ray,MG Special,Acme,Lost,2017-01-05,2017-03-01,0\n"
        "A4,Bob Ray,GTX Basic,Acme,Stalled,2017-01-06,,\n"
        "A5,Bob Ray,Mystery Box,Acme,Engaging,2017-01-07,,\n",
    )
    _write(
        tmp_path,
        "accounts.csv",
        "account,sector,year_established,revenue,employees,office_location,subsidiary_of\n"
        "Acme,technolgy,1996,1100.04,2822,Philipines,\n"
        "Beta,retail,2001,n/a,12,Kenya,Acme\n",
    )
    _write(
        tmp_path,
        "products.csv",
        "product,series,sales_price\nGTX Pro,GTX,4821\nMG Special,MG,55\nGTX Basic,GTX,550\n",
    )
    _write(
        tmp_path,
        "sales_teams.csv",
        "sales_agent,manager,regional_office\n"
        "Ann Lee,Cara Boss,East\nBob Ray,Cara Boss,East\nIdle Ida,Dan Head,West\n",
    )
    return tmp_path


# --- small hand-made sample (always runs) --------------------------------------------------------


def test_mini_opportunities_map_columns_and_values(mini: Path) -> None:
    batch = maven.load(mini)
    opps = _table(batch, "opportunities").set_index("opportunity_id")
    assert batch.source_format == "maven"
    assert batch.pipeline is MAVEN_PIPELINE
    assert opps.loc["A1", "product"] == "GTX Pro"
    assert opps.loc["A1", "amount"] == "4821"
    assert opps.loc["A1", "close_value"] == "4500"
    assert opps.loc["A1", "stage"] == "won"
    assert opps.loc["A1", "outcome"] == "won"
    assert opps.loc["A1", "created_at"] == "2017-01-02"
    assert opps.loc["A1", "closed_at"] == "2017-02-01"
    assert opps.loc["A3", "outcome"] == "lost"
    assert pd.isna(opps.loc["A2", "account_id"])
    assert pd.isna(opps.loc["A2", "created_at"])
    assert opps.loc["A2", "outcome"] == "open"
    # an unknown stage is passed through (validation rejects it), not dropped or guessed
    assert opps.loc["A4", "stage"] == "stalled"
    assert pd.isna(opps.loc["A4", "outcome"])
    # a product without list price keeps its name but has no amount, and the notes say so
    assert pd.isna(opps.loc["A5", "amount"])
    assert any("Mystery Box" in note for note in batch.notes)
    for col in ("lead_id", "expected_close_date", "loss_reason"):
        assert opps[col].isna().all()


def test_mini_source_rows_point_to_file_rows(mini: Path) -> None:
    batch = maven.load(mini)
    for table in batch.tables:
        assert table.source_row.tolist() == list(range(1, len(table.frame) + 1))
    (opps,) = [t for t in batch.tables if t.table == "opportunities"]
    assert Path(opps.source_file).name == "sales_pipeline.csv"
    raw = pd.read_csv(mini / "sales_pipeline.csv", dtype=str)
    row_of_a4 = int(opps.source_row[opps.frame["opportunity_id"] == "A4"].iloc[0])
    assert raw.loc[row_of_a4 - 1, "opportunity_id"] == "A4"


def test_mini_accounts_and_reps(mini: Path) -> None:
    batch = maven.load(mini)
    accounts = _table(batch, "accounts").set_index("account_id")
    assert accounts.loc["Acme", "industry"] == "technology"
    assert accounts.loc["Acme", "country"] == "Philippines"
    assert accounts.loc["Acme", "annual_revenue"] == pytest.approx(1_100_040_000)
    assert accounts.loc["Beta", "annual_revenue"] == "n/a"  # left for validation to reject
    assert accounts.loc["Beta", "subsidiary_of"] == "Acme"
    assert accounts.loc["Acme", "year_established"] == "1996"
    assert accounts["created_at"].isna().all()
    reps = _table(batch, "reps").set_index("rep_id")
    assert reps.loc["Ann Lee", "team"] == "Cara Boss"
    assert reps.loc["Ann Lee", "manager"] == "Cara Boss"
    assert reps.loc["Idle Ida", "region"] == "West"
    assert reps[["hired_at", "active"]].isna().all().all()
    assert any("Idle Ida" in note for note in batch.notes)


@pytest.mark.parametrize("missing", ["products.csv", "sales_teams.csv", "accounts.csv", "sales_pipeline.csv"])
def test_missing_file_is_named(mini: Path, missing: str) -> None:
    (mini / missing).unlink()
    with pytest.raises(SourceError, match=missing):
        maven.load(mini)


def test_missing_column_names_file_and_column(mini: Path) -> None:
    raw = pd.read_csv(mini / "sales_pipeline.csv", dtype=str).drop(columns=["deal_stage"])
    raw.to_csv(mini / "sales_pipeline.csv", index=False)
    with pytest.raises(SourceError, match=r"sales_pipeline\.csv.*deal_stage"):
        maven.load(mini)


def test_path_must_be_a_directory(mini: Path) -> None:
    with pytest.raises(SourceError, match="directory"):
        maven.load(mini / "sales_pipeline.csv")


def test_extra_source_columns_are_kept(mini: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("maven_extra")
    for f in mini.iterdir():
        shutil.copy(f, other / f.name)
    raw = pd.read_csv(other / "sales_teams.csv", dtype=str).assign(badge="x")
    raw.to_csv(other / "sales_teams.csv", index=False)
    assert _table(maven.load(other), "reps")["badge"].eq("x").all()


# --- the real sample in ../shared/data --------------------------------------------------------------


@pytest.mark.shared_data
def test_real_sample_row_counts(batch: SourceBatch) -> None:
    assert {t.table for t in batch.tables} == {"reps", "accounts", "opportunities"}
    assert len(_table(batch, "opportunities")) == 8800
    assert len(_table(batch, "reps")) == 35
    assert len(_table(batch, "accounts")) == 85


@pytest.mark.shared_data
def test_real_sample_opportunity_values(batch: SourceBatch) -> None:
    opps = _table(batch, "opportunities")
    raw = pd.read_csv(MAVEN_DIR / "sales_pipeline.csv", dtype=str)
    prices = pd.read_csv(MAVEN_DIR / "products.csv", dtype=str).set_index("product")["sales_price"]
    assert "GTXPro" not in set(opps["product"])
    assert (opps["product"] == "GTX Pro").sum() == (raw["product"] == "GTXPro").sum() == 1480
    assert opps["amount"].tolist() == opps["product"].map(prices).tolist()
    assert opps["close_value"].equals(raw["close_value"])
    assert opps["created_at"].isna().sum() == 500
    assert set(opps.loc[opps["created_at"].isna(), "stage"]) == {"prospecting"}
    assert set(opps["stage"]) == set(MAVEN_PIPELINE.names)
    assert opps["outcome"].value_counts().to_dict() == {"won": 4238, "lost": 2473, "open": 2089}
    assert opps["account_id"].isna().sum() == 1425


@pytest.mark.shared_data
def test_real_sample_source_rows(batch: SourceBatch) -> None:
    (opps,) = [t for t in batch.tables if t.table == "opportunities"]
    raw = pd.read_csv(MAVEN_DIR / "sales_pipeline.csv", dtype=str)
    assert raw["opportunity_id"].iloc[opps.source_row - 1].tolist() == opps.frame["opportunity_id"].tolist()


@pytest.mark.shared_data
def test_real_sample_accounts_and_reps(batch: SourceBatch) -> None:
    accounts = _table(batch, "accounts").set_index("account_id")
    assert "technolgy" not in set(accounts["industry"])
    assert (accounts["industry"] == "technology").sum() == 12
    assert "Philippines" in set(accounts["country"])
    assert accounts.loc["Acme Corporation", "annual_revenue"] == pytest.approx(1_100_040_000)
    assert {"year_established", "subsidiary_of"} <= set(accounts.columns)
    reps = _table(batch, "reps")
    assert reps["team"].nunique() == 6
    assert set(reps["region"]) == {"Central", "East", "West"}
    assert any(note.startswith("5 agents") for note in batch.notes)
