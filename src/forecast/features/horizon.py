"""The label horizon from the CRM's own sales cycle.

A fixed horizon ("won within 180 days") fits one CRM and wastes another's history: on a CRM with
six months of data a 180-day horizon leaves no labelled snapshot at all, and its purge gap swallows
the training split. :func:`cycle_quantile` reads the cycle from the data instead: the Kaplan-Meier
quantile of the time from a deal's creation to its close (won or lost), with deals still open at
the data's end counted as censored, so a short history does not see only its quick closes.

For a win model the cycle that matters is the time to a *win*: losses are usually quick, so the
quantile of all closes cuts off the slow wins, and "won within H" then falls short of the eventual
win rate that a probability is judged against. :func:`win_time_quantile` reads the quantile of
the time to a win among the deals that win (Aalen-Johansen cumulative incidence of winning, losses
a competing risk, open deals censored, normalised by its value at the last close seen).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from forecast.features.source import FeatureSource


def km_quantile(
    durations: np.ndarray, observed: np.ndarray, q: float, entry: np.ndarray | None = None
) -> float | None:
    """The ``q`` quantile of the Kaplan-Meier distribution of ``durations``.

    Args:
        durations: Time to the event, or to censoring, per subject (days).
        observed: Whether the event was seen (``False``: censored at that time).
        q: Quantile in (0, 1).
        entry: Per subject, the time from which it is watched (delayed entry: a deal created before
            a history's record of closes starts, :mod:`forecast.features.record_start`); default 0.

    Returns:
        The first event time at which the estimated CDF reaches ``q``. When it never does: the
        ``q`` quantile of the closes seen if the curve has plainly levelled off
        (:func:`_has_plateaued`: deals left open long after every close), else ``None`` (the
        history is too short to see that share of deals close).
    """
    if not 0 < q < 1:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    d, e, times, cdf = _km(durations, observed, entry)
    if not len(times):
        return None
    hit = np.flatnonzero(cdf >= q - 1e-12)
    if len(hit):
        return float(times[hit[0]])
    if not _has_plateaued(d, e, float(times[-1])):
        return None
    # Deals watched well past the longest close ever seen have not closed: the curve has levelled
    # off below ``q`` (stale deals nobody closes), so read the quantile of the closes that happen.
    return float(times[np.flatnonzero(cdf >= q * cdf[-1] - 1e-12)[0]])


PLATEAU_FACTOR = 1.25
"""Open deals followed this many times the longest close seen show the closing curve has levelled off."""
PLATEAU_MIN_DEALS = 20
"""How many such open deals it takes (fewer: the history may simply be too short to see later closes)."""


def _has_plateaued(
    durations: np.ndarray, observed: np.ndarray, last_close: float, deals: np.ndarray | None = None
) -> bool:
    """Whether enough open deals were followed well past the last close time without closing.

    On a CRM where some deals are never closed (left open in the CRM long after every deal of their
    kind was decided), the Kaplan-Meier share of closed deals levels off below any high quantile.
    When at least :data:`PLATEAU_MIN_DEALS` deals have stayed open for :data:`PLATEAU_FACTOR` times
    the longest close ever seen, later closes would have shown had they existed. ``deals``: each
    row's deal, where a deal has several rows (weekly snapshots); ``None``: one row per deal.
    """
    beyond = (~observed) & (durations >= PLATEAU_FACTOR * last_close)
    if deals is None:
        return int(beyond.sum()) >= PLATEAU_MIN_DEALS
    return len(pd.unique(np.asarray(deals, dtype=object)[beyond])) >= PLATEAU_MIN_DEALS


def _km(
    durations: np.ndarray, observed: np.ndarray, entry: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Kaplan-Meier curve: the subjects kept (durations, events), the event times and the CDF there.

    Subjects with a non-finite duration, or whose event came before they were watched, are left out;
    the times and CDF are empty without any event.
    """
    d = np.asarray(durations, dtype=float)
    e = np.asarray(observed, dtype=bool)
    keep = _watched(d, entry, np.isfinite(d))
    d, e = np.maximum(d[keep], 0.0), e[keep]
    if not e.any():
        return d, e, np.zeros(0), np.zeros(0)
    times = np.unique(d[e])
    at_risk = _at_risk(d, times, None if entry is None else np.asarray(entry, dtype=float)[keep])
    events = np.bincount(np.searchsorted(times, d[e]), minlength=len(times))
    return d, e, times, 1.0 - np.cumprod(1.0 - events / at_risk)


def km_cdf(durations: np.ndarray, observed: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The Kaplan-Meier share of subjects whose event came by each of ``at`` (held past the last event).

    Args:
        durations: Time to the event, or to censoring, per subject.
        observed: Whether the event was seen.
        at: Times to read the curve at.

    Returns:
        ``F(t)`` for each ``t`` of ``at`` (0 without any event).
    """
    _, _, times, cdf = _km(durations, observed)
    t = np.asarray(at, dtype=float)
    if not len(times):
        return np.zeros(len(t))
    k = np.searchsorted(times, t, side="right") - 1
    return np.where(k >= 0, cdf[np.clip(k, 0, None)], 0.0)


def _watched(d: np.ndarray, entry: np.ndarray | None, keep: np.ndarray) -> np.ndarray:
    """``keep`` without the subjects whose event came before they were watched (``entry > d``)."""
    if entry is None:
        return keep
    return keep & ~(np.asarray(entry, dtype=float) > d)


def _at_risk(d: np.ndarray, times: np.ndarray, entry: np.ndarray | None) -> np.ndarray:
    """Subjects at risk at each of ``times``: not out yet (``d >= t``), already watched (``entry <= t``)."""
    at_risk = len(d) - np.searchsorted(np.sort(d), times, side="left")
    if entry is None:
        return at_risk
    late = np.minimum(np.maximum(entry, 0.0), d)
    return at_risk - (len(late) - np.searchsorted(np.sort(late), times, side="right"))


def levelled_off_at(durations: np.ndarray, observed: np.ndarray, deals: np.ndarray) -> float | None:
    """The longest close seen, where the closing curve has plainly levelled off there (else ``None``).

    Levelled off: at least :data:`PLATEAU_MIN_DEALS` deals still open were followed
    :data:`PLATEAU_FACTOR` times that long (as :func:`_has_plateaued`, counted by deal: a deal's
    weekly snapshots are one deal); nothing closes later, so no close should be expected past it
    (the Maven sample: every close within 138 days of engagement, a fifth of its deals open for
    months after).

    Args:
        durations: Days from each snapshot to its close, or to the data's end when open.
        observed: Whether the close was seen.
        deals: Each snapshot's deal.
    """
    d = np.asarray(durations, dtype=float)
    e = np.asarray(observed, dtype=bool)
    keep = np.isfinite(d)
    d, e, ids = d[keep], e[keep], np.asarray(deals, dtype=object)[keep]
    if not e.any():
        return None
    last = float(d[e].max())
    return last if _has_plateaued(d, e, last, ids) else None


def win_incidence_curve(
    durations: np.ndarray, causes: np.ndarray, entry: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Aalen-Johansen cumulative incidence of winning, losses a competing risk.

    Args:
        durations: Days to the close, or to censoring, per subject.
        causes: 1 won, 2 lost, 0 still open (censored at ``durations``).
        entry: Per subject, the time from which it is watched (delayed entry; default 0).

    Returns:
        The close times (sorted, unique) and the incidence of winning by each of them (empty
        arrays without any close).
    """
    d = np.asarray(durations, dtype=float)
    c = np.asarray(causes, dtype=int)
    keep = _watched(d, entry, np.isfinite(d))
    d, c = np.maximum(d[keep], 0.0), c[keep]
    closed = c > 0
    times = np.unique(d[closed])
    if len(times) == 0:
        return times, np.zeros(0)
    at_risk = _at_risk(d, times, None if entry is None else np.asarray(entry, dtype=float)[keep])
    slot = np.searchsorted(times, d[closed])
    closes = np.bincount(slot, minlength=len(times))
    wins = np.bincount(slot[c[closed] == 1], minlength=len(times))
    survival_before = np.concatenate([[1.0], np.cumprod(1.0 - closes / at_risk)[:-1]])
    return times, np.cumsum(survival_before * wins / at_risk)


def win_time_quantile(
    durations: np.ndarray, outcome: np.ndarray, q: float, entry: np.ndarray | None = None
) -> float | None:
    """The ``q`` quantile of the time to a win among deals that win, from censored data.

    Args:
        durations: Days to the close, or to censoring, per deal.
        outcome: ``"won"``, ``"lost"`` or anything else (censored: still open).
        q: Quantile in (0, 1).
        entry: Per deal, the time from which it is watched (delayed entry; default 0).

    Returns:
        The first win time at which the Aalen-Johansen cumulative incidence of winning
        (:func:`win_incidence_curve`) reaches ``q`` times its value at the last close seen;
        ``None`` without any win.
    """
    if not 0 < q < 1:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    o = np.asarray(outcome).astype(str)
    causes = np.where(o == "won", 1, np.where(o == "lost", 2, 0))
    times, incidence = win_incidence_curve(durations, causes, entry)
    if len(incidence) == 0 or incidence[-1] <= 0:
        return None
    hit = np.flatnonzero(incidence >= q * incidence[-1] - 1e-12)
    return float(times[hit[0]])


def deal_closes(src: FeatureSource, end: pd.Timestamp) -> pd.DataFrame | None:
    """Each deal created by ``end``: its creation, its close if seen by ``end``, and the days between.

    Returns:
        Columns ``created`` and ``closed`` (timestamps), ``observed`` (closed by ``end``), ``days``
        (creation to the close, or to ``end`` while open) and ``outcome`` (``open`` while not
        closed by ``end``); ``None`` without any deal.
    """
    rows = src.df(
        "SELECT created_at, closed_at, outcome FROM opportunities "
        "WHERE created_at IS NOT NULL AND created_at <= ?",
        [end.to_pydatetime()],
    )
    if rows.empty:
        return None
    created = pd.to_datetime(rows["created_at"])
    closed = pd.to_datetime(rows["closed_at"])
    observed = (rows["outcome"].astype(str) != "open") & closed.notna() & (closed <= end)
    days = (closed.where(observed, end) - created) / pd.Timedelta(days=1)
    return pd.DataFrame(
        {
            "created": created,
            "closed": closed,
            "observed": observed.to_numpy(dtype=bool),
            "days": days.to_numpy(dtype=float),
            "outcome": rows["outcome"].astype(str).where(observed, "open"),
        }
    )


def days_since(times: pd.Series, at: pd.Timestamp) -> np.ndarray:
    """Days from each of ``times`` to ``at`` (negative for times after it)."""
    to = at.to_datetime64().astype("datetime64[ns]").astype(np.int64)
    since = times.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return (to - since) / 86_400e9  # nanoseconds in a day


def cycle_quantile(
    src: FeatureSource,
    q: float,
    data_end: pd.Timestamp | None = None,
    of: str = "close",
    start: pd.Timestamp | None = None,
) -> float | None:
    """The ``q`` quantile of days from a deal's creation to its close, known at ``data_end``.

    Deals created after ``data_end`` are ignored; deals open then (or closed after it) are censored
    at it, so a point-in-time caller (a backtest) reads only the past.

    Args:
        src: The CRM.
        q: Quantile in (0, 1).
        data_end: What is known (default: the data's end).
        of: ``"close"`` (any close, Kaplan-Meier) or ``"win"`` (the time to a win among the deals
            that win, :func:`win_time_quantile`).
        start: Where the history's record of closes starts (:mod:`forecast.features.record_start`):
            a deal created before it is watched from it on (delayed entry), since the deals that
            closed before it are not in the history.
    """
    if of not in ("close", "win"):
        raise ValueError(f"unknown cycle {of!r}: expected 'close' or 'win'")
    end = data_end if data_end is not None else src.data_end()
    deals = deal_closes(src, end)
    if deals is None:
        return None
    days = deals["days"].to_numpy(dtype=float)
    entry = None if start is None else days_since(deals["created"], start)
    if of == "win":
        return win_time_quantile(days, deals["outcome"].to_numpy(), q, entry)
    return km_quantile(days, deals["observed"].to_numpy(dtype=bool), q, entry)


def cycle_horizon(
    src: FeatureSource,
    q: float,
    cap_days: int,
    floor_days: int = 14,
    data_end: pd.Timestamp | None = None,
    of: str = "close",
    history_share: float = 0.5,
    start: pd.Timestamp | None = None,
) -> int:
    """The label horizon: the cycle's ``q`` quantile rounded up to whole weeks, within the bounds.

    At most ``history_share`` of the span of the deal history (half by default, so that half of it
    holds fully followed snapshots; more with weights for censoring, ``training.ipcw``), also when
    too few deals have closed to read the quantile; never below ``floor_days`` nor above
    ``cap_days``. With ``start`` (the record of closes starts there, :func:`cycle_quantile`), the
    history spans from it.
    """
    end = data_end if data_end is not None else src.data_end()
    span = history_days(src, "opportunities", end, start)
    most = span * history_share
    value = min(cycle_quantile(src, q, end, of, start) or most, most)
    return _weeks_within(value, floor_days, cap_days)


def tail_horizon(
    src: FeatureSource,
    q: float,
    label_days: int,
    cap_days: float,
    share: float,
    data_end: pd.Timestamp | None = None,
    of: str = "close",
    eventual: bool = False,
    start: pd.Timestamp | None = None,
) -> int:
    """The days a deal's p_win reaches: the cycle's ``q`` quantile where the history caps the label.

    The label "won within H" is known only for snapshots followed for H days, so H is at most half
    the history (:func:`cycle_horizon`). Where the CRM's cycle is longer (its quantile beyond H, or
    not reached within the history at all), the wins after H are real wins the label cannot see;
    p_win then counts them up to this horizon from a model of censored outcomes (a competing-risks
    hazard or the stage incidence). That model is read only where data exist: no further than the
    follow-up ``share`` of the weekly snapshots reach (:func:`follow_up_quantile`).

    Args:
        src: The CRM.
        q: The cycle's quantile (the label's, ``snapshots.horizon_quantile``).
        label_days: The resolved label horizon H.
        cap_days: At most this many days (the config's ``horizon_days``, the hazard's last edge).
        share: The share of snapshots that must be followed for the returned horizon.
        data_end: What is known (default: the data's end).
        of: The cycle read (``close`` or ``win``; :func:`cycle_quantile`).
        eventual: Reach for the eventual win wherever the data follow deals past the label: up to
            ``cap_days`` (no further than the follow-up), whatever the cycle's quantile. A label at
            the ``q`` quantile of the cycle leaves out the wins after it (about ``1 - q`` of them,
            more among the weekly snapshots, which sample the slow deals more often), and a
            probability judged against eventual outcomes then falls short by that much.
        start: Where the history's record of closes starts (:func:`cycle_quantile`).

    Returns:
        Days in whole weeks, never below ``label_days`` (``label_days`` itself where the label already
        reaches the cycle's quantile and ``eventual`` is off).
    """
    end = data_end if data_end is not None else src.data_end()
    cycle = None if eventual else cycle_quantile(src, q, end, of, start)
    if cycle is not None and cycle <= label_days:
        return int(label_days)
    reach = follow_up_quantile(src, share, end, start)
    if reach is None:
        return int(label_days)
    want = float(cap_days) if cycle is None else 7.0 * math.ceil(cycle / 7.0)
    days = min(want, 7.0 * math.floor(reach / 7.0), float(cap_days))
    return int(max(label_days, days))


def history_days(
    src: FeatureSource, table: str, data_end: pd.Timestamp, start: pd.Timestamp | None = None
) -> float:
    """Days to ``data_end`` from the first record of ``table`` (``leads``, ``opportunities``) or ``start``.

    From ``start`` where it is later than the first record.
    """
    if table not in ("leads", "opportunities"):
        raise ValueError(f"unknown entity table {table!r}")
    row = src.con.execute(
        f"SELECT min(created_at) FROM {table} WHERE created_at <= ?", [data_end.to_pydatetime()]
    ).fetchone()
    if not row or row[0] is None:
        return 0.0
    first = pd.Timestamp(row[0]) if start is None else max(pd.Timestamp(row[0]), start)
    return max(float((data_end - first) / pd.Timedelta(days=1)), 0.0)


def history_capped_horizon(
    src: FeatureSource,
    table: str,
    horizon_days: int,
    floor_days: int = 14,
    data_end: pd.Timestamp | None = None,
    start: pd.Timestamp | None = None,
) -> int:
    """A fixed horizon, shortened to half the history (in whole weeks) when the history is shorter.

    A 90-day conversion label on a CRM with three months of leads would label no snapshot at all.
    The history spans from ``start`` where that is later than its first record.
    """
    end = data_end if data_end is not None else src.data_end()
    span = history_days(src, table, end, start)
    return _weeks_within(min(float(horizon_days), span / 2), floor_days, horizon_days)


def _weeks_within(days: float, floor_days: int, cap_days: int) -> int:
    weeks = math.ceil(max(days, 1.0) / 7.0) * 7
    return int(min(max(weeks, floor_days), cap_days))


def follow_up_quantile(
    src: FeatureSource, share: float, data_end: pd.Timestamp | None = None, start: pd.Timestamp | None = None
) -> float | None:
    """The longest follow-up ``t`` (days) that at least ``share`` of the weekly deal snapshots reach.

    The snapshots are those of the training cadence: every deal open at each weekly date (from a
    week after the first deal, or from ``start`` if later, to ``data_end``) and each deal at its
    creation (from ``start`` on); a snapshot at date ``d`` is followed for ``data_end - d`` days.
    With inverse-probability-of-censoring weights (``training.ipcw``) a horizon within this
    follow-up needs no weight above ``1 / share``.

    Returns:
        The follow-up in days, or ``None`` without any deal.
    """
    end = data_end if data_end is not None else src.data_end()
    since = None if start is None else start.to_pydatetime()
    rows = src.df(
        """
        WITH deals AS (
            SELECT created_at, closed_at FROM opportunities
            WHERE created_at IS NOT NULL AND created_at <= ?
        ),
        grid AS (
            SELECT unnest(generate_series(
                greatest(date_trunc('day', (SELECT min(created_at) FROM deals)) + INTERVAL 7 DAY,
                         coalesce(CAST(? AS TIMESTAMP), CAST('-infinity' AS TIMESTAMP))),
                CAST(? AS TIMESTAMP), INTERVAL 7 DAY)) AS as_of
        ),
        snaps AS (
            SELECT g.as_of AS snap_at FROM grid g JOIN deals d
              ON d.created_at < g.as_of AND (d.closed_at IS NULL OR d.closed_at >= g.as_of)
            UNION ALL
            SELECT created_at AS snap_at FROM deals
            WHERE created_at >= coalesce(CAST(? AS TIMESTAMP), CAST('-infinity' AS TIMESTAMP))
        )
        SELECT date_diff('second', snap_at, CAST(? AS TIMESTAMP)) / 86400.0 AS follow_up FROM snaps
        """,
        [end.to_pydatetime(), since, end.to_pydatetime(), since, end.to_pydatetime()],
    )
    if rows.empty:
        return None
    return float(np.quantile(rows["follow_up"].to_numpy(dtype=float), 1.0 - share))
