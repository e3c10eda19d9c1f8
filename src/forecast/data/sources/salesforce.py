"""Standard Salesforce CSV exports (Data Loader / Data Export), one file per object in a directory.

Files (``.parquet`` of the same stem is accepted too): ``Opportunity.csv`` is required;
``User.csv``, ``Account.csv``, ``Lead.csv``, ``OpportunityHistory.csv``, ``Task.csv`` and
``Event.csv`` are optional. Column names are Salesforce's standard API field names. Every column that
is not mapped (custom ``__c`` fields, ``Type``, ``Probability``, ``WhoId``...) is kept under its
original name. Values stay strings; validation coerces and checks them.

Fields mapped (source -> canonical):

- ``reps`` from User: Id -> rep_id, Name (or FirstName + LastName) -> name, Department -> team,
  Division -> region, ManagerId -> manager (the manager's User Id), IsActive -> active.
- ``accounts`` from Account: Id -> account_id, Name -> name, Industry -> industry,
  NumberOfEmployees -> employees, AnnualRevenue -> annual_revenue, BillingCountry -> country,
  CreatedDate -> created_at.
- ``leads`` from Lead: Id -> lead_id, CreatedDate -> created_at, LeadSource -> source and channel
  (table below), OwnerId -> rep_id (queue owners, Ids starting ``00G``, give a null rep_id and the
  extra column ``owner_queue_id``), ConvertedAccountId -> account_id, Title -> title, Industry ->
  industry, NumberOfEmployees -> company_size, Country -> country, Status -> status (table
  below; ``IsConverted`` true always gives ``converted``), ConvertedDate -> converted_at (when
  converted), ConvertedOpportunityId -> opportunity_id.
- ``opportunities`` from Opportunity: Id -> opportunity_id, AccountId -> account_id, OwnerId ->
  rep_id, CreatedDate -> created_at, Amount -> amount, StageName -> stage (snake case: "Closed Won"
  -> ``closed_won``, "Id. Decision Makers" -> ``id_decision_makers``, "Proposal/Price Quote" ->
  ``proposal_price_quote``), IsClosed/IsWon -> outcome (open, won, lost; from the stage's
  pipeline role when the two flags are not exported), CloseDate -> closed_at when closed and
  expected_close_date when open. lead_id is the Lead whose ConvertedOpportunityId points to the
  deal (the first such lead in Lead.csv).
- ``stage_history`` from OpportunityHistory: OpportunityId -> opportunity_id, StageName -> stage
  (same snake case), CreatedDate (when the change happened) -> entered_at, Amount -> amount,
  CloseDate -> expected_close_date.
- ``activities`` from Task: Id -> activity_id; TaskSubtype -> type (Call -> call, Email and
  ListEmail -> email, Task, LinkedIn and Cadence -> task; when TaskSubtype is empty the Type
  picklist is used: Call, Email, Meeting, Other -> task); OwnerId -> rep_id; WhoId -> lead_id when
  it is a Lead (``00Q``); WhatId -> opportunity_id when it is an Opportunity (``006``);
  CallDurationInSeconds -> duration_seconds; CallType -> direction (Outbound, Inbound; Internal ->
  null), ListEmail -> outbound. Completed tasks (IsClosed, else Status "Completed"): occurred_at
  = CompletedDateTime, else ActivityDate, else CreatedDate; outcome from CallDisposition keywords
  for calls (voicemail, no answer, connected/spoke/reached -> completed; other text -> null),
  ``completed`` otherwise. Open tasks are planned actions: occurred_at = CreatedDate,
  scheduled_for = ActivityDate, outcome ``scheduled``.
- ``activities`` from Event: Id -> activity_id, type ``demo`` when Subject contains "demo" else
  ``meeting``, OwnerId/WhoId/WhatId as for tasks, DurationInMinutes * 60 -> duration_seconds.
  Start = StartDateTime, else ActivityDateTime, else ActivityDate. Past events: occurred_at =
  start, outcome null. Future events (start after ``as_of``): occurred_at = CreatedDate,
  scheduled_for = start, outcome ``scheduled``.

LeadSource -> (source, channel), matched ignoring case, spaces and punctuation:

=====================  ============  ========
LeadSource             source        channel
=====================  ============  ========
Web                    web_form      inbound
Phone Inquiry          other         inbound
Partner Referral       partner       inbound
Partner                partner       inbound
Purchased List         other         outbound
Other                  other         (null)
Employee Referral      referral      inbound
External Referral      referral      inbound
Word of mouth          referral      inbound
Advertisement          paid_ads      inbound
Google AdWords         paid_ads      inbound
Public Relations       other         inbound
Seminar - Internal     event         inbound
Seminar - Partner      event         inbound
Trade Show             event         inbound
Webinar                event         inbound
Cold Call              cold_call     outbound
Social Media           social        inbound
=====================  ============  ========

Lead Status -> status: Open - Not Contacted, New -> new; Working - Contacted, Working, Contacted,
Nurturing -> working; Qualified -> qualified; Closed - Not Converted, Unqualified, Disqualified ->
disqualified; Closed - Converted, Converted -> converted.

What the source lacks (left null, never invented):

- reps: hire date (User.CreatedDate is when the login was created, not a hire date; it is kept as
  an extra column). Salesforce has no team or region field: Department and Division are used.
- leads: when the status last changed (LastModifiedDate changes on any edit) -> status_changed_at
  is null.
- opportunities: product (OpportunityLineItem is not read) and loss reason (no standard field;
  custom fields are kept as extra columns).
- activities: email opened/replied (not in Task; they live in email-tracking objects), meeting
  attendance (Salesforce events carry no held/no-show/cancelled field, so past events have a null
  outcome), and the direction of plain emails and meetings.
- No engagement events or quotas are read.

Quirks handled:

- 15-character (case-sensitive) Ids are extended to the 18-character form with Salesforce's
  checksum, so files exported with either form join.
- Datetimes like ``2024-03-05T14:22:10.000+0000`` and dates like ``2024-03-05`` are left as strings;
  both parse with ``pandas.to_datetime(utc=True, format="ISO8601")``. Report exports with
  locale dates (``3/5/2024 2:22 PM``) are not supported and will be rejected by validation.
- CloseDate is a date without time: a deal created and closed on the same day has closed_at
  (midnight) before created_at, which validation rejects.
- Unknown picklist values (a custom stage, lead source, lead status, task subtype or call type) are
  passed through in snake case for validation to reject with a reason; unparsable flags give a null.
- Deleted records of an "export all" (IsDeleted) are not filtered; IsDeleted is kept as an extra column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from forecast.data.pipeline import SALESFORCE_PIPELINE
from forecast.data.readers import SUPPORTED_SUFFIXES, find_table_file, read_table_file
from forecast.data.sources.base import RawTable, SourceBatch, SourceError

SOURCE_FORMAT = "salesforce"

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "User": ("Id",),
    "Account": ("Id",),
    "Lead": ("Id", "CreatedDate", "Status"),
    "Opportunity": ("Id", "OwnerId", "StageName", "CreatedDate", "CloseDate"),
    "OpportunityHistory": ("OpportunityId", "StageName", "CreatedDate"),
    "Task": ("Id", "CreatedDate"),
    "Event": ("Id", "CreatedDate"),
}
"""Source columns each object's file must have (Opportunity is the only required file)."""

REQUIRED_FILE = "Opportunity"

ID_COLUMNS = (
    "Id",
    "OwnerId",
    "AccountId",
    "ManagerId",
    "OpportunityId",
    "WhoId",
    "WhatId",
    "ConvertedOpportunityId",
    "ConvertedAccountId",
    "ConvertedContactId",
    "ContactId",
    "UserRoleId",
)
"""Id columns extended from 15 to 18 characters."""

EVENT_START_COLUMNS = ("StartDateTime", "ActivityDateTime", "ActivityDate")
"""An event starts at the first of these that is set; the export needs at least one."""

LEAD_PREFIX = "00Q"
OPPORTUNITY_PREFIX = "006"
QUEUE_PREFIX = "00G"

LEAD_SOURCES: dict[str, tuple[str, str | None]] = {
    "Web": ("web_form", "inbound"),
    "Phone Inquiry": ("other", "inbound"),
    "Partner Referral": ("partner", "inbound"),
    "Partner": ("partner", "inbound"),
    "Purchased List": ("other", "outbound"),
    "Other": ("other", None),
    "Employee Referral": ("referral", "inbound"),
    "External Referral": ("referral", "inbound"),
    "Word of mouth": ("referral", "inbound"),
    "Advertisement": ("paid_ads", "inbound"),
    "Google AdWords": ("paid_ads", "inbound"),
    "Public Relations": ("other", "inbound"),
    "Seminar - Internal": ("event", "inbound"),
    "Seminar - Partner": ("event", "inbound"),
    "Trade Show": ("event", "inbound"),
    "Webinar": ("event", "inbound"),
    "Cold Call": ("cold_call", "outbound"),
    "Social Media": ("social", "inbound"),
}
"""Salesforce LeadSource picklist label -> (canonical source, channel)."""

LEAD_STATUSES: dict[str, str] = {
    "Open - Not Contacted": "new",
    "New": "new",
    "Working - Contacted": "working",
    "Working": "working",
    "Contacted": "working",
    "Nurturing": "working",
    "Qualified": "qualified",
    "Closed - Not Converted": "disqualified",
    "Unqualified": "disqualified",
    "Disqualified": "disqualified",
    "Closed - Converted": "converted",
    "Converted": "converted",
}
"""Salesforce Lead Status picklist label -> canonical status."""

TASK_SUBTYPES: dict[str, str] = {
    "Call": "call",
    "Email": "email",
    "ListEmail": "email",
    "Task": "task",
    "LinkedIn": "task",
    "Cadence": "task",
}
"""Task.TaskSubtype -> canonical activity type."""

TASK_TYPES: dict[str, str] = {"Call": "call", "Email": "email", "Meeting": "meeting", "Other": "task"}
"""Task.Type picklist -> canonical activity type (used when TaskSubtype is empty)."""

CALL_TYPES: dict[str, str | None] = {"Outbound": "outbound", "Inbound": "inbound", "Internal": None}
"""Task.CallType -> canonical direction."""

_DISPOSITION_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("voicemail", "voicemail"),
    ("left message", "voicemail"),
    ("no answer", "no_answer"),
    ("not answer", "no_answer"),
    ("connected", "completed"),
    ("spoke", "completed"),
    ("reached", "completed"),
)
"""CallDisposition is free text: the first keyword found gives the call outcome."""

_TRUE = {"true", "1", "1.0", "yes", "y"}
_FALSE = {"false", "0", "0.0", "no", "n"}
_ID18_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID15 = re.compile(r"^[A-Za-z0-9]{15}$")

NOTES = [
    "salesforce: no engagement events or quotas are read",
    "reps: hire date unknown (User.CreatedDate kept as an extra column, not used as hire date); "
    "team = Department, region = Division, manager = the manager's User Id",
    "leads: status_changed_at unknown (null); queue-owned leads have no rep (rep_id null)",
    "opportunities: product and loss reason are not standard Opportunity fields (null); "
    "lead_id comes from Lead.ConvertedOpportunityId",
    "activities: email opened/replied are not in Task exports (null); Salesforce events carry no "
    "attendance, so past meetings have a null outcome and future ones are 'scheduled'",
]


def load(
    path: Path,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
    as_of: pd.Timestamp | None = None,
) -> SourceBatch:
    """Read a directory of Salesforce object exports and map them to canonical tables.

    Args:
        path: The directory holding ``Opportunity.csv`` and optionally the other object files.
        encoding: Text encoding of the CSV files.
        delimiter: CSV delimiter.
        as_of: The moment that separates past events from planned ones (default: now, UTC).

    Returns:
        The raw canonical tables found, following :data:`SALESFORCE_PIPELINE`.

    Raises:
        SourceError: If ``path`` is not a directory, ``Opportunity.csv`` is missing, or a file is
            unreadable or lacks a required column.
    """
    files = _find_files(path)
    frames = {
        obj: _normalise_ids(
            read_table_file(
                file, required_columns=REQUIRED_COLUMNS[obj], encoding=encoding, delimiter=delimiter
            )
        )
        for obj, file in files.items()
    }
    if "Event" in frames and not any(c in frames["Event"].columns for c in EVENT_START_COLUMNS):
        raise SourceError(f"{files['Event']}: missing a start column (one of {list(EVENT_START_COLUMNS)})")
    now = _utc(as_of) if as_of is not None else pd.Timestamp.now(tz="UTC")
    mappers = {
        "User": ("reps", map_users),
        "Account": ("accounts", map_accounts),
        "Lead": ("leads", map_leads),
        "Opportunity": ("opportunities", lambda f: map_opportunities(f, frames.get("Lead"))),
        "OpportunityHistory": ("stage_history", map_history),
        "Task": ("activities", map_tasks),
        "Event": ("activities", lambda f: map_events(f, now)),
    }
    tables = []
    for obj, (table, mapper) in mappers.items():
        if obj in frames:
            frame = frames[obj]
            tables.append(
                RawTable(table, mapper(frame), str(files[obj]), pd.Series(range(1, len(frame) + 1)))
            )
    return SourceBatch(SOURCE_FORMAT, tables, SALESFORCE_PIPELINE, [*NOTES, *_file_notes(path, files)])


def _find_files(path: Path) -> dict[str, Path]:
    """Locate the object files in ``path``; Opportunity is required."""
    if not path.is_dir():
        raise SourceError(
            f"{path}: the salesforce source must be a directory of object exports (Opportunity.csv, ...)"
        )
    found = {obj: find_table_file(path, obj) for obj in REQUIRED_COLUMNS}
    if found[REQUIRED_FILE] is None:
        raise SourceError(f"{path}: missing required file {REQUIRED_FILE}.csv (the Opportunity export)")
    return {obj: file for obj, file in found.items() if file is not None}


def _file_notes(path: Path, files: dict[str, Path]) -> list[str]:
    """Say which optional object files were absent and which files were ignored."""
    notes = []
    absent = [f"{obj}.csv" for obj in REQUIRED_COLUMNS if obj not in files]
    if absent:
        notes.append(f"optional Salesforce exports not found (those tables are empty): {', '.join(absent)}")
    ignored = sorted(
        p.name
        for p in path.iterdir()
        if p.suffix.lower() in SUPPORTED_SUFFIXES and p.stem not in REQUIRED_COLUMNS
    )
    if ignored:
        notes.append(f"ignored files that are not read by the salesforce adapter: {', '.join(ignored)}")
    return notes


# --- value helpers -----------------------------------------------------------------------------


def _utc(value: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def id18(value: object) -> object:
    """Extend a 15-character Salesforce Id to its 18-character form; other values are unchanged.

    The three extra characters encode which of the 15 characters are upper case, five at a time.
    """
    if not isinstance(value, str) or not _ID15.match(value):
        return value
    suffix = ""
    for start in (0, 5, 10):
        chunk = value[start : start + 5]
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _ID18_ALPHABET[bits]
    return value + suffix


def _normalise_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """Extend every 15-character Id in the known Id columns to 18 characters."""
    frame = frame.copy()
    for col in ID_COLUMNS:
        if col in frame.columns:
            frame[col] = frame[col].map(id18)
    return frame


def snake_case(value: object) -> object:
    """Return ``value`` in snake case ("Proposal/Price Quote" -> "proposal_price_quote"); nulls stay."""
    if not isinstance(value, str):
        return value
    return re.sub(r"[^a-z0-9]+", "_", value.strip().lower()).strip("_")


def _key(value: object) -> str | None:
    """Lookup key of a picklist label: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", value.lower()) if isinstance(value, str) else None


def _lookup(values: pd.Series, table: dict[str, str | None]) -> pd.Series:
    """Map picklist labels through ``table``; unknown labels become their snake case."""
    keyed = {_key(label): canonical for label, canonical in table.items()}

    def one(v: object) -> object:
        k = _key(v)
        if k is None:
            return None
        return keyed[k] if k in keyed else snake_case(v)

    return values.map(one).astype(object)


def _flag(values: pd.Series) -> pd.Series:
    """Parse Salesforce booleans ("true"/"false", "1"/"0"); anything else is null."""

    def one(v: object) -> bool | None:
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return None
        text = str(v).strip().lower()
        return True if text in _TRUE else False if text in _FALSE else None

    return values.map(one).astype(object)


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name``, or an all-null column if the export lacks it."""
    return frame[name].astype(object) if name in frame.columns else _null(len(frame))


def _null(n: int) -> pd.Series:
    return pd.Series([None] * n, dtype=object)


def _first(*candidates: pd.Series) -> pd.Series:
    """Row-wise first non-null value of ``candidates``."""
    out = candidates[0].astype(object)
    for other in candidates[1:]:
        out = out.where(out.notna(), other)
    return out


def _prefixed(ids: pd.Series, prefix: str) -> pd.Series:
    """Keep the Ids of one object type (by key prefix), null otherwise."""
    return ids.where(ids.map(lambda v: isinstance(v, str) and v.startswith(prefix)), None).astype(object)


def _with_extras(mapped: pd.DataFrame, source: pd.DataFrame, consumed: Sequence[str]) -> pd.DataFrame:
    """Append the source columns not in ``consumed`` (and not already mapped) under their own names."""
    extras = [c for c in source.columns if c not in consumed and c not in mapped.columns]
    return pd.concat([mapped, source[extras].reset_index(drop=True)], axis=1)


# --- mappers -----------------------------------------------------------------------------------


def map_users(users: pd.DataFrame) -> pd.DataFrame:
    """Map User rows to canonical ``reps``."""
    name = _col(users, "Name")
    full = (_col(users, "FirstName").fillna("") + " " + _col(users, "LastName").fillna("")).str.strip()
    active = _flag(_col(users, "IsActive"))
    mapped = pd.DataFrame(
        {
            "rep_id": users["Id"],
            "name": _first(name, full.where(full != "", None)),
            "team": _col(users, "Department"),
            "manager": _col(users, "ManagerId"),
            "region": _col(users, "Division"),
            "hired_at": _null(len(users)),
            "active": _first(active, _col(users, "IsActive")),
        }
    )
    return _with_extras(mapped, users, ("Id", "Name", "Department", "ManagerId", "Division", "IsActive"))


def map_accounts(accounts: pd.DataFrame) -> pd.DataFrame:
    """Map Account rows to canonical ``accounts``."""
    renames = {
        "Id": "account_id",
        "Name": "name",
        "Industry": "industry",
        "NumberOfEmployees": "employees",
        "AnnualRevenue": "annual_revenue",
        "BillingCountry": "country",
        "CreatedDate": "created_at",
    }
    mapped = pd.DataFrame({canonical: _col(accounts, src) for src, canonical in renames.items()})
    return _with_extras(mapped, accounts, tuple(renames))


def map_leads(leads: pd.DataFrame) -> pd.DataFrame:
    """Map Lead rows to canonical ``leads``."""
    lead_source = _col(leads, "LeadSource")
    channels = {_key(label): channel for label, (_, channel) in LEAD_SOURCES.items()}
    source = _lookup(lead_source, {label: src for label, (src, _) in LEAD_SOURCES.items()})
    channel = lead_source.map(lambda v: channels.get(_key(v))).astype(object)
    converted = _flag(_col(leads, "IsConverted"))
    status = _lookup(leads["Status"], dict(LEAD_STATUSES)).where(converted.ne(True), "converted")
    converted_at = _col(leads, "ConvertedDate")
    if "IsConverted" in leads.columns:
        converted_at = converted_at.where(converted.eq(True), None)
    owner = _col(leads, "OwnerId")
    is_queue = owner.map(lambda v: isinstance(v, str) and v.startswith(QUEUE_PREFIX)).astype(bool)
    mapped = pd.DataFrame(
        {
            "lead_id": leads["Id"],
            "created_at": leads["CreatedDate"],
            "source": source,
            "channel": channel,
            "rep_id": owner.where(~is_queue, None),
            "account_id": _col(leads, "ConvertedAccountId"),
            "title": _col(leads, "Title"),
            "industry": _col(leads, "Industry"),
            "company_size": _col(leads, "NumberOfEmployees"),
            "country": _col(leads, "Country"),
            "status": status,
            "status_changed_at": _null(len(leads)),
            "converted_at": converted_at,
            "opportunity_id": _col(leads, "ConvertedOpportunityId"),
            "owner_queue_id": owner.where(is_queue, None),
        }
    )
    consumed = (
        "Id",
        "CreatedDate",
        "LeadSource",
        "OwnerId",
        "ConvertedAccountId",
        "Title",
        "Industry",
        "NumberOfEmployees",
        "Country",
        "Status",
        "ConvertedDate",
        "ConvertedOpportunityId",
    )
    return _with_extras(mapped, leads, consumed)


def _outcome(opps: pd.DataFrame, stage: pd.Series) -> pd.Series:
    """Outcome from IsClosed/IsWon, or from the stage's pipeline role if the flags are not exported."""
    if "IsClosed" in opps.columns and "IsWon" in opps.columns:
        closed, won = _flag(opps["IsClosed"]), _flag(opps["IsWon"])
        out = pd.Series([None] * len(opps), dtype=object)
        out[closed.eq(False)] = "open"
        out[closed.eq(True) & won.eq(True)] = "won"
        out[closed.eq(True) & won.eq(False)] = "lost"
        return out
    role = dict.fromkeys(SALESFORCE_PIPELINE.open_stages, "open")
    role.update(dict.fromkeys(SALESFORCE_PIPELINE.won_stages, "won"))
    role.update(dict.fromkeys(SALESFORCE_PIPELINE.lost_stages, "lost"))
    return stage.map(role).astype(object)


def _lead_of_opportunity(leads: pd.DataFrame | None) -> dict[object, object]:
    """Opportunity Id -> the first Lead converted into it."""
    if leads is None or "ConvertedOpportunityId" not in leads.columns:
        return {}
    linked = leads.dropna(subset=["ConvertedOpportunityId"]).drop_duplicates("ConvertedOpportunityId")
    return dict(zip(linked["ConvertedOpportunityId"], linked["Id"], strict=True))


def map_opportunities(
    opps: pd.DataFrame,
    leads: pd.DataFrame | None = None,
    *,
    lead_of: dict[object, object] | None = None,
) -> pd.DataFrame:
    """Map Opportunity rows to canonical ``opportunities``.

    Args:
        opps: The Opportunity frame.
        leads: The Lead frame, if exported (gives ``lead_id`` through ConvertedOpportunityId).
        lead_of: Opportunity Id -> the first Lead converted into it, instead of ``leads`` (a
            streamed import builds it from Lead.csv chunk by chunk).
    """
    lookup = lead_of if lead_of is not None else _lead_of_opportunity(leads)
    stage = opps["StageName"].map(snake_case).astype(object)
    outcome = _outcome(opps, stage)
    closed = outcome.isin(["won", "lost"])
    mapped = pd.DataFrame(
        {
            "opportunity_id": opps["Id"],
            "account_id": _col(opps, "AccountId"),
            "lead_id": opps["Id"].map(lookup).astype(object),
            "rep_id": opps["OwnerId"],
            "product": _null(len(opps)),
            "created_at": opps["CreatedDate"],
            "amount": _col(opps, "Amount"),
            "stage": stage,
            "expected_close_date": opps["CloseDate"].where(outcome.eq("open"), None),
            "closed_at": opps["CloseDate"].where(closed, None),
            "outcome": outcome,
            "loss_reason": _null(len(opps)),
        }
    )
    consumed = (
        "Id",
        "AccountId",
        "OwnerId",
        "CreatedDate",
        "Amount",
        "StageName",
        "CloseDate",
        "IsClosed",
        "IsWon",
    )
    return _with_extras(mapped, opps, consumed)


def map_history(history: pd.DataFrame) -> pd.DataFrame:
    """Map OpportunityHistory rows to canonical ``stage_history`` (one row per recorded change)."""
    mapped = pd.DataFrame(
        {
            "opportunity_id": history["OpportunityId"],
            "stage": history["StageName"].map(snake_case).astype(object),
            "entered_at": history["CreatedDate"],
            "amount": _col(history, "Amount"),
            "expected_close_date": _col(history, "CloseDate"),
        }
    )
    return _with_extras(mapped, history, ("OpportunityId", "StageName", "CreatedDate", "Amount", "CloseDate"))


def _task_type(tasks: pd.DataFrame) -> pd.Series:
    """Activity type from TaskSubtype, else the Type picklist, else ``task``."""
    subtype = _lookup(_col(tasks, "TaskSubtype"), dict(TASK_SUBTYPES))
    by_type = _lookup(_col(tasks, "Type"), dict(TASK_TYPES))
    return _first(subtype, by_type).fillna("task").astype(object)


def _call_outcome(disposition: object) -> str | None:
    """Outcome of a call from its free-text disposition; empty -> completed, unrecognised -> null."""
    if not isinstance(disposition, str) or not disposition.strip():
        return "completed"
    text = disposition.lower()
    return next((outcome for word, outcome in _DISPOSITION_KEYWORDS if word in text), None)


def _task_closed(tasks: pd.DataFrame) -> pd.Series:
    """Whether each task is done: IsClosed if exported, else Status == Completed (null if unknown)."""
    if "IsClosed" in tasks.columns:
        return _flag(tasks["IsClosed"])
    status = _col(tasks, "Status")
    return status.map(lambda v: v.strip().lower() == "completed" if isinstance(v, str) else None).astype(
        object
    )


def map_tasks(tasks: pd.DataFrame) -> pd.DataFrame:
    """Map Task rows (calls, emails, to-dos) to canonical ``activities``."""
    kind = _task_type(tasks)
    closed = _task_closed(tasks)
    is_open = closed.eq(False)
    is_call = kind.eq("call")
    direction = _lookup(_col(tasks, "CallType"), dict(CALL_TYPES)).where(is_call, None)
    subtype_key = _col(tasks, "TaskSubtype").map(_key)
    direction = direction.where(subtype_key.ne("listemail"), "outbound")
    done_outcome = _col(tasks, "CallDisposition").map(_call_outcome).where(is_call, "completed")
    outcome = done_outcome.where(closed.eq(True), None).where(~is_open, "scheduled")
    done_at = _first(_col(tasks, "CompletedDateTime"), _col(tasks, "ActivityDate"), tasks["CreatedDate"])
    mapped = pd.DataFrame(
        {
            "activity_id": tasks["Id"],
            "occurred_at": done_at.where(~is_open, tasks["CreatedDate"]),
            "type": kind,
            "direction": direction.astype(object),
            "rep_id": _col(tasks, "OwnerId"),
            "lead_id": _prefixed(_col(tasks, "WhoId"), LEAD_PREFIX),
            "opportunity_id": _prefixed(_col(tasks, "WhatId"), OPPORTUNITY_PREFIX),
            "duration_seconds": _col(tasks, "CallDurationInSeconds").where(is_call, None),
            "outcome": outcome.astype(object),
            "email_opened": _null(len(tasks)),
            "email_replied": _null(len(tasks)),
            "scheduled_for": _col(tasks, "ActivityDate").where(is_open, None),
        }
    )
    consumed = ("Id", "TaskSubtype", "OwnerId", "CallDurationInSeconds", "CallType", "CompletedDateTime")
    return _with_extras(mapped, tasks, consumed)


def _minutes_to_seconds(values: pd.Series) -> pd.Series:
    """DurationInMinutes * 60; non-numeric values pass through for validation to reject."""
    numbers = pd.to_numeric(values, errors="coerce")
    return (numbers * 60).astype(object).where(numbers.notna(), values)


def map_events(events: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Map Event rows (meetings, demos) to canonical ``activities``.

    Args:
        events: The Event frame.
        as_of: Events starting after this moment are planned (outcome ``scheduled``).
    """
    start_cols = [c for c in EVENT_START_COLUMNS if c in events.columns]
    if not start_cols:
        raise SourceError(f"Event export: missing a start column (one of {list(EVENT_START_COLUMNS)})")
    start = _first(*(events[c] for c in start_cols))
    parsed = pd.to_datetime(start, utc=True, format="ISO8601", errors="coerce")
    future = pd.Series(parsed > as_of, dtype=bool).reset_index(drop=True)
    subject = _col(events, "Subject")
    is_demo = subject.map(lambda v: isinstance(v, str) and "demo" in v.lower()).astype(bool)
    mapped = pd.DataFrame(
        {
            "activity_id": events["Id"],
            "occurred_at": start.where(~future, events["CreatedDate"]),
            "type": pd.Series(["meeting"] * len(events), dtype=object).where(~is_demo, "demo"),
            "direction": _null(len(events)),
            "rep_id": _col(events, "OwnerId"),
            "lead_id": _prefixed(_col(events, "WhoId"), LEAD_PREFIX),
            "opportunity_id": _prefixed(_col(events, "WhatId"), OPPORTUNITY_PREFIX),
            "duration_seconds": _minutes_to_seconds(_col(events, "DurationInMinutes")),
            "outcome": pd.Series([None] * len(events), dtype=object).where(~future, "scheduled"),
            "email_opened": _null(len(events)),
            "email_replied": _null(len(events)),
            "scheduled_for": start.where(future, None),
        }
    )
    consumed = ("Id", "OwnerId", "DurationInMinutes", *start_cols)
    return _with_extras(mapped, events, consumed)
