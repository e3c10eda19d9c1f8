"""Training configuration (one YAML file per model in ``training/``), typed with pydantic."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forecast.models.names import LEAD_SCORING
from forecast.name_rules import check_name
from forecast.yaml_config import read_yaml_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SnapshotSettings(_Strict):
    """Which snapshots make the training rows."""

    every: str = "7d"
    date_from: str | None = Field(default=None, alias="from")
    date_to: str | None = Field(default=None, alias="to")
    horizon_days: int = Field(default=90, ge=1)
    horizon_quantile: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description=(
            "deal models: the horizon is this quantile of the CRM's own cycle (creation to close, "
            "Kaplan-Meier), in whole weeks, at most horizon_days; null: horizon_days as given"
        ),
    )
    horizon_of: Literal["close", "win"] = Field(
        default="close",
        description=(
            "with horizon_quantile: the cycle read, 'close' (creation to any close) or 'win' (creation "
            "to a win among the deals that win; losses are quick, so a win model needs this one)"
        ),
    )
    at_creation: bool = Field(
        default=True, description="add one snapshot per entity right after its creation (scores new records)"
    )
    censoring: Literal["drop", "ipcw"] = Field(
        default="drop",
        description=(
            "deal-win models: 'drop' trains on the snapshots followed for the whole horizon (at most "
            "half the history); 'ipcw' also on those whose deal closed before the data's end, weighted "
            "by the inverse probability of their follow-up (training.ipcw), with a horizon up to the "
            "follow-up that ipcw_min_survival of the snapshots reach"
        ),
    )
    ipcw_min_survival: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="with censoring 'ipcw': the floor of the follow-up share in the weights",
    )
    tail_follow_up: float | None = Field(
        default=0.1,
        gt=0,
        lt=1,
        description=(
            "deal-win models with horizon_quantile and censoring 'drop': where half the history caps "
            "the label horizon below the cycle's quantile, p_win also counts the wins the competing-risks "
            "hazard (or the stage incidence) expects after it, up to that quantile but no further than "
            "the follow-up this share of the snapshots reach (null: p_win stops at the label horizon)"
        ),
    )
    tail_to: Literal["cycle", "eventual"] = Field(
        default="cycle",
        description=(
            "with tail_follow_up: how far p_win counts the wins after the label horizon; 'cycle': only "
            "where half the history caps the label below the cycle's quantile, up to that quantile; "
            "'eventual': wherever the data follow deals past the label, up to horizon_days (the wins "
            "after the cycle's quantile too), no further than the follow-up tail_follow_up of the "
            "snapshots reach"
        ),
    )
    p_win_days: int | None = Field(
        default=None,
        ge=1,
        description=(
            "resolved at training (features.horizon.tail_horizon): the days p_win reaches; null: the "
            "label horizon"
        ),
    )
    tail_extrapolate: bool = Field(
        default=True,
        description=(
            "deal-win models served by the small-data stage model: where the follow-up stops p_win "
            "short of horizon_days (at most the hazard's last edge), carry each stage's win incidence "
            "on to it, the eventual win, with the win and loss hazards of the last read window held "
            "constant (models.stage_incidence.extrapolated_incidence); false: p_win stops at "
            "p_win_days (or the label horizon)"
        ),
    )
    tail_chain_weight: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "with tail_extrapolate: the weight, in each stage's carried-on p_win, of its eventual win "
            "chained through its deals' moves to other stages, read from each deal's later snapshots "
            "(an early stage wins only after moving on, later than the follow-up; "
            "models.stage_chain); the rest is the stage's own tail. Measured on short simulated "
            "histories, the chain alone over-predicts and the own tail under-predicts, by about as "
            "much (docs/models.md); 0: the stage's own tail alone"
        ),
    )
    p_win_tail_days: int | None = Field(
        default=None,
        ge=1,
        description=(
            "resolved at training: horizon_days (at most the hazard's last edge) where the label and "
            "p_win_days stop short of it; the days the small-data stage model carries p_win on to "
            "with tail_extrapolate; null: no carried-on tail"
        ),
    )
    truncated_history: Literal["note", "read_from_first_close", "off"] = Field(
        default="note",
        description=(
            "deal models: a history that holds no close before a date although many of its earlier "
            "deals were due to close by then at the cycle seen after it (an export of the deals still "
            "open on its first day; features.record_start). 'note': say so in the training notes and "
            "read the whole history; 'read_from_first_close': read the snapshots, the cycle, the "
            "follow-up and the history's length from that close on (not the default: on the Maven "
            "sample it did not beat the whole history, docs/models.md); 'off': do not check"
        ),
    )
    first_close: str | None = Field(
        default=None,
        description=(
            "resolved at training unless truncated_history is 'off': the first close of a history "
            "that holds no close before it although many were due (null: none such)"
        ),
    )

    def read_from(self) -> str | None:
        """The date the history is read from when its early closes are missing (``None``: all of it)."""
        return self.first_close if self.truncated_history == "read_from_first_close" else None

    def outcomes_note(self) -> str | None:
        """What training says when the history's record of closes starts late (``None``: it does not)."""
        if not self.first_close or self.truncated_history == "off":
            return None
        day = self.first_close[:10]
        said = (
            f"the history holds no close before {day} although many of its earlier deals were due to "
            f"close by then at the cycle seen after it (an export of the deals still open on its first "
            f"day: left-truncated)"
        )
        if self.read_from():
            return f"{said}; snapshots, the cycle and the history's length are read from {day} on"
        return (
            f"{said}; its snapshots before {day} hold only deals that did not close then "
            f"(snapshots.truncated_history: read_from_first_close reads it from {day} on)"
        )


class SplitSettings(_Strict):
    """Time-based split (or, without dates, a stratified or row-order split)."""

    valid_fraction: float = Field(default=0.2, gt=0, lt=1)
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    gap_days: float | None = Field(
        default=None, ge=0, description="default: the label horizon (0 for a flat export)"
    )
    without_time: Literal["stratified", "order"] = "stratified"
    method: Literal["auto", "time", "order", "random", "stratified"] = Field(
        default="auto",
        description=(
            "auto: by time where dates exist, else without_time; time needs a time column; order: "
            "the rows as they stand, the last test_fraction as test (an export kept in time order)"
        ),
    )


class LightGBMSettings(_Strict):
    """Parameters of :class:`~forecast.models.pipeline.CalibratedLGBMClassifier`."""

    n_estimators: int = 2000
    learning_rate: float = 0.03
    num_leaves: int = 15
    min_child_samples: int = 50
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 100
    calibration: Literal["auto", "sigmoid", "isotonic", "none"] = "auto"
    separate_calibration: bool = False
    prior_features: list[str] = Field(
        default=[], description="columns of a logistic prior the trees boost from (init_score); empty: none"
    )
    prior_only: list[str] = Field(default=[], description="prior features the trees do not see")
    prior_c: float | Literal["cv"] = Field(
        default=0.1, description="inverse L2 regularisation of the prior, or 'cv' (3-fold cross-validation)"
    )

    @field_validator("prior_c")
    @classmethod
    def _positive_c(cls, value: float | str) -> float | str:
        if not isinstance(value, str) and value <= 0:
            raise ValueError("prior_c must be positive or 'cv'")
        return value

    prior_fit_column: str | None = Field(
        default=None,
        description="fit the prior on rows with this column <= prior_fit_max (default: all rows)",
    )
    prior_fit_max: float = 0.0
    prior_folds: int = Field(default=5, ge=0)
    prior_alone: bool = Field(default=False, description="rows the prior is fitted on are scored by it alone")


class FinalFitSettings(_Strict):
    """The champion's final fit on all labelled rows, after evaluation (see ``forecast.training.binary``)."""

    enabled: bool = Field(
        default=True, description="refit on all labelled rows (off: the champion is the evaluation model)"
    )
    folds: int = Field(default=3, ge=2, description="entity folds of the fitting procedure")
    held_out_folds: int | None = Field(
        default=1,
        ge=1,
        description=(
            "folds held out in turn (tree count, calibrator rows): 1 = one held-out third, the "
            "cheapest; null = every fold (full cross-fitting, about twice the cost)"
        ),
    )
    full_below_rows: int = Field(
        default=30_000,
        ge=0,
        description="below this many rows every fold is held out in turn (small data needs every row)",
    )

    def held_out(self, rows: int) -> int | None:
        """Folds to hold out for a procedure on ``rows`` rows (``None``: all of them)."""
        return None if rows < self.full_below_rows else self.held_out_folds


class FamilySettings(_Strict):
    """Which model family is evaluated and served (see ``forecast.training.binary``)."""

    choice: Literal["auto", "lightgbm", "logistic"] = Field(
        default="lightgbm",
        description=(
            "lightgbm (default) or logistic (C by grouped cross-validation) force a family; auto "
            "serves whichever has the lower log loss on a selection slice cut from the fitting "
            "rows the way the test slice is cut from all of them (time-forward where there are "
            "dates), the test slice taking no part. Measured on small simulated CRMs, auto chose "
            "the logistic twice where LightGBM was better on the future (docs/models.md), so it "
            "is not the default"
        ),
    )
    min_selection_rows: int = Field(
        default=100, ge=1, description="below this many selection rows (or one class) LightGBM is kept"
    )
    logistic_where_lightgbm_loses: bool = Field(
        default=True,
        description=(
            "where the evaluated LightGBM model loses to the logistic-regression baseline on the test "
            "slice by the promotion gate's rule (a worse Brier score or ROC-AUC by more than two "
            "standard errors of the paired difference), the logistic family goes through the same "
            "evaluation and final fit and is served instead, said in the notes and the card: the "
            "gate would refuse that LightGBM model, leaving the CRM without one (its test metrics "
            "are then those of the better of two families, an upper estimate by a little). LightGBM "
            "is kept, with a note, with censoring: ipcw, where p_win reaches past the label horizon, "
            "where it ranks better beyond noise, and where the logistic scores no better Brier score; "
            "false always keeps LightGBM (docs/models.md)"
        ),
    )
    flat_time_ordered: Literal["auto", "lightgbm", "logistic"] = Field(
        default="auto",
        description=(
            "the family of a flat export tested on its later rows (--split time or order), in place "
            "of choice: its selection slice is the newest fitting rows, the nearest thing to the "
            "future. On UCI bank-additional-full in time order the selection slice (another macro "
            "regime) chose the logistic (test AUC 0.748 against 0.740 for LightGBM); on bank-full "
            "LightGBM (0.721 against 0.683)"
        ),
    )


class SmallDataSettings(_Strict):
    """Data-sufficiency thresholds (labelled rows and rows of the rarer class)."""

    min_rows: int = 200
    min_minority: int = 40
    absolute_min_rows: int = 40
    absolute_min_minority: int = 8
    logistic_c: float = 0.1


class SurvivalSettings(_Strict):
    """Time-to-close settings (discrete-time hazard intervals and the horizons reported)."""

    edges: list[float] = [0, 7, 14, 21, 30, 45, 60, 75, 90, 120, 150, 180, 240, 365]
    proba_days: float = Field(default=30, gt=0, description="horizon of the calibrated probability")
    report_days: list[float] = [30, 60, 90]
    calibrate: bool = Field(
        default=True, description="isotonic calibration of the cumulative curves on the validation split"
    )

    @model_validator(mode="after")
    def _check_edges(self) -> SurvivalSettings:
        e = self.edges
        if len(e) < 3 or e[0] != 0 or any(b <= a for a, b in itertools.pairwise(e)):
            raise ValueError("survival.edges must start at 0 and increase (at least 3 edges)")
        if any(d > e[-1] for d in [self.proba_days, *self.report_days]):
            raise ValueError("survival.proba_days and report_days must not pass the last edge")
        return self


class WinBlendSettings(_Strict):
    """Deal win: blend the classifier with a competing-risks hazard's win incidence (``models.win_blend``)."""

    hazard_weight: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description=(
            "weight of the hazard's P(won within the label horizon) in the served p_win (0: the "
            "classifier alone). The hazard learns from every snapshot, censored ones included "
            "(docs/models.md)"
        ),
    )
    learning_rate: float = Field(default=0.05, gt=0, description="the hazard's LightGBM shrinkage")
    min_child_samples: int = Field(default=100, ge=1, description="the hazard's minimum rows per leaf")


class PromotionSettings(_Strict):
    """The written promotion gate."""

    max_auc_drop: float = 0.005


DEFAULT_BANDS: dict[str, float] = {"A": 0.30, "B": 0.15, "C": 0.05}
"""Lower probability bounds of bands A, B and C (D below); also the bands of a model logged without any."""


class TrainingConfig(_Strict):
    """Everything a training run needs besides the data.

    Attributes:
        model_name: Registered model name.
        experiment: MLflow experiment.
        entity: ``lead`` or ``opportunity`` (warehouse snapshots).
        label: Label column of the snapshot table (``label_days_to_close``: a time-to-close model).
        score_name: Name of the probability column in scores (default: by entity).
        snapshots: Snapshot cadence and label horizon.
        split: Split settings.
        lightgbm: Model parameters.
        monotone_increasing: Features whose increase may never lower a score.
        monotone_decreasing: Features whose increase may never raise a score.
        segments: Columns to check calibration within (e.g. source, channel).
        bands: Lower probability bound of bands A, B and C (D is the rest).
        small_data: Data-sufficiency thresholds.
        final_fit: The final fit on all labelled rows.
        family: Which model family is served (LightGBM, logistic, or chosen on a selection slice).
        promotion: The promotion gate.
        survival: Time-to-close intervals and horizons (also the deal-win blend's hazard).
        win_blend: Deal win: the weight of a competing-risks hazard's win incidence in ``p_win``.
        seed: Random seed.
    """

    model_name: str = LEAD_SCORING
    experiment: str = LEAD_SCORING
    entity: Literal["lead", "opportunity"] = "lead"
    label: str = "label_converted"
    score_name: str | None = None
    snapshots: SnapshotSettings = SnapshotSettings()
    split: SplitSettings = SplitSettings()
    lightgbm: LightGBMSettings = LightGBMSettings()
    monotone_increasing: list[str] = []
    monotone_decreasing: list[str] = []
    segments: list[str] = []
    bands: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_BANDS))
    small_data: SmallDataSettings = SmallDataSettings()
    final_fit: FinalFitSettings = FinalFitSettings()
    family: FamilySettings = FamilySettings()
    promotion: PromotionSettings = PromotionSettings()
    survival: SurvivalSettings = SurvivalSettings()
    win_blend: WinBlendSettings = WinBlendSettings()
    seed: int = 0

    @field_validator("model_name", "experiment")
    @classmethod
    def _check_names(cls, value: str) -> str:
        return check_name(value, "name")

    @model_validator(mode="after")
    def _check_bands(self) -> TrainingConfig:
        cuts = [self.bands.get(b) for b in ("A", "B", "C")]
        if any(c is None for c in cuts) or not (1 > cuts[0] > cuts[1] > cuts[2] > 0):  # type: ignore[operator]
            raise ValueError("bands need A > B > C, all between 0 and 1 (D is below C)")
        return self

    @classmethod
    def from_yaml(cls, path: Path) -> TrainingConfig:
        """Read a YAML config.

        Raises:
            ValueError: With the file name and pydantic's field paths.
        """
        return read_yaml_model(cls, path, "config")

    def band(self, p: float) -> str:
        """Band A-D of a probability."""
        for name in ("A", "B", "C"):
            if p >= self.bands[name]:
                return name
        return "D"
