"""The Maven Analytics "CRM + Sales + Opportunities" sample (a directory of four CSV files).

The sample is simulated B2B data (see ``shared/data/maven-crm-sales-opportunities/SOURCE.md``).
All four files are required: ``sales_pipeline.csv``, ``accounts.csv``, ``products.csv`` and
``sales_teams.csv`` (a ``.parquet`` file of the same stem is accepted too). ``data_dictionary.csv``
is not read.

Fields mapped (source -> canonical):

- ``reps`` from ``sales_teams``: sales_agent -> rep_id and name (the agent's name is the only
  key the pipeline uses), manager -> manager, manager -> team (each manager leads one team),
  regional_office -> region.
- ``accounts`` from ``accounts``: account -> account_id and name, sector -> industry,
  employees -> employees, revenue (USD millions) * 1e6 -> annual_revenue, office_location ->
  country. year_established and subsidiary_of are kept as extra columns.
- ``opportunities`` from ``sales_pipeline`` joined to ``products``: opportunity_id ->
  opportunity_id, sales_agent -> rep_id, account -> account_id (blank -> null), product ->
  product, products.sales_price (list price) -> amount, engage_date -> created_at, deal_stage
  lowercased -> stage, deal_stage -> outcome (Won -> won, Lost -> lost, Prospecting/Engaging ->
  open), close_date -> closed_at. close_value is kept as the extra column ``close_value``.

What the source lacks (left null or absent, never invented):

- reps: hire date and active flag (``hired_at``, ``active`` are null).
- accounts: record creation date (``created_at`` is null).
- opportunities: lead link, expected close date and loss reason (``lead_id``,
  ``expected_close_date``, ``loss_reason`` are null). There is no deal creation date: engage_date
  is when the deal entered Engaging, so Prospecting deals (500 rows) have no ``created_at``.
  They are passed through and validation rejects them for the missing required value.
- No leads, stage history, activities, engagement events or quotas at all: only one snapshot.

Quirks handled:

- Product "GTXPro" in the pipeline is "GTX Pro" in products.csv; it is normalised before the join.
- Sector typo "technolgy" -> "technology"; country typo "Philipines" -> "Philippines".
- close_value leaks the target (lost deals have 0, open deals none). It is kept only so reports can
  show booked revenue; it must never be a feature. ``amount`` is the product's list price instead.
- 5 agents in sales_teams have no deals; they are kept as reps.
- Any other value (an unknown stage, a non-numeric revenue) is passed through unchanged for
  validation to reject with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from forecast.data.pipeline import MAVEN_PIPELINE
from forecast.data.readers import find_table_file, read_table_file
from forecast.data.sources.base import RawTable, SourceBatch, SourceError

SOURCE_FORMAT = "maven"

PIPELINE_FILE = "sales_pipeline"
ACCOUNTS_FILE = "accounts"
PRODUCTS_FILE = "products"
TEAMS_FILE = "sales_teams"

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    PIPELINE_FILE: (
        "opportunity_id",
        "sales_agent",
        "product",
        "account",
        "deal_stage",
        "engage_date",
        "close_date",
        "close_value",
    ),
    ACCOUNTS_FILE: ("account", "sector", "revenue", "employees", "office_location"),
    PRODUCTS_FILE: ("product", "sales_price"),
    TEAMS_FILE: ("sales_agent", "manager", "regional_office"),
}
"""Source columns each file must have."""

PRODUCT_FIXES = {"GTXPro": "GTX Pro"}
SECTOR_FIXES = {"technolgy": "technology"}
COUNTRY_FIXES = {"Philipines": "Philippines"}
REVENUE_UNIT = 1e6
"""accounts.revenue is in USD millions."""

_OUTCOMES = {"won": "won", "lost": "lost", "prospecting": "open", "engaging": "open"}

NOTES = [
    "Maven sample data is simulated (fictitious company), not a real CRM export.",
    "no leads, stage history, activities, engagement events or quotas in this source; none were synthesised",
    "reps: hire date and active flag are unknown (null); team is the rep's manager",
    "accounts: creation date is unknown (null); revenue converted from USD millions to USD",
    "opportunities: amount is the product's list price (products.sales_price); close_value is "
    "kept as an extra column but leaks the outcome (lost deals have 0) and must never be a feature",
    "opportunities: created_at is engage_date; Prospecting deals have none and will be rejected "
    "by validation for the missing created_at",
    "opportunities: lead, expected close date and loss reason are unknown (null)",
]


def load(path: Path, *, encoding: str = "utf-8", delimiter: str = ",") -> SourceBatch:
    """Read the Maven CRM sample directory and map it to canonical tables.

    Args:
        path: The directory holding sales_pipeline, accounts, products and sales_teams files.
        encoding: Text encoding of the CSV files.
        delimiter: CSV delimiter.

    Returns:
        Raw ``reps``, ``accounts`` and ``opportunities`` tables following :data:`MAVEN_PIPELINE`.

    Raises:
        SourceError: If ``path`` is not a directory, a file is missing or unreadable, or a
            required column is missing.
    """
    files = _find_files(path)
    frames = {
        stem: read_table_file(
            file, required_columns=REQUIRED_COLUMNS[stem], encoding=encoding, delimiter=delimiter
        )
        for stem, file in files.items()
    }
    opportunities, product_notes = map_opportunities(frames[PIPELINE_FILE], frames[PRODUCTS_FILE])
    tables = [
        _raw("reps", map_reps(frames[TEAMS_FILE]), files[TEAMS_FILE]),
        _raw("accounts", map_accounts(frames[ACCOUNTS_FILE]), files[ACCOUNTS_FILE]),
        _raw("opportunities", opportunities, files[PIPELINE_FILE]),
    ]
    notes = [*NOTES, *product_notes, *_idle_rep_notes(frames[TEAMS_FILE], frames[PIPELINE_FILE])]
    return SourceBatch(SOURCE_FORMAT, tables, MAVEN_PIPELINE, notes, dict(EXPECTED_REJECTS))


def _find_files(path: Path) -> dict[str, Path]:
    """Locate the four required files in ``path``."""
    if not path.is_dir():
        raise SourceError(
            f"{path}: the maven source must be the directory holding "
            "sales_pipeline.csv, accounts.csv, products.csv and sales_teams.csv"
        )
    found = {stem: find_table_file(path, stem) for stem in REQUIRED_COLUMNS}
    missing = [f"{stem}.csv" for stem, file in found.items() if file is None]
    if missing:
        raise SourceError(f"{path}: missing required file(s) {missing} of the Maven CRM sample")
    return {stem: file for stem, file in found.items() if file is not None}


def _raw(table: str, frame: pd.DataFrame, file: Path) -> RawTable:
    """Wrap a mapped frame whose row ``i`` came from data row ``i + 1`` of ``file``."""
    return RawTable(table, frame, str(file), pd.Series(range(1, len(frame) + 1)))


def _with_extras(mapped: pd.DataFrame, source: pd.DataFrame, consumed: Sequence[str]) -> pd.DataFrame:
    """Append the source columns not in ``consumed`` (and not already mapped) under their own names."""
    extras = [c for c in source.columns if c not in consumed and c not in mapped.columns]
    return pd.concat([mapped, source[extras]], axis=1)


def _replace(values: pd.Series, fixes: dict[str, str]) -> pd.Series:
    """Replace exact known typos, leaving every other value (and nulls) unchanged."""
    return values.map(lambda v: fixes.get(v, v) if isinstance(v, str) else v)


def _scaled(values: pd.Series, factor: float) -> pd.Series:
    """Multiply numeric strings by ``factor``; non-numeric values pass through for validation."""
    numbers = pd.to_numeric(values, errors="coerce")
    return (numbers * factor).round(2).astype(object).where(numbers.notna(), values)


def _null(n: int) -> pd.Series:
    return pd.Series([None] * n, dtype=object)


def map_reps(teams: pd.DataFrame) -> pd.DataFrame:
    """Map ``sales_teams`` rows to canonical ``reps`` (one row per source row)."""
    mapped = pd.DataFrame(
        {
            "rep_id": teams["sales_agent"],
            "name": teams["sales_agent"],
            "team": teams["manager"],
            "manager": teams["manager"],
            "region": teams["regional_office"],
            "hired_at": _null(len(teams)),
            "active": _null(len(teams)),
        }
    )
    return _with_extras(mapped, teams, REQUIRED_COLUMNS[TEAMS_FILE])


def map_accounts(accounts: pd.DataFrame) -> pd.DataFrame:
    """Map ``accounts`` rows to canonical ``accounts`` (one row per source row)."""
    mapped = pd.DataFrame(
        {
            "account_id": accounts["account"],
            "name": accounts["account"],
            "industry": _replace(accounts["sector"], SECTOR_FIXES),
            "employees": accounts["employees"],
            "annual_revenue": _scaled(accounts["revenue"], REVENUE_UNIT),
            "country": _replace(accounts["office_location"], COUNTRY_FIXES),
            "created_at": _null(len(accounts)),
        }
    )
    return _with_extras(mapped, accounts, REQUIRED_COLUMNS[ACCOUNTS_FILE])


def map_opportunities(pipeline: pd.DataFrame, products: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Map ``sales_pipeline`` rows to canonical ``opportunities`` (one row per source row).

    Args:
        pipeline: The sales_pipeline frame.
        products: The products frame (list prices).

    Returns:
        The mapped frame and notes about products without a list price.
    """
    product = _replace(pipeline["product"], PRODUCT_FIXES)
    prices = dict(zip(products["product"], products["sales_price"], strict=True))
    stage = pipeline["deal_stage"].map(lambda v: v.strip().lower() if isinstance(v, str) else v)
    n = len(pipeline)
    mapped = pd.DataFrame(
        {
            "opportunity_id": pipeline["opportunity_id"],
            "account_id": pipeline["account"],
            "lead_id": _null(n),
            "rep_id": pipeline["sales_agent"],
            "product": product,
            "created_at": pipeline["engage_date"],
            "amount": product.map(prices),
            "stage": stage,
            "expected_close_date": _null(n),
            "closed_at": pipeline["close_date"],
            "outcome": stage.map(_OUTCOMES),
            "loss_reason": _null(n),
            "close_value": pipeline["close_value"],
        }
    )
    unpriced = sorted(set(product.dropna()) - set(prices))
    notes = (
        [f"products without a list price in products.csv (amount left null): {unpriced}"] if unpriced else []
    )
    return _with_extras(mapped, pipeline, REQUIRED_COLUMNS[PIPELINE_FILE]), notes


EXPECTED_REJECTS: dict[tuple[str, str, str], str] = {
    ("opportunities", "required", "created_at"): (
        "Maven's Prospecting deals have no engage_date, the only creation date the export has"
    ),
}
"""What every Maven export loses by design (reported by the ingest, not refused)."""


def _idle_rep_notes(teams: pd.DataFrame, pipeline: pd.DataFrame) -> list[str]:
    """Name the agents that own no deal."""
    idle = sorted(set(teams["sales_agent"].dropna()) - set(pipeline["sales_agent"].dropna()))
    if not idle:
        return []
    return [f"{len(idle)} agents in sales_teams have no deals (kept as reps): {', '.join(idle)}"]
