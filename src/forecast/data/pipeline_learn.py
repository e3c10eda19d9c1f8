"""Learn the sales pipeline (stage order, closed and won stages) from a CRM's own deals.

A canonical import without ``--pipeline`` used to check every stage against
:data:`~forecast.data.pipeline.DEFAULT_PIPELINE`, so a CRM whose stages are named differently lost
almost every deal to ``unknown_stage`` (issue 17). This module reads the pipeline off the data
instead. It is pure: frames in, a :class:`~forecast.data.pipeline.SalesPipeline` out; the ingest
(:mod:`forecast.data.ingest`) decides when to call it and stores the result in the warehouse.

Evidence, per deal: its stage history ordered by ``entered_at`` (file order breaks ties), with the
deal's current ``opportunities.stage`` appended when it differs from the last change, and repeated
consecutive stages collapsed. From these sequences:

- **Stages**: every value of ``opportunities.stage`` and ``stage_history.stage``.
- **Closed stages**: where the ``outcome`` column (required by the canonical model) says something —
  some deal is ``won`` or ``lost`` — a stage is closed when more of the deals currently in it are
  won or lost than open. Otherwise (no usable outcome, or no deal currently in the stage) a stage is
  closed when it is *terminal*: some deal ends in it and (almost) none leaves it (at most
  :data:`LEAVE_TOLERANCE` of the deals that reach it move on, which allows for reopened deals).
- **Won stages**: a closed stage is won when more of its deals are ``won`` than ``lost``; when its
  deals carry no won/lost outcome, its name decides (``won``, ``closed won``, ``signed``,
  ``ganado``, … against ``lost``, ``dead``, ``perdido``, …). A closed stage that is not won is
  lost (the pipeline's meaning of lost). When no won stage (or no lost one) can be told,
  :class:`PipelineLearnError` asks for ``--pipeline`` with an example file.
- **Order of the open stages**: for every pair of stages, the deals that visited both vote on which
  came first (each deal's *first* entry into a stage counts, so a back-move does not reorder the
  pipeline, and a deal that skipped a stage simply does not vote on its pairs). The majority
  precedences form a graph whose topological order is the pipeline; among the stages that may come
  next, the one with the highest net precedence (sum over the other stages of
  ``(before - after) / (before + after)``) is taken first, then the lower mean first position, then
  the name. A cycle of majorities (noisy data) is broken the same way. Closed stages follow the
  open ones: won stages first, then lost, each by how many deals end there.

Example:
    >>> import pandas as pd
    >>> history = pd.DataFrame({
    ...     "opportunity_id": ["a", "a", "a", "b", "b", "c", "c"],
    ...     "stage": ["intro", "pitch", "signed", "intro", "dead", "intro", "pitch"],
    ...     "entered_at": ["2024-01-01", "2024-01-05", "2024-02-01",
    ...                    "2024-01-02", "2024-01-09", "2024-01-03", "2024-01-04"],
    ... })
    >>> deals = pd.DataFrame({"opportunity_id": ["a", "b", "c"],
    ...                       "stage": ["signed", "dead", "pitch"], "outcome": ["won", "lost", "open"]})
    >>> p = learn_pipeline(deals, history)
    >>> p.open_stages, p.won_stages, p.lost_stages
    (['intro', 'pitch'], ['signed'], ['dead'])
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from forecast.data.pipeline import DEFAULT_PIPELINE, SalesPipeline
from forecast.errors import InputError

LEARNT_NAME = "learnt"
"""Name of a pipeline learnt from the data (as stored in the warehouse's ``pipeline_stages``)."""

LEAVE_TOLERANCE = 0.05
"""Largest share of the deals reaching a stage that may leave it for the stage to count as terminal."""

DEFAULT_NAME_SHARE = 0.95
"""Share of stage values named as in the default pipeline above which the default pipeline is kept.

Such data follows the default pipeline with a few bad values; those rows are rejected as
``unknown_stage`` (as before) instead of becoming stages of a learnt pipeline.
"""

_WON_WORDS = (
    r"won|win|wins|winning|signed|booked|success|successful|purchased|ganado|ganada|ganhou|gagne|"
    r"gagné|gewonnen|vinto|vinta|closed\s?won"
)
_LOST_WORDS = (
    r"lost|lose|loss|dead|dropped|rejected|disqualified|declined|churned|cancelled|canceled|"
    r"unsuccessful|perdido|perdida|perdu|perdue|verloren|perso|persa|no\s?decision|closed\s?lost"
)
_WON_RE = re.compile(rf"\b({_WON_WORDS})\b")
_LOST_RE = re.compile(rf"\b({_LOST_WORDS})\b")


class PipelineLearnError(InputError):
    """The data does not tell which closed stage is won (or lost): ``--pipeline`` is needed."""


def clean_stages(values: pd.Series) -> pd.Series:
    """Stage values as validation will see them: text, trimmed, blanks missing.

    Args:
        values: A raw stage column.

    Returns:
        The cleaned values (object dtype, ``None`` where missing).
    """
    text = values.astype(object).where(values.notna(), None)
    out = text.map(lambda v: None if v is None else _text(v).strip() or None)
    return out.astype(object)


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def stage_values(frames: Iterable[pd.DataFrame | None]) -> pd.Series:
    """All non-missing cleaned ``stage`` values of the given frames (one per row).

    Args:
        frames: Raw ``opportunities`` and ``stage_history`` frames (``None`` or without a ``stage``
            column: skipped).

    Returns:
        The values, concatenated.
    """
    parts = [clean_stages(f["stage"]) for f in frames if f is not None and "stage" in f.columns]
    if not parts:
        return pd.Series([], dtype=object)
    values = pd.concat(parts, ignore_index=True)
    return values[values.notna()]


def follows(values: pd.Series, pipeline: SalesPipeline, share: float = DEFAULT_NAME_SHARE) -> bool:
    """Whether stage values follow ``pipeline`` (every value known, or at least ``share`` of them).

    Args:
        values: Cleaned stage values (:func:`stage_values`).
        pipeline: The pipeline to compare with.
        share: Least share of known values; ``1.0`` requires every value to be known.

    Returns:
        ``True`` for no values at all.
    """
    if values.empty:
        return True
    known = values.isin(pipeline.names)
    return bool(known.all()) or float(known.mean()) >= share


def needs_learning(values: pd.Series, default: SalesPipeline = DEFAULT_PIPELINE) -> bool:
    """Whether a canonical import without a given or stored pipeline should learn one.

    Args:
        values: Cleaned stage values of the import (:func:`stage_values`).
        default: The pipeline used otherwise.

    Returns:
        ``False`` when the values follow ``default`` (:func:`follows`): today's behaviour is kept.
    """
    return not follows(values, default)


def learn_pipeline(
    opportunities: pd.DataFrame | None,
    stage_history: pd.DataFrame | None,
    *,
    name: str = LEARNT_NAME,
    source: str = "the data",
) -> SalesPipeline:
    """Learn the pipeline from deals and their stage history (method in the module docstring).

    Args:
        opportunities: Raw ``opportunities`` (``opportunity_id``, ``stage``, ``outcome`` used when
            present), or ``None``.
        stage_history: Raw ``stage_history`` (``opportunity_id``, ``stage``, ``entered_at``), or ``None``.
        name: Name of the learnt pipeline.
        source: What the data is (a path), for messages.

    Returns:
        The pipeline: open stages in learnt order, then won, then lost stages.

    Raises:
        PipelineLearnError: No stage, no closed stage, or no won or no lost stage can be told; the
            message says to pass ``--pipeline`` and shows an example file with the data's stages.
    """
    seq = _sequences(opportunities, stage_history)
    if seq.empty:
        raise PipelineLearnError(_message(source, "the deals carry no stage", [], []))
    stages = list(dict.fromkeys(seq["stage"]))
    visited = seq.groupby("stage", sort=False)["deal"].nunique()
    last = seq.groupby("deal", sort=False)["stage"].last()
    ended = last.value_counts()
    outcome = _current_outcomes(opportunities)
    informative = bool((outcome[["won", "lost"]].to_numpy().sum()) > 0) if not outcome.empty else False

    closed: list[str] = []
    for stage in stages:
        n_visit = int(visited.get(stage, 0))
        n_end = int(ended.get(stage, 0))
        terminal = n_end > 0 and (n_visit - n_end) <= LEAVE_TOLERANCE * n_visit
        if informative and stage in outcome.index and outcome.loc[stage].sum() > 0:
            row = outcome.loc[stage]
            is_closed = bool(row["won"] + row["lost"] > row["open"])
        else:
            is_closed = terminal
        if is_closed:
            closed.append(stage)
    open_stages = [s for s in stages if s not in closed]
    ordered_open = _order(seq[seq["stage"].isin(open_stages)], open_stages)
    if not closed:
        raise PipelineLearnError(
            _message(source, "no stage is closed (no deal ends in a stage it never leaves)", ordered_open, [])
        )

    won: list[str] = []
    lost: list[str] = []
    for stage in closed:
        verdict = _won_by_outcome(outcome, stage) if informative else None
        if verdict is None:
            verdict = _won_by_name(stage)
        (won if verdict else lost).append(stage)
    if not won or not lost:
        missing = "won" if not won else "lost"
        reason = (
            f"no closed stage can be told {missing} (closed stages: {', '.join(closed)}; the outcome "
            f"column marks none of their deals {missing} and no name reads as {missing})"
        )
        raise PipelineLearnError(_message(source, reason, ordered_open, closed))
    by_end = lambda s: (-int(ended.get(s, 0)), s)  # noqa: E731 - a sort key
    stage_dicts: list[dict[str, object]] = [{"name": s} for s in ordered_open]
    stage_dicts += [{"name": s, "is_closed": True, "is_won": True} for s in sorted(won, key=by_end)]
    stage_dicts += [{"name": s, "is_closed": True} for s in sorted(lost, key=by_end)]
    return SalesPipeline.from_dict({"name": name, "stages": stage_dicts})


def describe(pipeline: SalesPipeline) -> str:
    """One line for people: ``a → b → c → won (won) / lost (lost)``."""
    closed = [f"{s} (won)" for s in pipeline.won_stages] + [f"{s} (lost)" for s in pipeline.lost_stages]
    return " → ".join([*pipeline.open_stages, " / ".join(closed)])


def example_yaml(open_stages: list[str], closed: list[str]) -> str:
    """An example ``--pipeline`` file using the data's stage names where they are known."""
    opens = open_stages or ["prospecting", "proposal"]
    lines = ["name: my_crm", "stages:"] + [f"  - name: {s}" for s in opens]
    if closed:
        lines += [f"  - {{name: {s}, is_closed: true}}" for s in closed]
        lines.append(
            "  # and add is_won: true to the won stage(s), e.g. {name: won, is_closed: true, is_won: true}"
        )
    else:
        lines += ["  - {name: won, is_closed: true, is_won: true}", "  - {name: lost, is_closed: true}"]
    return "\n".join(lines)


def _message(source: str, reason: str, open_stages: list[str], closed: list[str]) -> str:
    return (
        f"{source}: the stages are not those of the default pipeline and the pipeline cannot be learnt "
        f"from the data: {reason}. Pass the pipeline with --pipeline FILE (or FORECAST_PIPELINE_FILE), "
        "a YAML file listing the stages in order, for example:\n" + example_yaml(open_stages, closed)
    )


def _sequences(opportunities: pd.DataFrame | None, history: pd.DataFrame | None) -> pd.DataFrame:
    """Each deal's stage sequence: columns ``deal``, ``stage``, ``pos`` (0, 1, … per deal)."""
    parts: list[pd.DataFrame] = []
    if history is not None and {"opportunity_id", "stage"} <= set(history.columns):
        h = pd.DataFrame(
            {
                "deal": clean_stages(history["opportunity_id"]),
                "stage": clean_stages(history["stage"]),
                "t": _times(history["entered_at"]) if "entered_at" in history.columns else pd.NaT,
                "last": 0,
            }
        )
        parts.append(h)
    if opportunities is not None and {"opportunity_id", "stage"} <= set(opportunities.columns):
        parts.append(
            pd.DataFrame(
                {
                    "deal": clean_stages(opportunities["opportunity_id"]),
                    "stage": clean_stages(opportunities["stage"]),
                    "t": pd.NaT,
                    "last": 1,  # the current stage comes after every change
                }
            )
        )
    if not parts:
        return pd.DataFrame({"deal": [], "stage": [], "pos": []})
    rows = pd.concat(parts, ignore_index=True)
    rows = rows[rows["deal"].notna() & rows["stage"].notna()]
    rows = rows.assign(row=np.arange(len(rows)))
    rows = rows.sort_values(["deal", "last", "t", "row"], kind="stable", na_position="last")
    same = (rows["deal"] == rows["deal"].shift()) & (rows["stage"] == rows["stage"].shift())
    rows = rows[~same]
    rows = rows.assign(pos=rows.groupby("deal", sort=False).cumcount())
    return rows[["deal", "stage", "pos"]].reset_index(drop=True)


def _times(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        out = pd.to_datetime(values, utc=True)
    else:
        text = clean_stages(values)
        out = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    return pd.Series(out, index=values.index).dt.tz_localize(None)


def _current_outcomes(opportunities: pd.DataFrame | None) -> pd.DataFrame:
    """Deals per current stage and outcome: index stage, columns ``open``, ``won``, ``lost``."""
    empty = pd.DataFrame(columns=["open", "won", "lost"], dtype="int64")
    if opportunities is None or not {"stage", "outcome"} <= set(opportunities.columns):
        return empty
    stage = clean_stages(opportunities["stage"])
    outcome = clean_stages(opportunities["outcome"]).map(lambda v: v if v is None else v.lower())
    keep = stage.notna() & outcome.isin(["open", "won", "lost"])
    if not keep.any():
        return empty
    table = pd.crosstab(stage[keep], outcome[keep])
    return table.reindex(columns=["open", "won", "lost"], fill_value=0)


def _won_by_outcome(outcome: pd.DataFrame, stage: str) -> bool | None:
    if stage not in outcome.index:
        return None
    won, lost = (int(v) for v in outcome.loc[stage, ["won", "lost"]].to_numpy())
    if won == lost:
        return None
    return won > lost


def _won_by_name(stage: str) -> bool | None:
    text = re.sub(r"[^0-9a-zà-ÿ]+", " ", stage.lower()).strip()
    is_won, is_lost = bool(_WON_RE.search(text)), bool(_LOST_RE.search(text))
    if is_won == is_lost:
        return None  # neither, or both ("won/lost"): the name does not tell
    return is_won


def _order(seq: pd.DataFrame, stages: list[str]) -> list[str]:
    """Open stages in pipeline order: a topological order of the majority precedences."""
    if len(stages) <= 1:
        return list(stages)
    index = {s: i for i, s in enumerate(stages)}
    first = seq.groupby(["deal", "stage"], sort=False)["pos"].min().reset_index()
    first["code"] = first["stage"].map(index)
    pairs = first.merge(first, on="deal", suffixes=("_a", "_b"))
    pairs = pairs[pairs["pos_a"] < pairs["pos_b"]]  # a deal's vote: a was entered before b
    n = len(stages)
    before = np.zeros((n, n), dtype=np.int64)  # before[i, j]: deals entering i before j
    np.add.at(before, (pairs["code_a"].to_numpy(), pairs["code_b"].to_numpy()), 1)
    total = before + before.T
    with np.errstate(invalid="ignore", divide="ignore"):
        margin = np.where(total > 0, (before - before.T) / np.where(total > 0, total, 1), 0.0)
    score = margin.sum(axis=1)
    mean_pos = first.groupby("stage")["pos"].mean()
    key = {s: (-score[index[s]], float(mean_pos.get(s, np.inf)), s) for s in stages}
    remaining = set(stages)
    order: list[str] = []
    while remaining:
        ready = [
            s
            for s in remaining
            if not any(before[index[o], index[s]] > before[index[s], index[o]] for o in remaining if o != s)
        ]
        pick = min(ready or remaining, key=key.__getitem__)
        order.append(pick)
        remaining.remove(pick)
    return order
