"""Mix-adjusted comparisons (indirect standardisation), so a rep with harder leads is judged fairly.

For one group (a rep, say) and one rate, every trial of the group gets the success rate the *other*
groups achieved on trials of the same stratum (same source, region, product, deal-size band, …),
shrunk towards the others' overall rate with ``PRIOR_TRIALS`` pseudo-trials (so a sparse stratum
falls back smoothly to the overall rate). Their sum is the expected
number of successes ``E``; the group's observed count ``O`` is compared with it:
``ratio = O / E`` (1 = as good as the others on the same mix), with the Wilson interval of the
observed rate divided by the expected rate, and a two-sided p-value from the normal approximation
of the Poisson-binomial (variance ``Σ p(1-p)``, continuity-corrected). ``adjusted_for`` names the
strata. A stratum equal to the grouping itself is dropped (a region cannot be compared with other
reps of the same region when grouping by region).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any, cast

import numpy as np
import pandas as pd

from forecast.tracking.activity_index import EMAIL, built_activity_index, text_codes
from forecast.tracking.common import by_key, check_grouping, key_runs, memo, rows_of_columns, truth
from forecast.tracking.data import GROUPINGS, NONE_LABEL, TrackingData
from forecast.tracking.periods import Period
from forecast.tracking.stats import NAN, two_proportion_test, wilson

STRATA = {
    "win_rate": ("product", "size_band", "source", "region"),
    "cold_call_conversion": ("source", "company_size", "region"),
    "reply_rate": ("source", "on_deal", "region"),
}
"""The mix each adjusted rate is standardised for."""


def win_units(data: TrackingData, period: Period, by: str | None = None) -> pd.DataFrame:
    """Deals closed in the period: one trial each, ``success`` = won (every column; ``by`` unused)."""
    opps = data.opportunities
    closed = opps[period.contains(opps["closed_at"])]
    return closed.assign(success=(closed["outcome"] == "won").astype(int))


COLD_CALL_GROUPS = ("rep", "team", "manager", "region", "source", "channel")
"""The groups a cold-call trial carries (their first value among the rep's calls to the lead)."""


def cold_call_units(data: TrackingData, period: Period, by: str | None = None) -> pd.DataFrame:
    """Leads cold-called in the period (one trial per rep and lead): ``success`` = became a deal after.

    The period's cold calls are found among the frame's cold calls (kept once per frame), and only
    the columns the trials carry are taken of them: every grouping, or (``by``) that grouping's,
    the rep's and the strata's alone.
    """
    acts = data.activities
    rows, times = memo(acts, "cold calls and their times", lambda: _cold_calls(acts))
    keys = ["rep_id", *_carried(by, "cold_call_conversion", COLD_CALL_GROUPS)]
    columns = ["activity_id", "lead_id", "occurred_at", *keys]
    cold = rows_of_columns(acts, rows[truth(period.contains(times))], columns)
    first = _first_calls(cold, keys[1:])
    leads = by_key(data.leads, "lead_id", "converted_at", "company_size").reindex(first["lead_id"])
    conv = leads["converted_at"].to_numpy()
    first["company_size"] = leads["company_size"].fillna(NONE_LABEL).to_numpy()
    first["success"] = (pd.Series(conv) > first["first_call"].to_numpy()).astype(int).to_numpy()
    return first


def _first_calls(cold: pd.DataFrame, carried: list[str]) -> pd.DataFrame:
    """One row per rep and lead cold-called: the calls, the first one's time and the ``carried`` columns.

    The rows of the frame ``cold.groupby(["rep_id", "lead_id"], as_index=False)`` gives (``calls``
    each group's size, ``first_call`` its earliest time, each carried column's first value), found
    by sorting integer codes, in the order of each rep's and lead's first call rather than sorted
    by their text: a trial's place counts for nothing in the comparisons, whose cells are counted
    by code (:func:`_cells`), and sorting a quarter's lead ids as text costs a tenth of a second.
    Keys that are not plain objects (a categorical's
    grouping counts unseen categories too), times with a zone, a carried column with a missing
    value (whose first *known* value pandas takes), a missing time, or no call leave the grouping
    to pandas.
    """
    plain = all(cold[c].dtype == np.dtype(object) for c in ("rep_id", "lead_id")) and (
        cold["occurred_at"].dtype.kind == "M" and isinstance(cold["occurred_at"].dtype, np.dtype)
    )
    gaps = any(cold[c].isna().any() for c in [*carried, "occurred_at"])
    reps, _ = pd.factorize(cold["rep_id"])
    leads, lead_ids = pd.factorize(cold["lead_id"])
    rows = np.flatnonzero((reps >= 0) & (leads >= 0))  # a missing rep or lead is in no group
    if not len(rows) or not plain or gaps:
        return cold.groupby(["rep_id", "lead_id"], as_index=False).agg(
            calls=("activity_id", "size"),
            first_call=("occurred_at", "min"),
            **{k: (k, "first") for k in carried},
        )
    at, starts = key_runs(reps[rows].astype(np.int64) * len(lead_ids) + leads[rows])
    order = rows[at]  # each group's rows together, in their order
    first = order[starts]
    out = pd.DataFrame(
        {
            "rep_id": cold["rep_id"].to_numpy()[first],
            "lead_id": cold["lead_id"].to_numpy()[first],
            "calls": np.diff(np.r_[starts, len(order)]).astype(np.int64),
            "first_call": np.minimum.reduceat(cold["occurred_at"].to_numpy()[order], starts),
        }
    )
    for c in carried:
        out[c] = cold[c].iloc[first].reset_index(drop=True)
    return out


def _carried(by: str | None, metric: str, groups: Sequence[str]) -> list[str]:
    """The ``groups`` a trial carries: all of them, or ``by``'s, the rep's and the metric's strata."""
    if by is None:
        return list(groups)
    keep = {by, "rep", *STRATA[metric]}
    return [g for g in groups if g in keep]


def _cold_calls(acts: pd.DataFrame) -> tuple[np.ndarray, pd.Series]:
    """The positions of the cold calls in ``acts`` and their times (27 MB for 2.3 million of them)."""
    rows = np.flatnonzero(truth(acts["cold"]))
    rows = rows.astype(np.int32) if len(acts) < 2**31 else rows
    return rows, acts["occurred_at"].iloc[rows].reset_index(drop=True)


REPLY_COLUMNS = ("activity_id", "occurred_at", "lead_id", "opportunity_id", "email_replied", "rep_id")
"""The columns of the activities every reply trial carries: its time, lead and deal (and its groups)."""


def reply_units(data: TrackingData, period: Period, by: str | None = None) -> pd.DataFrame:
    """Outbound emails sent in the period with a known reply flag: ``success`` = replied.

    The activities' columns the comparisons and the insights read only: :data:`REPLY_COLUMNS`,
    and every grouping's and stratum's, or (``by``) that grouping's, the rep's and the strata's.
    """
    acts = data.activities
    index = built_activity_index(acts)
    if index is None:
        rows = np.flatnonzero(
            truth(
                (acts["type"] == "email")
                & (acts["direction"] == "outbound")
                & acts["done"]
                & period.contains(acts["occurred_at"])
                & acts["email_replied"].notna()
            )
        )
    else:  # the same rows, from the coded activities
        at = index.within(period.start, period.end)
        keep = (index.kinds[at] == EMAIL) & index.outbound[at] & (index.replied[at] >= 0)
        rows = index.rows[at[keep]]
    groups = _carried(by, "reply_rate", (*GROUPINGS, *STRATA["reply_rate"]))
    emails = rows_of_columns(acts, rows, (*REPLY_COLUMNS, *groups))  # a new frame: set in place
    emails["success"] = emails["email_replied"].astype(bool).astype(int)
    emails["on_deal"] = np.where(emails["opportunity_id"].notna(), "deal", "lead")
    return emails


PRIOR_TRIALS = 10.0
"""Stratum rates are shrunk towards the others' overall rate with this many pseudo-trials, so a
stratum where the others have 2 trials does not set a 0% or 100% expectation."""

UNITS = {"win_rate": win_units, "cold_call_conversion": cold_call_units, "reply_rate": reply_units}


def compare(units: pd.DataFrame, by: str, strata: Sequence[str], metric: str) -> pd.DataFrame:
    """Each group's rate against the others', raw and adjusted for ``strata``.

    The trials are counted per group and stratum in one grouped sum, and each group's expectation
    is summed from its own cells in stratum order: the figures a per-group count gives, to the bit
    (``tests/unit/test_tracking_adjust.py``), for thousands of reps at once.

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
    if units.empty:
        return pd.DataFrame(
            columns=["metric", by, "n", "observed", "rate", "expected", "ratio", "adjusted_for"]
        )
    all_k, all_n = float(units["success"].sum()), float(len(units))
    groups, gk, gn, ok, on = _cells(units, by, used)
    bounds = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1], True])
    starts = bounds[:-1]
    group_n, group_k = _group_sums(gn, bounds), _group_sums(gk, bounds)
    others_n_of = all_n - np.asarray(group_n, dtype=float)
    fallback = np.full(len(starts), NAN)
    np.divide(all_k - np.asarray(group_k, dtype=float), others_n_of, out=fallback, where=others_n_of > 0)
    # every cell's expectation at once (each value as the group's own arithmetic gives it), summed per group
    p = (ok + PRIOR_TRIALS * np.repeat(fallback, np.diff(bounds))) / (on + PRIOR_TRIALS)
    expectations, variances = _known(p * gn), _known(p * (1 - p) * gn)
    rows = []
    for i, (first, stop) in enumerate(itertools.pairwise(bounds)):
        group = groups[first]
        n, k = int(group_n[i]), float(group_k[i])
        others_n, others_k = all_n - n, all_k - k
        expected = float(expectations[first:stop].sum())
        variance = float(variances[first:stop].sum())
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


def _cells(
    units: pd.DataFrame, by: str, used: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The trials counted per group and stratum: each cell's group, successes and trials, and the others'.

    The cells in the order of a pandas grouping of the group's and the stratum's text (both sorted
    as text), the others' counts those of the stratum less the cell's. Counted from integer codes
    of the texts (:func:`~forecast.tracking.activity_index.text_codes`) where ``success`` is an
    integer or boolean column, in pandas over the texts otherwise; the same counts either way.
    """
    success = units["success"]
    if success.dtype.kind not in "biu":
        return _cells_in_pandas(units, by, used)
    label_at, labels = text_codes(units[by])
    stratum_at, n_strata = _stratum_codes(units, used)
    keys, at = _sorted_codes(label_at.astype(np.int64) * n_strata + stratum_at)
    won = success.to_numpy()
    gn = np.bincount(at, minlength=len(keys)).astype(np.int64)
    gk = np.bincount(at, weights=won, minlength=len(keys)).astype(np.int64)
    total_n = np.bincount(stratum_at, minlength=n_strata).astype(np.int64)
    total_k = np.bincount(stratum_at, weights=won, minlength=n_strata).astype(np.int64)
    stratum = keys % n_strata
    return labels[keys // n_strata], gk, gn, total_k[stratum] - gk, total_n[stratum] - gn


def _stratum_codes(units: pd.DataFrame, used: list[str]) -> tuple[np.ndarray, int]:
    """Each trial's stratum (:func:`_strata`) as a code, in the order of the strata's text; and their count.

    Each column's text is coded once; only the distinct combinations are written as text (a value
    holding ``|`` may make two of them one text, as :func:`_strata` makes them).
    """
    if not used:
        return np.zeros(len(units), dtype=np.int64), 1
    coded = [text_codes(units[c]) for c in used]
    combined = np.zeros(len(units), dtype=np.int64)
    n = 1
    for codes, texts in coded:  # each combination seen, numbered (kept below the number of rows)
        combined, seen = pd.factorize(combined * len(texts) + codes)
        n = len(seen)
    first = np.empty(n, dtype=np.intp)
    first[combined[::-1]] = np.arange(len(combined) - 1, -1, -1)  # a row of each combination
    written = np.asarray([_joined(coded, int(i)) for i in first], dtype=object)
    distinct, rank = np.unique(written, return_inverse=True)
    return rank[combined].astype(np.int64), len(distinct)


def _sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` of integers: hashed, then only the distinct ones sorted."""
    codes, seen = pd.factorize(values)
    order = np.argsort(seen, kind="stable")
    rank = np.empty(len(seen), dtype=np.int64)
    rank[order] = np.arange(len(seen))
    return seen[order], rank[codes]


def _joined(coded: list[tuple[np.ndarray, np.ndarray]], row: int) -> str:
    """Row ``row``'s texts of the coded columns, joined by ``|`` (as :func:`_strata` writes them)."""
    return "|".join(str(texts[codes[row]]) for codes, texts in coded)


def _cells_in_pandas(
    units: pd.DataFrame, by: str, used: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_cells` by grouping the texts in pandas."""
    success = units["success"]
    stratum = _strata(units, used).rename("_stratum")
    total_k = success.groupby(stratum).sum()
    total_n = success.groupby(stratum).size()
    label = units[by].astype(str).rename("_group")
    cell_k = success.groupby([label, stratum]).sum()
    cell_n = success.groupby([label, stratum]).size()
    cells = cell_k.index.get_level_values(1)
    gk = cell_k.to_numpy()
    gn = cell_n.to_numpy()
    ok = total_k.reindex(cells).to_numpy() - gk
    on = total_n.reindex(cells).to_numpy() - gn
    return cell_k.index.get_level_values(0).to_numpy(), gk, gn, ok, on


def _strata(units: pd.DataFrame, used: list[str]) -> pd.Series:
    """Each trial's stratum: its ``used`` values as text, joined by ``|`` (``""`` without strata)."""
    if not used:
        return pd.Series("", index=units.index, dtype=object)
    first, *rest = (units[c].astype(str) for c in used)
    return first.str.cat(cast(Any, rest), sep="|") if rest else first


def _group_sums(values: np.ndarray, bounds: np.ndarray) -> list[Any]:
    """Each group's sum of ``values`` (a group: from one bound to the next), as its slice's sum.

    Integers at once (their sum is exact in any order); other values one slice at a time, in
    numpy's own order of adding a slice (a fractional success of the pandas path).
    """
    if values.dtype.kind in "iu":
        return np.add.reduceat(values, bounds[:-1]).tolist() if len(bounds) > 1 else []
    return [values[a:b].sum() for a, b in itertools.pairwise(bounds)]


def _known(values: np.ndarray) -> np.ndarray:
    """``values`` with a ``nan`` as 0: a slice's sum is then pandas' sum of the same values."""
    return np.where(np.isnan(values), 0.0, values)


def _z_p(observed: float, expected: float, variance: float) -> float:
    if not variance > 0:
        return NAN
    z = max(abs(observed - expected) - 0.5, 0.0) / math.sqrt(variance)
    return 2 * (1 - NormalDist().cdf(z))


def adjusted(data: TrackingData, period: Period, by: str = "rep") -> pd.DataFrame:
    """Win rate, cold-call conversion and email reply rate per group, adjusted for mix.

    Args:
        data: The tracking data.
        period: The period.
        by: rep, team, manager, region, source or channel.

    Returns:
        One row per metric and group (see :func:`compare`).
    """
    check_grouping("adjusted", by, [g for g in GROUPINGS if g != "product"], "activities carry no product")
    frames = [compare(UNITS[m](data, period, by), by, STRATA[m], m) for m in STRATA]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
