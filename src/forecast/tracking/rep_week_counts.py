"""Each group's rep-weeks of a window, counted in numpy from the coded activities.

:func:`forecast.tracking.effectiveness.rep_weeks` counts, per rep and ISO week, the done outbound
calls, emails and activities and the new opportunities of a window. The effectiveness report needs
those counts per group (team, source, …) for a 26-week window that moves with the period asked
for. Here a window's activities are a comparison of the integers of the frame's
:class:`~forecast.tracking.activity_index.ActivityIndex`, and their counts per group, rep and week
integer counts of a key (:func:`group_counts`), in the order the pandas counts give them: the same
figures to the bit (``tests/unit/test_tracking_effectiveness.py``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.tracking.activity_index import CALL, EMAIL, ActivityIndex, coded_texts, plain_texts

_DENSE_PAIRS = 1 << 24
"""Up to this many (group, rep) combinations the pairs are found with a dense table, else sorted."""


@dataclass(frozen=True)
class Side:
    """One side of a window's counts: its rows' group texts, reps, weeks and kinds.

    Attributes:
        groups: Each row's group code into ``group_texts`` (all 0 for one group).
        group_texts: The group texts.
        reps: Each row's rep code into ``rep_ids`` (rows without a rep dropped already).
        rep_ids: The rep ids.
        weeks: Each row's week (day number of its Monday).
        kinds: Each row's kind (activities), or ``None`` (deals: each row one new opportunity).
    """

    groups: np.ndarray
    group_texts: np.ndarray
    reps: np.ndarray
    rep_ids: np.ndarray
    weeks: np.ndarray
    kinds: np.ndarray | None


def activities_side(
    acts: pd.DataFrame, index: ActivityIndex, start: pd.Timestamp, end: pd.Timestamp, by: str | None
) -> Side:
    """The window's done outbound activities, grouped by ``by`` (``None``: everyone is one group)."""
    part = index.within(start, end)
    part = part[index.outbound[part]]
    reps = index.reps[part]
    has_rep = reps >= 0
    if by is None:
        groups, texts = np.zeros(int(has_rep.sum()), dtype=np.int64), np.array(["(all)"], dtype=object)
    else:
        codes, texts = coded_texts(acts, by)
        groups = codes[index.rows[part][has_rep]]
    kinds = index.kinds[part][has_rep]
    return Side(groups, texts, reps[has_rep], index.rep_ids, index.weeks[part][has_rep], kinds)


def deals_side(deals: pd.DataFrame, weeks: np.ndarray, by: str | None) -> Side | None:
    """The deals created in the window, grouped by ``by``; ``None`` where a rep id is not text."""
    reps, rep_ids = pd.factorize(deals["rep_id"].to_numpy())
    if not plain_texts(deals["rep_id"], rep_ids):
        return None  # (a categorical: a pandas grouping of one counts every category)
    has_rep = reps >= 0
    if by is None:
        groups, texts = np.zeros(int(has_rep.sum()), dtype=np.int64), np.array(["(all)"], dtype=object)
    else:
        codes, uniques = pd.factorize(deals[by].astype(str).to_numpy(dtype=object))
        groups, texts = codes[has_rep].astype(np.int64), np.asarray(uniques, dtype=object)
    return Side(
        groups, texts, reps[has_rep].astype(np.int64), np.asarray(rep_ids, dtype=object), weeks[has_rep], None
    )


def group_counts(acts: Side | None, deals: Side | None) -> dict[str, np.ndarray]:
    """The rep-weeks of each group: calls, emails and new opportunities, and each row's group text.

    The rows and their order are those of the pandas counts (``pd.concat`` of the four counts
    per group, rep and week, each sorted, joined in turn): the rep-weeks with a call, then those
    with an email and no call, those with another activity only, and those with a new opportunity
    only; each part sorted by group text, rep id and week. A group's rows, in order, are therefore
    the same whichever other groups are counted.

    Args:
        acts: The activities' side (``None``: the grouping has no activities to count).
        deals: The deals' side (``None``: no deals to count).

    Returns:
        ``calls``, ``emails``, ``new_opportunities`` (floats) and ``_labels`` (each row's group).
    """
    sides = [s for s in (acts, deals) if s is not None]
    if not sides or not sum(len(s.reps) for s in sides):
        empty = np.zeros(0)
        return {
            "calls": empty,
            "emails": empty,
            "new_opportunities": empty,
            "_labels": np.zeros(0, dtype=object),
        }
    texts, group_at = _universe([s.group_texts for s in sides])
    rep_ids, rep_at = _universe([s.rep_ids for s in sides])
    first = min(int(s.weeks.min()) for s in sides if len(s.weeks))
    n_weeks = (max(int(s.weeks.max()) for s in sides if len(s.weeks)) - first) // 7 + 1
    pair_raw = [group_at[i][s.groups] * len(rep_ids) + rep_at[i][s.reps] for i, s in enumerate(sides)]
    pairs, pair_of = _compact(pair_raw, len(texts) * len(rep_ids))
    keys = [pair_of[i] * n_weeks + (s.weeks - first) // 7 for i, s in enumerate(sides)]
    size = len(pairs) * n_weeks
    zero = np.zeros(size, dtype=np.int64)
    calls, emails, any_act, new = zero, zero, zero, zero
    for key, side in zip(keys, sides, strict=True):
        if side.kinds is None:
            new = np.bincount(key, minlength=size)
        else:
            any_act = np.bincount(key, minlength=size)
            calls = np.bincount(key[side.kinds == CALL], minlength=size)
            emails = np.bincount(key[side.kinds == EMAIL], minlength=size)
    present = np.flatnonzero((any_act > 0) | (new > 0))
    part = np.where(
        calls[present] > 0, 0, np.where(emails[present] > 0, 1, np.where(any_act[present] > 0, 2, 3))
    )
    ordered = present[np.lexsort((present, part))]
    return {
        "calls": calls[ordered].astype(float),
        "emails": emails[ordered].astype(float),
        "new_opportunities": new[ordered].astype(float),
        "_labels": texts[pairs[ordered // n_weeks] // len(rep_ids)],
    }


def _universe(parts: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The sorted distinct texts of ``parts`` and, for each part, each of its texts' rank in them."""
    every = np.unique(np.concatenate(parts))
    return every, [np.searchsorted(every, p).astype(np.int64) for p in parts]


def _compact(raw: list[np.ndarray], bound: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct values of ``raw`` (each below ``bound``), sorted, and each value's rank among them."""
    if bound <= _DENSE_PAIRS:
        seen = np.zeros(bound, dtype=bool)
        for r in raw:
            seen[r] = True
        distinct = np.flatnonzero(seen)
        rank = np.zeros(bound, dtype=np.int64)
        rank[distinct] = np.arange(len(distinct))
        return distinct, [rank[r] for r in raw]
    distinct = np.unique(np.concatenate(raw))
    return distinct, [np.searchsorted(distinct, r).astype(np.int64) for r in raw]


def wanted(counts: dict[str, np.ndarray], only: Collection[str] | None) -> dict[str, np.ndarray]:
    """``counts`` (:func:`group_counts`') kept to the groups ``only`` (``None``: every group)."""
    if only is None:
        return counts
    keep = np.isin(counts["_labels"], np.asarray(list(only), dtype=object))
    return {name: values[keep] for name, values in counts.items()}
