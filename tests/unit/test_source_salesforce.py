"""Tests of the Salesforce export adapter on the hand-made exports in tests/fixtures/salesforce."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from forecast.data.pipeline import SALESFORCE_PIPELINE
from forecast.data.sources import salesforce
from forecast.data.sources.base import RawTable, SourceBatch, SourceError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce"
AS_OF = pd.Timestamp("2024-06-30T00:00:00Z")

U1, U2, U3 = "0055g00000ABCdEAAX", "0055g00000ABCeFAAX", "0055g00000ABCfGAAX"
A1, A3 = "0015g00000KLMnAAAX", "0015g00000KLMpCAAX"
L1, L2, L3, L4, L5, L6 = (f"00Q5g00000PQR{c}EAX" for c in ("aA", "bB", "cC", "dD", "eE", "fF"))
O1, O2, O3, O4, O5, O6 = (f"0065g00000XYZ{c}AAX" for c in ("aA", "bB", "cC", "dD", "eE", "fF"))
T = [f"00T5g00000TsK{c}EAV" for c in ("aA", "bB", "cC", "dD", "eE", "fF", "gG")]
E = [f"00U5g00000EvT{c}EAV" for c in ("aA", "bB", "cC")]


@pytest.fixture(scope="module")
def batch() -> SourceBatch:
    return salesforce.load(FIXTURES, as_of=AS_OF)


def _raw(batch: SourceBatch, file: str) -> RawTable:
    (table,) = [t for t in batch.tables if Path(t.source_file).name == file]
    return table


def _frame(batch: SourceBatch, file: str, key: str) -> pd.DataFrame:
    return _raw(batch, file).frame.set_index(key)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for f in FIXTURES.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def test_tables_files_and_pipeline(batch: SourceBatch) -> None:
    assert batch.source_format == "salesforce"
    assert batch.pipeline is SALESFORCE_PIPELINE
    assert sorted((t.table, Path(t.source_file).name) for t in batch.tables) == [
        ("accounts", "Account.csv"),
        ("activities", "Event.csv"),
        ("activities", "Task.csv"),
        ("leads", "Lead.csv"),
        ("opportunities", "Opportunity.csv"),
        ("reps", "User.csv"),
        ("stage_history", "OpportunityHistory.csv"),
    ]
    assert batch.notes


def test_source_rows_point_to_the_file_rows(batch: SourceBatch) -> None:
    for table in batch.tables:
        raw = pd.read_csv(table.source_file, dtype=str)
        key = "Id" if table.table == "stage_history" else table.frame.columns[0]
        expected = raw["Id"].iloc[table.source_row - 1].map(salesforce.id18).tolist()
        assert table.frame[key].tolist() == expected
    opps = _raw(batch, "Opportunity.csv")
    assert int(opps.source_row[opps.frame["opportunity_id"] == O4].iloc[0]) == 4


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("Prospecting", "prospecting"),
        ("Qualification", "qualification"),
        ("Needs Analysis", "needs_analysis"),
        ("Value Proposition", "value_proposition"),
        ("Id. Decision Makers", "id_decision_makers"),
        ("Perception Analysis", "perception_analysis"),
        ("Proposal/Price Quote", "proposal_price_quote"),
        ("Negotiation/Review", "negotiation_review"),
        ("Closed Won", "closed_won"),
        ("Closed Lost", "closed_lost"),
    ],
)
def test_standard_stage_labels_give_pipeline_names(label: str, name: str) -> None:
    assert salesforce.snake_case(label) == name
    assert name in SALESFORCE_PIPELINE.names


def test_opportunities(batch: SourceBatch) -> None:
    opps = _frame(batch, "Opportunity.csv", "opportunity_id")
    assert opps["outcome"].to_dict() == {
        O1: "won",
        O2: "lost",
        O3: "open",
        O4: "open",
        O5: "open",
        O6: "open",
    }
    assert opps.loc[O1, "stage"] == "closed_won"
    assert opps.loc[O2, "stage"] == "closed_lost"
    assert opps.loc[O3, "stage"] == "proposal_price_quote"
    assert opps.loc[O4, "stage"] == "id_decision_makers"
    assert opps.loc[O5, "stage"] == "negotiation_review"
    assert opps.loc[O6, "stage"] == "verbal_commit"  # custom stage: passed through for validation to reject
    assert opps.loc[O1, "closed_at"] == "2024-04-15"
    assert pd.isna(opps.loc[O1, "expected_close_date"])
    assert opps.loc[O3, "expected_close_date"] == "2024-09-30"
    assert pd.isna(opps.loc[O3, "closed_at"])
    assert opps.loc[O1, "rep_id"] == U2
    assert opps.loc[O1, "amount"] == "48000"
    assert opps.loc[O1, "created_at"] == "2024-02-10T14:05:00.000+0000"
    assert opps.loc[O1, "lead_id"] == L1
    assert opps.loc[O2, "lead_id"] == L5
    assert pd.isna(opps.loc[O3, "lead_id"])
    assert opps.loc[O3, "account_id"] == A3  # exported as a 15-character Id
    assert opps[["product", "loss_reason"]].isna().all().all()
    assert {"Name", "Probability", "ForecastCategory", "LeadSource", "Type"} <= set(opps.columns)


def test_outcome_from_stage_when_flags_are_not_exported(copy: Path) -> None:
    raw = pd.read_csv(copy / "Opportunity.csv", dtype=str).drop(columns=["IsClosed", "IsWon"])
    raw.to_csv(copy / "Opportunity.csv", index=False)
    opps = _frame(salesforce.load(copy, as_of=AS_OF), "Opportunity.csv", "opportunity_id")
    assert opps.loc[O1, "outcome"] == "won"
    assert opps.loc[O2, "outcome"] == "lost"
    assert opps.loc[O3, "outcome"] == "open"
    assert pd.isna(opps.loc[O6, "outcome"])  # unknown stage: no guessed outcome


def test_stage_history(batch: SourceBatch) -> None:
    history = _raw(batch, "OpportunityHistory.csv").frame
    o1 = history[history["opportunity_id"] == O1]
    assert o1["stage"].tolist() == ["prospecting", "qualification", "proposal_price_quote", "closed_won"]
    assert o1["entered_at"].iloc[1] == "2024-02-19T10:00:00.000+0000"
    assert o1["amount"].iloc[2] == "48000"
    assert o1["expected_close_date"].iloc[2] == "2024-04-30"
    assert set(history["stage"]) <= set(SALESFORCE_PIPELINE.names)
    parsed = pd.to_datetime(history["entered_at"], utc=True, format="ISO8601")
    assert parsed.notna().all()


def test_leads(batch: SourceBatch) -> None:
    leads = _frame(batch, "Lead.csv", "lead_id")
    assert leads["status"].to_dict() == {
        L1: "converted",
        L2: "working",
        L3: "new",
        L4: "disqualified",
        L5: "converted",  # "Qualified" but IsConverted is true
        L6: "working",  # Nurturing
    }
    assert leads.loc[L1, ["source", "channel"]].tolist() == ["web_form", "inbound"]
    assert leads.loc[L2, ["source", "channel"]].tolist() == ["other", "outbound"]
    assert leads.loc[L3, ["source", "channel"]].tolist() == ["event", "inbound"]
    assert leads.loc[L4, ["source", "channel"]].tolist() == ["partner", "inbound"]
    assert leads.loc[L5, ["source", "channel"]].tolist() == ["referral", "inbound"]
    assert leads.loc[L6, "source"] == "podcast"  # unknown picklist value: passed through
    assert pd.isna(leads.loc[L6, "channel"])
    assert leads.loc[L1, "converted_at"] == "2024-02-10"
    assert leads.loc[L1, "opportunity_id"] == O1
    assert leads.loc[L1, "account_id"] == A1
    assert pd.isna(leads.loc[L2, "converted_at"])
    assert pd.isna(leads.loc[L3, "rep_id"])  # owned by a queue
    assert leads.loc[L3, "owner_queue_id"].startswith("00G")
    assert leads.loc[L2, "rep_id"] == U3
    assert leads.loc[L1, "company_size"] == "1200"
    assert leads["status_changed_at"].isna().all()
    assert leads.loc[L1, "Company"] == "Acme GmbH"


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Web", ("web_form", "inbound")),
        ("Phone Inquiry", ("other", "inbound")),
        ("Partner Referral", ("partner", "inbound")),
        ("Purchased List", ("other", "outbound")),
        ("Other", ("other", None)),
        ("Employee Referral", ("referral", "inbound")),
        ("External Referral", ("referral", "inbound")),
        ("Partner", ("partner", "inbound")),
        ("Public Relations", ("other", "inbound")),
        ("Seminar - Internal", ("event", "inbound")),
        ("Seminar - Partner", ("event", "inbound")),
        ("Trade Show", ("event", "inbound")),
        ("Word of mouth", ("referral", "inbound")),
        ("Advertisement", ("paid_ads", "inbound")),
    ],
)
def test_standard_lead_sources(label: str, expected: tuple[str, str | None]) -> None:
    frame = pd.DataFrame({"Id": ["00Q000000000001"], "CreatedDate": ["2024-01-01"], "Status": ["New"]})
    leads = salesforce.map_leads(frame.assign(LeadSource=[label.upper()]))
    source, channel = leads.loc[0, "source"], leads.loc[0, "channel"]
    assert (source, None if pd.isna(channel) else channel) == expected


def test_reps_and_accounts(batch: SourceBatch) -> None:
    reps = _frame(batch, "User.csv", "rep_id")
    assert reps.loc[U2, ["name", "team", "region", "manager"]].tolist() == [
        "John Carter",
        "Enterprise Sales",
        "EMEA",
        U1,
    ]
    assert reps["active"].tolist() == [True, True, False]
    assert reps["hired_at"].isna().all()
    assert "CreatedDate" in reps.columns  # kept as an extra, not used as hire date
    accounts = _frame(batch, "Account.csv", "account_id")
    assert accounts.loc[A1, ["name", "industry", "employees", "annual_revenue", "country"]].tolist() == [
        "Acme GmbH",
        "Manufacturing",
        "1200",
        "250000000",
        "Germany",
    ]
    assert accounts.loc[A1, "created_at"] == "2023-11-03T10:12:00.000+0000"


def test_tasks(batch: SourceBatch) -> None:
    tasks = _frame(batch, "Task.csv", "activity_id")
    assert tasks["type"].tolist() == ["call", "call", "email", "email", "task", "call", "task"]
    assert tasks.loc[T[0], ["direction", "duration_seconds", "outcome"]].tolist() == [
        "outbound",
        "320",
        "completed",
    ]
    assert tasks.loc[T[0], "lead_id"] == L2
    assert pd.isna(tasks.loc[T[0], "opportunity_id"])
    assert tasks.loc[T[0], "occurred_at"] == "2024-03-01T10:15:00.000+0000"  # CompletedDateTime
    assert tasks.loc[T[1], ["direction", "duration_seconds", "outcome"]].tolist() == [
        "inbound",
        "45",
        "voicemail",
    ]
    assert tasks.loc[T[1], "opportunity_id"] == O3
    assert tasks.loc[T[2], "occurred_at"] == "2024-03-12"  # no CompletedDateTime: ActivityDate
    assert pd.isna(tasks.loc[T[2], "direction"])
    assert tasks.loc[T[3], "direction"] == "outbound"  # ListEmail
    assert tasks.loc[:, ["email_opened", "email_replied"]].isna().all().all()
    # an open task is a planned action
    assert tasks.loc[T[4], ["outcome", "scheduled_for", "occurred_at"]].tolist() == [
        "scheduled",
        "2024-07-05",
        "2024-06-18T10:35:00.000+0000",
    ]
    assert tasks.loc[T[4], "opportunity_id"] == O3  # WhatId exported with 15 characters
    # an internal call has no prospect direction; a contact WhoId and an account WhatId link to nothing
    assert pd.isna(tasks.loc[T[5], "direction"])
    assert pd.isna(tasks.loc[T[5], "lead_id"])
    assert pd.isna(tasks.loc[T[5], "opportunity_id"])
    assert tasks.loc[T[5], "WhoId"].startswith("003")
    assert tasks.loc[T[6], "lead_id"] == L6


def test_events(batch: SourceBatch) -> None:
    events = _frame(batch, "Event.csv", "activity_id")
    assert events["type"].tolist() == ["demo", "meeting", "meeting"]
    assert events["duration_seconds"].tolist() == [3600, 1800, 5400]
    assert events.loc[E[0], "occurred_at"] == "2024-03-05T14:00:00.000+0000"
    assert pd.isna(events.loc[E[0], "outcome"])  # no attendance field: unknown
    assert events.loc[E[0], "opportunity_id"] == O1
    assert events.loc[E[1], "lead_id"] == L1
    # starts after as_of: planned, recorded when it was created
    assert events.loc[E[2], ["outcome", "scheduled_for", "occurred_at"]].tolist() == [
        "scheduled",
        "2024-07-10T13:00:00.000+0000",
        "2024-06-20T08:00:00.000+0000",
    ]
    assert events["direction"].isna().all()


def test_timestamps_parse_as_iso8601(batch: SourceBatch) -> None:
    for table in batch.tables:
        for col in ("created_at", "occurred_at", "entered_at", "closed_at", "scheduled_for"):
            if col in table.frame.columns:
                values = table.frame[col].dropna()
                assert pd.to_datetime(values, utc=True, format="ISO8601").notna().all()


def test_id18() -> None:
    assert salesforce.id18("0055g00000ABCdE") == "0055g00000ABCdEAAX"
    assert salesforce.id18("0055g00000ABCdEAAX") == "0055g00000ABCdEAAX"
    assert salesforce.id18("not-an-id") == "not-an-id"


def test_optional_files_may_be_absent(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "Opportunity.csv", tmp_path / "Opportunity.csv")
    (tmp_path / "Contact.csv").write_text("Id\n0035g00000CnTaAAAV\n", encoding="utf-8")
    batch = salesforce.load(tmp_path, as_of=AS_OF)
    assert [t.table for t in batch.tables] == ["opportunities"]
    assert any("User.csv" in note for note in batch.notes)
    assert any("Contact.csv" in note for note in batch.notes)
    assert batch.tables[0].frame["lead_id"].isna().all()


def test_missing_opportunity_file(copy: Path) -> None:
    (copy / "Opportunity.csv").unlink()
    with pytest.raises(SourceError, match=r"Opportunity\.csv"):
        salesforce.load(copy)


@pytest.mark.parametrize(("file", "column"), [("Opportunity.csv", "StageName"), ("Lead.csv", "Status")])
def test_missing_required_column(copy: Path, file: str, column: str) -> None:
    raw = pd.read_csv(copy / file, dtype=str).drop(columns=[column])
    raw.to_csv(copy / file, index=False)
    with pytest.raises(SourceError, match=rf"{file}.*{column}"):
        salesforce.load(copy)


def test_event_without_start_column(copy: Path) -> None:
    raw = pd.read_csv(copy / "Event.csv", dtype=str)
    raw.drop(columns=["StartDateTime", "ActivityDateTime", "ActivityDate"]).to_csv(
        copy / "Event.csv", index=False
    )
    with pytest.raises(SourceError, match=r"Event\.csv.*StartDateTime"):
        salesforce.load(copy)


def test_path_must_be_a_directory() -> None:
    with pytest.raises(SourceError, match="directory"):
        salesforce.load(FIXTURES / "Opportunity.csv")
