"""Leak detection: the columns that give the outcome away.

Near-perfect single-column AUC, filled for one class only, values that exist for one outcome only,
after-the-outcome text and dates, outcome words in the name.

Thresholds are documented in ``docs/features.md``. Results are deterministic (fixed fold seeds).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from forecast.features.flat.names import outcome_words
from forecast.features.flat.roles import ColumnRole
from forecast.features.flat.schema import DAYS_BEFORE_SUFFIX, source_of

LEAKAGE_AUC = 0.98
"""A column whose value (or whose being filled) alone reaches this ROC-AUC is flagged."""
FILL_MIN_MISSING_SHARE = 0.20
"""The "filled almost only for one class" rule applies to columns missing in at least this share."""
FILL_CLASS_PURITY = 0.99
"""… when at least this share of the filled rows belong to one class …"""
FILL_SHARE_GAP = 0.5
"""… and the share of rows filled differs between the classes by at least this much."""
VALUE_CLASS_PURITY = 0.995
"""A categorical value whose rows belong to one class in at least this share (it exists for one outcome
only: a strong but imperfect predictor, e.g. a contract length whose "two year" level is 97% negative,
stays in) …"""
VALUE_MIN_CLASS_COVERAGE = 0.10
"""… and that covers at least this share of that class's rows …"""
VALUE_MIN_ROWS = 10
"""… and has at least this many rows is flagged, if it also passes the imbalance guard below."""
PURITY_LIFT = 0.2
"""Imbalance guard: inside the value, the other class must be at most this fraction of its base rate."""
AFTER_OUTCOME_TEXT = re.compile(
    r"\b(?:closed by|closed won|closed lost|lost to|won by|will revert|reverted|churned|cancell?ed|refunded|"
    r"already (?:a )?(?:customer|student|bought|purchased|enrolled)|not interested|converted|"
    r"signed (?:up|the contract)|invalid number|wrong number|switched off|ringing|do not call)\b",
    re.IGNORECASE,
)
"""Text a rep writes after the outcome (tags, notes): "Closed by Horizzon", "Lost to EINS", "Will revert"."""
AFTER_OUTCOME_MIN_SHARE = 0.05
"""The after-the-outcome text rule applies when such values fill at least this share of rows …"""
AFTER_OUTCOME_PURITY = 0.85
"""… and at least this share of the rows of each such value belong to one class."""
LATER_THAN_TIME_SHARE = 0.2
"""A date column dated after ``--time`` in at least this share of rows was written after the fact."""
N_FOLDS = 5
RANDOM_STATE = 0


@dataclass(frozen=True)
class LeakageFlag:
    """A column suspected of leaking the outcome.

    Attributes:
        column: Feature column name.
        reason: Plain words, e.g. "predicts the target almost perfectly on its own (AUC 0.998)".
        evidence: The numbers behind the reason.
        confidence: ``high`` with near-perfect separation or two kinds of evidence of
            after-the-outcome content (name, text, dates after ``--time``, values or filling that
            exist for one outcome only), else ``medium``.
    """

    column: str
    reason: str
    evidence: dict[str, float]
    confidence: Literal["high", "medium"] = "medium"


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """max(AUC, 1 - AUC) of ``score`` for binary ``y``; 0.5 when undefined."""
    if len(np.unique(y)) < 2 or len(np.unique(score)) < 2:
        return 0.5
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


def _numeric_auc(x: pd.Series, y: np.ndarray) -> float:
    """AUC of the raw value, with missing values ranked lowest or highest (whichever is better)."""
    values = x.to_numpy(dtype="float64")
    if np.isnan(values).all():
        return 0.5
    low, high = np.nanmin(values) - 1.0, np.nanmax(values) + 1.0
    return max(
        _auc(y, np.where(np.isnan(values), low, values)), _auc(y, np.where(np.isnan(values), high, values))
    )


def _oof_level_rate_auc(x: pd.Series, y: np.ndarray) -> float:
    """AUC of the per-level target rate computed out of fold (5-fold, fixed seed)."""
    codes, _ = pd.factorize(x.astype(object).where(x.notna(), "__missing__"))
    n_splits = min(N_FOLDS, int(np.bincount(y).min()))
    if n_splits < 2:
        return 0.5
    k = int(codes.max()) + 1
    encoded = np.empty(len(y), dtype="float64")
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=RANDOM_STATE)
    for train, test in folds.split(codes, y):
        counts = np.bincount(codes[train], minlength=k)
        sums = np.bincount(codes[train], weights=y[train], minlength=k)
        rate = np.where(counts > 0, sums / np.maximum(counts, 1), y[train].mean())
        encoded[test] = rate[codes[test]]
    return _auc(y, encoded)


def _is_categorical(x: pd.Series) -> bool:
    return bool(pd.api.types.is_object_dtype(x) or isinstance(x.dtype, pd.CategoricalDtype | pd.StringDtype))


def _class_words(cls: int, positive_label: str) -> str:
    return f"positive ({positive_label!r})" if cls == 1 else "negative"


def _fill_rule(x: pd.Series, y: np.ndarray, positive_label: str) -> tuple[str, dict[str, float]] | None:
    filled = x.notna().to_numpy()
    if (1 - filled.mean()) < FILL_MIN_MISSING_SHARE or not filled.any():
        return None
    pos_share = float(y[filled].mean())
    cls = int(pos_share >= 0.5)
    purity = pos_share if cls == 1 else 1 - pos_share
    fill_pos, fill_neg = float(filled[y == 1].mean()), float(filled[y == 0].mean())
    gap = abs(fill_pos - fill_neg)
    if purity < FILL_CLASS_PURITY or gap < FILL_SHARE_GAP:
        return None
    same, other = (fill_pos, fill_neg) if cls == 1 else (fill_neg, fill_pos)
    reason = (
        f"filled almost only for {_class_words(cls, positive_label)} rows ({purity:.0%} of filled rows; "
        f"filled in {same:.0%} of those rows vs {other:.0%} of the others)"
    )
    return reason, {"filled_class_purity": purity, "fill_share_gap": gap}


def _value_rule(x: pd.Series, y: np.ndarray, positive_label: str) -> tuple[str, dict[str, float]] | None:
    present = x.notna().to_numpy()
    if not present.any():
        return None
    levels = x[present].astype(str).to_numpy()
    yy = y[present]
    table = pd.crosstab(levels, yy)
    for cls in (0, 1):
        if cls not in table.columns:
            table[cls] = 0
    n_class = np.array([(y == 0).sum(), (y == 1).sum()], dtype=float)
    base = n_class / n_class.sum()
    best: tuple[float, str, int, float, float] | None = None
    for level, row in table.iterrows():
        counts = np.array([row[0], row[1]], dtype=float)
        total = counts.sum()
        cls = int(counts[1] > counts[0])
        purity = counts[cls] / total
        coverage = counts[cls] / n_class[cls] if n_class[cls] else 0.0
        other_rate = counts[1 - cls] / total
        if (
            total >= VALUE_MIN_ROWS
            and purity >= VALUE_CLASS_PURITY
            and coverage >= VALUE_MIN_CLASS_COVERAGE
            and other_rate <= PURITY_LIFT * base[1 - cls]
            and (best is None or coverage > best[0])
        ):
            best = (coverage, str(level), cls, purity, total)
    if best is None:
        return None
    coverage, level, cls, purity, total = best
    reason = (
        f"the value {level!r} appears almost only in {_class_words(cls, positive_label)} rows "
        f"({purity:.0%} of its {int(total)} rows; it covers {coverage:.0%} of that class)"
    )
    return reason, {"value_class_purity": float(purity), "value_class_coverage": float(coverage)}


def _text_rule(x: pd.Series, y: np.ndarray, positive_label: str) -> tuple[str, dict[str, float]] | None:
    """Values written after the outcome ("Closed by …", "Lost to …", "Will revert"), each mostly one class."""
    present = x.notna().to_numpy()
    if not present.any():
        return None
    text = x[present].astype(str)
    matches = pd.Series(text.unique()).loc[lambda u: u.str.contains(AFTER_OUTCOME_TEXT)]
    if matches.empty:
        return None
    hit = text.isin(set(matches)).to_numpy()
    share = float(hit.sum() / len(x))
    rates = pd.Series(y[present][hit]).groupby(text.to_numpy()[hit]).agg(["mean", "size"])
    purity = float((np.maximum(rates["mean"], 1 - rates["mean"]) * rates["size"]).sum() / rates["size"].sum())
    if share < AFTER_OUTCOME_MIN_SHARE or purity < AFTER_OUTCOME_PURITY:
        return None
    shown = ", ".join(repr(v) for v in list(matches)[:3])
    reason = (
        f"its values read as written after the outcome ({shown}: {share:.0%} of rows, "
        f"{purity:.0%} of them of one outcome)"
    )
    return reason, {"after_outcome_text_share": share, "after_outcome_text_purity": purity}


def _later_rule(x: pd.Series, y: np.ndarray, positive_label: str) -> tuple[str, dict[str, float]] | None:
    """A date feature (days before as_of) dated after ``--time`` in many rows."""
    days = x.to_numpy(dtype="float64")
    filled = ~np.isnan(days)
    if not filled.any():
        return None
    later = float((days[filled] < 0).mean())
    if later < LATER_THAN_TIME_SHARE:
        return None
    reason = f"dated after the --time column in {later:.0%} of the rows where it is filled"
    return reason, {"share_after_time": later}


def column_auc(features: pd.DataFrame, target: pd.Series) -> dict[str, tuple[float, float]]:
    """Single-column predictive power on the rows with a known target.

    Args:
        features: Feature columns (numeric floats or categorical strings).
        target: 0/1 labels aligned with ``features`` (missing = unlabelled, ignored).

    Returns:
        Per column ``(auc_value, auc_missing)``: the AUC of the value (numeric: raw value with missing
        ranked at either end; categorical: out-of-fold per-level target rate) and of the is-missing
        indicator, each as max(AUC, 1 - AUC).
    """
    known = target.notna().to_numpy()
    y = target[known].astype(int).to_numpy()
    out: dict[str, tuple[float, float]] = {}
    for column in features.columns:
        x = features[column][known]
        value_auc = _oof_level_rate_auc(x, y) if _is_categorical(x) else _numeric_auc(x.astype("float64"), y)
        out[column] = (value_auc, _auc(y, x.isna().to_numpy(dtype="float64")))
    return out


def detect_leakage(
    features: pd.DataFrame,
    target: pd.Series,
    roles: Sequence[ColumnRole] = (),
    *,
    positive_label: str = "1",
    auc: dict[str, tuple[float, float]] | None = None,
) -> list[LeakageFlag]:
    """Flag columns that probably leak the outcome.

    Measured on the rows with a known target:

    (a) predicts the target almost perfectly on its own: value AUC or is-missing AUC ≥ 0.98
        (see :func:`column_auc`);
    (b) filled almost only for one class: the column is missing in ≥ 20% of rows, ≥ 97% of its
        filled rows are of one class and the fill share differs between classes by ≥ 0.5; or one
        categorical (or boolean) value has ≥ 10 rows, ≥ 97% of them in one class, covers ≥ 10% of that
        class, and the other class is at most 0.2x as frequent inside it as overall (guards against
        imbalanced targets, where every value is mostly negative);
    (c) the name speaks of the outcome (:data:`OUTCOME_TOKENS`, :data:`OUTCOME_PHRASES`).

    Args:
        features: Candidate feature columns (not the target).
        target: 0/1 labels aligned with ``features``; missing labels are ignored.
        roles: Input column roles; columns whose source role is id, target or time are skipped.
        positive_label: Raw positive target value, for the reasons' wording.
        auc: Precomputed :func:`column_auc` (computed when omitted).

    Returns:
        One flag per flagged column, reasons joined by "; ", in column order.
    """
    skip = {r.name for r in roles if r.role in ("id", "target", "time")}
    columns = [c for c in features.columns if source_of(c) not in skip]
    known = target.notna().to_numpy()
    y = target[known].astype(int).to_numpy()
    both_classes = len(np.unique(y)) == 2
    scores = auc if auc is not None else (column_auc(features[columns], target) if both_classes else {})
    flags: list[LeakageFlag] = []
    for column in columns:
        reasons: list[str] = []
        evidence: dict[str, float] = {}
        kinds = 0  # independent kinds of after-the-outcome evidence
        separates = False
        if both_classes:
            value_auc, missing_auc = scores[column]
            separates = max(value_auc, missing_auc) >= LEAKAGE_AUC
            if value_auc >= LEAKAGE_AUC:
                reasons.append(f"predicts the target almost perfectly on its own (AUC {value_auc:.3f})")
                evidence["auc"] = round(value_auc, 4)
            elif missing_auc >= LEAKAGE_AUC:
                reasons.append(
                    f"whether it is filled predicts the target almost perfectly (AUC {missing_auc:.3f})"
                )
                evidence["auc_missing"] = round(missing_auc, 4)
            x = features[column][known]
            categorical = _is_categorical(x)
            rules: list[Callable[..., tuple[str, dict[str, float]] | None]] = [_fill_rule]
            if categorical or x.nunique() <= 2:
                rules.append(_value_rule)
            if categorical:
                rules.append(_text_rule)
            if column.endswith(DAYS_BEFORE_SUFFIX):
                rules.append(_later_rule)
            for rule in rules:
                found = rule(x, y, positive_label)
                if found:
                    kinds += 1
                    reasons.append(found[0])
                    evidence |= {k: round(float(v), 4) for k, v in found[1].items()}
        words = outcome_words(source_of(column))
        if words:
            kinds += 1
            quoted = ", ".join(repr(w) for w in words)
            reasons.append(
                f"its name speaks of the outcome ({quoted}); such fields are usually filled after the result"
            )
            evidence["name_match"] = 1.0
        if reasons:
            confidence: Literal["high", "medium"] = "high" if separates or kinds >= 2 else "medium"
            flags.append(LeakageFlag(column, "; ".join(reasons), evidence, confidence))
    return flags
