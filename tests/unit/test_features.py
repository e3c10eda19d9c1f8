"""Example-based tests of the feature layer on tiny hand-made CRMs whose answers are worked out by hand."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
import pytest

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.schema import TABLES
from forecast.features.build import ID_COLUMN, Entity, FeatureTable, build_feature_table, feature_catalogue
from forecast.features.history import SHRINK_K
from forecast.features.snapshots import LabelConfig
from forecast.features.source import frames_source

Row = Mapping[str, object]
Tables = dict[str, pd.DataFrame]

AS_OF = pd.Timestamp("2024-06-01")
DATA_END = pd.Timestamp("2024-12-31")
DAY = pd.Timedelta(days=1)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def typed(table: str, rows: Sequence[Row]) -> pd.DataFrame:
    """A canonical frame of ``table`` from row dicts; missing columns are null, dtypes canonical."""
    out: dict[str, pd.Series] = {}
    for col in TABLES[table].columns:
        values = pd.Series([row.get(col.name) for row in rows], dtype=object)
        if col.kind == "timestamp":
            out[col.name] = pd.to_datetime(values).astype("datetime64[ns]")
        elif col.kind in ("int", "float"):
            out[col.name] = pd.to_numeric(values).astype("Int64" if col.kind == "int" else "float64")
        elif col.kind == "bool":
            out[col.name] = values.astype("boolean")
        else:
            out[col.name] = values.where(values.notna(), None)
    return pd.DataFrame(out)


def missing(value: object) -> bool:
    """Whether a feature value is missing (NaN or None)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def crm(
    *,
    leads: Sequence[Row] = (),
    opportunities: Sequence[Row] = (),
    stage_history: Sequence[Row] = (),
    activities: Sequence[Row] = (),
    engagement_events: Sequence[Row] = (),
) -> Tables:
    """A tiny canonical CRM: two reps, two accounts, and the given rows."""
    reps = [
        {
            "rep_id": "R1",
            "name": "Ana",
            "team": "T1",
            "region": "EU",
            "hired_at": "2023-01-01",
            "active": True,
        },
        {
            "rep_id": "R2",
            "name": "Ben",
            "team": "T2",
            "region": "US",
            "hired_at": "2023-01-01",
            "active": True,
        },
    ]
    accounts = [
        {"account_id": "A1", "name": "Acme", "industry": "software", "employees": 120, "country": "ES"},
        {"account_id": "A2", "name": "Globex", "industry": "retail", "employees": 40, "country": "FR"},
    ]
    return {
        "reps": typed("reps", reps),
        "accounts": typed("accounts", accounts),
        "leads": typed("leads", leads),
        "opportunities": typed("opportunities", opportunities),
        "stage_history": typed("stage_history", stage_history),
        "activities": typed("activities", activities),
        "engagement_events": typed("engagement_events", engagement_events),
    }


def lead(lead_id: str, created_at: str = "2024-05-01", **fields: object) -> dict[str, object]:
    """A lead row (working, rep R1, account A1) with overrides."""
    return {
        "lead_id": lead_id,
        "created_at": created_at,
        "source": "web_form",
        "channel": "inbound",
        "rep_id": "R1",
        "account_id": "A1",
        "title": "CTO",
        "status": "working",
        "status_changed_at": created_at,
        **fields,
    }


def deal(
    opportunity_id: str,
    created_at: str = "2024-05-01",
    closed_at: str | None = None,
    outcome: str = "open",
    **fields: object,
) -> dict[str, object]:
    """An opportunity row (rep R1, account A1, amount 1000) with overrides."""
    stage = {"won": "closed_won", "lost": "closed_lost"}.get(outcome, "proposal")
    return {
        "opportunity_id": opportunity_id,
        "account_id": "A1",
        "rep_id": "R1",
        "product": "pro",
        "created_at": created_at,
        "amount": 1000.0,
        "stage": stage,
        "closed_at": closed_at,
        "outcome": outcome,
        **fields,
    }


def activity(activity_id: str, occurred_at: pd.Timestamp | str, **fields: object) -> dict[str, object]:
    """A completed outbound call by R1 (link it with ``lead_id`` or ``opportunity_id``)."""
    return {
        "activity_id": activity_id,
        "occurred_at": occurred_at,
        "type": "call",
        "direction": "outbound",
        "rep_id": "R1",
        "outcome": "completed",
        "duration_seconds": 600.0,
        **fields,
    }


def features(
    tables: Tables,
    entity: Entity,
    dates: Sequence[pd.Timestamp] = (AS_OF,),
    *,
    data_end: pd.Timestamp = DATA_END,
    labels: LabelConfig | None = None,
) -> FeatureTable:
    """The feature table of ``entity`` over ``tables``."""
    with frames_source(tables) as src:
        return build_feature_table(src, entity, list(dates), labels, data_end=data_end)


def rows(
    tables: Tables,
    entity: Entity,
    as_of: pd.Timestamp = AS_OF,
    *,
    data_end: pd.Timestamp = DATA_END,
    labels: LabelConfig | None = None,
) -> pd.DataFrame:
    """The snapshot rows at ``as_of``, indexed by entity id."""
    table = features(tables, entity, [as_of], data_end=data_end, labels=labels)
    return table.frame.set_index(ID_COLUMN[entity])


# ----------------------------------------------------------------------------------------------
# rep and account track record
# ----------------------------------------------------------------------------------------------


def _rep_world(late_close: str, late_outcome: str) -> Tables:
    """R1 won twice and lost once before AS_OF; R2 won once and lost once; one R1 deal closes near AS_OF."""
    return crm(
        opportunities=[
            deal("W1", "2024-01-01", "2024-02-01", "won"),  # 31 days
            deal("W2", "2024-03-01", "2024-05-31", "won"),  # 91 days, closed one day before AS_OF
            deal("L1", "2024-01-15", "2024-04-01", "lost"),
            deal("X", "2024-04-01", late_close, late_outcome),  # closes near AS_OF
            deal("W3", "2024-01-01", "2024-03-01", "won", rep_id="R2"),
            deal("L2", "2024-01-01", "2024-03-15", "lost", rep_id="R2"),
            deal("T", "2024-05-01"),  # the snapshot of interest, open
            deal("F", "2024-06-10", rep_id="R1"),  # created after AS_OF
        ]
    )


@pytest.mark.parametrize("late_outcome", ["won", "lost"])
def test_rep_win_rate_counts_only_deals_closed_before_as_of_and_is_shrunk(late_outcome: str) -> None:
    t = rows(_rep_world("2024-06-02", late_outcome), "opportunity").loc["T"]
    overall = 3 / 5  # W1, W2, W3 won; L1, L2 lost; X closes a day after AS_OF
    assert t["rep_win_rate_prior"] == pytest.approx((2 + SHRINK_K * overall) / (3 + SHRINK_K), rel=1e-12)
    assert t["rep_deals_closed_prior"] == 3
    assert t["rep_cycle_days_prior"] == pytest.approx((31 + 91) / 2)
    assert t["rep_open_deals"] == 2  # T and X (X closes after AS_OF); F does not exist yet


def test_rep_win_rate_counts_a_deal_closed_one_day_before() -> None:
    t = rows(_rep_world("2024-05-31", "lost"), "opportunity").loc["T"]
    overall = 3 / 6
    assert t["rep_win_rate_prior"] == pytest.approx((2 + SHRINK_K * overall) / (4 + SHRINK_K), rel=1e-12)
    assert t["rep_deals_closed_prior"] == 4
    assert t["rep_open_deals"] == 1


def test_a_rep_without_history_gets_the_overall_rate() -> None:
    tables = _rep_world("2024-06-02", "won")
    tables["opportunities"].loc[tables["opportunities"]["opportunity_id"] == "T", "rep_id"] = "R3"
    t = rows(tables, "opportunity").loc["T"]
    assert t["rep_win_rate_prior"] == pytest.approx(3 / 5)
    assert t["rep_deals_closed_prior"] == 0
    assert missing(t["rep_cycle_days_prior"])


def test_rep_lead_conversion_is_shrunk_and_point_in_time() -> None:
    tables = crm(
        leads=[
            lead(
                "C1",
                "2024-01-01",
                status="converted",
                converted_at="2024-02-01",
                status_changed_at="2024-02-01",
            ),
            lead("D1", "2024-01-01", status="disqualified", status_changed_at="2024-03-01"),
            lead("D2", "2024-01-01", status="disqualified", status_changed_at="2024-03-01", rep_id="R2"),
            lead(
                "C2",
                "2024-01-01",
                status="converted",
                converted_at="2024-06-02",
                status_changed_at="2024-06-02",
            ),
            lead("T", "2024-05-01"),
        ]
    )
    t = rows(tables, "lead").loc["T"]
    overall = 1 / 3  # C1 converted; D1, D2 disqualified; C2 converts after AS_OF
    assert t["rep_lead_conversion_prior"] == pytest.approx((1 + SHRINK_K * overall) / (2 + SHRINK_K))


def _account_world() -> Tables:
    """Deals with account A1 before, around and after AS_OF, plus one with A2."""
    return crm(
        leads=[lead("LA", "2024-05-01")],
        opportunities=[
            deal("P1", "2024-01-10", "2024-03-01", "won", amount=5000.0),
            deal("P2", "2024-02-01", "2024-04-01", "lost"),
            deal("P3", "2024-05-01"),  # open at AS_OF
            deal("P4", "2024-03-01", "2024-06-05", "won", amount=7000.0),  # won after AS_OF
            deal("P5", "2024-06-10", "2024-06-20", "won"),  # created after AS_OF
            deal("P6", "2024-01-01", "2024-02-01", "won", account_id="A2"),
            deal("T", "2024-05-15"),
        ],
    )


def test_account_history_ignores_later_deals_and_the_deal_itself() -> None:
    t = rows(_account_world(), "opportunity").loc["T"]
    assert t["acct_prior_deals"] == 4  # P1, P2, P3, P4 (created before AS_OF); not P5, P6, T
    assert t["acct_prior_won"] == 1  # P1; P4 wins after AS_OF
    assert t["acct_prior_lost"] == 1
    assert t["acct_prior_won_amount"] == 5000.0


def test_account_history_of_a_lead_counts_every_earlier_deal() -> None:
    t = rows(_account_world(), "lead").loc["LA"]
    assert t["acct_prior_deals"] == 5  # P1, P2, P3, P4, T
    assert (t["acct_prior_won"], t["acct_prior_lost"], t["acct_prior_won_amount"]) == (1, 1, 5000.0)


def test_account_history_is_zero_without_an_account() -> None:
    tables = _account_world()
    tables["opportunities"].loc[tables["opportunities"]["opportunity_id"] == "T", "account_id"] = None
    t = rows(tables, "opportunity").loc["T"]
    assert t[["acct_prior_deals", "acct_prior_won", "acct_prior_lost", "acct_prior_won_amount"]].eq(0).all()


# ----------------------------------------------------------------------------------------------
# stage history
# ----------------------------------------------------------------------------------------------


def _stage_world() -> Tables:
    """One deal, won on 2024-07-01, whose history moves back once, moves its close date and changes size."""
    history = [
        ("2024-01-01", "qualification", 100.0, "2024-03-01"),
        ("2024-01-15", "discovery", 100.0, "2024-03-15"),  # push
        ("2024-02-01", "qualification", 80.0, "2024-03-15"),  # back, cut
        ("2024-02-10", "qualification", 80.0, "2024-04-01"),  # same stage, push
        ("2024-03-01", "proposal", 120.0, "2024-03-25"),  # pulled in: not a push
        ("2024-06-15", "negotiation", 500.0, "2024-09-01"),  # after AS_OF
        ("2024-07-01", "closed_won", 999.0, "2024-07-01"),
    ]
    return crm(
        opportunities=[
            deal("D", "2024-01-01", "2024-07-01", "won", amount=999.0, expected_close_date="2024-07-01")
        ],
        stage_history=[
            {"opportunity_id": "D", "entered_at": at, "stage": s, "amount": a, "expected_close_date": e}
            for at, s, a, e in history
        ],
    )


def _order(stage: str) -> float:
    """The pipeline position of ``stage``."""
    return float(next(s.order for s in DEFAULT_PIPELINE.stages if s.name == stage))


def test_stage_state_comes_from_the_history_not_the_final_fields() -> None:
    d = rows(_stage_world(), "opportunity", pd.Timestamp("2024-04-01")).loc["D"]
    assert d["stage"] == "proposal"  # not closed_won
    assert d["stage_order"] == _order("proposal")
    assert d["days_in_stage"] == 31  # since 2024-03-01
    assert d["n_stage_changes"] == 3
    assert d["n_backward_moves"] == 1
    assert d["n_close_date_pushes"] == 2
    assert d["days_to_expected_close"] == -7  # overdue since 2024-03-25
    assert d["amount"] == 120.0  # not 999
    assert d["amount_change_ratio"] == pytest.approx(1.2)
    assert d["n_amount_decreases"] == 1
    assert missing(d["stage_time_ratio"])  # no proposal spell had ended by then


def test_days_in_stage_counts_from_the_start_of_the_current_spell() -> None:
    d = rows(_stage_world(), "opportunity", pd.Timestamp("2024-02-20")).loc["D"]
    assert d["stage"] == "qualification"
    assert d["days_in_stage"] == 19  # since 2024-02-01, not 2024-02-10
    assert d["days_to_expected_close"] == 41  # 2024-04-01
    # the only qualification spell over by then lasted 14 days (the second one ends 2024-03-01)
    assert d["stage_time_ratio"] == pytest.approx((19 + 1) / (14 + 1))


def test_a_stage_change_exactly_at_as_of_is_not_seen() -> None:
    d = rows(_stage_world(), "opportunity", pd.Timestamp("2024-03-01")).loc["D"]
    assert d["stage"] == "qualification"
    assert d["n_stage_changes"] == 2


# ----------------------------------------------------------------------------------------------
# snapshots and labels
# ----------------------------------------------------------------------------------------------


def _lead_world() -> Tables:
    """Leads settled before, at and after AS_OF (2024-06-01)."""
    conv = {"status": "converted"}
    return crm(
        leads=[
            lead("conv_before", converted_at="2024-05-20", status_changed_at="2024-05-20", **conv),
            lead("disq_before", status="disqualified", status_changed_at="2024-05-25"),
            lead("conv_after", converted_at="2024-06-10", status_changed_at="2024-06-10", **conv),
            lead("conv_at", converted_at="2024-06-01", status_changed_at="2024-06-01", **conv),
            lead(
                "conv_late", "2024-01-01", converted_at="2024-09-15", status_changed_at="2024-09-15", **conv
            ),
            lead("disq_after", status="disqualified", status_changed_at="2024-06-10"),
            lead("working"),
            lead("created_at", "2024-06-01"),
            lead("created_after", "2024-06-05"),
        ]
    )


def test_lead_spine_holds_leads_open_at_as_of() -> None:
    frame = rows(_lead_world(), "lead")
    assert sorted(frame.index) == ["conv_after", "conv_at", "conv_late", "disq_after", "working"]


def test_lead_labels_convert_within_the_horizon() -> None:
    frame = rows(_lead_world(), "lead")
    assert frame["label_converted"].to_dict() == {
        "conv_after": True,
        "conv_at": True,
        "conv_late": False,  # 106 days later, beyond 90
        "disq_after": False,
        "working": False,
    }
    assert not frame["label_censored"].any()  # the data runs past the horizon
    short = rows(_lead_world(), "lead", labels=LabelConfig(lead_horizon_days=120))
    assert bool(short.loc["conv_late", "label_converted"])


def test_lead_labels_are_censored_when_the_data_ends_before_the_horizon() -> None:
    frame = rows(_lead_world(), "lead", data_end=pd.Timestamp("2024-07-01"))
    # The horizon passes the data's end: every lead of that as_of is censored, including those
    # whose outcome came early (keeping only them would bias the label towards quick outcomes).
    assert frame["label_censored"].to_dict() == {
        "conv_after": True,
        "conv_at": True,
        "conv_late": True,
        "disq_after": True,
        "working": True,
    }
    at_end = rows(_lead_world(), "lead", data_end=AS_OF + 90 * DAY)
    assert not at_end["label_censored"].any()  # the horizon just fits


def _deal_world() -> Tables:
    """Deals open at AS_OF with every kind of future, and one closed before it."""
    return crm(
        opportunities=[
            deal("open", "2024-05-01"),
            deal("won_soon", "2024-05-01", "2024-07-01", "won"),
            deal("won_late", "2024-05-01", "2024-10-01", "won"),
            deal("lost_soon", "2024-05-01", "2024-06-11", "lost"),
            deal("lost_late", "2024-05-01", "2024-10-01", "lost"),
            deal("closed_at", "2024-05-01", "2024-06-01", "won"),
            deal("closed_before", "2024-05-01", "2024-05-31", "won"),
            deal("created_at", "2024-06-01"),
        ]
    )


def test_deal_spine_and_labels() -> None:
    frame = rows(_deal_world(), "opportunity")
    expected = pd.DataFrame(
        {
            "label_won": [pd.NA, True, True, False, False, True],
            "label_won_censored": [True, False, False, False, False, False],
            "label_won_within_h": [False, True, False, False, False, True],
            "label_lost_within_h": [False, False, False, True, False, False],
            "label_closed_within_h": [False, True, False, True, False, True],
            "label_within_h_censored": [False] * 6,
            "label_days_to_close": [213.0, 30.0, 122.0, 10.0, 122.0, 0.0],
            "label_close_observed": [False, True, True, True, True, True],
        },
        index=pd.Index(["open", "won_soon", "won_late", "lost_soon", "lost_late", "closed_at"]),
    ).astype({"label_won": "boolean"})
    got = frame.loc[expected.index, list(expected.columns)]
    pd.testing.assert_frame_equal(got, expected, check_names=False)
    assert sorted(frame.index) == sorted(expected.index)


def test_deal_labels_are_censored_when_the_data_ends_before_the_horizon() -> None:
    end = pd.Timestamp("2024-07-15")
    world = _deal_world()
    world["opportunities"] = world["opportunities"][world["opportunities"]["closed_at"].fillna(end) <= end]
    frame = rows(world, "opportunity", data_end=end)
    # every horizon passes the data's end: censored whatever happened before it
    assert frame["label_within_h_censored"].to_dict() == {
        "open": True,
        "won_soon": True,
        "lost_soon": True,
        "closed_at": True,
    }
    assert frame.loc["open", "label_days_to_close"] == 44.0  # to the data's end
    assert (frame["label_followup_days"] == 44.0).all()
    assert frame.loc["won_soon", "label_close_observed"]
    assert not frame.loc["open", "label_close_observed"]


def test_deal_churn_is_lost_or_silent_within_the_horizon() -> None:
    """Churn = lost within H, or still open at as_of + H with no touch in [as_of, as_of + H)."""
    world = _deal_world()
    later = [
        activity("t_open", "2024-06-20", opportunity_id="open"),  # touched within 30 days
        activity("t_plan", "2024-06-10", opportunity_id="won_late", outcome="scheduled"),  # not a touch
        activity("t_late", "2024-07-15", opportunity_id="lost_late"),  # after the horizon
    ]
    world["activities"] = crm(activities=later)["activities"]
    frame = rows(world, "opportunity", labels=LabelConfig(30, 30))
    assert frame["label_churn"].to_dict() == {
        "open": False,  # touched on 2024-06-20
        "won_soon": True,  # closes after 30 days and nobody touched it: gone silent
        "won_late": True,  # a planned action is not a touch
        "lost_soon": True,  # lost within 30 days
        "lost_late": True,  # silent for the 30 days (the touch comes later)
        "closed_at": False,  # won at as_of
    }
    assert not frame["label_churn_censored"].any()
    censored = rows(world, "opportunity", labels=LabelConfig(30, 30), data_end=pd.Timestamp("2024-06-20"))
    assert censored["label_churn_censored"].all()  # by date, whatever the outcome


def test_churn_without_any_activity_in_the_source_is_loss_only() -> None:
    """A source without activities (Maven) cannot show silence: churn is lost only."""
    frame = rows(_deal_world(), "opportunity", labels=LabelConfig(30, 30))
    assert frame["label_churn"].to_dict() == frame["label_lost_within_h"].to_dict()


def test_lead_churn_is_disqualified_or_silent() -> None:
    world = _lead_world()
    world["activities"] = crm(
        activities=[
            activity("a1", "2024-06-05", lead_id="working"),
            activity("a2", "2024-05-01", lead_id="conv_late"),
        ]
    )["activities"]
    frame = rows(world, "lead", labels=LabelConfig(30, 30))
    assert frame["label_disqualified_within_h"].to_dict() == {
        "conv_after": False,
        "conv_at": False,
        "conv_late": False,
        "disq_after": True,
        "working": False,
    }
    assert frame["label_churn"].to_dict() == {
        "conv_after": False,  # converts within 30 days
        "conv_at": False,
        "conv_late": True,  # open and untouched for 30 days
        "disq_after": True,
        "working": False,  # touched on 2024-06-05
    }
    assert (frame["label_churn_censored"] == frame["label_censored"]).all()


def test_several_dates_give_one_row_per_entity_and_date() -> None:
    dates = [pd.Timestamp("2024-05-15"), AS_OF, pd.Timestamp("2024-06-20")]
    frame = features(_deal_world(), "opportunity", dates).frame
    per_date = frame.groupby("as_of")["opportunity_id"].apply(sorted).to_dict()
    assert per_date[pd.Timestamp("2024-05-15")] == sorted(
        ["open", "won_soon", "won_late", "lost_soon", "lost_late", "closed_at", "closed_before"]
    )
    assert per_date[pd.Timestamp("2024-06-20")] == sorted(
        ["open", "won_soon", "won_late", "lost_late", "created_at"]
    )
    assert not frame.duplicated(["opportunity_id", "as_of"]).any()


# ----------------------------------------------------------------------------------------------
# activity and engagement windows
# ----------------------------------------------------------------------------------------------


def _activity_world() -> Tables:
    """Calls and a planned meeting for lead T around AS_OF; lead Q only has a past plan."""
    at = AS_OF
    return crm(
        leads=[lead("T", "2024-01-01"), lead("Q", "2024-01-01")],
        activities=[
            activity("c5", at - 5 * DAY, lead_id="T"),
            activity("c40", at - 40 * DAY, lead_id="T", outcome="no_answer", duration_seconds=30.0),
            activity("c100", at - 100 * DAY, lead_id="T"),
            activity("c0", at, lead_id="T"),
            activity("c_after", at + 2 * DAY, lead_id="T", scheduled_for=at + 3 * DAY),
            activity("in3", at - 3 * DAY, lead_id="T", type="email", direction="inbound"),
            activity(
                "plan",
                at - 2 * DAY,
                lead_id="T",
                type="meeting",
                outcome="scheduled",
                scheduled_for=at + 2.5 * DAY,
            ),
            activity("task", at - 1 * DAY, lead_id="T", type="task", scheduled_for=at - 0.5 * DAY),
            activity("old_plan", at - 10 * DAY, lead_id="Q", type="task", scheduled_for=at - 1 * DAY),
        ],
    )


def test_activity_windows_count_only_touches_strictly_before_as_of() -> None:
    t = rows(_activity_world(), "lead").loc["T"]
    assert (t["act_call_7d"], t["act_call_30d"], t["act_call_90d"]) == (1, 1, 2)
    assert t["act_touches_total"] == 5  # c5, c40, c100, in3, task; not c0, c_after, the plan
    assert (t["act_meeting_7d"], t["act_meeting_90d"]) == (0, 0)  # a planned meeting is not a touch
    assert t["act_email_7d"] == 1
    assert t["act_inbound_30d"] == 1
    assert t["act_outbound_30d"] == 2  # c5, task
    assert t["act_days_since_last_touch"] == 1
    assert t["act_days_since_last_inbound"] == 3
    assert t["act_call_connect_rate_90d"] == 0.5
    assert t["act_call_minutes_90d"] == pytest.approx(10.5)
    assert t["act_call_avg_minutes_90d"] == pytest.approx(10.0)


def test_next_action_comes_from_an_earlier_activity_planning_a_later_step() -> None:
    frame = rows(_activity_world(), "lead")
    assert bool(frame.loc["T", "act_next_action_scheduled"])
    assert frame.loc["T", "act_days_to_next_action"] == pytest.approx(2.5)  # not c_after's plan
    assert not bool(frame.loc["Q", "act_next_action_scheduled"])  # its plan is past
    assert missing(frame.loc["Q", "act_days_to_next_action"])
    assert frame.loc["Q", "act_call_7d"] == 0
    assert frame.loc["Q", "act_days_since_last_inbound"] == pytest.approx(frame.loc["Q", "age_days"])


def _event(event_id: str, days_before: float, **fields: object) -> dict[str, object]:
    """A web visit by lead T of account A1, ``days_before`` AS_OF."""
    return {
        "event_id": event_id,
        "occurred_at": AS_OF - days_before * DAY,
        "lead_id": "T",
        "account_id": "A1",
        "type": "web_visit",
        "value": 60.0,
        **fields,
    }


def _engagement_world() -> Tables:
    """Five recent visits, three in the three weeks before, one older, one at and one after AS_OF."""
    ages = [1, 2, 3, 5, 6, 10, 20, 27, 40, 0, -2]
    events = [_event(f"e{i}", age) for i, age in enumerate(ages)]
    events.append(_event("other_lead", 4, lead_id="U", type="pricing_page_view"))
    events.append(_event("other_account", 4, lead_id="V", account_id="A2"))
    return crm(
        leads=[lead("T", "2024-01-01"), lead("U", "2024-01-01"), lead("Z", "2024-01-01")],
        opportunities=[deal("D", "2024-03-01", lead_id="T")],
        engagement_events=events,
    )


def test_engagement_trend_and_windows() -> None:
    frame = rows(_engagement_world(), "lead")
    t = frame.loc["T"]
    assert t["eng_events_7d"] == 5
    assert t["eng_events_total"] == 9
    assert t["eng_trend_7v21"] == pytest.approx((5 + 1) / (3 / 3 + 1))
    assert (t["eng_web_visit_7d"], t["eng_web_visit_30d"], t["eng_web_visit_90d"]) == (5, 8, 9)
    assert t["eng_site_minutes_30d"] == pytest.approx(8.0)
    assert t["eng_days_since_last"] == 1
    assert t["eng_days_since_pricing_view"] == pytest.approx(t["age_days"])  # never: its age
    z = frame.loc["Z"]
    assert (z["eng_events_total"], z["eng_trend_7v21"]) == (0, 1.0)  # no events: flat trend
    assert z["eng_days_since_last"] == pytest.approx(z["age_days"])


def test_deal_engagement_sees_its_lead_and_its_account_once_each() -> None:
    d = rows(_engagement_world(), "opportunity").loc["D"]
    assert d["eng_events_total"] == 10  # T's nine + U's pricing view at A1; not V's at A2
    assert d["eng_pricing_page_view_7d"] == 1
    assert d["eng_days_since_pricing_view"] == 4


# ----------------------------------------------------------------------------------------------
# the catalogue
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", ["lead", "opportunity"])
def test_catalogue_matches_the_frame(entity: Entity) -> None:
    world = _deal_world() if entity == "opportunity" else _lead_world()
    table = features(world, entity)
    labels = [c for c in table.frame.columns if c.startswith("label_")]
    assert table.labels == labels
    assert list(table.frame.columns) == [
        ID_COLUMN[entity],
        "as_of",
        *(f.name for f in table.features),
        *labels,
    ]
    assert table.features == feature_catalogue(entity)
    names = [f.name for f in table.features]
    assert len(names) == len(set(names))
    for f in table.features:
        assert f.description.strip(), f.name
        assert f.family in {"activity", "engagement", "stage", "rep", "account", "profile", "origin"}
        assert f.kind in {"numeric", "categorical", "boolean"}
        column = table.frame[f.name]
        if f.kind == "numeric":
            assert column.dtype == "float64", f.name
        elif f.kind == "boolean":
            assert column.dtype == bool, f.name
    assert [c["name"] for c in table.catalogue()] == names


def test_profile_features_are_known_at_creation() -> None:
    frame = rows(_deal_world(), "opportunity")
    assert frame.loc["open", "age_days"] == 31
    assert frame.loc["open", "team"] == "T1"
    assert frame.loc["open", "industry"] == "software"
    leads = rows(_lead_world(), "lead")
    assert leads.loc["working", "title_seniority"] == "c_level"
    assert leads.loc["working", "employees"] == 120


# ----------------------------------------------------------------------------------------------
# the in-memory source
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", ["lead", "opportunity"])
def test_frames_source_keeps_the_canonical_type_of_an_all_null_column(entity: Entity) -> None:
    """A canonical frame whose string column is empty or entirely null (no lead has a title, no
    activity is linked to a deal) is valid data and must build like any other."""
    tables = crm(
        leads=[lead("L", "2024-01-01", title=None)],
        opportunities=[deal("D", "2024-03-01", lead_id="L")],
        activities=[activity("a", "2024-05-01", lead_id="L")],
    )
    with frames_source(tables) as src:
        frame = build_feature_table(src, entity, [AS_OF], data_end=DATA_END).frame
    assert len(frame) == 1


def test_a_disqualified_lead_without_a_date_is_left_out_and_labels_stay_boolean() -> None:
    """Salesforce exports carry no disqualification date: such a lead cannot be placed in time."""
    tables = crm(
        leads=[
            lead("undated", "2024-01-01", status="disqualified", status_changed_at=None),
            lead("open", "2024-01-01"),
        ]
    )
    late = DATA_END - pd.Timedelta(days=10)  # the horizon passes the data's end: censoring applies
    frame = rows(tables, "lead", late)
    assert list(frame.index) == ["open"]
    assert frame["label_censored"].dtype == bool and bool(frame.loc["open", "label_censored"])
