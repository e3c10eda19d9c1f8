"""The pure half of ``forecast export scores``: fields, mappings and how each cell is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.crm_export.formats import (
    DEFAULTS,
    FIELDS,
    columns_for,
    export_rows,
    fingerprint,
    format_cell,
    load_mapping,
    reasons_text,
)
from forecast.errors import InputError


def test_cells_by_kind() -> None:
    assert format_cell("p_win", 0.175345, "salesforce") == "17.53"
    assert format_cell("p_win", 0.175345, "hubspot") == "17.53"
    assert format_cell("p_win", 0.175345, "canonical") == "0.175345"
    assert format_cell("p_convert", 1.0, "salesforce") == "100"
    assert format_cell("close_date_p50", pd.Timestamp("2025-02-10"), "salesforce") == "2025-02-10"
    assert format_cell("as_of", pd.Timestamp("2025-01-01"), "canonical") == "2025-01-01T00:00:00"
    assert format_cell("at_risk", np.bool_(True), "salesforce") == "true"
    assert format_cell("at_risk", False, "hubspot") == "false"
    assert format_cell("score", np.int64(65), "salesforce") == "65"
    assert format_cell("n_flags", 3.0, "canonical") == "3"
    for missing in (None, np.nan, pd.NaT, ""):
        assert format_cell("close_date_p10", missing, "salesforce") == ""
    assert format_cell("suggested_action", "=cmd", "salesforce") == "=cmd"  # the CSV writer neutralises


def test_reasons_join_ups_and_downs_without_a_formula_start() -> None:
    row = {"reason_up_1": "a", "reason_up_2": None, "reason_up_3": "b", "reason_down_1": "c"}
    assert reasons_text(row) == "raises: a; b | lowers: c"
    assert reasons_text({}) == ""


def test_defaults_and_overrides() -> None:
    sf = columns_for("salesforce", "deal")
    assert sf["id"] == "Id" and sf["p_win"] == "Win_Probability__c"
    assert sf["close_date_p50"] == "Expected_Close_Date__c"
    assert columns_for("hubspot", "lead")["id"] == "Record ID"
    canonical = columns_for("canonical", "deal")
    assert canonical["id"] == "opportunity_id" and "reasons" not in canonical
    assert set(canonical) == set(FIELDS["deal"]) - {"reasons"}
    changed = columns_for("salesforce", "lead", {"lead": {"score": "My_Score__c", "band": None}})
    assert changed["score"] == "My_Score__c" and "band" not in changed
    assert DEFAULTS["salesforce"]["lead"]["score"] == "Lead_Score__c"  # the defaults are not changed
    with pytest.raises(InputError, match="same column"):
        columns_for("salesforce", "lead", {"lead": {"band": "Lead_Score__c"}})


def test_mapping_file_validation(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("deal:\n  p_win: Win__c\n  reasons: null\n", encoding="utf-8")
    assert load_mapping(good) == {"deal": {"p_win": "Win__c", "reasons": None}}
    cases = {
        "lead:\n  scor: X\n": "'scor'",
        "opportunity:\n  score: X\n": "'opportunity'",
        "lead:\n  score: ''\n": "lead.score",
        "lead:\n  id: null\n": "lead.id",
        "- a\n": "must map",
    }
    for i, (text, named) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InputError) as err:
            load_mapping(path)
        assert named in str(err.value) and str(path) in str(err.value)


def test_rows_and_fingerprints() -> None:
    scores = pd.DataFrame(
        {
            "lead_id": ["L1", "L2"],
            "p_convert": [0.5, 0.25],
            "score": [50, 25],
            "band": ["A", "C"],
            "reason_up_1": ["x", None],
            "at_risk": [True, False],
            "as_of": pd.to_datetime(["2025-01-01", "2025-01-01"]),
        }
    )
    columns = {"id": "Id", "p_convert": "P__c", "reasons": "R__c", "at_risk": "Risk__c", "as_of": "When__c"}
    rows = export_rows(scores, "lead", "salesforce", columns)
    assert list(rows.columns) == ["Id", "P__c", "R__c", "Risk__c", "When__c"]
    assert rows.iloc[0].tolist() == ["L1", "50", "raises: x", "true", "2025-01-01T00:00:00"]
    assert rows.iloc[1].tolist() == ["L2", "25", "", "false", "2025-01-01T00:00:00"]
    first = rows.to_dict(orient="records")[0]
    later = {**first, "When__c": "2025-02-01T00:00:00"}
    assert fingerprint(first, columns) == fingerprint(later, columns)  # the scoring time is not a change
    assert fingerprint(first, columns) != fingerprint({**first, "P__c": "51"}, columns)
