"""A streamed Salesforce import (mapped in chunks) stores and rejects exactly what the whole-file one does.

The hand-made exports of tests/fixtures/salesforce are extended so that chunks of a few rows cut
every file: a lead converted into a deal of a later chunk, a deal whose converting lead is in the
last chunk of Lead.csv, a second lead converted into an already converted deal (the first wins), a
duplicate lead across chunks, a lead with a bad date whose deal cascades, a bad amount, 15-character
Ids, a planned event and an event with a bad duration.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from forecast.data.ingest import IngestReport, ingest
from forecast.data.staged import StreamOptions
from forecast.data.warehouse import Warehouse
from tests.integration.test_streamed_ingest import _comparable, _snapshot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce"
AS_OF = pd.Timestamp("2025-06-30")
WHOLE = StreamOptions(min_bytes=10**12)

LEAD = "00Q5g00000PQR{}EAX"
OPP = "0065g00000XYZ{}AAX"
U1, U2 = "0055g00000ABCeFAAX", "0055g00000ABCfGAAX"
A1 = "0015g00000KLMnAAAX"


def _append(folder: Path, obj: str, rows: list[dict[str, str]]) -> None:
    path = folder / f"{obj}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    pd.concat([frame, pd.DataFrame(rows)], ignore_index=True).fillna("").to_csv(path, index=False)


def _export(tmp_path: Path) -> Path:
    folder = tmp_path / "sf"
    shutil.copytree(FIXTURES, folder)
    lead = {"Status": "Working - Contacted", "OwnerId": U1, "LeadSource": "Web", "IsConverted": "false"}
    converted = {**lead, "Status": "Closed - Converted", "IsConverted": "true", "ConvertedAccountId": A1}
    _append(
        folder,
        "Lead",
        [  # rows 7..13 (the fixture has 6)
            {**converted, "Id": LEAD.format("gG"), "CreatedDate": "2024-05-01T09:00:00.000+0000",
             "ConvertedDate": "2024-05-20", "ConvertedOpportunityId": OPP.format("gG")},
            {**converted, "Id": LEAD.format("hH"), "CreatedDate": "2024-05-02T09:00:00.000+0000",
             "ConvertedDate": "2024-05-21", "ConvertedOpportunityId": OPP.format("aA")},
            {**lead, "Id": LEAD.format("bB"), "CreatedDate": "2024-05-03T09:00:00.000+0000"},
            {**converted, "Id": LEAD.format("iI"), "CreatedDate": "not a date",
             "ConvertedDate": "2024-05-22", "ConvertedOpportunityId": OPP.format("hH")},
            {**lead, "Id": "00Q5g00000PQRjJ", "CreatedDate": "2024-05-04T09:00:00.000+0000"},
            {**lead, "Id": LEAD.format("kK"), "CreatedDate": "2024-05-05T09:00:00.000+0000"},
            {**converted, "Id": LEAD.format("lL"), "CreatedDate": "2024-05-06T09:00:00.000+0000",
             "ConvertedDate": "2024-06-01", "ConvertedOpportunityId": OPP.format("eE")},
        ],
    )  # fmt: skip
    deal = {"AccountId": A1, "OwnerId": U2, "StageName": "Prospecting", "CloseDate": "2024-12-31",
            "IsClosed": "false", "IsWon": "false", "Amount": "1000"}  # fmt: skip
    _append(
        folder,
        "Opportunity",
        [  # rows 7..9
            {**deal, "Id": OPP.format("gG"), "CreatedDate": "2024-05-20T10:00:00.000+0000"},
            {**deal, "Id": OPP.format("hH"), "CreatedDate": "2024-05-22T10:00:00.000+0000"},
            {**deal, "Id": "0065g00000XYZiI", "CreatedDate": "2024-05-23T10:00:00.000+0000", "Amount": "12k"},
        ],
    )
    _append(
        folder,
        "OpportunityHistory",
        [
            {"Id": "0085g00000HsTgAAAV", "OpportunityId": "0065g00000XYZgG", "StageName": "Prospecting",
             "CreatedDate": "2024-05-20T10:00:00.000+0000"},
            {"Id": "0085g00000HsThAAAV", "OpportunityId": OPP.format("hH"), "StageName": "Prospecting",
             "CreatedDate": "2024-05-22T10:00:00.000+0000"},
        ],
    )  # fmt: skip
    _append(
        folder,
        "Event",
        [
            {"Id": "00U5g00000EvTdDEAV", "WhoId": LEAD.format("gG"), "OwnerId": U1, "Subject": "Demo",
             "StartDateTime": "2025-08-01T10:00:00.000+0000", "DurationInMinutes": "45",
             "CreatedDate": "2025-06-01T10:00:00.000+0000"},
            {"Id": "00U5g00000EvTeEEAV", "WhatId": OPP.format("gG"), "OwnerId": U1, "Subject": "Call",
             "StartDateTime": "2024-06-01T10:00:00.000+0000", "DurationInMinutes": "an hour",
             "CreatedDate": "2024-05-25T10:00:00.000+0000"},
            {"Id": "00U5g00000EvTfFEAV", "WhoId": "00Q5g00000PQRjJ", "OwnerId": U2, "Subject": "Intro",
             "StartDateTime": "2024-06-02T10:00:00.000+0000", "DurationInMinutes": "30",
             "CreatedDate": "2024-05-26T10:00:00.000+0000"},
        ],
    )  # fmt: skip
    return folder


def _run(folder: Path, warehouse: Path | None, options: StreamOptions, **kwargs: object) -> IngestReport:
    return ingest(
        folder,
        "salesforce",
        None if warehouse is None else Warehouse(warehouse),
        as_of=AS_OF,
        options=options,
        **kwargs,  # type: ignore[arg-type]
    )


def _rows(warehouse: Path, query: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("chunk_rows", [2, 5])
def test_streamed_and_whole_salesforce_imports_agree(tmp_path: Path, chunk_rows: int) -> None:
    folder = _export(tmp_path)
    streamed_options = StreamOptions(chunk_rows=chunk_rows, min_bytes=0)
    a, b = tmp_path / "whole.duckdb", tmp_path / "streamed.duckdb"
    whole = _run(folder, a, WHOLE)
    streamed = _run(folder, b, streamed_options)
    assert streamed.source_format == whole.source_format == "salesforce"
    assert streamed.pipeline_source == "adapter" and streamed.pipeline["name"] == "salesforce"
    rules = {(r["table"], r["rule"], r["column"]) for r in whole.rejects_by_rule}
    assert {
        ("leads", "duplicate_key", "lead_id"),
        ("leads", "unparseable_timestamp", "created_at"),
        ("opportunities", "foreign_key", "lead_id"),
        ("opportunities", "not_a_number", "amount"),
        ("activities", "not_a_number", "duration_seconds"),
    } <= rules
    assert _comparable(streamed) == _comparable(whole)
    assert _snapshot(b) == _snapshot(a)
    # a reject names the Salesforce file, its data row and the canonical column
    assert ("Opportunity.csv", 9, "amount", "12k") in [
        (Path(str(f)).name, r, c, v)
        for f, r, c, v in _rows(b, 'SELECT source_file, source_row, "column", "value" FROM rejects')
    ]
    # cross-file lookups: the first lead converted into a deal, wherever the two sit
    lead_of = dict(_rows(b, "SELECT opportunity_id, lead_id FROM opportunities"))  # type: ignore[arg-type]
    assert lead_of[OPP.format("aA")] == LEAD.format("aA")  # not the later L..hH
    assert lead_of[OPP.format("gG")] == LEAD.format("gG")
    assert lead_of[OPP.format("eE")] == LEAD.format("lL")
    assert "0065g00000XYZiIAAX" not in lead_of  # 15-character Id extended, then rejected (amount)
    planned = _rows(b, "SELECT outcome FROM activities WHERE activity_id = '00U5g00000EvTdDEAV'")
    assert planned == [("scheduled",)]
    # the same import again: nothing new, nothing changed, no reject recorded twice
    again_whole, again_streamed = _run(folder, a, WHOLE), _run(folder, b, streamed_options)
    assert _comparable(again_streamed) == _comparable(again_whole)
    assert all(t["inserted"] == 0 and t["updated"] == 0 for t in again_streamed.tables.values())
    assert _snapshot(b) == _snapshot(a)
    assert not list(tmp_path.glob(".forecast-staging-*")), "the staging folder outlived the import"


def test_a_streamed_salesforce_dry_run_judges_like_the_whole_one(tmp_path: Path) -> None:
    folder = _export(tmp_path)
    streamed = _run(folder, None, StreamOptions(chunk_rows=3, min_bytes=0), dry_run=True)
    whole = _run(folder, None, WHOLE, dry_run=True)
    assert _comparable(streamed) == _comparable(whole)
    assert streamed.ingest_id is None and streamed.tables["leads"]["rejected"] > 0
