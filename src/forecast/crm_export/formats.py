"""The export formats: which stored field goes to which CRM column, and how each cell is written.

Pure functions (no I/O): the job in :mod:`forecast.crm_export.job` reads and writes.

A *field* is a name of the project's score tables (``p_win``, ``close_date_p50``...) or ``reasons``
(the six ``reason_up_*`` / ``reason_down_*`` columns in one text). Each target maps fields to its
column names; a mapping file overrides them per entity (``null`` leaves a field out).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from forecast.errors import InputError

Target = Literal["salesforce", "hubspot", "canonical"]
Entity = Literal["lead", "deal"]
TARGETS: tuple[Target, ...] = ("salesforce", "hubspot", "canonical")
ENTITIES: tuple[Entity, ...] = ("lead", "deal")

TABLE: dict[Entity, str] = {"lead": "lead_scores", "deal": "opportunity_scores"}
"""The warehouse table ``forecast score leads|deals --write-back`` stores each entity's scores in."""
ID_COLUMN: dict[Entity, str] = {"lead": "lead_id", "deal": "opportunity_id"}
SCORE_COMMAND: dict[Entity, str] = {"lead": "forecast score leads", "deal": "forecast score deals"}
FILE_SUFFIX: dict[Target, dict[Entity, str]] = {
    "salesforce": {"lead": "Lead", "deal": "Opportunity"},
    "hubspot": {"lead": "contacts", "deal": "deals"},
    "canonical": {"lead": "leads", "deal": "deals"},
}
"""``--entity all`` writes ``<stem>_<suffix>.csv`` per entity (Salesforce: one file per object)."""

REASON_COLUMNS = (
    "reason_up_1",
    "reason_up_2",
    "reason_up_3",
    "reason_down_1",
    "reason_down_2",
    "reason_down_3",
)
PROBABILITIES = frozenset(
    {"p_convert", "p_win", "p_churn", "slip_risk", "p_close_30d", "p_close_60d", "p_close_90d"}
)
DATES = frozenset({"close_date_p10", "close_date_p50", "close_date_p90", "expected_close_date"})
TIMESTAMPS = frozenset({"as_of", "scored_at"})
BOOLEANS = frozenset({"at_risk"})
VOLATILE = frozenset({"as_of", "scored_at"})
"""Fields that change at every scoring run: written, but not compared to decide what changed."""

_COMMON = (
    "score",
    "band",
    "reasons",
    *REASON_COLUMNS,
    "at_risk",
    "flags",
    "n_flags",
    "top_flag",
    "flag_severity",
    "flag_evidence",
)
FIELDS: dict[Entity, tuple[str, ...]] = {
    "lead": (
        "id",
        "p_convert",
        *_COMMON,
        "suggested_action",
        "p_churn",
        "model_name",
        "model_version",
        "as_of",
        "scored_at",
    ),
    "deal": (
        "id",
        "p_win",
        *_COMMON,
        "suggested_action",
        "p_churn",
        "p_close_30d",
        "p_close_60d",
        "p_close_90d",
        "close_date_p10",
        "close_date_p50",
        "close_date_p90",
        "expected_close_date",
        "slip_risk",
        "model_name",
        "model_version",
        "close_model_version",
        "as_of",
        "scored_at",
    ),
}
"""Every field an export can write, per entity (the keys a mapping file may use)."""

DEFAULTS: dict[Target, dict[Entity, dict[str, str]]] = {
    "salesforce": {
        "lead": {
            "id": "Id",
            "score": "Lead_Score__c",
            "band": "Lead_Score_Band__c",
            "p_convert": "Conversion_Probability__c",
            "reasons": "Score_Reasons__c",
            "at_risk": "At_Risk__c",
            "suggested_action": "Suggested_Action__c",
        },
        "deal": {
            "id": "Id",
            "score": "Deal_Score__c",
            "band": "Deal_Score_Band__c",
            "p_win": "Win_Probability__c",
            "close_date_p50": "Expected_Close_Date__c",
            "close_date_p10": "Close_Date_P10__c",
            "close_date_p90": "Close_Date_P90__c",
            "at_risk": "At_Risk__c",
            "suggested_action": "Suggested_Action__c",
            "reasons": "Score_Reasons__c",
        },
    },
    "hubspot": {
        "lead": {
            "id": "Record ID",
            "score": "forecast_lead_score",
            "band": "forecast_lead_score_band",
            "p_convert": "forecast_conversion_probability",
            "reasons": "forecast_score_reasons",
            "at_risk": "forecast_at_risk",
            "suggested_action": "forecast_suggested_action",
        },
        "deal": {
            "id": "Record ID",
            "score": "forecast_deal_score",
            "band": "forecast_deal_score_band",
            "p_win": "forecast_win_probability",
            "close_date_p50": "forecast_expected_close_date",
            "close_date_p10": "forecast_close_date_p10",
            "close_date_p90": "forecast_close_date_p90",
            "at_risk": "forecast_at_risk",
            "suggested_action": "forecast_suggested_action",
            "reasons": "forecast_score_reasons",
        },
    },
    "canonical": {
        "lead": {f: ("lead_id" if f == "id" else f) for f in FIELDS["lead"] if f != "reasons"},
        "deal": {f: ("opportunity_id" if f == "id" else f) for f in FIELDS["deal"] if f != "reasons"},
    },
}
"""The built-in field -> column mapping of each target and entity (canonical: every stored score column
under its own name, the six reason columns as stored rather than joined)."""

PERCENT_TARGETS = frozenset({"salesforce", "hubspot"})
"""Targets whose probabilities are written 0–100 (Salesforce Percent fields); canonical keeps 0–1."""


def load_mapping(path: Path) -> dict[str, dict[str, str | None]]:
    """Read a mapping file: ``{lead: {field: column or null}, deal: {...}}``.

    Raises:
        InputError: The file cannot be read, is not YAML, or names an unknown entity or field, or a
            column that is not a non-empty text; the message names the file and the bad key.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise InputError(f"{path}: cannot read the mapping file ({exc})") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: the mapping file is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: the mapping file must map lead and/or deal to fields")
    out: dict[str, dict[str, str | None]] = {}
    for entity, fields in data.items():
        if entity not in ENTITIES:
            raise InputError(f"{path}: unknown key {entity!r} in the mapping file (use lead and/or deal)")
        if not isinstance(fields, dict):
            raise InputError(f"{path}: {entity} must map fields to column names")
        known = FIELDS[entity]
        for field, column in fields.items():
            if field not in known:
                raise InputError(
                    f"{path}: unknown field {field!r} under {entity} in the mapping file; "
                    f"known: {', '.join(known)}"
                )
            if column is not None and (not isinstance(column, str) or not column.strip()):
                raise InputError(f"{path}: {entity}.{field} must name a column (a non-empty text) or be null")
            if field == "id" and column is None:
                raise InputError(f"{path}: {entity}.id cannot be left out: the import is keyed by it")
        out[entity] = {str(k): (None if v is None else str(v).strip()) for k, v in fields.items()}
    return out


def columns_for(
    target: Target, entity: Entity, overrides: Mapping[str, Mapping[str, str | None]] | None = None
) -> dict[str, str]:
    """The field -> column mapping of ``target`` and ``entity``: the defaults with ``overrides`` applied.

    Raises:
        InputError: Two fields would be written to the same column.
    """
    mapping: dict[str, str | None] = dict(DEFAULTS[target][entity])
    mapping.update((overrides or {}).get(entity, {}))
    out = {f: c for f, c in mapping.items() if c is not None}
    seen: dict[str, str] = {}
    for field, column in out.items():
        if column in seen:
            raise InputError(
                f"the mapping writes {seen[column]!r} and {field!r} to the same column {column!r}"
            )
        seen[column] = field
    return out


def reasons_text(row: Mapping[Any, Any]) -> str:
    """The six reason columns of a stored score in one text: ``raises: a; b | lowers: c; d``."""
    ups = [str(row[c]) for c in REASON_COLUMNS[:3] if _present(row.get(c))]
    downs = [str(row[c]) for c in REASON_COLUMNS[3:] if _present(row.get(c))]
    parts = ([f"raises: {'; '.join(ups)}"] if ups else []) + (
        [f"lowers: {'; '.join(downs)}"] if downs else []
    )
    return " | ".join(parts)


def format_cell(field: str, value: Any, target: Target) -> str:
    """One stored value as the import file writes it (missing values as an empty cell).

    Probabilities 0–100 with two decimals for Salesforce and HubSpot, 0–1 with six for canonical;
    dates ``YYYY-MM-DD``; timestamps ``YYYY-MM-DDTHH:MM:SS``; booleans ``true``/``false``; scores
    and counts as integers; text as is.
    """
    if not _present(value):
        return ""
    if field in PROBABILITIES:
        p = float(value)
        return _number(round(p * 100, 2) if target in PERCENT_TARGETS else round(p, 6))
    if field in DATES:
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    if field in TIMESTAMPS:
        return pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%S")
    if field in BOOLEANS:
        return "true" if _truthy(value) else "false"
    if field == "score":
        return str(round(float(value)))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def export_rows(
    scores: pd.DataFrame, entity: Entity, target: Target, columns: Mapping[str, str]
) -> pd.DataFrame:
    """The import file's rows: one per stored score, every cell text, headed by the mapped columns.

    Args:
        scores: The stored scores (one row per record, the table's columns).
        entity: lead or deal (its id column is ``lead_id`` or ``opportunity_id``).
        target: The format.
        columns: field -> column (:func:`columns_for`).
    """
    records = scores.to_dict(orient="records")
    data: dict[str, list[str]] = {}
    for field, column in columns.items():
        if field == "id":
            values = [format_cell(field, r.get(ID_COLUMN[entity]), target) for r in records]
        elif field == "reasons":
            values = [reasons_text(r) for r in records]
        else:
            values = [format_cell(field, r.get(field), target) for r in records]
        data[column] = values
    return pd.DataFrame(data, columns=list(columns.values()), dtype=object)


def fingerprint(row: Mapping[Any, Any], columns: Mapping[str, str]) -> str:
    """The text that decides whether a record changed: its exported cells, the volatile ones left out."""
    kept = {c: row[c] for f, c in columns.items() if f not in VOLATILE}
    return json.dumps(kept, sort_keys=True, ensure_ascii=False)


def _present(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, str):
        return value != ""
    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):
        return True


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "t")
    if isinstance(value, (datetime, date)):
        return True
    return bool(value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
