"""Simulation configuration, fixed vocabularies and the generating coefficients.

Every number that shapes the simulated CRM lives here so that :func:`generating_params` can write
all of them to ``simulation_params.json`` next to the data.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from forecast.data.pipeline import DEFAULT_PIPELINE, SalesPipeline

INBOUND_SOURCES = (
    "web_form",
    "referral",
    "event",
    "paid_ads",
    "social",
    "organic_search",
    "content",
    "partner",
)
OUTBOUND_SOURCES = ("cold_call", "outbound_email")
SOURCES = INBOUND_SOURCES + OUTBOUND_SOURCES

DEFAULT_SOURCE_MIX: dict[str, float] = {
    "web_form": 0.17,
    "referral": 0.06,
    "event": 0.06,
    "paid_ads": 0.11,
    "social": 0.06,
    "organic_search": 0.10,
    "content": 0.08,
    "partner": 0.04,
    "cold_call": 0.16,
    "outbound_email": 0.16,
}
"""Share of new leads per source (normalised; overridable with ``SimulationConfig.source_mix``)."""

SOURCE_CONVERT_EFFECT: dict[str, float] = {
    "web_form": 0.45,
    "referral": 1.2,
    "event": 0.35,
    "paid_ads": -0.15,
    "social": -0.4,
    "organic_search": 0.3,
    "content": 0.0,
    "partner": 0.9,
    "cold_call": -1.0,
    "outbound_email": -1.2,
}
"""Additive logit effect of the lead source on conversion (source quality)."""

SOURCE_WIN_EFFECT: dict[str, float] = {
    "web_form": 0.1,
    "referral": 0.5,
    "event": 0.05,
    "paid_ads": -0.1,
    "social": -0.15,
    "organic_search": 0.1,
    "content": 0.0,
    "partner": 0.35,
    "cold_call": -0.3,
    "outbound_email": -0.35,
}

COMPANY_SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
SIZE_BOUNDS = ((1, 10), (11, 50), (51, 200), (201, 1000), (1001, 60000))
SIZE_MIX = (0.18, 0.30, 0.27, 0.16, 0.09)
SIZE_CONVERT_EFFECT = (-0.45, -0.1, 0.2, 0.2, 0.0)
SIZE_WIN_EFFECT = (0.15, 0.1, 0.0, -0.15, -0.35)
SIZE_AMOUNT_MULT = (0.35, 0.6, 1.0, 1.7, 3.0)
SIZE_DURATION_MULT = (0.7, 0.85, 1.0, 1.25, 1.55)

INDUSTRIES = (
    "software",
    "financial_services",
    "healthcare",
    "manufacturing",
    "retail",
    "education",
    "logistics",
    "media",
    "professional_services",
    "energy",
)
INDUSTRY_MIX = (0.2, 0.12, 0.1, 0.12, 0.1, 0.06, 0.07, 0.06, 0.11, 0.06)
INDUSTRY_CONVERT_EFFECT = (0.3, 0.1, -0.1, -0.05, 0.0, -0.3, -0.1, 0.05, 0.15, -0.15)
REVENUE_PER_EMPLOYEE = (
    220_000,
    380_000,
    150_000,
    260_000,
    180_000,
    90_000,
    200_000,
    170_000,
    140_000,
    600_000,
)

TITLES = ("C-level", "VP", "Director", "Manager", "Individual Contributor")
TITLE_MIX = (0.1, 0.12, 0.22, 0.3, 0.26)
TITLE_CONVERT_EFFECT = (0.3, 0.3, 0.2, 0.0, -0.4)

COUNTRIES = ("US", "CA", "GB", "DE", "FR", "ES", "NL", "AU", "JP", "SG", "IN", "BR", "MX")
COUNTRY_MIX = (0.34, 0.05, 0.1, 0.08, 0.06, 0.05, 0.03, 0.04, 0.03, 0.02, 0.05, 0.08, 0.07)
REGIONS = ("NA", "EMEA", "APAC", "LATAM")
COUNTRY_REGION = (0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3)

PRODUCTS = ("Starter", "Professional", "Analytics Add-on", "Services", "Enterprise")
PRODUCT_PRICE = (4_000.0, 18_000.0, 9_000.0, 25_000.0, 70_000.0)
PRODUCT_WIN_EFFECT = (0.3, 0.0, 0.45, -0.15, -0.45)
PRODUCT_DURATION_MULT = (0.75, 1.0, 0.8, 1.05, 1.35)
PRODUCT_BY_SIZE = (
    (0.55, 0.25, 0.12, 0.08, 0.0),
    (0.35, 0.38, 0.15, 0.1, 0.02),
    (0.15, 0.42, 0.18, 0.15, 0.1),
    (0.05, 0.35, 0.15, 0.2, 0.25),
    (0.02, 0.2, 0.13, 0.25, 0.4),
)
"""Rows: company size bucket; columns: product choice probabilities."""

LOSS_REASONS = ("price", "competitor", "no_decision", "timing", "no_budget", "went_silent")
LOSS_REASON_EARLY = (0.06, 0.12, 0.2, 0.17, 0.25, 0.2)
LOSS_REASON_LATE = (0.3, 0.27, 0.18, 0.1, 0.05, 0.1)

MONTH_SEASONALITY = (1.15, 1.1, 1.12, 1.0, 1.0, 0.95, 0.85, 0.75, 1.05, 1.1, 1.05, 0.8)
"""Relative lead-creation volume by calendar month (January first)."""
WEEKDAY_WEIGHT = (1.15, 1.2, 1.15, 1.1, 0.95, 0.15, 0.1)
"""Relative lead-creation volume by weekday (Monday first)."""

DEFAULT_STAGE_MEDIAN_DAYS = {
    "qualification": 8.0,
    "discovery": 12.0,
    "demo": 10.0,
    "proposal": 14.0,
    "negotiation": 10.0,
}

FIRST_NAMES = (
    "Ana", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kira", "Luis",
    "Maya", "Nils", "Olga", "Pablo", "Qiu", "Rosa", "Sam", "Tara", "Umar", "Vera", "Wei", "Yara",
)  # fmt: skip
LAST_NAMES = (
    "Garcia", "Smith", "Muller", "Rossi", "Tanaka", "Silva", "Novak", "Kim", "Dubois", "Khan", "Lopez",
    "Brown", "Jensen", "Costa", "Ivanova", "Okafor", "Nguyen", "Martin", "Schmidt", "Patel",
)  # fmt: skip
COMPANY_WORDS = (
    "Acme", "Apex", "Blue", "Bright", "Cedar", "Delta", "Echo", "Falcon", "Granite", "Harbor", "Iron",
    "Juniper", "Kite", "Lumen", "Maple", "Nova", "Orbit", "Pine", "Quartz", "River", "Summit", "Terra",
)  # fmt: skip
COMPANY_SUFFIXES = ("Labs", "Systems", "Group", "Partners", "Industries", "Solutions", "Health", "Works")


@dataclass(frozen=True)
class Coefficients:
    """Coefficients of the hidden generating model (logit scale unless stated).

    Attributes:
        convert_intercept: Baseline logit of a lead converting to an opportunity.
        convert_quality: Weight of the hidden lead quality (standard normal).
        convert_attention: Weight of the log of the hidden attention a lead receives.
        convert_skill: Weight of the log of the rep's hidden skill.
        win_intercept: Baseline logit of an opportunity being won.
        win_quality: Weight of the hidden deal quality (standard normal, correlated with lead quality).
        win_attention: Weight of the log of the hidden attention a deal receives.
        win_skill: Weight of the log of the rep's hidden skill.
        deal_lead_quality_corr: Correlation of the hidden deal quality with the lead quality.
        attention_sigma: Standard deviation of log attention (leads and deals).
        skill_sigma: Standard deviation of log rep skill.
    """

    convert_intercept: float = -1.95
    convert_quality: float = 1.0
    convert_attention: float = 0.8
    convert_skill: float = 1.2
    win_intercept: float = -1.6
    win_quality: float = 1.1
    win_attention: float = 0.9
    win_skill: float = 1.6
    deal_lead_quality_corr: float = 0.5
    attention_sigma: float = 0.5
    skill_sigma: float = 0.3


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate.

    Attributes:
        n_leads: Number of leads created over the period.
        seed: Seed of the random generator; the same config gives byte-identical output.
        start: First day of the simulated period.
        months: Length of the period in calendar months; the end is the extraction time.
        n_reps: Number of reps; ``None`` scales with ``n_leads`` (one per 600 leads, at least 6).
        pipeline: Stages deals move through (open stages in order, then won / lost).
        source_mix: Override of the lead source shares (keys from the known sources; missing keys 0).
        conversion_shift: Added to the conversion logit of every lead (drift knob).
        win_shift: Added to the win logit of every deal (drift knob).
        activity_scale: Multiplies the volume of rep activities.
        stage_median_days: Median days per open stage; ``None`` uses defaults for the default
            pipeline and an even split of about 54 days otherwise.
        coefficients: Hidden model coefficients.
        win_rate: Target eventual win rate of the simulated deals; ``None`` keeps the generating
            model's own level. When set, a constant added to every win logit (on top of
            ``win_shift``) is solved for so that the mean true win probability of the deals equals it.
        win_drift: Change of the win logit per year of deal creation, centred on the middle of the
            period (a win rate that drifts over time; 0 keeps it stationary).
        cycle_days: Target median sales cycle (created to closed) of won deals in days; ``None``
            keeps the stage medians. When set, every deal's stage durations are scaled by one factor.
        rep_turnover: Share of reps that leave during the period, with as many hired during it;
            ``None`` keeps the default hires (20%) and leavers (~8%, after 240 days of tenure).
        quarter_push_days: The quarter-end push: a win due within this many days of its quarter's
            end is held to the quarter's last day and a half with probability 0.45 (reps closing
            for the quarter). ``None`` keeps the default 21 days (the push stays within the third
            month); 60 to 90 days move wins out of the quarter's first two months into its third.
    """

    n_leads: int = 20_000
    seed: int = 42
    start: datetime.date = date(2024, 1, 1)
    months: int = 24
    n_reps: int | None = None
    pipeline: SalesPipeline = DEFAULT_PIPELINE
    source_mix: dict[str, float] | None = None
    conversion_shift: float = 0.0
    win_shift: float = 0.0
    activity_scale: float = 1.0
    stage_median_days: tuple[float, ...] | None = None
    coefficients: Coefficients = field(default_factory=Coefficients)
    win_rate: float | None = None
    win_drift: float = 0.0
    cycle_days: float | None = None
    rep_turnover: float | None = None
    quarter_push_days: float | None = None

    def __post_init__(self) -> None:
        """Check the configuration.

        Raises:
            ValueError: On a non-positive size, an unknown source or a stage list of the wrong length.
        """
        if self.n_leads < 1 or self.months < 1:
            raise ValueError("n_leads and months must be positive")
        if self.n_reps is not None and self.n_reps < 1:
            raise ValueError("n_reps must be positive")
        if self.source_mix is not None:
            unknown = sorted(set(self.source_mix) - set(SOURCES))
            if unknown or sum(self.source_mix.values()) <= 0:
                raise ValueError(f"source_mix: unknown sources {unknown} or no positive share")
        if self.stage_median_days is not None and len(self.stage_median_days) != len(
            self.pipeline.open_stages
        ):
            raise ValueError("stage_median_days needs one value per open stage")
        if self.win_rate is not None and not 0.01 <= self.win_rate <= 0.99:
            raise ValueError("win_rate must lie between 0.01 and 0.99")
        if self.cycle_days is not None and not 1.0 <= self.cycle_days <= 2000.0:
            raise ValueError("cycle_days must lie between 1 and 2000")
        if self.rep_turnover is not None and not 0.0 <= self.rep_turnover <= 0.45:
            raise ValueError("rep_turnover must lie between 0 and 0.45")
        if self.quarter_push_days is not None and not 0.0 <= self.quarter_push_days <= 92.0:
            raise ValueError("quarter_push_days must lie between 0 and 92")

    def world_knobs(self) -> dict[str, float]:
        """The world knobs set away from their defaults (empty for the default world)."""
        knobs = {
            "win_rate": self.win_rate,
            "win_drift": self.win_drift or None,
            "cycle_days": self.cycle_days,
            "rep_turnover": self.rep_turnover,
            "quarter_push_days": self.quarter_push_days,
        }
        return {k: float(v) for k, v in knobs.items() if v is not None}

    @property
    def reps_count(self) -> int:
        """The number of reps to simulate."""
        return self.n_reps if self.n_reps is not None else max(6, round(self.n_leads / 600))

    def source_shares(self) -> np.ndarray:
        """Normalised source shares in :data:`SOURCES` order."""
        mix = self.source_mix if self.source_mix is not None else DEFAULT_SOURCE_MIX
        shares = np.array([float(mix.get(s, 0.0)) for s in SOURCES])
        return shares / shares.sum()

    def stage_medians(self) -> np.ndarray:
        """Median days spent in each open stage."""
        if self.stage_median_days is not None:
            return np.asarray(self.stage_median_days, dtype=float)
        names = self.pipeline.open_stages
        if all(n in DEFAULT_STAGE_MEDIAN_DAYS for n in names):
            return np.array([DEFAULT_STAGE_MEDIAN_DAYS[n] for n in names])
        return np.full(len(names), 54.0 / len(names))


@dataclass(frozen=True)
class Clock:
    """Converts simulated times (float days since ``start``) to timestamps.

    Attributes:
        start: Start of the period (midnight).
        end: End of the period (the extraction time).
    """

    start: pd.Timestamp
    end: pd.Timestamp

    @classmethod
    def from_config(cls, config: SimulationConfig) -> Clock:
        """Build the clock of a configuration."""
        start = pd.Timestamp(config.start)
        return cls(start, start + pd.DateOffset(months=config.months))

    @property
    def horizon(self) -> float:
        """Length of the period in days."""
        return float((self.end - self.start).days)

    def to_datetime(self, days: np.ndarray) -> np.ndarray:
        """Convert float days since start to ``datetime64[ns]`` (whole seconds; NaN becomes NaT)."""
        days = np.asarray(days, dtype=float)
        nan = np.isnan(days)
        secs = np.floor(np.where(nan, 0.0, days) * 86_400.0).astype(np.int64)
        out = (np.int64(self.start.value) + secs * np.int64(1_000_000_000)).astype("datetime64[ns]")
        out[nan] = np.datetime64("NaT")
        return out

    def to_date(self, days: np.ndarray) -> np.ndarray:
        """Convert float days since start to midnight timestamps (NaN becomes NaT)."""
        return self.to_datetime(np.floor(days))

    def month_index(self, days: np.ndarray) -> np.ndarray:
        """Calendar month (0 = January) of each simulated time."""
        stamps = self.to_date(days)
        return (stamps.astype("datetime64[M]").astype(np.int64) % 12).astype(np.int64)


def to_jsonable(obj: Any) -> Any:
    """Recursively convert dataclasses, tuples and numpy scalars into JSON-serialisable values."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, date):
        return obj.isoformat()
    return obj


def generating_params(config: SimulationConfig) -> dict[str, Any]:
    """All generating parameters and vocabularies of a configuration, as plain JSON values."""
    coef = config.coefficients
    return to_jsonable(
        {
            "config": {
                "n_leads": config.n_leads,
                "seed": config.seed,
                "start": config.start,
                "months": config.months,
                "n_reps": config.reps_count,
                "pipeline": config.pipeline.to_dict(),
                "source_mix": dict(zip(SOURCES, config.source_shares().round(6), strict=True)),
                "conversion_shift": config.conversion_shift,
                "win_shift": config.win_shift,
                "activity_scale": config.activity_scale,
                "stage_median_days": dict(
                    zip(config.pipeline.open_stages, config.stage_medians(), strict=True)
                ),
                **config.world_knobs(),
            },
            "coefficients": coef.__dict__,
            "effects": {
                "source_convert": SOURCE_CONVERT_EFFECT,
                "source_win": SOURCE_WIN_EFFECT,
                "size_convert": dict(zip(COMPANY_SIZES, SIZE_CONVERT_EFFECT, strict=True)),
                "size_win": dict(zip(COMPANY_SIZES, SIZE_WIN_EFFECT, strict=True)),
                "size_amount_mult": dict(zip(COMPANY_SIZES, SIZE_AMOUNT_MULT, strict=True)),
                "size_duration_mult": dict(zip(COMPANY_SIZES, SIZE_DURATION_MULT, strict=True)),
                "industry_convert": dict(zip(INDUSTRIES, INDUSTRY_CONVERT_EFFECT, strict=True)),
                "title_convert": dict(zip(TITLES, TITLE_CONVERT_EFFECT, strict=True)),
                "product_price": dict(zip(PRODUCTS, PRODUCT_PRICE, strict=True)),
                "product_win": dict(zip(PRODUCTS, PRODUCT_WIN_EFFECT, strict=True)),
                "product_duration_mult": dict(zip(PRODUCTS, PRODUCT_DURATION_MULT, strict=True)),
                "product_by_size": dict(zip(COMPANY_SIZES, PRODUCT_BY_SIZE, strict=True)),
                "loss_reasons_early": dict(zip(LOSS_REASONS, LOSS_REASON_EARLY, strict=True)),
                "loss_reasons_late": dict(zip(LOSS_REASONS, LOSS_REASON_LATE, strict=True)),
                "month_seasonality": MONTH_SEASONALITY,
                "weekday_weight": WEEKDAY_WEIGHT,
            },
            "mixes": {
                "size": dict(zip(COMPANY_SIZES, SIZE_MIX, strict=True)),
                "industry": dict(zip(INDUSTRIES, INDUSTRY_MIX, strict=True)),
                "title": dict(zip(TITLES, TITLE_MIX, strict=True)),
                "country": dict(zip(COUNTRIES, COUNTRY_MIX, strict=True)),
                "country_region": {c: REGIONS[r] for c, r in zip(COUNTRIES, COUNTRY_REGION, strict=True)},
            },
        }
    )


def choice_from_probs(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Draw one category per row from a ``(n, k)`` matrix of row probabilities (vectorised)."""
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(len(probs))
    return np.minimum((u[:, None] > cum).sum(axis=1), probs.shape[1] - 1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))
