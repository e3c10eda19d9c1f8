"""Deal-state features rebuilt from the stage history: where a deal stood at as_of and how it got there.

The deal's current stage, amount and expected close date are final-state fields: they are never
read for a snapshot. Everything here comes from ``stage_history`` rows entered before as_of. A deal
without any history row before as_of gets missing stage features; its size is taken from
``opportunities.amount`` only when the source records no stage history at all (the Maven sample,
whose amount is a list price); otherwise the stored amount is final-state and the size stays
unknown until the deal's first history row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.features.catalog import Feature
from forecast.features.snapshots import SPINE
from forecast.features.source import FeatureSource

STAGE_FEATURES = [
    Feature("stage", "stage", "the deal's stage", "categorical"),
    Feature("stage_order", "stage", "how far along the pipeline the deal is (0 = first stage)"),
    Feature("days_in_stage", "stage", "days in the current stage"),
    Feature(
        "stage_time_ratio", "stage", "time in the current stage against the usual time deals spend there"
    ),
    Feature("n_stage_changes", "stage", "stage changes so far"),
    Feature("n_backward_moves", "stage", "times the deal moved back to an earlier stage"),
    Feature("n_close_date_pushes", "stage", "times the expected close date was pushed later"),
    Feature("days_to_expected_close", "stage", "days until the expected close date (negative: overdue)"),
    Feature("amount", "stage", "deal size"),
    Feature("amount_change_ratio", "stage", "deal size now against its size when first entered"),
    Feature("n_amount_decreases", "stage", "times the deal size was cut"),
]


def stage_spell_ctes(source: str, *, prev: str, order: str) -> str:
    """SQL CTEs of a deal's stage spells (a run of consecutive rows in one stage), from stage rows.

    ``source`` holds ``opportunity_id``, ``stage``, ``entered_at``, the previous row's stage
    (column ``prev``) and an ordering column ``order``. Defines ``h`` (the rows with their
    ``run_id``), ``runs`` (each spell's stage and start) and ``spells`` (start and end, ``NULL``
    while the deal is still in it). The deal features and the flags' stalled-in-stage rule read
    spells from here.
    """
    return f"""h AS (
            SELECT *, sum(CASE WHEN {prev} IS NULL OR stage <> {prev} THEN 1 ELSE 0 END)
                          OVER (PARTITION BY opportunity_id ORDER BY {order}) AS run_id
            FROM {source}
        ),
        runs AS (
            SELECT opportunity_id, run_id, any_value(stage) AS stage, min(entered_at) AS run_start
            FROM h GROUP BY opportunity_id, run_id
        ),
        spells AS (
            SELECT stage, run_start,
                   lead(run_start) OVER (PARTITION BY opportunity_id ORDER BY run_id) AS run_end
            FROM runs
        )"""


def stage_features(src: FeatureSource) -> pd.DataFrame:
    """Deal-state features per deal snapshot (the spine's entities are opportunities)."""
    sql = f"""
        WITH h0 AS (
            SELECT h.opportunity_id, h.entered_at, h.stage, st.stage_order, h.amount, h.expected_close_date,
                   row_number() OVER (PARTITION BY h.opportunity_id
                                      ORDER BY h.entered_at, st.stage_order, h.stage) AS seq
            FROM stage_history h LEFT JOIN _stages st USING (stage)
        ),
        h1 AS (
            SELECT *,
                   lag(stage) OVER w AS prev_stage, lag(stage_order) OVER w AS prev_order,
                   lag(expected_close_date) OVER w AS prev_ecd, lag(amount) OVER w AS prev_amount
            FROM h0 WINDOW w AS (PARTITION BY opportunity_id ORDER BY seq)
        ),
        {stage_spell_ctes("h1", prev="prev_stage", order="seq")},
        typical AS (
            SELECT stage, run_end AS completed_at,
                   avg(ln(1 + date_diff('second', run_start, run_end) / 86400.0))
                       OVER (PARTITION BY stage ORDER BY run_end
                             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS mean_log_days
            FROM spells WHERE run_end IS NOT NULL
        ),
        run_start AS (SELECT opportunity_id, run_id, run_start FROM runs),
        j AS (
            SELECT s._sid, s.as_of, h.*, r.run_start
            FROM {SPINE} s JOIN h ON h.opportunity_id = s.entity_id AND h.entered_at < s.as_of
            JOIN run_start r USING (opportunity_id, run_id)
        ),
        state AS (
            SELECT _sid, any_value(as_of) AS as_of,
                   arg_max(stage, seq) AS stage,
                   arg_max(stage_order, seq) AS stage_order,
                   date_diff('second', arg_max(run_start, seq), any_value(as_of)) / 86400.0 AS days_in_stage,
                   count(*) FILTER (prev_stage IS NOT NULL AND stage <> prev_stage) AS n_stage_changes,
                   count(*) FILTER (stage_order < prev_order) AS n_backward_moves,
                   count(*) FILTER (expected_close_date > prev_ecd) AS n_close_date_pushes,
                   date_diff('second', any_value(as_of), arg_max(expected_close_date, seq)) / 86400.0
                       AS days_to_expected_close,
                   arg_max(amount, seq) AS amount_now,
                   arg_min(amount, seq) AS amount_first,
                   count(*) FILTER (amount < prev_amount) AS n_amount_decreases
            FROM j GROUP BY _sid
        )
        SELECT st.*, t.mean_log_days
        FROM state st ASOF LEFT JOIN typical t ON st.stage = t.stage AND st.as_of > t.completed_at
    """
    state = src.df(sql)
    spine = src.df(
        f"""SELECT s._sid, o.amount AS final_amount
            FROM {SPINE} s JOIN opportunities o ON o.opportunity_id = s.entity_id ORDER BY s._sid"""
    )
    out = spine.merge(state, on="_sid", how="left").set_index("_sid")
    result = pd.DataFrame(index=out.index)
    result["stage"] = out["stage"].astype(object).where(out["stage"].notna(), None)
    result["stage_order"] = out["stage_order"].astype("float64")
    result["days_in_stage"] = out["days_in_stage"].astype("float64")
    typical = np.expm1(out["mean_log_days"].astype("float64"))  # geometric-mean days of completed spells
    result["stage_time_ratio"] = (result["days_in_stage"] + 1.0) / (typical + 1.0)
    for col in ("n_stage_changes", "n_backward_moves", "n_close_date_pushes", "n_amount_decreases"):
        result[col] = out[col].astype("float64")
    result["days_to_expected_close"] = out["days_to_expected_close"].astype("float64")
    # A source that records no stage history at all keeps its stored amount (assumed constant, as
    # Maven's list prices); otherwise a deal without history before as_of has no known size yet:
    # its stored amount is final-state.
    history_rows = src.con.execute("SELECT count(*) FROM stage_history").fetchone()
    if history_rows is not None and history_rows[0] == 0:
        result["amount"] = out["final_amount"].astype("float64")
    else:
        result["amount"] = out["amount_now"].astype("float64")
    first = out["amount_first"].astype("float64")
    result["amount_change_ratio"] = (out["amount_now"].astype("float64") / first.where(first > 0)).astype(
        "float64"
    )
    return result[[f.name for f in STAGE_FEATURES]]
