"""Salesforce ingest time and peak memory: the whole-file adapter against the streamed one.

Usage: uv run python benchmarks/bench_ingest_salesforce.py [--leads N] [--workdir DIR]
       [--paths whole,streamed] [--chunk-rows R]

A CRM is simulated once (canonical CSV, not timed), then written as a Salesforce export (User,
Account, Lead, Opportunity, OpportunityHistory, Task, Event CSVs with API field names and
picklist labels) by DuckDB in bounded memory. Each path ingests it into a fresh warehouse in a
child process, so that the peak RSS is its own: ``whole`` reads and maps every file whole (the
adapter's in-memory path, forced by ``FORECAST_INGEST_STREAM_BYTES`` = 10^15), ``streamed`` maps
the files chunk by chunk into the streamed validation (``FORECAST_INGEST_STREAM_BYTES=0``). The
two reports' row accounting must agree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import resource, sys
from forecast.cli import app
try:
    app(["--warehouse", sys.argv[1], "ingest", sys.argv[2], "--format", "salesforce", "--json",
         "--as-of", sys.argv[3]], standalone_mode=False)
finally:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

_STAGES = {
    "qualification": "Qualification",
    "discovery": "Needs Analysis",
    "demo": "Value Proposition",
    "proposal": "Proposal/Price Quote",
    "negotiation": "Negotiation/Review",
    "closed_won": "Closed Won",
    "closed_lost": "Closed Lost",
}
"""The simulator's stages as Salesforce's default StageName labels."""

_SOURCES = {
    "web_form": "Web",
    "cold_call": "Cold Call",
    "outbound_email": "Purchased List",
    "paid_ads": "Advertisement",
    "social": "Social Media",
    "event": "Trade Show",
    "referral": "Employee Referral",
    "partner": "Partner",
}
"""Canonical lead source -> LeadSource label (others: ``Other``)."""

_STATUSES = {
    "new": "Open - Not Contacted",
    "working": "Working - Contacted",
    "qualified": "Qualified",
    "disqualified": "Closed - Not Converted",
    "converted": "Closed - Converted",
}


def _case(column: str, mapping: dict[str, str], default: str = "NULL") -> str:
    whens = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in mapping.items())
    return f"CASE {column} {whens} ELSE {default} END"


def _queries(crm: Path) -> dict[str, str]:
    def src(table: str) -> str:
        return f"read_csv('{crm / (table + '.csv')}', all_varchar=true)"

    task = "type IN ('call', 'email', 'task', 'sms')"
    return {
        "User": f"""SELECT '005' || rep_id AS Id, name AS Name, team AS Department, region AS Division,
            lower(active) AS IsActive, hired_at AS CreatedDate FROM {src("reps")}""",
        "Account": f"""SELECT '001' || account_id AS Id, name AS Name, industry AS Industry,
            employees AS NumberOfEmployees, annual_revenue AS AnnualRevenue, country AS BillingCountry,
            created_at AS CreatedDate FROM {src("accounts")}""",
        "Lead": f"""SELECT '00Q' || lead_id AS Id, title AS Title, industry AS Industry,
            company_size AS NumberOfEmployees, country AS Country,
            {_case("source", _SOURCES, "'Other'")} AS LeadSource,
            {_case("status", _STATUSES)} AS Status, '005' || rep_id AS OwnerId,
            CASE WHEN status = 'converted' THEN 'true' ELSE 'false' END AS IsConverted,
            CASE WHEN status = 'converted' THEN converted_at END AS ConvertedDate,
            CASE WHEN status = 'converted' THEN '001' || account_id END AS ConvertedAccountId,
            '006' || opportunity_id AS ConvertedOpportunityId, created_at AS CreatedDate
            FROM {src("leads")}""",
        "Opportunity": f"""SELECT '006' || opportunity_id AS Id, '001' || account_id AS AccountId,
            '005' || rep_id AS OwnerId, amount AS Amount, {_case("stage", _STAGES)} AS StageName,
            CAST(CAST(coalesce(closed_at, expected_close_date) AS TIMESTAMP) AS DATE) AS CloseDate,
            CASE WHEN outcome = 'open' THEN 'false' ELSE 'true' END AS IsClosed,
            CASE WHEN outcome = 'won' THEN 'true' ELSE 'false' END AS IsWon,
            product AS Product__c, created_at AS CreatedDate FROM {src("opportunities")}""",
        "OpportunityHistory": f"""SELECT '008' || row_number() OVER () AS Id,
            '006' || opportunity_id AS OpportunityId, {_case("stage", _STAGES)} AS StageName,
            amount AS Amount, CAST(CAST(expected_close_date AS TIMESTAMP) AS DATE) AS CloseDate,
            entered_at AS CreatedDate FROM {src("stage_history")}""",
        "Task": f"""SELECT '00T' || activity_id AS Id, '00Q' || lead_id AS WhoId,
            '006' || opportunity_id AS WhatId, '005' || rep_id AS OwnerId,
            CASE type WHEN 'call' THEN 'Call' WHEN 'email' THEN 'Email' ELSE 'Task' END AS TaskSubtype,
            CASE outcome WHEN 'scheduled' THEN 'Not Started' ELSE 'Completed' END AS Status,
            CAST(CAST(coalesce(scheduled_for, occurred_at) AS TIMESTAMP) AS DATE) AS ActivityDate,
            CASE WHEN type = 'call' THEN duration_seconds END AS CallDurationInSeconds,
            CASE WHEN type = 'call' THEN CASE direction WHEN 'inbound' THEN 'Inbound'
                 ELSE 'Outbound' END END AS CallType,
            CASE WHEN type = 'call' THEN CASE outcome WHEN 'voicemail' THEN 'Left voicemail'
                 WHEN 'no_answer' THEN 'No answer' ELSE 'Connected' END END AS CallDisposition,
            occurred_at AS CreatedDate,
            CASE WHEN outcome <> 'scheduled' THEN occurred_at END AS CompletedDateTime
            FROM {src("activities")} WHERE {task}""",
        "Event": f"""SELECT '00U' || activity_id AS Id, '00Q' || lead_id AS WhoId,
            '006' || opportunity_id AS WhatId, '005' || rep_id AS OwnerId,
            CASE type WHEN 'demo' THEN 'Product demo' ELSE 'Meeting' END AS Subject,
            coalesce(scheduled_for, occurred_at) AS StartDateTime,
            CAST(CAST(duration_seconds AS DOUBLE) / 60 AS BIGINT) AS DurationInMinutes,
            occurred_at AS CreatedDate FROM {src("activities")} WHERE NOT ({task})""",
    }


def salesforce_export(crm: Path, out: Path) -> Path:
    """Write the canonical CSV CRM at ``crm`` as a Salesforce export in ``out`` (once)."""
    import duckdb

    if (out / "Opportunity.csv").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET memory_limit = '1GB'")
    for obj, query in _queries(crm).items():
        con.execute(f"COPY ({query}) TO '{out / (obj + '.csv')}' (FORMAT csv, HEADER true)")
    con.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--paths", default="whole,streamed")
    parser.add_argument("--chunk-rows", type=int, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_ingest_sf_"))
    crm = work / f"crm_{args.leads}_csv"
    if not (crm / "simulation_params.json").exists():
        subprocess.run(
            [sys.executable, "-m", "forecast.cli", "simulate", "--out", str(crm), "--leads", str(args.leads),
             "--format", "csv", "--json"],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
    export = salesforce_export(crm, work / f"sf_{args.leads}")
    as_of = json.loads((crm / "simulation_params.json").read_text()).get("as_of") or "2031-01-01"
    size = sum(p.stat().st_size for p in export.glob("*.csv"))
    print(f"machine: {platform.machine()}, {platform.python_version()}, cores: {os.cpu_count()}")
    print(f"salesforce export of {args.leads:,} simulated leads: {size / 2**20:,.0f} MiB of CSV")
    counts = {}
    for path in args.paths.split(","):
        env = dict(os.environ, FORECAST_INGEST_STREAM_BYTES="0" if path == "streamed" else str(10**15))
        if args.chunk_rows:
            env["FORECAST_INGEST_CHUNK_ROWS"] = str(args.chunk_rows)
        warehouse = work / f"wh_sf_{args.leads}_{path}.duckdb"
        warehouse.unlink(missing_ok=True)
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(warehouse), str(export), str(as_of)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
        seconds = time.perf_counter() - t0
        *body, last = out.stdout.strip().splitlines()
        report = json.loads("\n".join(body))
        rows = sum(t["read"] for t in report["tables"].values())
        counts[path] = {n: (t["read"], t["valid"], t["rejected"]) for n, t in report["tables"].items()}
        print(f"{path:9s} {rows:,} rows in {seconds:.1f} s, peak RSS {float(last) / 1024:,.0f} MiB")
        for name, t in report["tables"].items():
            print(
                f"  {name:14s} read {t['read']:>10,}  valid {t['valid']:>10,}  rejected {t['rejected']:>8,}"
            )
    if len(counts) > 1:
        same = len({json.dumps(c, sort_keys=True) for c in counts.values()}) == 1
        print("row accounting of the paths:", "equal" if same else f"DIFFERENT {counts}")


if __name__ == "__main__":
    main()
