"""Shared fixtures: a tiny hand-made canonical CRM written as CSV files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one tree thread per test worker: two workers spinning OpenMP threads on the same two cores
    # ran the suite several times slower (forecast.models.threads)
    os.environ.setdefault("FORECAST_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_dataset(name: str) -> Path:
    """Path of a dataset under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"../shared/data/{name} is absent: this test needs the project's shared datasets")
    return path


def tiny_tables() -> dict[str, pd.DataFrame]:
    """A small, fully valid canonical CRM (every rule satisfied)."""
    reps = pd.DataFrame(
        {
            "rep_id": ["R1", "R2"],
            "name": ["Ana", "Ben"],
            "team": ["T1", "T1"],
            "manager": ["Mia", "Mia"],
            "region": ["EU", "EU"],
            "hired_at": ["2023-01-02", "2023-06-01"],
            "active": ["true", "true"],
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2"],
            "name": ["Acme", "Globex"],
            "industry": ["software", "retail"],
            "employees": ["120", "40"],
            "annual_revenue": ["1000000", "250000.5"],
            "country": ["ES", "FR"],
            "created_at": ["2023-02-01", "2023-03-01T10:00:00Z"],
        }
    )
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3"],
            "created_at": ["2024-01-05T09:00:00", "2024-01-10T12:30:00+01:00", "2024-02-01"],
            "source": ["web_form", "cold_call", "referral"],
            "channel": ["inbound", "outbound", "inbound"],
            "rep_id": ["R1", "R2", "R1"],
            "account_id": ["A1", "A2", None],
            "title": ["CTO", "Buyer", "CEO"],
            "industry": ["software", "retail", "software"],
            "company_size": ["51-200", "11-50", "1-10"],
            "country": ["ES", "FR", "ES"],
            "status": ["converted", "working", "converted"],
            "status_changed_at": ["2024-01-20", "2024-01-12", "2024-02-10"],
            "converted_at": ["2024-01-20", None, "2024-02-10"],
            "opportunity_id": ["O1", None, "O2"],
            "favourite_color": ["blue", "red", "green"],  # a custom column, kept
        }
    )
    opportunities = pd.DataFrame(
        {
            "opportunity_id": ["O1", "O2"],
            "account_id": ["A1", None],
            "lead_id": ["L1", "L3"],
            "rep_id": ["R1", "R1"],
            "product": ["pro", "basic"],
            "created_at": ["2024-01-20", "2024-02-10"],
            "amount": ["12000", "3000"],
            "stage": ["closed_won", "proposal"],
            "expected_close_date": ["2024-03-01", "2024-04-30"],
            "closed_at": ["2024-03-05", None],
            "outcome": ["won", "open"],
            "loss_reason": [None, None],
        }
    )
    stage_history = pd.DataFrame(
        {
            "opportunity_id": ["O1", "O1", "O1", "O2", "O2"],
            "stage": ["qualification", "proposal", "closed_won", "qualification", "proposal"],
            "entered_at": ["2024-01-20", "2024-02-01", "2024-03-05", "2024-02-10", "2024-03-01"],
            "amount": ["10000", "12000", "12000", "3000", "3000"],
            "expected_close_date": ["2024-03-01"] * 3 + ["2024-04-30"] * 2,
        }
    )
    activities = pd.DataFrame(
        {
            "activity_id": ["X1", "X2", "X3", "X4"],
            "occurred_at": ["2024-01-06", "2024-01-07", "2024-02-02", "2024-02-15"],
            "type": ["call", "email", "meeting", "email"],
            "direction": ["outbound", "outbound", "outbound", "inbound"],
            "rep_id": ["R1", "R1", "R1", "R1"],
            "lead_id": ["L1", "L1", None, None],
            "opportunity_id": [None, None, "O1", "O2"],
            "duration_seconds": ["300", None, "1800", None],
            "outcome": ["completed", "completed", "completed", "completed"],
            "email_opened": [None, "true", None, "true"],
            "email_replied": [None, "false", None, "true"],
            "scheduled_for": [None, None, "2024-02-20", None],
        }
    )
    engagement_events = pd.DataFrame(
        {
            "event_id": ["E1", "E2"],
            "occurred_at": ["2024-01-04", "2024-01-08"],
            "lead_id": ["L1", "L1"],
            "account_id": ["A1", "A1"],
            "type": ["web_visit", "pricing_page_view"],
            "value": ["120", "45"],
        }
    )
    quotas = pd.DataFrame(
        {
            "owner_type": ["rep", "rep"],
            "owner_id": ["R1", "R2"],
            "period_start": ["2024-01-01", "2024-01-01"],
            "period_end": ["2024-01-31", "2024-01-31"],
            "amount": ["50000", "40000"],
        }
    )
    return {
        "reps": reps,
        "accounts": accounts,
        "leads": leads,
        "opportunities": opportunities,
        "stage_history": stage_history,
        "activities": activities,
        "engagement_events": engagement_events,
        "quotas": quotas,
    }


def write_tables(folder: Path, tables: dict[str, pd.DataFrame]) -> Path:
    """Write canonical CSV files into ``folder`` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.fixture
def tiny_crm(tmp_path: Path) -> Path:
    """A folder with the tiny canonical CRM as CSV files."""
    return write_tables(tmp_path / "crm", tiny_tables())


@contextmanager
def hold_warehouse_lock(path: Path) -> Iterator[subprocess.Popen[str]]:
    """A real second process holding DuckDB's write lock on ``path`` until the block ends.

    Writing a line to its stdin releases the lock early (it then idles until killed).
    """
    code = (
        "import duckdb, sys, time\n"
        f"con = duckdb.connect({str(path)!r})\n"
        "print('held', flush=True)\n"
        "sys.stdin.readline()\n"
        "con.close()\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


LONGEST_FIRST = (
    "tests/integration/test_service.py",
    "tests/integration/test_monitoring.py",
    "tests/integration/test_dashboard_maven.py",
    "tests/integration/test_deal_cli.py",
    "tests/model/test_revenue_quality.py",
    "tests/model/test_deal_quality.py",
    "tests/model/test_robustness_matrix.py",
    "tests/integration/test_spark_scoring.py",
    "tests/model/test_revenue_calendar_quality.py",
    "tests/model/test_flags_quality.py",
    "tests/integration/test_lead_scoring_cli.py",
    "tests/integration/test_main_job.py",
    "tests/model/test_lead_scoring_quality.py",
    "tests/integration/test_dashboard_browser.py",
    "tests/integration/test_team_mlflow.py",
    "tests/model/",
    "tests/integration/",
)
"""Files (then folders) handed to the test workers first, longest first (the per-file durations of
a CI run): with ``-n 2 --dist loadfile`` a file of several minutes handed out last keeps one worker
busy while the other has finished; handed out first, the short unit tests fill the gaps instead."""


def pytest_configure(config: pytest.Config) -> None:
    """Keep the order of :func:`pytest_collection_modifyitems` under ``--dist loadfile``.

    pytest-xdist (3.x) otherwise hands out the files by their number of tests, most first
    (``--loadscope-reorder``, on by default), which put the two longest files 60th and 61st of 79.
    """
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the session: the long files first (:data:`LONGEST_FIRST`), each file's tests together."""
    del config

    def rank(item: pytest.Item) -> int:
        path = Path(str(item.fspath)).resolve().relative_to(REPO).as_posix()
        ranks = (i for i, prefix in enumerate(LONGEST_FIRST) if path.startswith(prefix))
        return next(ranks, len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the order within a file or folder is kept
