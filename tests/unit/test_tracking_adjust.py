"""Mix-adjusted comparisons from one grouped count: the per-group figures, to the bit.

``_reference`` is :func:`forecast.tracking.adjust.compare` as it was computed before (a grouped
count per group); the insights built on it must not change either.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.tracking.adjust import PRIOR_TRIALS, STRATA, UNITS, _z_p, compare
from forecast.tracking.data import GROUPINGS, TrackingData, prepare
from forecast.tracking.periods import parse_period
from forecast.tracking.stats import NAN, two_proportion_test, wilson


def _reference(units: pd.DataFrame, by: str, strata: Sequence[str], metric: str) -> pd.DataFrame:
    """Each group's rate against the others', raw and adjusted for ``strata``.

    Args:
        units: One row per trial with ``success`` (0/1), the ``by`` column and the strata columns.
        by: The grouping column.
        strata: Columns to standardise for (those absent or equal to ``by`` are dropped).
        metric: Name of the rate, copied to the output.

    Returns:
        One row per group: n, observed, rate (Wilson CI), others' rate and n, raw p-value, expected,
        expected_rate, ratio (CI), adjusted p-value and ``adjusted_for``.
    """
    used = [s for s in strata if s != by and s in units.columns]
    rows = []
    if units.empty:
        return pd.DataFrame(
            columns=["metric", by, "n", "observed", "rate", "expected", "ratio", "adjusted_for"]
        )
    u = units.copy()
    u["_stratum"] = u[used].astype(str).agg("|".join, axis=1) if used else ""
    total_k = u.groupby("_stratum")["success"].sum()
    total_n = u.groupby("_stratum")["success"].size()
    all_k, all_n = float(u["success"].sum()), float(len(u))
    for group, g in u.groupby(u[by].astype(str)):
        n, k = len(g), float(g["success"].sum())
        gk = g.groupby("_stratum")["success"].sum()
        gn = g.groupby("_stratum")["success"].size()
        ok = total_k.reindex(gk.index) - gk
        on = total_n.reindex(gn.index) - gn
        others_n, others_k = all_n - n, all_k - k
        fallback = others_k / others_n if others_n > 0 else NAN
        p = (ok + PRIOR_TRIALS * fallback) / (on + PRIOR_TRIALS)
        expected = float((p * gn).sum())
        variance = float((p * (1 - p) * gn).sum())
        r = wilson(k, n)
        o = wilson(others_k, others_n)
        exp_rate = expected / n if n else NAN
        rows.append(
            {
                "metric": metric,
                by: group,
                "n": n,
                "observed": int(k),
                "rate": r.rate,
                "rate_lo": r.lo,
                "rate_hi": r.hi,
                "others_n": int(others_n),
                "others_rate": o.rate,
                "others_rate_lo": o.lo,
                "others_rate_hi": o.hi,
                "p_value_raw": two_proportion_test(k, n, others_k, others_n),
                "expected": expected,
                "expected_rate": exp_rate,
                "ratio": k / expected if expected > 0 else NAN,
                "ratio_lo": r.lo / exp_rate if exp_rate > 0 else NAN,
                "ratio_hi": r.hi / exp_rate if exp_rate > 0 else NAN,
                "p_value": _z_p(k, expected, variance),
                "adjusted_for": ", ".join(used) if used else "nothing",
            }
        )
    return pd.DataFrame(rows)


adjust = importlib.import_module("forecast.tracking.adjust")


@pytest.fixture(scope="module")
def data() -> TrackingData:
    crm = simulate_crm(SimulationConfig(n_leads=3000, seed=13, months=12))
    return prepare(crm.tables, DEFAULT_PIPELINE)


@pytest.mark.parametrize("metric", list(STRATA))
@pytest.mark.parametrize("by", [g for g in GROUPINGS if g != "product"])
def test_compare_equals_the_per_group_count(data: TrackingData, metric: str, by: str) -> None:
    for name in ("quarter", "month"):
        units = UNITS[metric](data, parse_period(name, data.as_of))
        if by not in units.columns:
            continue
        for strata in (STRATA[metric], (), STRATA[metric][:1]):
            new, old = compare(units, by, strata, metric), _reference(units, by, strata, metric)
            pd.testing.assert_frame_equal(new, old, check_exact=True)
            assert len(new) >= 2


def test_missing_strata_values_and_groups_count_as_their_text(data: TrackingData) -> None:
    units = UNITS["win_rate"](data, parse_period("quarter", data.as_of)).copy()
    rng = np.random.default_rng(2)
    units.loc[rng.random(len(units)) < 0.2, "source"] = None
    units.loc[rng.random(len(units)) < 0.05, "rep"] = None
    new, old = (
        compare(units, "rep", STRATA["win_rate"], "win_rate"),
        _reference(units, "rep", STRATA["win_rate"], "win_rate"),
    )
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    assert "None" in set(new["rep"])  # a missing rep is a group of its own, as before


def test_the_insights_are_those_of_the_per_group_count(
    data: TrackingData, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module("forecast.tracking.insights")  # the package shadows it: a function
    period = parse_period("quarter", data.as_of)
    new = module.insights(data, period).as_dict()
    monkeypatch.setattr(module, "compare", _reference)
    assert new == module.insights(data, period).as_dict()
    assert new["insights"], "the comparison needs insights to compare"


def test_strata_and_groups_written_alike_or_apart_count_as_their_text(data: TrackingData) -> None:
    """Values that compare equal but are written apart, text holding ``|``, floats, categoricals."""
    units = UNITS["win_rate"](data, parse_period("quarter", data.as_of)).copy()
    rng = np.random.default_rng(5)
    pick = rng.integers(0, 6, len(units))
    units["region"] = units["region"].astype(object)
    units["source"] = units["source"].astype(object)
    units.loc[pick == 0, ["source", "region"]] = ["s|t", "u"]  # the same text as "s" with "t|u"
    units.loc[pick == 1, ["source", "region"]] = ["s", "t|u"]
    units.loc[pick == 2, "source"] = np.nan
    units["size_band"] = units["size_band"].astype("category")
    units["rep"] = units["rep"].astype(object)
    for value, share in ((1, 0.05), ("1", 0.05), (1.0, 0.05), (True, 0.05)):
        units.loc[rng.random(len(units)) < share, "rep"] = value
    strata = STRATA["win_rate"]
    new, old = compare(units, "rep", strata, "win_rate"), _reference(units, "rep", strata, "win_rate")
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    assert {"1", "1.0", "True"} <= set(new["rep"])  # apart, as their text
    written = adjust._strata(units, list(strata))
    combos = units[list(strata)].astype(str).drop_duplicates()
    assert written.nunique() < len(combos)  # two combinations written as one text: one stratum
    floats = units.assign(success=units["success"].astype(float))  # not an integer: grouped in pandas
    pd.testing.assert_frame_equal(
        compare(floats, "rep", strata, "win_rate"),
        _reference(floats, "rep", strata, "win_rate"),
        check_exact=True,
    )


def _grouped_first_calls(cold: pd.DataFrame, carried: list[str]) -> pd.DataFrame:
    """The pandas grouping ``_first_calls`` stands for."""
    return cold.groupby(["rep_id", "lead_id"], as_index=False).agg(
        calls=("activity_id", "size"),
        first_call=("occurred_at", "min"),
        **{k: (k, "first") for k in carried},
    )


def _cold_frame(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    reps = np.array([f"r{i}" for i in range(7)] + ["r10"], dtype=object)
    leads = np.array([f"l{i}" for i in range(25)], dtype=object)
    rep = reps[rng.integers(0, len(reps), n)]
    lead = leads[rng.integers(0, len(leads), n)].astype(object)
    lead[rng.random(n) < 0.05] = None  # a call without a lead is in no group
    rep[rng.random(n) < 0.05] = np.nan
    times = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 40, n), unit="D")  # ties
    return pd.DataFrame(
        {
            "activity_id": [f"a{i}" for i in range(n)],
            "lead_id": lead,
            "occurred_at": times.as_unit("us"),
            "rep_id": rep,
            "team": np.where(rng.random(n) < 0.5, "north", "south").astype(object),
            "source": np.array(["web", "event", "referral"], dtype=object)[rng.integers(0, 3, n)],
        }
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [0, 1, 40, 2_000])
def test_first_cold_calls_from_codes_equal_the_pandas_grouping(seed: int, n: int) -> None:
    adjust = importlib.import_module("forecast.tracking.adjust")
    cold = _cold_frame(seed, n)
    carried = ["team", "source"]
    ours = adjust._first_calls(cold, carried).sort_values(["rep_id", "lead_id"], ignore_index=True)
    pd.testing.assert_frame_equal(ours, _grouped_first_calls(cold, carried), check_exact=True)


def test_first_cold_calls_with_a_missing_carried_value_take_its_first_known_one() -> None:
    adjust = importlib.import_module("forecast.tracking.adjust")
    cold = _cold_frame(5, 300)
    cold.loc[cold.index[::7], "team"] = None  # pandas' "first" skips it
    carried = ["team", "source"]
    pd.testing.assert_frame_equal(
        adjust._first_calls(cold, carried), _grouped_first_calls(cold, carried), check_exact=True
    )


def test_fractional_successes_are_summed_per_group_in_numpys_order() -> None:
    success = [0.6, 0.3, 0, 0, 0.8, 0.9, 0.6, 0.7, 0.5, 0.9, 1.0]  # ten cells of rep a: order matters
    units = pd.DataFrame(
        {"rep": ["a"] * 10 + ["b"], "source": [f"s{i}" for i in range(10)] + ["s0"], "success": success}
    )
    row = compare(units, "rep", ["source"], "m").set_index("rep").loc["a"]
    k = float(np.asarray(success[:10]).sum())  # each cell holds one trial, in the cells' (text) order
    all_k = float(np.asarray(success).sum())
    assert row["p_value_raw"] == two_proportion_test(k, 10, all_k - k, 1)
