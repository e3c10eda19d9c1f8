"""The process report and the stage table from numpy columns: the per-group figures, to the bit.

``_reference_process`` and ``_reference_stages`` are the reports as they were computed before
(every frame filtered per group, and per stage within it).
"""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.tracking.common import Row, add_rate, per_group, subset
from forecast.tracking.data import ALL_LABEL, TrackingData, days, group_values, prepare
from forecast.tracking.funnel import DAYS_PER_MONTH
from forecast.tracking.periods import Period, parse_period
from forecast.tracking.stats import NAN

pro = importlib.import_module("forecast.tracking.process")  # the package shadows it: a function
NO_CONTACT_DAYS, STUCK_QUANTILE, _CONTACT_COLUMNS, stays = (
    pro.NO_CONTACT_DAYS,
    pro.STUCK_QUANTILE,
    pro._CONTACT_COLUMNS,
    pro.stays,
)


def _reference_process(data: TrackingData, period: Period, by: str) -> pd.DataFrame:
    leads = data.leads
    cutoff = min(period.end, data.as_of)
    created = leads[period.contains(leads["created_at"])]
    qualified_mask = period.contains(leads["converted_at"]) | (
        (leads["status"] == "qualified") & period.contains(leads["status_changed_at"])
    )
    qualified = leads[qualified_mask]
    open_leads = leads[
        (leads["created_at"] < cutoff)
        & leads["status"].isin(["new", "working", "qualified"])
        & leads["converted_at"].isna()
    ]
    acts = data.activities  # the rows and columns read are taken, not a copy of every activity
    contacts = acts.loc[acts["done"] & (acts["occurred_at"] < cutoff), list(_CONTACT_COLUMNS)]
    last_contact = contacts.groupby("lead_id")["occurred_at"].max()
    last = pd.to_datetime(open_leads["lead_id"].map(last_contact)).fillna(open_leads["created_at"])
    silent = days(cutoff - last) > NO_CONTACT_DAYS
    open_leads = open_leads.assign(silent=silent)
    months = period.days / DAYS_PER_MONTH

    def compute(group: str) -> Row:
        row: Row = {}
        c = subset(created, by, group)
        row["prospects"] = len(c)
        row["inbound_prospects"] = int((c["channel"] == "inbound").sum())
        row["outbound_prospects"] = int((c["channel"] == "outbound").sum())
        q = subset(qualified, by, group)
        row["qualified"] = len(q)
        row["qualified_per_month"] = len(q) / months if months > 0 else NAN
        add_rate(row, "lead_conversion", int(c["converted_at"].notna().sum()), len(c))
        o = subset(open_leads, by, group)
        row["open_leads"] = len(o)
        add_rate(row, "open_leads_silent", int(o["silent"].sum()), len(o))
        return row

    return per_group(data, by, [created, qualified], compute)


def _reference_stages(data: TrackingData, period: Period, by: str) -> pd.DataFrame:
    all_stays = stays(data)
    if all_stays.empty:
        return pd.DataFrame()
    cutoff = min(period.end, data.as_of)
    done_before = all_stays[all_stays["left_at"] < cutoff]
    limits = done_before.groupby("stage")["days"].quantile(STUCK_QUANTILE)
    entered = all_stays[period.contains(all_stays["entered_at"])]
    ended = all_stays[period.contains(all_stays["left_at"])]
    current = all_stays[(all_stays["entered_at"] < cutoff) & ~(all_stays["left_at"] < cutoff)]
    current = current.assign(age=days(cutoff - current["entered_at"]))
    rows = []
    for group in [*group_values(data, by, entered), ALL_LABEL]:
        e, f, c = subset(entered, by, group), subset(ended, by, group), subset(current, by, group)
        for stage in data.pipeline.open_stages:
            es, fs, cs = e[e["stage"] == stage], f[f["stage"] == stage], c[c["stage"] == stage]
            row: Row = {by: group, "stage": stage, "entered": len(es)}
            advanced = int((es["result"] == "advanced").sum())
            lost = int((es["result"] == "lost").sum())
            row.update(advanced=advanced, lost=lost, still_open=int((es["result"] == "open").sum()))
            add_rate(row, "stage_conversion", advanced, advanced + lost)
            row["days_median"] = float(fs["days"].median()) if len(fs) else NAN
            row["days_mean"] = float(fs["days"].mean()) if len(fs) else NAN
            row["days_n"] = len(fs)
            limit = float(limits.get(stage, NAN))
            row["stuck_limit_days"] = limit
            row["in_stage"] = len(cs)
            stuck = int((cs["age"] > limit).sum()) if limit == limit else 0
            row["stuck"] = stuck
            add_rate(row, "stuck_share", stuck, len(cs) if limit == limit else 0)
            rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def data() -> TrackingData:
    crm = simulate_crm(SimulationConfig(n_leads=3000, seed=14, months=12))
    return prepare(crm.tables, DEFAULT_PIPELINE)


def _with_gaps(data: TrackingData) -> TrackingData:
    """Deals of an unknown rep and without a product, leads without a channel."""
    rng = np.random.default_rng(6)
    opps = data.opportunities.copy()
    opps.loc[rng.random(len(opps)) < 0.03, "rep"] = "R-unknown"
    if "product" in opps.columns:
        opps.loc[rng.random(len(opps)) < 0.05, "product"] = None
    leads = data.leads.copy()
    leads.loc[rng.random(len(leads)) < 0.05, "channel"] = None
    history = data.stage_history.copy()
    for column in ("rep", "product"):
        if column in history.columns:
            history.loc[rng.random(len(history)) < 0.03, column] = None
    return TrackingData(**{**data.__dict__, "opportunities": opps, "leads": leads, "stage_history": history})


@pytest.mark.parametrize("by", pro.STAGE_GROUPINGS)
def test_the_stage_table_equals_the_per_group_filters(data: TrackingData, by: str) -> None:
    for crm in (data, _with_gaps(data)):
        for name in ("quarter", "month"):
            period = parse_period(name, crm.as_of)
            new, old = pro.stage_table(crm, period, by), _reference_stages(crm, period, by)
            pd.testing.assert_frame_equal(new, old, check_exact=True)
            assert new["entered"].sum() > 0 and new["days_n"].sum() > 0 and new["in_stage"].sum() > 0


@pytest.mark.parametrize("by", pro.GROUPINGS)
def test_the_process_report_equals_the_per_group_filters(data: TrackingData, by: str) -> None:
    for crm in (data, _with_gaps(data)):
        for name in ("quarter", "month", "week"):
            period = parse_period(name, crm.as_of)
            new, old = pro.process(crm, period, by), _reference_process(crm, period, by)
            pd.testing.assert_frame_equal(new, old, check_exact=True)
            assert new["prospects"].iloc[-1] > 0
