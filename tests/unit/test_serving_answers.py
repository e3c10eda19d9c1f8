"""The scoring routes answer what they answered before the array path of a request's records.

``score_records`` (``/lead_score``, ``/win_probability``) and ``close_records`` (``/time_to_close``)
now score from numpy columns (:mod:`forecast.serving.record_columns`), compute close dates with
numpy, explain the hazard with the split-pattern engine and call the calibrators' ``np.interp``
directly. The references below are those routes as they were (``main`` at 672cf97): the records'
frame, pandas' date arithmetic, ``pred_contrib`` and sklearn's isotonic ``predict``. The answers
must be the same JSON (floats within 1e-12, every text and date equal).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.pipeline import Pipeline

from forecast.features.build import ID_COLUMN
from forecast.models.pipeline import (
    CalibratedLGBMClassifier,
    CategoryEncoder,
    build_pipeline,
    fit_pipeline,
    isotonic_predict,
)
from forecast.models.survival import (
    DEFAULT_EDGES,
    CurveCalibrationSet,
    DiscreteTimeHazard,
    _interpolation,
    survival_at,
    survival_at_columns,
    survival_quantile,
    survival_quantiles,
)
from forecast.models.unseen import unseen_warnings
from forecast.registry import LoadedModel
from forecast.scoring import fastpath
from forecast.scoring.bands import band_of
from forecast.scoring.close_dates import MAX_DAYS, dates_after, days_to_ns
from forecast.scoring.frame import fast_proba_and_reason_array, score_frame
from forecast.scoring.pattern_shap import class_contributions, pattern_shap
from forecast.scoring.reasons import dtype_kind, reason_array, reason_columns
from forecast.serving import scoring
from forecast.serving.record_columns import RecordColumns
from forecast.serving.schemas import DealRecord, LeadRecord

ROOT = Path(__file__).resolve().parents[2]
NOW = pd.Timestamp("2026-12-04 21:00:00")

DEAL_NUMBERS = ["amount", "age_days", "days_in_stage", "stage_order", "days_to_expected_close", "employees"]
DEAL_TEXT = ["stage", "industry", "team"]
DEAL_FEATURES = [*DEAL_NUMBERS, "act_next_action_scheduled", "act_call_30d", *DEAL_TEXT]
LEAD_NUMBERS = ["employees", "age_days", "act_email_30d", "rep_win_rate_prior"]
LEAD_TEXT = ["source", "industry", "country"]
LEAD_FEATURES = [*LEAD_NUMBERS, "act_next_action_scheduled", *LEAD_TEXT]
STAGES = ["qualification", "discovery", "proposal", "negotiation"]
INDUSTRIES = ["software", "healthcare", "financial_services", "retail", "rare_industry"]


def _deals(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": np.round(rng.lognormal(10, 1, n), 2),
            "age_days": np.where(
                rng.random(n) < 0.25, 0.0, rng.uniform(0, 200, n)
            ),  # new deals: the prior alone
            "days_in_stage": rng.integers(0, 60, n).astype(float),
            "stage_order": rng.integers(1, 5, n).astype(float),
            "days_to_expected_close": rng.normal(20, 30, n).round(1),
            "employees": rng.integers(1, 50_000, n).astype(float),
            "act_next_action_scheduled": (rng.random(n) < 0.5).astype(float),
            "act_call_30d": rng.poisson(2, n).astype(float),
            "stage": rng.choice(STAGES, n),
            "industry": rng.choice(INDUSTRIES, n, p=[0.4, 0.3, 0.2, 0.0995, 0.0005]),
            "team": rng.choice(["EMEA-1", "NA-1", "APAC-1", None], n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "amount"] = np.nan
    frame.loc[rng.random(n) < 0.1, "days_to_expected_close"] = np.nan
    return frame


def _leads(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "employees": rng.integers(1, 5_000, n).astype(float),
            "age_days": rng.uniform(0, 90, n),
            "act_email_30d": rng.poisson(1, n).astype(float),
            "rep_win_rate_prior": rng.uniform(0, 1, n).round(3),
            "act_next_action_scheduled": (rng.random(n) < 0.3).astype(float),
            "source": rng.choice(["web", "referral", "cold_call", None], n),
            "industry": rng.choice(INDUSTRIES, n, p=[0.4, 0.3, 0.2, 0.0995, 0.0005]),
            "country": rng.choice(["DE", "US", "AU"], n),
        }
    )


def _labels(frame: pd.DataFrame, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    numbers = frame.select_dtypes("number").fillna(0.0).to_numpy()
    logit = (
        (numbers - numbers.mean(axis=0)) / (numbers.std(axis=0) + 1e-9) @ rng.normal(0, 0.7, numbers.shape[1])
    )
    return (rng.random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int)


def _loaded(
    name: str, pipe: Pipeline, features: list[str], categorical: list[str], **meta: Any
) -> LoadedModel:
    metadata = {
        "features": features,
        "categorical": categorical,
        "descriptions": {"amount": "deal size", "stage": "pipeline stage", "age_days": "age"},
        "source": "warehouse",
        **meta,
    }
    return LoadedModel(name=name, version="3", alias=None, pipeline=pipe, metadata=metadata, run_id="r")


@pytest.fixture(scope="module")
def models() -> dict[str, LoadedModel]:
    leads = _leads(3_000, 0)
    y = _labels(leads, 1)
    lead_pipe = build_pipeline(
        LEAD_FEATURES, LEAD_TEXT, CalibratedLGBMClassifier(n_estimators=40, random_state=0)
    )
    fit_pipeline(lead_pipe, leads[:2_000], y[:2_000], leads[2_000:], y[2_000:])
    deals = _deals(3_000, 2)
    y = _labels(deals, 3)
    win = CalibratedLGBMClassifier(
        n_estimators=40,
        prior_features=["stage", "industry", "amount", "age_days"],
        prior_fit_column="age_days",
        prior_fit_max=0.01,
        prior_alone=True,
        random_state=0,
    )
    win_pipe = build_pipeline(DEAL_FEATURES, DEAL_TEXT, win)
    fit_pipeline(win_pipe, deals[:2_000], y[:2_000], deals[2_000:], y[2_000:])
    rng = np.random.default_rng(4)
    t = rng.exponential(np.where(deals["stage"] == "negotiation", 15.0, 60.0))
    c = rng.uniform(5, 300, len(deals))
    d, e = np.minimum(t, c), t <= c
    causes = np.where(rng.random(len(deals)) < 0.4, 1, 2)
    hazard = DiscreteTimeHazard(n_estimators=30, random_state=0)
    close_pipe = build_pipeline(DEAL_FEATURES, DEAL_TEXT, hazard)
    prep = Pipeline(close_pipe.steps[:-1]).fit(deals)
    hazard.fit(prep.transform(deals), d, e, causes=causes)
    closed_by, won_by = hazard.raw_curves(prep.transform(deals))
    calibration = CurveCalibrationSet(
        closed_by, won_by, d, e, np.full(len(deals), 400.0), causes, min_rows=50
    )
    hazard.fit(prep.transform(deals), d, e, causes=causes, calibration_set=calibration)
    survival = {"edges": list(DEFAULT_EDGES), "report_days": [30, 60, 90]}
    return {
        "lead": _loaded("lead_scoring", lead_pipe, LEAD_FEATURES, LEAD_TEXT, score_name="p_convert"),
        "win": _loaded("deal_win", win_pipe, DEAL_FEATURES, DEAL_TEXT, score_name="p_win"),
        "close": _loaded("time_to_close", close_pipe, DEAL_FEATURES, DEAL_TEXT, survival=survival),
    }


# --- the routes as they were (main at 672cf97) -------------------------------------------------


def _old_dates_after(as_of: pd.Series, offsets: dict[str, np.ndarray]) -> dict[str, pd.Series]:
    n = len(as_of)
    if not offsets or not n:
        return {name: (as_of + pd.to_timedelta(d, unit="D")).dt.normalize() for name, d in offsets.items()}
    stacked = as_of.iloc[np.tile(np.arange(n), len(offsets))].reset_index(drop=True)
    days = np.concatenate([np.asarray(d, dtype=float) for d in offsets.values()])
    dates = (stacked + pd.to_timedelta(days, unit="D")).dt.normalize()
    return {name: dates.iloc[i * n : (i + 1) * n].reset_index(drop=True) for i, name in enumerate(offsets)}


def _old_survival(model: LoadedModel, features: pd.DataFrame) -> np.ndarray:
    """The curves through the frames and sklearn's isotonic ``predict``."""
    hazard: DiscreteTimeHazard = model.pipeline.steps[-1][1]
    closed_by, _ = hazard._raw_curves(model.pipeline[:-1].transform(features))
    out = closed_by.copy()
    for j, iso in enumerate(hazard.calibrators_["closed"]):
        if iso is not None:
            out[:, j] = iso.predict(closed_by[:, j])
    return 1.0 - np.maximum.accumulate(out, axis=1)


def _old_close_date_columns(model: LoadedModel, features: pd.DataFrame) -> pd.DataFrame:
    survival_cfg = dict(model.meta.survival or {})
    edges = model.meta.survival_edges
    report = [float(x) for x in survival_cfg.get("report_days") or [30, 60, 90]]
    surv = _old_survival(model, features)
    as_of = pd.to_datetime(features["as_of"]).reset_index(drop=True)
    columns: dict[str, Any] = {}
    for days in report:
        columns[f"p_close_{int(days)}d"] = np.round(1.0 - survival_at(surv, edges, days), 6)
    offsets = {f"close_date_p{int(q * 100)}": survival_quantile(surv, edges, q) for q in (0.1, 0.5, 0.9)}
    to_ecd = pd.to_numeric(features["days_to_expected_close"], errors="coerce").to_numpy(dtype=float)
    to_ecd = np.where(np.abs(to_ecd) > MAX_DAYS, np.nan, to_ecd)
    offsets["expected_close_date"] = to_ecd
    columns.update(_old_dates_after(as_of, offsets))
    slip = np.where(to_ecd < 0, 1.0, survival_at(surv, edges, np.nan_to_num(to_ecd, nan=0.0)))
    columns["slip_risk"] = np.round(np.where(np.isnan(to_ecd), np.nan, slip), 6)
    out = pd.DataFrame(columns, index=range(len(features)))
    out["close_model_version"] = model.version
    return out.set_index(features.index)


def _old_score_records(model: LoadedModel, records: list[Any], entity: Any) -> list[dict[str, Any]]:
    frame = scoring.records_frame(records, entity, NOW)
    used = list(model.meta.features)
    id_col = ID_COLUMN[entity]
    fast = fastpath.coded(model.pipeline)
    if fast is not None and isinstance(fast.model, CalibratedLGBMClassifier):  # one encoding of the frame
        kinds = scoring.reason_kinds(model, entity)
        raw, texts = fast_proba_and_reason_array(fast, frame, dict(model.meta.descriptions), kinds)
        p, scores = np.round(raw, 6), np.rint(raw * 100).astype(int)
        bands = band_of(raw, model.meta.bands)
        reasons: list[dict[Any, Any]] = [dict(zip(reason_columns(3), row, strict=True)) for row in texts]
    else:
        scored = score_frame(model, frame[used], frame[id_col])
        p, bands = scored[model.meta.score_name].to_numpy(dtype=float), scored["band"].to_numpy()
        scores = scored["score"].to_numpy()
        reasons = scored.to_dict(orient="records")
    warnings = unseen_warnings(model.pipeline, frame[used])
    return [
        {
            id_col: frame[id_col].iloc[i],
            model.meta.score_name: float(p[i]),
            "score": int(scores[i]),
            "band": str(bands[i]),
            "reasons": scoring.reason_lists(reasons[i]),
            "features_sent": sum(getattr(r, n, None) is not None for n in used),
            "features_used": len(used),
            "model_name": model.name,
            "model_version": model.version,
            "warnings": warnings[i],
        }
        for i, r in enumerate(records)
    ]


def _old_close_records(model: LoadedModel, records: list[Any]) -> list[dict[str, Any]]:
    frame = scoring.records_frame(records, "opportunity", NOW)
    features = frame[list(model.meta.features)]
    cols = _old_close_date_columns(
        model,
        features.assign(
            as_of=frame["as_of"].to_numpy(), days_to_expected_close=frame["days_to_expected_close"].to_numpy()
        ),
    )
    hazard: DiscreteTimeHazard = model.pipeline.steps[-1][1]
    contrib = hazard.contributions(model.pipeline[:-1].transform(features))[:, :-1]  # pred_contrib
    kinds = scoring.reason_kinds(model, "opportunity")
    why = reason_array(
        contrib,
        [str(c) for c in model.pipeline.named_steps["columns"].columns],
        lambda f: features[f].to_numpy(),
        lambda f: kinds.get(f) or dtype_kind(features[f]),
        dict(model.meta.descriptions),
        top_k=3,
    )
    warnings = unseen_warnings(model.pipeline, features)
    out = []
    for i, record in enumerate(records):
        item: dict[str, Any] = {"opportunity_id": frame["opportunity_id"].iloc[i]}
        item["as_of"] = frame["as_of"].tolist()[i].isoformat()
        item.update(scoring.close_fields(cols.iloc[i]))
        item["reasons"] = scoring.reason_lists(dict(zip(reason_columns(3), why[i], strict=True)))
        item["features_sent"] = sum(getattr(record, n, None) is not None for n in features.columns)
        item["model_name"] = model.name
        item["model_version"] = model.version
        item["warnings"] = warnings[i]
        out.append(item)
    return out


# --- comparison ---------------------------------------------------------------------------------


def _assert_same(got: Any, expected: Any, where: str = "answer") -> None:
    """The same JSON: keys in the same order, floats within 1e-12, everything else equal."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected), where
        for key in expected:
            _assert_same(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), where
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(got, bool):
        assert isinstance(got, float) and math.isclose(got, expected, rel_tol=0.0, abs_tol=1e-12), where
    else:
        assert type(got) is type(expected) and got == expected, f"{where}: {got!r} != {expected!r}"


def _json(answer: Any) -> Any:
    return json.loads(json.dumps(scoring.json_safe(answer), allow_nan=False))


def _records(frame: pd.DataFrame, kind: Any, prefix: str) -> list[Any]:
    id_col = ID_COLUMN["lead" if kind is LeadRecord else "opportunity"]
    out = []
    for i, row in enumerate(frame.to_dict(orient="records")):
        fields = {
            k: v for k, v in row.items() if v is not None and not (isinstance(v, float) and np.isnan(v))
        }
        if "act_next_action_scheduled" in fields:
            fields["act_next_action_scheduled"] = bool(fields["act_next_action_scheduled"])
        out.append(kind.model_validate({id_col: f"{prefix}{i}", **fields}))
    return out


def _body(name: str, field: str) -> dict[str, Any]:
    return dict(json.loads((ROOT / "benchmarks" / "serving" / name).read_text())[field])


def _edge_deals() -> list[Any]:
    deal = _body("deal.json", "deal")
    odd = [
        {"opportunity_id": "E1"},  # nothing sent: every feature missing, no dates
        {"opportunity_id": "E2", "stage": None, "amount": None, "days_to_expected_close": None},
        {
            **deal,
            "opportunity_id": "E3",
            "days_to_expected_close": -5,
            "as_of": "2026-03-01T23:59:59.999999+05:00",
        },
        {**deal, "opportunity_id": "E4", "days_to_expected_close": 36525, "as_of": "1900-01-01T00:00:00"},
        {**deal, "opportunity_id": "E5", "days_to_expected_close": 0.4, "as_of": "2099-12-31T23:30:00"},
        {
            **deal,
            "opportunity_id": "E6",
            "industry": "never_seen",
            "team": "zzz",
            "days_to_expected_close": 13.9999,
        },
        {
            **deal,
            "opportunity_id": "E7",
            "act_next_action_scheduled": False,
            "country": "",
            "as_of": "2026-12-04T12:00:00.5",
        },
        {**deal, "opportunity_id": "E8", "stage": "proposal", "amount": 0, "days_to_expected_close": 0},
    ]
    return [DealRecord.model_validate(r) for r in [deal, *odd]]


def _edge_leads() -> list[Any]:
    lead = _body("lead.json", "lead")
    odd = [
        {"lead_id": "LE1"},
        {**lead, "lead_id": "LE2", "source": "never", "act_next_action_scheduled": None},
        {**lead, "lead_id": "LE3", "industry": "rare_industry", "as_of": "2030-06-30T10:11:12.123456Z"},
    ]
    return [LeadRecord.model_validate(r) for r in [lead, *odd]]


# --- the answers ----------------------------------------------------------------------------------


def test_the_benchmark_bodies_get_the_answers_of_before(models: dict[str, LoadedModel]) -> None:
    deal = [DealRecord.model_validate(_body("deal.json", "deal"))]
    lead = [LeadRecord.model_validate(_body("lead.json", "lead"))]
    for got, expected in [
        (
            scoring.score_records(models["lead"], lead, "lead", NOW),
            _old_score_records(models["lead"], lead, "lead"),
        ),
        (
            scoring.score_records(models["win"], deal, "opportunity", NOW),
            _old_score_records(models["win"], deal, "opportunity"),
        ),
        (scoring.close_records(models["close"], deal, NOW), _old_close_records(models["close"], deal)),
    ]:
        _assert_same(_json(got), _json(expected))
        assert got[0]["reasons"]["up"] or got[0]["reasons"]["down"]


@pytest.mark.parametrize("size", [1, 3, 70])
def test_lists_and_edge_cases_get_the_answers_of_before(models: dict[str, LoadedModel], size: int) -> None:
    deals = [*_edge_deals(), *_records(_deals(80, 9), DealRecord, "D")][:size]
    leads = [*_edge_leads(), *_records(_leads(80, 8), LeadRecord, "L")][:size]
    _assert_same(
        _json(scoring.score_records(models["lead"], leads, "lead", NOW)),
        _json(_old_score_records(models["lead"], leads, "lead")),
    )
    _assert_same(
        _json(scoring.score_records(models["win"], deals, "opportunity", NOW)),
        _json(_old_score_records(models["win"], deals, "opportunity")),
    )
    _assert_same(
        _json(scoring.close_records(models["close"], deals, NOW)),
        _json(_old_close_records(models["close"], deals)),
    )


def test_each_edge_case_alone_gets_the_answer_of_before(models: dict[str, LoadedModel]) -> None:
    for deal in _edge_deals():
        closing = scoring.close_records(models["close"], [deal], NOW)
        _assert_same(_json(closing), _json(_old_close_records(models["close"], [deal])))
        won = scoring.score_records(models["win"], [deal], "opportunity", NOW)
        _assert_same(_json(won), _json(_old_score_records(models["win"], [deal], "opportunity")))
    by_id = {
        r["opportunity_id"]: r for r in _json(scoring.close_records(models["close"], _edge_deals(), NOW))
    }
    assert by_id["E1"]["expected_close_date"] is None and by_id["E1"]["slip_risk"] is None
    assert by_id["E3"]["slip_risk"] == 1.0 and by_id["E3"]["as_of"] == "2026-03-01T18:59:59.999999"
    assert (
        by_id["E4"]["expected_close_date"]
        == (pd.Timestamp("1900-01-01") + pd.Timedelta(days=36_525)).date().isoformat()
    )
    assert by_id["E5"]["expected_close_date"] == "2100-01-01"  # 23:30 plus 0.4 days crosses midnight
    assert any("never_seen" in w for w in by_id["E6"]["warnings"])
    for lead in _edge_leads():
        scored = scoring.score_records(models["lead"], [lead], "lead", NOW)
        _assert_same(_json(scored), _json(_old_score_records(models["lead"], [lead], "lead")))


def test_a_model_wanting_other_columns_keeps_the_frame_path(models: dict[str, LoadedModel]) -> None:
    deals = _edge_deals()
    for key, entity in (("win", "opportunity"), ("close", "opportunity")):
        model = models[key]
        other = LoadedModel(
            name=model.name,
            version="4",
            alias=None,
            pipeline=model.pipeline,
            metadata={**model.metadata, "features": [*DEAL_FEATURES, "as_of"]},  # not a catalogue feature
            run_id="r",
        )
        if key == "win":
            got, expected = (
                scoring.score_records(other, deals, entity, NOW),
                _old_score_records(other, deals, entity),
            )
        else:
            got, expected = scoring.close_records(other, deals, NOW), _old_close_records(other, deals)
        _assert_same(_json(got), _json(expected))


def test_each_class_of_a_multiclass_booster_is_explained_as_pred_contrib() -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(3)
    x = rng.normal(size=(3_000, 6))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = np.where(np.nan_to_num(x[:, 0]) + rng.normal(size=3_000) > 0.5, 2, (x[:, 1] > 0).astype(int))
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 15, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=25)
    rows = x[:400]
    exact = booster.predict(rows, pred_contrib=True)
    for k in range(3):
        assert pattern_shap(booster, 25, k) is not None
        for n in (1, 400):
            np.testing.assert_allclose(
                class_contributions(booster, rows[:n], 25, k),
                exact[:n, k * 7 : (k + 1) * 7],
                rtol=0,
                atol=1e-12,
            )


# --- the parts ------------------------------------------------------------------------------------


def test_record_columns_hold_what_the_records_frame_holds() -> None:
    records = [*_edge_deals(), *_records(_deals(90, 5), DealRecord, "D")]
    frame = scoring.records_frame(records, "opportunity", NOW)
    columns = RecordColumns(records, "opportunity", NOW)
    assert columns.names == list(frame.columns)
    assert columns.ids == list(frame["opportunity_id"])
    np.testing.assert_array_equal(columns.as_of_ns(), frame["as_of"].to_numpy())
    for name in frame.columns[2:]:
        np.testing.assert_array_equal(columns.values(name), frame[name].to_numpy())
        assert columns.values(name).dtype == frame[name].to_numpy().dtype
        assert columns.kind(name) == dtype_kind(frame[name])
    # encoders mapping a number column, and leaving a text column to pd.to_numeric
    train = _deals(500, 6).assign(industry=lambda f: f["industry"].where(f.index % 7 != 0, "12"))
    for categorical in (DEAL_TEXT, ["stage", "act_call_30d", "days_in_stage"], ["team"]):
        encoder = CategoryEncoder(categorical, min_count=3).fit(train)
        for n in (1, 5, len(records)):
            np.testing.assert_array_equal(
                RecordColumns(records[:n], "opportunity", NOW).encode(encoder, DEAL_FEATURES),
                encoder.encode(frame.iloc[:n], DEAL_FEATURES),
            )
        pipe = Pipeline([("categories", encoder)])
        for n in (3, len(records)):  # value by value (<= 64 records) and through Series (more)
            assert RecordColumns(records[:n], "opportunity", NOW).unseen_warnings(
                pipe, DEAL_FEATURES
            ) == unseen_warnings(pipe, frame.iloc[:n][DEAL_FEATURES])


def test_days_become_nanoseconds_as_pandas_converts_them() -> None:
    rng = np.random.default_rng(0)
    days = np.concatenate(
        [
            rng.uniform(-36_525, 36_525, 200_000),
            rng.uniform(-1, 1, 100_000),
            np.round(rng.uniform(0, 400, 100_000), 3),
            np.arange(-1_000, 1_000) / 7.0,
            [np.nan, 0.0, -0.0, 1e-12, -1e-12, 0.5, -0.5, 99_999.999],
        ]
    )
    expected = pd.to_timedelta(days, unit="D").to_numpy().view(np.int64)
    np.testing.assert_array_equal(days_to_ns(days), expected)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # pandas rounds the fractions of its nan slots too
@pytest.mark.parametrize("unit", ["ns", "us", "s"])
def test_close_dates_are_pandas_dates(unit: str) -> None:
    rng = np.random.default_rng(1)
    n = 50_000
    stamps = rng.integers(pd.Timestamp("1900-01-01").value, pd.Timestamp("2100-01-01").value, n)
    as_of = pd.Series(stamps.view("datetime64[ns]")).astype(f"datetime64[{unit}]")
    as_of.iloc[::17] = pd.NaT
    offsets = {
        "far": rng.uniform(-MAX_DAYS, MAX_DAYS, n),
        "near": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0, 365, n)),
    }
    got = dates_after(as_of, offsets)
    for name, days in offsets.items():
        expected = (as_of + pd.to_timedelta(days, unit="D")).dt.normalize()
        assert got[name].dtype == expected.dtype == np.dtype("datetime64[ns]")
        np.testing.assert_array_equal(got[name], expected.to_numpy())


def test_close_dates_out_of_numpys_reach_are_pandas_own() -> None:
    zoned = pd.Series(pd.to_datetime(["2026-03-28 23:30", "2026-10-25 00:30"])).dt.tz_localize(
        "Europe/Berlin"
    )
    got = dates_after(zoned, {"d": np.array([1.25, np.nan])})["d"]
    pd.testing.assert_series_equal(got, (zoned + pd.to_timedelta([1.25, np.nan], unit="D")).dt.normalize())
    late = np.array(["2262-04-01"], dtype="datetime64[ns]")
    with pytest.raises((OverflowError, pd.errors.OutOfBoundsDatetime)):  # as pandas: never a wrapped date
        dates_after(late, {"d": np.array([30.0])})
    assert dates_after(late, {"d": np.array([3.0])})["d"][0] == np.datetime64("2262-04-04")


def test_isotonic_calibrators_interpolate_as_sklearn() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, 500)
    y = (rng.random(500) < x).astype(float)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, y)
    table = _interpolation(iso)
    assert table is not None
    values = np.concatenate([rng.uniform(-0.5, 1.5, 10_000), iso.X_thresholds_])
    xs, ys, low, high = table
    np.testing.assert_array_equal(np.interp(np.clip(values, low, high), xs, ys), iso.predict(values))
    np.testing.assert_array_equal(isotonic_predict(iso, values), iso.predict(values))
    assert _interpolation(IsotonicRegression(out_of_bounds="nan").fit(x, y)) is None


def test_the_hazards_reasons_are_pred_contribs(models: dict[str, LoadedModel]) -> None:
    pipe = models["close"].pipeline
    fast = fastpath.coded(pipe)
    assert fast is not None
    hazard: DiscreteTimeHazard = pipe.steps[-1][1]
    rows = _deals(300, 7)
    for n in (1, 5, 300):
        np.testing.assert_allclose(
            fast.hazard_contributions(fast.encode(rows.iloc[:n])),
            hazard.contributions(pipe[:-1].transform(rows.iloc[:n])),
            rtol=0,
            atol=1e-12,
        )


def test_curves_read_at_several_points_at_once_are_the_one_at_a_time_values() -> None:
    rng = np.random.default_rng(4)
    hazards = rng.uniform(0, 0.3, (500, len(DEFAULT_EDGES) - 1))
    hazards[:50] = 0.0  # never closes: quantiles beyond the horizon
    hazards[50:60, 0] = 1.0  # closes at once
    surv = np.concatenate([np.ones((500, 1)), np.cumprod(1.0 - hazards, axis=1)], axis=1)
    spread = rng.uniform(-10, 400, 500)
    days = np.column_stack([np.full(500, 30.0), spread, np.zeros(500), np.full(500, 365.0)])
    at = survival_at_columns(surv, DEFAULT_EDGES, days)
    for j in range(days.shape[1]):
        np.testing.assert_array_equal(at[:, j], survival_at(surv, DEFAULT_EDGES, days[:, j]))
    qs = (0.1, 0.5, 0.9)
    spans = survival_quantiles(surv, DEFAULT_EDGES, qs)
    for j, q in enumerate(qs):
        np.testing.assert_array_equal(spans[:, j], survival_quantile(surv, DEFAULT_EDGES, q))
