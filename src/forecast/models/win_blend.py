"""The served deal-win probability: the classifier blended with a competing-risks hazard's win incidence.

The deal-win classifier learns "won within H days" from the snapshots followed for H days; the
snapshots of the last H days, still open at the data's end, are dropped, and with them the latest
months of the CRM. A competing-risks hazard (won, lost) learns from every snapshot, censored ones
included, and its cumulative incidence of winning by H days answers the same question. Served
where the CRM's own test slice favours it, the mean of the two scored a lower Brier score on the
future in each of the 6 simulated runs where it was served, and nowhere a higher one (docs/models.md,
"The served p_win").

:class:`HazardBlendedClassifier` is the fitted classifier with the hazard attached: the same
pipeline shape (``columns`` → ``categories`` → model), the same trees, prior, calibrator and
reasons (the reasons explain the classifier's part), and ``predict_proba`` the weighted mean. It is
assembled from two fitted parts (:meth:`HazardBlendedClassifier.from_parts`), never fitted itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from forecast.models.pipeline import CalibratedLGBMClassifier, predict_frame
from forecast.models.survival import DiscreteTimeHazard, IntervalProba


class HazardBlendedClassifier(CalibratedLGBMClassifier):
    """A fitted :class:`CalibratedLGBMClassifier` whose probability is blended with a hazard's win incidence.

    ``p = (1 - w) * classifier + w * P(won within days)`` where the incidence is the hazard's
    (fitted on the same encoded columns, so one encoding serves both). Rows the classifier's prior
    scores alone (creation snapshots, ``prior_alone``) keep the classifier's probability: trees grown
    on later snapshots only added noise there, the hazard's as the classifier's (measured: AUC at
    creation 0.635 without the hazard, 0.605 with it, on an 8-stage simulated world). Everything
    else (trees, contributions, importance) is the classifier's.

    Where half the history caps the label horizon H below the CRM's cycle, every row also gets the
    hazard's wins after H, up to ``p_win_days_`` (``snapshots.p_win_days``): ``p + P(won within
    p_win_days) - P(won within H)``, so that p_win counts the wins the label cannot see
    (:func:`forecast.features.horizon.tail_horizon`). With ``w = 0`` the hazard serves only that.

    Attributes:
        hazard_: The fitted competing-risks :class:`DiscreteTimeHazard`.
        hazard_weight_: ``w``.
        hazard_days_: Days after the snapshot at which the win incidence is read (the label horizon).
        p_win_days_: Days the probability reaches (``hazard_days_`` or more).
    """

    hazard_: DiscreteTimeHazard
    hazard_weight_: float
    hazard_days_: float
    p_win_days_: float | None = None  # models pickled before it reach the label horizon

    @classmethod
    def from_parts(
        cls,
        classifier: CalibratedLGBMClassifier,
        hazard: DiscreteTimeHazard,
        weight: float,
        days: float,
        reach: float | None = None,
    ) -> HazardBlendedClassifier:
        """The blend of a fitted classifier and a fitted hazard (neither is copied or changed).

        Args:
            classifier: The fitted classifier.
            hazard: The fitted competing-risks hazard, on the classifier's encoded columns.
            weight: The hazard's weight ``w``.
            days: The label horizon H.
            reach: Days the probability reaches (``None`` or at most ``days``: H).

        Raises:
            ValueError: The hazard does not tell wins from losses, reads other columns than the
                classifier, or the weight is outside [0, 1].
        """
        if not getattr(hazard, "competing_", False):
            raise ValueError("the hazard was fitted without causes: it has no win incidence")
        if list(getattr(hazard, "feature_names_in_", [])) != list(classifier.feature_names_in_):
            raise ValueError("the hazard and the classifier must read the same encoded columns")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"the hazard's weight must be within [0, 1]: {weight}")
        blend = cls.__new__(cls)
        blend.__dict__.update(classifier.__dict__)  # the classifier's parameters and fitted state
        blend.hazard_ = hazard
        blend.hazard_weight_ = float(weight)
        blend.hazard_days_ = float(days)
        blend.p_win_days_ = float(reach) if reach is not None and reach > days else None
        return blend

    def classifier_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """The classifier's own calibrated ``(n, 2)`` probabilities."""
        return super().predict_proba(X)

    def win_within(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """The hazard's P(won within ``hazard_days_``) per row."""
        return np.clip(self.hazard_.win_within(predict_frame(self, X), self.hazard_days_), 0.0, 1.0)

    def win_within_codes(self, codes: np.ndarray, interval_proba: IntervalProba | None = None) -> np.ndarray:
        """:meth:`win_within` from the encoded float matrix (the array scoring path).

        Args:
            codes: The encoded rows.
            interval_proba: The hazard's interval rows' probabilities computed another way, the same
                numbers (see :meth:`DiscreteTimeHazard.win_within`); default: its booster.
        """
        within = self.hazard_.win_within(codes, self.hazard_days_, interval_proba=interval_proba)
        return np.minimum(np.maximum(within, 0.0), 1.0)  # np.clip's values, without its wrapper

    def tail(self, X: pd.DataFrame, within: np.ndarray) -> np.ndarray | None:  # noqa: N803
        """The hazard's wins after the label horizon, up to ``p_win_days_`` (``None`` without a tail).

        Args:
            X: Encoded features.
            within: :meth:`win_within` of the same rows (P(won within the label horizon)).
        """
        if self.p_win_days_ is None:
            return None
        far = np.clip(self.hazard_.win_within(predict_frame(self, X), self.p_win_days_), 0.0, 1.0)
        return np.maximum(far - within, 0.0)

    def tail_codes(
        self, codes: np.ndarray, within: np.ndarray, interval_proba: IntervalProba | None = None
    ) -> np.ndarray | None:
        """:meth:`tail` from the encoded float matrix (the array scoring path).

        ``interval_proba``: as for :meth:`win_within_codes`.
        """
        if self.p_win_days_ is None:
            return None
        far = np.clip(
            self.hazard_.win_within(codes, self.p_win_days_, interval_proba=interval_proba), 0.0, 1.0
        )
        return np.maximum(far - within, 0.0)

    def blend(
        self, proba: np.ndarray, within: np.ndarray, alone: np.ndarray, tail: np.ndarray | None = None
    ) -> np.ndarray:
        """The ``(n, 2)`` blend of the classifier's probabilities and the hazard's incidence.

        Args:
            proba: The classifier's ``(n, 2)`` probabilities.
            within: The hazard's P(won within ``hazard_days_``).
            alone: Rows the classifier's prior scores alone (creation snapshots): they keep the
                classifier's probability, as they keep it without its trees.
            tail: The hazard's wins after the label horizon (:meth:`tail`), added to every row.
        """
        w = np.where(alone, 0.0, self.hazard_weight_)
        p = (1.0 - w) * proba[:, 1] + w * within
        p = np.minimum(np.maximum(p if tail is None else p + tail, 0.0), 1.0)  # np.clip's values, faster
        out = np.empty((len(p), 2))
        out[:, 0] = 1.0 - p
        out[:, 1] = p
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Blended probabilities, shape (n, 2)."""
        frame = predict_frame(self, X)
        within = self.win_within(frame)
        return self.blend(
            self.classifier_proba(frame), within, self._alone_rows(frame), self.tail(frame, within)
        )


def blended_pipeline(
    pipeline: Pipeline, hazard: DiscreteTimeHazard, weight: float, days: float, reach: float | None = None
) -> Pipeline:
    """A copy of a fitted classifier pipeline whose model is blended with ``hazard`` (the steps are shared).

    Args:
        pipeline: Fitted ``columns`` → ``categories`` → :class:`CalibratedLGBMClassifier` pipeline.
        hazard: Competing-risks hazard fitted on that pipeline's encoded columns.
        weight: The hazard's weight.
        days: Days at which its win incidence is read.
        reach: Days the probability reaches (``None``: ``days``; :meth:`HazardBlendedClassifier.tail`).
    """
    model = pipeline.steps[-1][1]
    if not isinstance(model, CalibratedLGBMClassifier):
        raise TypeError(f"only a LightGBM classifier is blended, not a {type(model).__name__}")
    steps: list[tuple[str, Any]] = [*pipeline.steps[:-1], (pipeline.steps[-1][0], None)]
    steps[-1] = (steps[-1][0], HazardBlendedClassifier.from_parts(model, hazard, weight, days, reach))
    return Pipeline(steps)
