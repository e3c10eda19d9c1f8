"""Each lead's (or prospect's) last done activity before a cut-off from codes kept once: the grouping's."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

from forecast.tracking import lead_contacts
from forecast.tracking.activity_index import activity_index
from forecast.tracking.process import last_contacts

prospects_module = importlib.import_module("forecast.tracking.prospects")  # the package shadows it
_ACTIVITY_FIELDS = {
    "direction": "outbound",
    "type": "call",
    "rep_id": "R1",
    "email_replied": None,
    "outcome": "completed",
    "duration_seconds": 60.0,
}
"""The other columns the activity index reads."""


def _grouped(acts: pd.DataFrame, cutoff: pd.Timestamp) -> pd.Series:
    """The grouping the index replaces (the leads in sorted order, as the index is looked up by id)."""
    contacts = acts.loc[acts["done"] & (acts["occurred_at"] < cutoff), ["lead_id", "occurred_at"]]
    return contacts.groupby("lead_id", sort=False)["occurred_at"].max().sort_index()


@pytest.fixture
def acts() -> pd.DataFrame:
    """Activities with gaps: no lead, not done (as pandas' missing too), no time; ties; leads never done."""
    rng = np.random.default_rng(11)
    n = 4000
    times = pd.Series(pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 200 * 86400, n), unit="s"))
    times[rng.random(n) < 0.02] = None  # NaT
    times[:50] = times[50:100].to_numpy()  # tied times
    lead = pd.Series([f"L{i}" for i in rng.integers(0, 600, n)], dtype=object)
    lead[rng.random(n) < 0.03] = None
    lead[:5] = "L-never-done"
    done = pd.array(rng.random(n) < 0.85, dtype="boolean")
    done[:5] = False
    done[rng.random(n) < 0.02] = pd.NA
    return pd.DataFrame({"lead_id": lead, "occurred_at": times, "done": done})


def test_the_last_contacts_are_the_grouped_maxima_at_every_cutoff(acts: pd.DataFrame) -> None:
    index = lead_contacts.contact_index(acts)
    assert index is not None
    for cutoff in ["2024-06-01", "2025-01-01 00:00:01", "2025-03-10 12:00", "2025-07-20", "2026-01-01"]:
        when = pd.Timestamp(cutoff)
        got, expected = index.last_before(when).sort_index(), _grouped(acts, when)
        pd.testing.assert_series_equal(got, expected, check_index_type=False)
        assert "L-never-done" not in got.index
    assert len(index.last_before(pd.Timestamp("2026-01-01"))) > 500
    micro = acts.assign(occurred_at=acts["occurred_at"].astype("datetime64[us]"))
    when = pd.Timestamp("2025-03-10 12:00:00.0000005")
    got = lead_contacts.contact_index(micro).last_before(when).sort_index()  # type: ignore[union-attr]
    pd.testing.assert_series_equal(got, _grouped(micro, when), check_index_type=False)


def test_times_with_a_zone_are_grouped_in_pandas(acts: pd.DataFrame) -> None:
    zoned = acts.assign(occurred_at=acts["occurred_at"].dt.tz_localize("UTC"))
    assert lead_contacts.contact_index(zoned) is None
    when = pd.Timestamp("2025-03-10", tz="UTC")
    pd.testing.assert_series_equal(last_contacts(zoned, when).sort_index(), _grouped(zoned, when))


def test_the_prospects_last_contacts_are_the_grouped_maxima_by_deal_else_lead(acts: pd.DataFrame) -> None:
    rng = np.random.default_rng(12)
    deal = pd.Series([f"O{i}" for i in rng.integers(0, 200, len(acts))], dtype=object)
    deal[rng.random(len(acts)) < 0.6] = None
    with_deals = acts.assign(opportunity_id=deal)
    index = lead_contacts.prospect_index(with_deals)
    assert index is not None
    for cutoff in ["2024-06-01", "2025-03-10 12:00", "2026-01-01"]:
        when = pd.Timestamp(cutoff)
        before = with_deals[with_deals["done"].fillna(False) & (with_deals["occurred_at"] < when)]
        entity = np.where(before["opportunity_id"].notna(), before["opportunity_id"], before["lead_id"])
        expected = before.assign(entity=entity).groupby("entity")["occurred_at"].max().sort_index()
        got = index.last_before(when).sort_index()
        pd.testing.assert_series_equal(got, expected, check_index_type=False)
    assert got.index.str.startswith("O").any() and got.index.str.startswith("L").any()  # (the last cutoff)


def test_the_prospects_pandas_grouping_is_the_index_s_where_it_does_not_apply(
    acts: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pandas fallback (for times with a zone) groups the same rows as the index, by deal else lead.

    Forced on naive times here, so that both read the same rows.
    """
    rng = np.random.default_rng(13)
    deal = pd.Series([f"O{i}" for i in rng.integers(0, 200, len(acts))], dtype=object)
    deal[rng.random(len(acts)) < 0.6] = None
    frame = acts.assign(opportunity_id=deal, type="call", scheduled_for=pd.NaT)
    when = pd.Timestamp("2025-05-01")
    ids = pd.Series([*sorted(set(deal.dropna()) | set(acts["lead_id"].dropna())), "O-unknown", None])
    indexed = prospects_module._last_contact_of(frame, when, ids)
    monkeypatch.setattr(prospects_module, "prospect_index", lambda acts: None)
    grouped = prospects_module._last_contact_of(frame, when, ids)
    assert indexed.notna().sum() > 300
    pd.testing.assert_series_equal(indexed, grouped, check_index_type=False)


def test_arrow_timestamps_are_grouped_in_pandas(acts: pd.DataFrame) -> None:
    """Arrow's timestamps keep their type through the pandas grouping: no index is built for them."""
    arrow = acts.assign(occurred_at=acts["occurred_at"].astype("timestamp[ns][pyarrow]"))
    assert lead_contacts.contact_index(arrow) is None
    assert activity_index(arrow.assign(**_ACTIVITY_FIELDS)) is None
    assert activity_index(acts.assign(**_ACTIVITY_FIELDS)) is not None


@pytest.mark.parametrize("unit", ["ns", "us"])
def test_the_looked_up_last_contacts_are_the_map_of_them(acts: pd.DataFrame, unit: str) -> None:
    """Keys known, unknown, missing, repeated and never done get what ``keys.map`` gives them."""
    frame = acts.assign(occurred_at=acts["occurred_at"].astype(f"datetime64[{unit}]"))
    index = lead_contacts.contact_index(frame)
    assert index is not None
    keys = pd.Series(
        ["L1", "L-unknown", None, "L-never-done", "L1", *[f"L{i}" for i in range(600)]],
        index=np.arange(605) * 3,
        name="lead_id",
        dtype=object,
    )
    for cutoff in ["2024-06-01", "2025-03-10 12:00", "2026-01-01"]:
        when = pd.Timestamp(cutoff)
        got = index.looked_up(index.latest_before(when), keys)
        expected = keys.map(index.last_before(when))
        pd.testing.assert_series_equal(got, expected)
        assert got.dtype == frame["occurred_at"].dtype and got.iloc[1:4].isna().all()
    assert got.notna().sum() > 500


def test_no_activity_with_a_key_looks_up_nothing() -> None:
    """A CRM without activities (or none on a lead): every key gets ``NaT``, as the map gives it."""
    empty = pd.DataFrame(
        {
            "lead_id": pd.Series([], dtype=object),
            "occurred_at": pd.Series([], dtype="datetime64[ns]"),
            "done": pd.Series([], dtype=bool),
        }
    )
    index = lead_contacts.contact_index(empty)
    assert index is not None and len(index.leads) == 0
    keys = pd.Series(["L1", None, "L2"], name="lead_id", dtype=object)
    when = pd.Timestamp("2025-01-01")
    got = index.looked_up(index.latest_before(when), keys)
    pd.testing.assert_series_equal(got, keys.map(index.last_before(when)).astype("datetime64[ns]"))
    assert got.isna().all()


def _events(unit: str) -> pd.DataFrame:
    """Engagement events with gaps: no lead, no time, no type, other types; tied times; repeated leads."""
    rng = np.random.default_rng(21)
    n = 5000
    times = pd.Series(pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 200 * 86400, n), unit="s"))
    times[rng.random(n) < 0.02] = None
    times[:60] = times[60:120].to_numpy()
    lead = pd.Series([f"L{i}" for i in rng.integers(0, 500, n)], dtype=object)
    lead[rng.random(n) < 0.03] = None
    kinds = ["web_visit", "page_view", "pricing_page_view", "email_click", "social_interaction", "form_fill"]
    kind = pd.Series(rng.choice(kinds, n), dtype=object)
    kind[rng.random(n) < 0.02] = None
    return pd.DataFrame({"lead_id": lead, "type": kind, "occurred_at": times.astype(f"datetime64[{unit}]")})


@pytest.mark.parametrize("unit", ["ns", "us"])
def test_the_behaviour_from_codes_is_the_pandas_grouping_s(unit: str) -> None:
    """Counts of the 30 days before each cut-off and the last event before it, for known, unknown,
    missing and repeated leads: the codes' figures equal the grouping's, value and type."""
    events = _events(unit)
    leads = pd.Series(
        ["L1", "L-unknown", None, "L1", *[f"L{i}" for i in range(500)]], index=np.arange(504) * 2
    )
    assert lead_contacts.engagement_index(events) is not None
    for cutoff in ["2024-06-01", "2025-02-01", "2025-03-10 12:00:00.5", "2025-07-20", "2026-01-01"]:
        when = pd.Timestamp(cutoff)
        fast = prospects_module._behaviour(events, when, leads)
        slow = prospects_module._behaviour_grouped(events, when, leads)
        assert list(fast) == list(slow) == [*(n for n, _ in prospects_module.BEHAVIOUR), "last_engagement"]
        for name in fast:
            pd.testing.assert_series_equal(fast[name], slow[name], check_exact=True)
    # the last cut-off comes months after the last event: nothing within 30 days, a last event for most
    assert fast["web_visits_30d"].sum() == 0 and fast["last_engagement"].notna().sum() > 400
    mid = prospects_module._behaviour(events, pd.Timestamp("2025-03-10"), leads)
    assert mid["web_visits_30d"].sum() > 100 and mid["pricing_views_30d"].sum() > 50
    assert mid["last_engagement"].notna().sum() > 400 and mid["last_engagement"].iloc[1:3].isna().all()


def test_the_behaviour_counts_nothing_after_the_cut_off() -> None:
    """A past period's list is as it stood then: an event on or after its end neither counts nor is
    the last engagement."""
    events = pd.DataFrame(
        {
            "lead_id": ["L1", "L1", "L1", "L1"],
            "type": ["web_visit", "web_visit", "pricing_page_view", "web_visit"],
            "occurred_at": pd.to_datetime(["2025-01-10", "2025-02-27", "2025-03-01", "2025-03-05"]),
        }
    )
    leads = pd.Series(["L1"])
    for behaviour in (prospects_module._behaviour, prospects_module._behaviour_grouped):
        got = behaviour(events, pd.Timestamp("2025-03-01"), leads)
        assert got["web_visits_30d"].tolist() == [1]  # 27 February; not 10 January, not 5 March
        assert got["pricing_views_30d"].tolist() == [0]  # at the cut-off itself: after it
        assert got["last_engagement"].tolist() == [pd.Timestamp("2025-02-27")]


def test_zoned_engagement_times_are_grouped_in_pandas() -> None:
    events = _events("ns")
    zoned = events.assign(occurred_at=events["occurred_at"].dt.tz_localize("UTC"))
    assert lead_contacts.engagement_index(zoned) is None
    got = prospects_module._behaviour(zoned, pd.Timestamp("2025-03-10", tz="UTC"), pd.Series(["L1", "L2"]))
    assert got["last_engagement"].dt.tz is not None and got["web_visits_30d"].dtype == np.int64
