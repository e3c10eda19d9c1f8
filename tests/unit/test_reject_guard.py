"""The ingest guard's arithmetic (forecast.data.reject_guard)."""

from __future__ import annotations

import pandas as pd
import pytest

from forecast.data.reject_guard import MIN_ROWS, excessive_rejects


def _rejects(table: str, rule: str, column: str, rows: range, value: str = "x") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "table": table,
            "source_file": "opportunities.csv",
            "source_row": list(rows),
            "column": column,
            "rule": rule,
            "value": value,
        }
    )


def test_a_rule_over_the_share_and_the_floor_is_excessive_with_count_examples_and_fix() -> None:
    rej = _rejects("opportunities", "unknown_stage", "stage", range(2, 102), value="Prospect")
    (found,) = excessive_rejects(rej, {"opportunities": 1000}, 0.05)
    assert (found.rows, found.read, found.share) == (100, 1000, 0.1)
    assert found.examples == ("Prospect",) and found.expected is None
    message = found.message()
    assert "opportunities: rule unknown_stage on column 'stage' rejected 100 of 1,000 rows (10.0%)" in message
    assert "'Prospect'" in message and "--pipeline" in message


def test_shares_at_or_below_the_limit_and_small_counts_pass() -> None:
    at_limit = _rejects("leads", "required", "created_at", range(50))
    assert excessive_rejects(at_limit, {"leads": 1000}, 0.05) == []
    few = _rejects("leads", "required", "created_at", range(MIN_ROWS))
    assert excessive_rejects(few, {"leads": MIN_ROWS + 1}, 0.05) == []
    assert excessive_rejects(at_limit.iloc[:0], {"leads": 1000}, 0.05) == []
    assert excessive_rejects(at_limit, {"leads": 60}, 1.0) == []


def test_a_row_counts_once_per_rule_and_column_and_the_worst_comes_first() -> None:
    twice = pd.concat([_rejects("leads", "required", "email", range(30))] * 2)
    fk = _rejects("activities", "foreign_key", "lead_id", range(40))
    found = excessive_rejects(pd.concat([twice, fk]), {"leads": 100, "activities": 50}, 0.05)
    assert [(f.table, f.rows) for f in found] == [("activities", 40), ("leads", 30)]


def test_a_declared_loss_is_returned_with_its_reason() -> None:
    rej = _rejects("opportunities", "required", "created_at", range(500), value=None)  # type: ignore[arg-type]
    reason = "this CRM's prospects have no creation date"
    (found,) = excessive_rejects(
        rej, {"opportunities": 8800}, 0.05, {("opportunities", "required", "created_at"): reason}
    )
    assert found.expected == reason and found.examples == ()
    assert found.message().endswith(f"Expected: {reason}") and "Fix" not in found.message()


def test_the_share_must_be_a_share() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        excessive_rejects(_rejects("leads", "required", "x", range(3)), {"leads": 3}, 1.5)
