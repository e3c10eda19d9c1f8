"""Tests of reason codes: contributions of small real pipelines and their plain-words phrases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from forecast.features.build import feature_catalogue
from forecast.models.baselines import LogisticBaseline
from forecast.models.logistic_terms import store_training_means
from forecast.models.pipeline import CalibratedLGBMClassifier, build_pipeline, fit_pipeline
from forecast.scoring.contributions import contributions
from forecast.scoring.phrasing import phrase, phrases
from forecast.scoring.reasons import MIN_CONTRIBUTION, describe, reason_codes, reasons_from_contributions

POSITIVE = "eng_pricing_page_view_7d"
NEGATIVE = "act_days_since_last_touch"
CATEGORY = "source"
NOISE = "employees"
FEATURES = [POSITIVE, NEGATIVE, CATEGORY, NOISE]
# fixed texts (the catalogue's wording may evolve; test_every_catalogue_feature_has_a_phrase covers it)
DESCRIPTIONS = {
    "eng_pricing_page_view_7d": "pricing-page views in the last 7 days",
    "act_call_7d": "calls in the last 7 days",
    "act_call_30d": "calls in the last 30 days",
    "act_inbound_30d": "inbound touches (the prospect reached out) in the last 30 days",
    "act_email_replies_30d": "email replies from the prospect in the last 30 days",
    "act_touches_total": "all touches so far",
    "eng_site_minutes_30d": "minutes on the website in the last 30 days",
    "act_email_reply_rate": "share of the rep's emails the prospect answered",
    "rep_win_rate_prior": "the rep's win rate on deals closed before this date (shrunk to the team's)",
    "act_days_since_last_touch": "days since the last contact",
    "age_days": "days since the lead was created",
    "act_next_action_scheduled": "a next step is booked",
    "source": "where the lead came from",
    "annual_revenue": "the company's annual revenue",
    "acct_prior_won_amount": "revenue already won from the same company",
    "act_call_avg_minutes_90d": "average length of connected calls (minutes, 90 days)",
    "employees": "the company's employees",
    "act_meetings_completed_90d": "meetings and demos held in the last 90 days",
    "eng_events_7d": "website and content interactions in the last 7 days",
}
KINDS = {"source": "categorical", "act_next_action_scheduled": "boolean"}


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            POSITIVE: rng.poisson(1.5, n).astype(float),
            NEGATIVE: rng.integers(0, 60, n).astype(float),
            CATEGORY: rng.choice(["referral", "web_form", "cold_call"], n, p=[0.3, 0.4, 0.3]).astype(object),
            NOISE: rng.integers(5, 500, n).astype(float),
        },
        index=pd.RangeIndex(1000, 1000 + n),  # not 0..n-1: reasons must keep X's index
    )
    x.loc[rng.random(n) < 0.1, NEGATIVE] = np.nan
    x.loc[rng.random(n) < 0.05, CATEGORY] = None
    days = x[NEGATIVE].fillna(30.0)
    logit = 1.2 * x[POSITIVE] - 0.06 * days + 0.8 * (x[CATEGORY] == "referral") - 0.5
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit.to_numpy()))).astype(int)
    return x, y


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return _frame(3000, seed=11)


@pytest.fixture(scope="module")
def lgbm(data: tuple[pd.DataFrame, np.ndarray]) -> Pipeline:
    x, y = data
    model = CalibratedLGBMClassifier(
        n_estimators=120, learning_rate=0.1, min_child_samples=20, random_state=3
    )
    pipeline = build_pipeline(FEATURES, [CATEGORY], model)
    return fit_pipeline(pipeline, x.iloc[:2200], y[:2200], x.iloc[2200:], y[2200:])


@pytest.fixture(scope="module")
def logistic(data: tuple[pd.DataFrame, np.ndarray]) -> Pipeline:
    x, y = data
    model = LogisticBaseline(categorical=[CATEGORY], numeric=[POSITIVE, NEGATIVE, NOISE], C=0.5)
    pipeline = build_pipeline(FEATURES, [], model)
    pipeline.steps[1] = ("categories", "passthrough")
    return fit_pipeline(pipeline, x.iloc[:600], y[:600])


def _logistic_log_odds(pipeline: Pipeline, x: pd.DataFrame) -> np.ndarray:
    model = pipeline.named_steps["model"]
    return np.asarray(model.pipeline_.decision_function(x[model.categorical_ + model.numeric_]))


# --- contributions ---------------------------------------------------------------------------------
def test_lgbm_contributions_add_up_to_the_raw_log_odds(lgbm: Pipeline, data: tuple) -> None:
    x = data[0].iloc[2200:]
    contrib = contributions(lgbm, x)
    assert list(contrib.columns) == FEATURES and contrib.index.equals(x.index)
    model = lgbm.named_steps["model"]
    encoded = lgbm[:-1].transform(x)
    bias = model.contributions(encoded)[:, -1]
    raw = model.model_.booster_.predict(encoded, num_iteration=model.best_iteration_, raw_score=True)
    assert np.allclose(contrib.sum(axis=1).to_numpy() + bias, raw)
    assert np.allclose(bias, bias[0])


def test_logistic_contributions_are_a_linear_decomposition(logistic: Pipeline, data: tuple) -> None:
    x = data[0]
    contrib = contributions(logistic, x)
    assert list(contrib.columns) == FEATURES
    # contributions + a constant bias = the model's log-odds, with one-hot and missing-indicator
    # columns summed back onto their input column
    rest = _logistic_log_odds(logistic, x) - contrib.sum(axis=1).to_numpy()
    assert np.ptp(rest) < 1e-9
    assert (contrib[CATEGORY].abs() > 0).any() and (contrib[NEGATIVE].abs() > 0).any()
    # rows with the same source level get the same source contribution
    per_level = contrib[CATEGORY].groupby(x[CATEGORY].fillna("(none)")).nunique()
    assert (per_level == 1).all()


def test_logistic_contributions_are_centred_on_the_training_means(logistic: Pipeline, data: tuple) -> None:
    x = data[0].iloc[:600]
    before = contributions(logistic, x)
    assert before[[POSITIVE, NEGATIVE, NOISE]].mean().abs().max() < 1e-9  # scaled: mean 0 already
    store_training_means(logistic, x)
    after = contributions(logistic, x)
    assert after.mean().abs().max() < 1e-9
    assert np.ptp(_logistic_log_odds(logistic, x) - after.sum(axis=1).to_numpy()) < 1e-9
    # the numeric columns were already centred; only the categorical reference changed
    assert np.allclose(before[[POSITIVE, NEGATIVE, NOISE]], after[[POSITIVE, NEGATIVE, NOISE]])


# --- reasons ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["lgbm", "logistic"])
def test_strongest_positive_feature_of_the_top_row_is_its_first_reason(
    which: str, request: pytest.FixtureRequest, data: tuple
) -> None:
    pipeline = request.getfixturevalue(which)
    x = data[0]
    reasons = reason_codes(pipeline, x, DESCRIPTIONS, kinds=KINDS)
    assert reasons.index.equals(x.index)
    assert list(reasons.columns) == [f"reason_up_{i}" for i in (1, 2, 3)] + [
        f"reason_down_{i}" for i in (1, 2, 3)
    ]
    top = x[POSITIVE].idxmax()
    expected = phrase(POSITIVE, x.loc[top, POSITIVE], DESCRIPTIONS[POSITIVE])
    assert reasons.loc[top, "reason_up_1"] == expected
    assert expected.endswith("pricing-page views in the last 7 days") and expected[0].isdigit()


@pytest.mark.parametrize("which", ["lgbm", "logistic"])
def test_reasons_have_the_right_sign_and_order(
    which: str, request: pytest.FixtureRequest, data: tuple
) -> None:
    pipeline = request.getfixturevalue(which)
    x = data[0].iloc[:400]
    contrib = contributions(pipeline, x)
    reasons = reason_codes(pipeline, x, {}, top_k=3)  # no descriptions: "<feature> = <value>"
    for (idx, row), (_, c) in zip(reasons.iterrows(), contrib.iterrows(), strict=True):
        for direction, sign in (("up", 1.0), ("down", -1.0)):
            texts = [row[f"reason_{direction}_{i}"] for i in (1, 2, 3)]
            named = [t.split(" = ")[0] for t in texts if t is not None]
            values = [c[f] * sign for f in named]
            assert all(v >= MIN_CONTRIBUTION for v in values), (idx, direction, named, values)
            assert values == sorted(values, reverse=True)
            # every feature left out is no stronger than the weakest one listed
            others = [c[f] * sign for f in FEATURES if f not in named]
            if len(named) < 3:
                assert all(v < MIN_CONTRIBUTION for v in others)
            elif others:
                assert max(others) <= min(values)
            assert texts[len(named) :] == [None] * (3 - len(named))


def test_missing_values_and_categories_in_reasons(lgbm: Pipeline, data: tuple) -> None:
    x = data[0]
    reasons = reason_codes(lgbm, x, DESCRIPTIONS, kinds=KINDS, top_k=4)
    text = pd.Series(reasons.to_numpy().ravel()).dropna()
    assert text.str.fullmatch(r"where the lead came from: (referral|web_form|cold_call|unknown)").any()
    assert text.str.contains("days since the last contact: ").any()
    assert (text == "days since the last contact: unknown").any()


def test_none_when_fewer_than_top_k_contributions() -> None:
    contrib = pd.DataFrame(
        {"a": [2.0, 0.0, -1.0], "b": [1e-7, 0.5, -3.0], "c": [-0.2, 0.0, -2.0]}, index=["r1", "r2", "r3"]
    )
    x = pd.DataFrame(
        {"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, np.nan], "c": ["u", "v", "w"]}, index=contrib.index
    )
    reasons = reasons_from_contributions(contrib, x, {"b": "the b"}, top_k=2)
    assert reasons.loc["r1"].tolist() == ["a = 1", None, "c = u", None]  # |1e-7| is never a reason
    assert reasons.loc["r2"].tolist() == ["the b: 5", None, None, None]
    assert reasons.loc["r3"].tolist() == [None, None, "the b: unknown", "c = w"]
    wide = reasons_from_contributions(contrib, x, {}, top_k=5)  # more slots than features
    assert wide.shape == (3, 10) and wide.loc["r3", "reason_down_3"] == "a = 3"
    assert wide.loc["r3", "reason_down_4"] is None


def test_kinds_fall_back_to_dtypes_and_statements() -> None:
    contrib = pd.DataFrame({"act_next_action_scheduled": [0.5, -0.5], "flag": [-0.2, 0.2]})
    x = pd.DataFrame({"act_next_action_scheduled": [True, False], "flag": [1.0, 0.0]})
    descriptions = {"act_next_action_scheduled": "a next step is booked", "flag": "an email was opened"}
    reasons = reasons_from_contributions(contrib, x, descriptions, top_k=1, kinds={"source": "categorical"})
    assert reasons.to_numpy().tolist() == [
        ["a next step is booked", "an email was opened"],
        ["no email was opened", "no next step is booked"],
    ]


def test_reason_codes_on_a_single_row(lgbm: Pipeline, data: tuple) -> None:
    row = data[0].iloc[[5]]
    reasons = reason_codes(lgbm, row, DESCRIPTIONS, kinds=KINDS, top_k=1)
    assert reasons.shape == (1, 2) and reasons.index.equals(row.index)


# --- phrases ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("feature", "value", "kind", "expected"),
    [
        ("eng_pricing_page_view_7d", 3.0, "numeric", "3 pricing-page views in the last 7 days"),
        ("eng_pricing_page_view_7d", 1, None, "1 pricing-page view in the last 7 days"),
        ("act_call_30d", 0.0, "numeric", "no calls in the last 30 days"),
        ("act_call_7d", np.float64(12.0), "numeric", "12 calls in the last 7 days"),
        ("act_inbound_30d", 1.0, "numeric", "1 inbound touch (the prospect reached out) in the last 30 days"),
        ("act_email_replies_30d", 1.0, "numeric", "1 email reply from the prospect in the last 30 days"),
        ("act_touches_total", 0.0, "numeric", "no touches so far"),
        ("eng_site_minutes_30d", 12.5, "numeric", "12.5 minutes on the website in the last 30 days"),
        ("act_email_reply_rate", 0.4, "numeric", "share of the rep's emails the prospect answered: 40%"),
        (
            "rep_win_rate_prior",
            0.333,
            "numeric",
            "the rep's win rate on deals closed before this date (shrunk to the team's): 33%",
        ),
        ("act_days_since_last_touch", 12.0, "numeric", "12 days since the last contact"),
        ("age_days", 3, "numeric", "3 days since the lead was created"),
        ("act_next_action_scheduled", 1.0, "boolean", "a next step is booked"),
        ("act_next_action_scheduled", 0.0, "boolean", "no next step is booked"),
        ("act_next_action_scheduled", False, None, "no next step is booked"),
        ("source", "referral", "categorical", "where the lead came from: referral"),
        ("source", None, "categorical", "where the lead came from: unknown"),
        ("act_call_7d", np.nan, "numeric", "calls in the last 7 days: unknown"),
        ("annual_revenue", 48000.0, "numeric", "the company's annual revenue: 48,000"),
        (
            "acct_prior_won_amount",
            1234567.4,
            "numeric",
            "revenue already won from the same company: 1,234,567",
        ),
        (
            "act_call_avg_minutes_90d",
            4.25,
            "numeric",
            "average length of connected calls (minutes, 90 days): 4.25",
        ),
        ("employees", 120.0, "numeric", "the company's employees: 120"),
        ("act_meetings_completed_90d", 1.0, "numeric", "1 meetings and demos held in the last 90 days"),
        ("eng_events_7d", 1.0, "numeric", "1 website and content interaction in the last 7 days"),
    ],
)
def test_phrase_with_the_catalogue(feature: str, value: object, kind: str | None, expected: str) -> None:
    assert phrase(feature, value, DESCRIPTIONS[feature], kind) == expected


def test_phrase_special_cases() -> None:
    # money-like names from outside the catalogue
    assert phrase("amount", 48000, "deal size") == "deal size: 48,000"
    # "times …" counts
    assert phrase("n_close_date_pushes", 0.0, "times the expected close date was pushed later") == (
        "the expected close date was pushed later: never"
    )
    assert (
        phrase("n_amount_decreases", 3.0, "times the deal size was cut") == "the deal size was cut: 3 times"
    )
    # booleans: negate sensibly, else yes/no
    assert phrase("is_dm", False, "the contact is a decision maker", "boolean") == (
        "the contact is not a decision maker"
    )
    assert phrase("has_champ", 0, "the deal has a champion", "boolean") == "the deal does not have a champion"
    assert phrase("newsletter", 1.0, "newsletter subscriber", "boolean") == "newsletter subscriber: yes"
    assert phrase("newsletter", "No", "newsletter subscriber", "boolean") == "newsletter subscriber: no"
    # flat exports: no description
    assert phrase("Amount", 48000.0, None) == "Amount = 48,000"
    assert phrase("Discount", 12.0, None) == "Discount = 12"
    assert phrase("Budget", np.nan, None) == "Budget = unknown"
    assert phrase("Industry", "__other__", None, "categorical") == "Industry = other"
    assert phrase("Newsletter", 1.0, None, "boolean") == "Newsletter = yes"
    assert phrase("honest_score", 0.123456, "") == "honest_score = 0.123"
    assert phrase("x", pd.NA, None) == "x = unknown"


@pytest.mark.parametrize("entity", ["lead", "opportunity"])
def test_every_catalogue_feature_has_a_phrase(entity: str) -> None:
    descriptions, kinds = describe(feature_catalogue(entity))
    for name, description in descriptions.items():
        values: list[object] = ["referral", None] if kinds[name] == "categorical" else [0.0, 1.0, 2.5, np.nan]
        for value in values:
            text = phrase(name, value, description, kinds[name])
            assert text and ".0 " not in text and not text.startswith(f"{name} = "), (name, value, text)


@pytest.mark.parametrize(
    ("feature", "description", "kind"),
    [
        ("age_days", "days since the lead was created", None),
        ("act_days_to_next_action", "days until the next booked step", "numeric"),
        ("annual_revenue", "the company's annual revenue", None),
        ("acct_prior_won_amount", "revenue already won from the same company", "numeric"),
        ("age_days", None, None),  # no description: "<feature> = <value>"
        ("act_call_connect_rate_90d", "share of calls that connected in the last 90 days", None),
        ("age_days", "days since the lead was created", "boolean"),
    ],
)
def test_phrases_of_a_column_are_each_value_s_phrase(
    feature: str, description: str | None, kind: str | None
) -> None:
    """Worded once per distinct text (days and money rounded first), the same words as value by value."""
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.uniform(-400, 400, 3_000),
            rng.uniform(-3, 3, 500),
            np.arange(-6, 6.5, 0.5),  # halves: rounded half to even, as round() and :.0f do
            np.arange(95, 105, 0.5),
            np.round(rng.uniform(-1e6, 1e6, 500), 1) + 0.5,
            [np.nan, np.inf, -np.inf, 0.0, 1.0, 2.0, 1.9999, -1.9999, 99.5, 100.5, -100.5],
        ]
    )
    expected = [phrase(feature, None if np.isnan(v) else v, description, kind) for v in values]
    assert list(phrases(feature, values, description, kind)) == expected
