"""The flags' history read as codes and the silence model fitted in numpy equal the pandas way, to the bit.

``_reference_*`` are the history read and the silence fit as they were before (every touch and gap
fetched as text, grouped by pandas). Both run on simulated CRMs, one of them with gaps put in: reps
missing or unknown, segments missing, leads and deals without activities, activities on leads the
CRM does not hold, without a time, a direction, an outcome or a reply flag, ties in the touches'
timestamps and durations missing; at several as-ofs and settings. Every signal, flag, evidence and
fitted number is compared exactly (missing values of the same kind).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import duckdb
import numpy as np
import pandas as pd
import pytest

from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.features.build import ID_COLUMN, Entity, build_feature_table
from forecast.features.snapshots import LabelConfig
from forecast.features.source import FeatureSource, frames_source
from forecast.features.stages import stage_spell_ctes
from forecast.flags import compute, history, silence
from forecast.flags.config import FlagsConfig, GoingCold
from forecast.flags.history import History, entity_attributes, load_history, unanswered_attempts
from forecast.flags.rules import evaluate_flags, summarise
from forecast.flags.silence import SilenceModel, expected_silence, fit_silence

_TABLE = {"lead": "leads", "opportunity": "opportunities"}


# --- the reference: the history and the silence model as computed before -----------------------


def _reference_history(src: FeatureSource, entity: Entity, config: FlagsConfig) -> History:
    key, table = ID_COLUMN[entity], _TABLE[entity]
    segment = config.going_cold.deal_segment if entity == "opportunity" else config.going_cold.lead_segment
    entities = src.df(
        f'SELECT {key} AS entity_id, rep_id, CAST("{segment}" AS VARCHAR) AS segment FROM {table}'
    )
    touches = src.df(
        f"""SELECT {key} AS entity_id, occurred_at, direction = 'outbound' AS outbound,
                   (direction = 'inbound' OR coalesce(email_replied, false)
                    OR (type IN ('call', 'meeting', 'demo') AND outcome = 'completed')) AS answered
            FROM activities
            WHERE {key} IS NOT NULL AND outcome IS DISTINCT FROM 'scheduled'
            ORDER BY entity_id, occurred_at"""
    )
    touches["outbound"] = touches["outbound"].fillna(False).astype(bool)
    touches["answered"] = touches["answered"].fillna(False).astype(bool)
    touches["occurred_at"] = pd.to_datetime(touches["occurred_at"]).astype("datetime64[ns]")
    stage_sql = "NULL::VARCHAR AS stage"
    asof = ""
    if entity == "opportunity":
        stage_sql = "h.stage"
        asof = (
            "ASOF LEFT JOIN stage_history h "
            "ON g.entity_id = h.opportunity_id AND g.started_at >= h.entered_at"
        )
    gaps = src.df(
        f"""WITH t AS (
                SELECT {key} AS entity_id, occurred_at,
                       lag(occurred_at) OVER (PARTITION BY {key} ORDER BY occurred_at) AS started_at
                FROM activities WHERE {key} IS NOT NULL AND outcome IS DISTINCT FROM 'scheduled'
            ),
            g AS (SELECT * FROM t WHERE started_at IS NOT NULL)
            SELECT g.entity_id, e.rep_id, CAST(e."{segment}" AS VARCHAR) AS segment, {stage_sql},
                   g.occurred_at AS ended_at,
                   date_diff('second', g.started_at, g.occurred_at) / 86400.0 AS gap_days
            FROM g {asof} JOIN {table} e ON e.{key} = g.entity_id"""
    )
    gaps["ended_at"] = pd.to_datetime(gaps["ended_at"]).astype("datetime64[ns]")
    gaps = gaps.sort_values("ended_at", kind="stable").reset_index(drop=True)
    spells = pd.DataFrame({"stage": pd.Series(dtype=object), "ended_at": [], "days": []})
    if entity == "opportunity":
        spells = src.df(
            f"""WITH h0 AS (
                   SELECT opportunity_id, stage, entered_at,
                          lag(stage) OVER (PARTITION BY opportunity_id ORDER BY entered_at) AS prev
                   FROM stage_history
               ),
               {stage_spell_ctes("h0", prev="prev", order="entered_at")}
               SELECT stage, run_end AS ended_at,
                      date_diff('second', run_start, run_end) / 86400.0 AS days
               FROM spells WHERE run_end IS NOT NULL ORDER BY run_end"""
        )
        spells["ended_at"] = pd.to_datetime(spells["ended_at"]).astype("datetime64[ns]")

    def count(sql: str) -> int:
        row = src.con.execute(sql).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    return History(
        entity=entity,
        entities=entities,
        touches=touches,
        gaps=gaps,
        spells=spells,
        has_activities=count("SELECT count(*) FROM activities") > 0,
        has_stage_history=count("SELECT count(*) FROM stage_history") > 0,
        has_close_dates=entity == "opportunity"
        and count("SELECT count(*) FROM stage_history WHERE expected_close_date IS NOT NULL") > 0,
    )


def _reference_unanswered(history: History, ids: pd.Series, as_of: pd.Timestamp) -> pd.DataFrame:
    t = history.touches
    t = t[(t["occurred_at"] < as_of) & t["entity_id"].isin(ids)]
    last = t.loc[t["answered"]].groupby("entity_id")["occurred_at"].max()
    after = t["occurred_at"] > t["entity_id"].map(last).fillna(pd.Timestamp.min)
    count = t.loc[after & t["outbound"]].groupby("entity_id").size()
    out = pd.DataFrame(index=ids.index)
    out["outbound_since_answer"] = ids.map(count).fillna(0).astype(float).to_numpy()
    days = (as_of - ids.map(last)).dt.total_seconds() / 86400.0
    out["days_since_answer"] = days.to_numpy(dtype=float)
    return out


def _reference_attributes(history: History, ids: pd.Series) -> pd.DataFrame:
    table = history.entities.drop_duplicates("entity_id").set_index("entity_id")
    out = pd.DataFrame(index=ids.index)
    for col in ("rep_id", "segment"):
        out[col] = ids.map(table[col]).to_numpy()
    return out


def _reference_rep_cadence(gaps: pd.DataFrame, bands: int, min_gaps: int) -> pd.Series:
    per_rep = gaps.groupby("rep_id")["gap_days"].agg(["median", "size"])
    per_rep = per_rep[per_rep["size"] >= min_gaps]
    if per_rep.empty:
        return pd.Series(dtype=object)
    names = silence.BAND_NAMES[bands]
    if len(per_rep) < bands:
        return pd.Series(names[len(names) // 2], index=per_rep.index, dtype=object)
    ranks = per_rep["median"].rank(method="first") - 1
    codes = np.floor(ranks.to_numpy() * bands / len(per_rep)).astype(int)
    return pd.Series(np.array(names, dtype=object)[codes], index=per_rep.index, dtype=object)


def _reference_fit(
    gaps: pd.DataFrame, as_of: pd.Timestamp, config: GoingCold, with_stage: bool
) -> SilenceModel:
    window = gaps[
        (gaps["ended_at"] < as_of) & (gaps["ended_at"] >= as_of - pd.Timedelta(days=config.history_days))
    ].copy()
    band = _reference_rep_cadence(window, config.cadence_bands, config.min_rep_gaps)
    window["cadence"] = window["rep_id"].map(band)
    levels = silence._levels(with_stage)
    tables: list[pd.DataFrame] = []
    q, k = config.quantile, config.shrinkage
    for i, keys in enumerate(levels):
        if not keys:
            n = len(window)
            g = window["gap_days"]
            table = pd.DataFrame(
                {
                    "n": [n],
                    "q50": [float(g.median()) if n else np.nan],
                    "q_hi": [float(g.quantile(q)) if n else np.nan],
                },
                index=pd.Index(["all"], name="_all"),
            )
            tables.append(table)
            continue
        sub = window.dropna(subset=list(keys))
        grouped = sub.groupby(list(keys), observed=True)["gap_days"]
        table = pd.DataFrame({"n": grouped.size(), "q50": grouped.median(), "q_hi": grouped.quantile(q)})
        parent = silence._lookup(tables[i - 1], levels[i - 1], table.index.to_frame(index=False))
        w = table["n"].to_numpy(dtype=float)
        for col in ("q50", "q_hi"):
            p = parent[col].to_numpy(dtype=float)
            raw = table[col].to_numpy(dtype=float)
            table[col] = np.where(np.isnan(p), raw, (w * raw + k * p) / (w + k))
        tables.append(table)
    own = None
    if config.own_cadence:
        mine = gaps[gaps["ended_at"] < as_of].groupby("entity_id")["gap_days"]
        own = pd.DataFrame({"n": mine.size(), "q50": mine.median(), "q_hi": mine.quantile(q)})
    dormant = float(window["gap_days"].quantile(config.dormant_quantile)) if len(window) else float("nan")
    return SilenceModel(levels, tables, band, q, as_of, own, k, dormant)


def _reference_snapshot(
    history: History, frame: pd.DataFrame, as_of: pd.Timestamp, config: FlagsConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``compute.flag_snapshot`` with the reference functions: the signals, flags and summary."""
    frame = frame.reset_index(drop=True)
    ids = frame[ID_COLUMN[history.entity]].reset_index(drop=True)
    out = _reference_attributes(history, ids)
    out.insert(0, "entity_id", ids.to_numpy())
    out = pd.concat([out, _reference_unanswered(history, ids, as_of)], axis=1)
    if history.entity == "opportunity":
        out["stage"] = frame["stage"].to_numpy()
        st = config.rules.stalled_in_stage
        limits = compute.stage_limits(history, as_of, st.quantile, st.min_spells)
        out["stage_limit_days"] = out["stage"].map(limits["limit_days"]).astype(float)
        out["stage_spells"] = out["stage"].map(limits["spells"]).astype(float)
    else:
        out["stage_limit_days"] = np.nan
        out["stage_spells"] = np.nan
    model = _reference_fit(history.gaps, as_of, config.going_cold, with_stage=history.entity == "opportunity")
    signals = pd.concat([out, expected_silence(model, out)], axis=1)
    flags = evaluate_flags(frame, signals, history.entity, config, compute.availability(history))
    return signals, flags, summarise(flags, len(frame), config)


# --- the CRMs -----------------------------------------------------------------------------------


def _gapped(seed: int) -> dict[str, pd.DataFrame]:
    """A simulated CRM with what real ones miss, and ties in the touches' times."""
    crm = simulate_crm(SimulationConfig(n_leads=1500, seed=seed, months=10))
    t = {name: frame.copy() for name, frame in crm.tables.items()}
    rng = np.random.default_rng(seed)
    acts = t["activities"]
    for col, share in (("direction", 0.03), ("outcome", 0.03), ("type", 0.02), ("duration_seconds", 0.2)):
        acts.loc[rng.random(len(acts)) < share, col] = None
    acts.loc[acts.index[::7], "email_replied"] = None
    acts.loc[rng.random(len(acts)) < 0.01, "lead_id"] = "L-UNKNOWN"  # a lead the CRM does not hold
    acts.loc[rng.random(len(acts)) < 0.01, "opportunity_id"] = "O-UNKNOWN"
    acts.loc[rng.random(len(acts)) < 0.002, "occurred_at"] = pd.NaT
    # ties: some touches at the very time of the entity's touch before
    tie = acts.sort_values(["lead_id", "occurred_at"]).index[1::9]
    acts.loc[tie, "occurred_at"] = (
        acts.sort_values(["lead_id", "occurred_at"])["occurred_at"].shift(1).loc[tie]
    )
    silent = t["leads"]["lead_id"].iloc[::10]  # leads without any activity
    acts = acts[~acts["lead_id"].isin(silent) | acts["opportunity_id"].notna()]
    t["activities"] = acts.reset_index(drop=True)
    leads, opps = t["leads"], t["opportunities"]
    leads.loc[leads.index[::6], "rep_id"] = None
    leads.loc[leads.index[::13], "rep_id"] = "R-UNKNOWN"  # a rep the reps table does not hold
    leads.loc[leads.index[::11], "source"] = None
    opps.loc[opps.index[::5], "rep_id"] = None
    opps.loc[opps.index[::9], "product"] = None
    return t


def _twice(seed: int) -> dict[str, pd.DataFrame]:
    """The gapped CRM whose tables hold some keys twice (with another rep and segment)."""
    t = _gapped(seed)
    for name, col in (("leads", "source"), ("opportunities", "product")):
        frame = t[name]
        again = frame.iloc[3::40].assign(rep_id="R-AGAIN", **{col: "again"})
        t[name] = pd.concat([frame.iloc[:700], again, frame.iloc[700:]], ignore_index=True)
    return t


@pytest.fixture(scope="module")
def gapped() -> Iterator[FeatureSource]:
    with frames_source(_gapped(8)) as src:
        yield src


@pytest.fixture(scope="module", params=["plain", "gapped", "twice"])
def crm(request: pytest.FixtureRequest, gapped: FeatureSource) -> Iterator[FeatureSource]:
    """The source of the history (the snapshot features of ``twice`` come from ``gapped``)."""
    if request.param == "gapped":
        yield gapped
        return
    if request.param == "plain":
        tables = simulate_crm(SimulationConfig(n_leads=1200, seed=4, months=9)).tables
    else:
        tables = _twice(8)
    with frames_source(tables) as src:
        yield src


def _features(src: FeatureSource, gapped: FeatureSource, entity: Entity, as_of: pd.Timestamp) -> pd.DataFrame:
    """The open entities' snapshot (the features cannot be built on a table holding a key twice)."""
    twice = src.con.execute(f"SELECT count(*) > count(DISTINCT {ID_COLUMN[entity]}) FROM {_TABLE[entity]}")
    row = twice.fetchone()
    return build_feature_table(gapped if row and row[0] else src, entity, [as_of], LabelConfig.both(30)).frame


def _as_ofs(src: FeatureSource) -> list[pd.Timestamp]:
    end = src.default_as_of()
    return [end, end - pd.Timedelta(days=61), end - pd.Timedelta(days=150)]


CONFIGS = {
    "default": FlagsConfig(),
    "bands": FlagsConfig(going_cold=GoingCold(cadence_bands=5, min_rep_gaps=3, history_days=120)),
    "few": FlagsConfig(going_cold=GoingCold(cadence_bands=2, min_rep_gaps=100000, own_cadence=False)),
    "one band": FlagsConfig(going_cold=GoingCold(cadence_bands=1, quantile=0.75, shrinkage=3)),
}


# --- comparisons --------------------------------------------------------------------------------


def _same(left: pd.DataFrame | pd.Series, right: pd.DataFrame | pd.Series, name: str) -> None:
    if isinstance(left, pd.Series):
        pd.testing.assert_series_equal(left, right, check_exact=True, obj=name)
        assert left.map(repr).tolist() == right.map(repr).tolist(), name
        return
    pd.testing.assert_frame_equal(left, right, check_exact=True, obj=name)
    for col in left.columns:  # a missing value of the same kind (None, nan, NaT) too
        assert left[col].map(repr).tolist() == right[col].map(repr).tolist(), (name, col)


def _same_model(got: SilenceModel, want: SilenceModel) -> None:
    assert got.levels == want.levels and got.quantile == want.quantile and got.shrinkage == want.shrinkage
    assert np.array_equal([got.dormant_days], [want.dormant_days], equal_nan=True)
    for level, (a, b) in enumerate(zip(got.tables, want.tables, strict=True)):
        _same(a, b, f"level {level}")
    _same(got.rep_band, want.rep_band, "rep_band")
    assert (got.own is None) == (want.own is None)
    if got.own is not None and want.own is not None:
        _same(got.own, want.own, "own")


@pytest.mark.parametrize("entity", ["opportunity", "lead"])
def test_the_coded_history_gives_the_reference_flags_signals_and_model(
    crm: FeatureSource, gapped: FeatureSource, entity: Entity
) -> None:
    for name, config in CONFIGS.items():
        new, old = load_history(crm, entity, config), _reference_history(crm, entity, config)
        for as_of in _as_ofs(crm):
            frame = _features(crm, gapped, entity, as_of)
            assert len(frame) > 10, (name, as_of)
            got = compute.flag_snapshot(new, frame, as_of, config)
            signals, flags, summary = _reference_snapshot(old, frame, as_of, config)
            _same(compute.snapshot_signals(new, frame, as_of, config), signals, f"{name} {as_of} signals")
            _same(got.flags, flags, f"{name} {as_of} flags")
            _same(got.summary, summary, f"{name} {as_of} summary")
            with_stage = entity == "opportunity"
            _same_model(
                fit_silence(new.gaps, as_of, config.going_cold, with_stage),
                _reference_fit(old.gaps, as_of, config.going_cold, with_stage),
            )


@pytest.mark.parametrize("entity", ["opportunity", "lead"])
def test_the_cuts_of_unknown_missing_and_repeated_ids_equal_the_reference(
    crm: FeatureSource, entity: Entity
) -> None:
    config = FlagsConfig()
    new, old = load_history(crm, entity, config), _reference_history(crm, entity, config)
    known = old.entities["entity_id"].iloc[::3].tolist()
    unknown = ["L-UNKNOWN", "O-UNKNOWN", "nobody", None, np.nan]
    ids = pd.Series(known + unknown + known[:5], index=np.arange(len(known) + len(unknown) + 5) * 2)
    for as_of in _as_ofs(crm):
        _same(unanswered_attempts(new, ids, as_of), _reference_unanswered(old, ids, as_of), "unanswered")
    _same(entity_attributes(new, ids), _reference_attributes(old, ids), "attributes")


def test_the_gapped_crm_has_the_gaps_it_is_meant_to_have() -> None:
    """The CRM of the comparisons holds each kind of gap (else the tests above would prove less)."""
    tables = _gapped(8)
    with frames_source(tables) as src:
        history = _reference_history(src, "lead", FlagsConfig())
    acts = tables["activities"]
    assert acts["occurred_at"].isna().any() and acts["direction"].isna().any()
    assert acts.dropna(subset=["lead_id", "occurred_at"]).duplicated(["lead_id", "occurred_at"]).any()
    assert (history.gaps["gap_days"] == 0).any()  # tied touches
    assert history.entities["rep_id"].isna().any() and history.entities["segment"].isna().any()
    assert (history.entities["rep_id"] == "R-UNKNOWN").any()
    assert not set(history.entities["entity_id"]) <= set(history.touches["entity_id"])  # silent leads
    assert (history.touches["entity_id"] == "L-UNKNOWN").any()
    with frames_source(_twice(8)) as src:
        twice = load_history(src, "lead", FlagsConfig())
    assert len(twice.gaps) > len(history.gaps)  # a gap for each row of a key held twice
    again = twice.entities.set_index("entity_id")["rep_id"] == "R-AGAIN"
    assert again.any() and not again.all()  # the first row of a key decides, whichever it is


def test_group_figures_equal_pandas_on_random_groups_with_missing_values() -> None:
    rng = np.random.default_rng(0)
    n = 20000
    keys = rng.integers(0, 300, n)
    values = rng.exponential(3.0, n)
    values[::2] = np.round(values[::2] * 4) / 4  # many ties
    values[rng.random(n) < 0.05] = np.nan
    values[keys == 7] = np.nan  # a group with nothing but missing values
    for q in (0.5, 0.75, 0.9, 0.97, 0.99):
        order = np.lexsort((values, keys))
        groups, size, median, quantile = silence._group_stats(keys[order], values[order], q)
        grouped = pd.Series(values).groupby(keys)
        assert np.array_equal(groups, grouped.size().index.to_numpy())
        assert np.array_equal(size, grouped.size().to_numpy())
        assert np.array_equal(median, grouped.median().to_numpy(), equal_nan=True)
        assert np.array_equal(quantile, grouped.quantile(q).to_numpy(), equal_nan=True)


def test_a_history_of_plain_text_columns_in_any_order_fits_the_same_model(
    crm: FeatureSource, gapped: FeatureSource
) -> None:
    """Text columns (as a service's empty history has them) and an unsorted frame are factorized."""
    config = FlagsConfig()
    new = load_history(crm, "opportunity", config)
    plain = new.gaps.astype(dict.fromkeys(("entity_id", "rep_id", "segment", "stage"), object))
    shuffled = plain.sample(frac=1.0, random_state=1).reset_index(drop=True)
    for as_of in _as_ofs(crm):
        want = _reference_fit(plain, as_of, config.going_cold, True)
        _same_model(fit_silence(shuffled, as_of, config.going_cold, True), want)
        _same_model(fit_silence(new.gaps, as_of, config.going_cold, True), want)
    plain_history = replace(
        new,
        entities=new.entities.astype(object),
        touches=new.touches.astype({"entity_id": object}),
        gaps=shuffled,
    )
    frame = _features(crm, gapped, "opportunity", _as_ofs(crm)[0])
    a = compute.flag_snapshot(plain_history, frame, _as_ofs(crm)[0], config)
    b = compute.flag_snapshot(new, frame, _as_ofs(crm)[0], config)
    _same(a.flags, b.flags, "flags")


@pytest.mark.parametrize("entity", ["opportunity", "lead"])
def test_labels_numbered_in_another_order_than_pythons_are_renumbered(
    gapped: FeatureSource, entity: Entity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB numbers the labels in its sort order; where Python sorts them otherwise, codes follow Python."""
    monkeypatch.setattr(history._Labels, "order", "label DESC")
    config = FlagsConfig()
    new, old = load_history(gapped, entity, config), _reference_history(gapped, entity, config)
    assert new.gaps["rep_id"].cat.categories.is_monotonic_increasing
    as_of = _as_ofs(gapped)[1]
    frame = _features(gapped, gapped, entity, as_of)
    got = compute.flag_snapshot(new, frame, as_of, config)
    signals, flags, summary = _reference_snapshot(old, frame, as_of, config)
    _same(compute.snapshot_signals(new, frame, as_of, config), signals, "signals")
    _same(got.flags, flags, "flags")
    _same(got.summary, summary, "summary")
    labels = history._Labels(gapped.con)
    try:
        assert labels.table("reps", "SELECT rep_id FROM leads")[2] is not None  # the codes were mapped
    finally:
        labels.drop()
    with_stage = entity == "opportunity"
    _same_model(
        fit_silence(new.gaps, as_of, config.going_cold, with_stage),
        _reference_fit(old.gaps, as_of, config.going_cold, with_stage),
    )


def test_many_groups_and_unsorted_categories_give_the_reference_model() -> None:
    """Segments past 32,767 groups (no radix sort) and categories not in sorted order."""
    rng = np.random.default_rng(5)
    n = 60000
    gaps = pd.DataFrame(
        {
            "entity_id": rng.integers(0, 5000, n).astype(str),
            "rep_id": rng.choice(["R1", "R2", "R3", None], n),
            "segment": rng.integers(0, 40000, n).astype(str),
            "stage": rng.choice(["b", "a", "c"], n),
            "ended_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D"),
            "gap_days": np.round(rng.exponential(4.0, n), 1),
        }
    )
    as_of = pd.Timestamp("2024-12-01")
    config = GoingCold(min_rep_gaps=5)
    want = _reference_fit(gaps, as_of, config, True)
    unsorted = gaps.astype({"stage": pd.CategoricalDtype(["c", "a", "b"]), "rep_id": "category"})
    _same_model(fit_silence(gaps, as_of, config, True), want)
    got = fit_silence(unsorted, as_of, config, True)
    assert len(got.tables[3]) > 32767
    _same_model(got, want)


def test_stages_entered_at_the_same_instant_give_one_stage_whatever_the_rows_order() -> None:
    """A skip recorded to the second: the gap gets the stage furthest in the pipeline, as the features do."""
    tables = simulate_crm(SimulationConfig(n_leads=1500, seed=3, months=8)).tables
    h = tables["stage_history"]
    tied = h.iloc[::2].copy()
    stages = list(dict.fromkeys(h["stage"]))
    tied["stage"] = tied["stage"].map(lambda s: stages[(stages.index(s) + 1) % len(stages)])
    both = pd.concat([h, tied], ignore_index=True)
    gaps = []
    for rows in (both, pd.concat([tied, h]), both.sample(frac=1.0, random_state=1)):
        with frames_source({**tables, "stage_history": rows.reset_index(drop=True)}) as src:
            gaps.append(load_history(src, "opportunity", FlagsConfig()).gaps.reset_index(drop=True))
            ranks = dict(src.con.execute("SELECT stage, stage_order FROM _stages").fetchall())
    for other in gaps[1:]:
        pd.testing.assert_series_equal(other["stage"].astype(object), gaps[0]["stage"].astype(object))
    # the expected stage: the last entered at or before the gap's start, ties to the furthest stage
    current = both.assign(rank=both["stage"].map(ranks).fillna(-1))
    current = current.sort_values(["opportunity_id", "entered_at", "rank", "stage"]).drop_duplicates(
        ["opportunity_id", "entered_at"], keep="last"
    )
    g = gaps[0]
    started = pd.to_datetime(g["ended_at"]) - pd.to_timedelta((g["gap_days"] * 86400).round(), unit="s")
    probe = pd.DataFrame({"opportunity_id": g["entity_id"].astype(str), "at": started, "row": range(len(g))})
    probe = probe.sort_values("at")
    current = current.assign(at=pd.to_datetime(current["entered_at"])).sort_values("at")
    want = pd.merge_asof(probe, current[["opportunity_id", "at", "stage"]], on="at", by="opportunity_id")
    want = want.sort_values("row")["stage"].to_numpy(dtype=object)
    got = g["stage"].astype(object).to_numpy()
    assert (pd.isna(want) == pd.isna(got)).all()
    known = ~pd.isna(want)
    assert len(set(tied["opportunity_id"]) & set(g["entity_id"].astype(str))) > 50
    np.testing.assert_array_equal(got[known].astype(str), want[known].astype(str))


def test_a_failed_read_is_not_hidden_by_dropping_its_tables() -> None:
    """The temporary tables are dropped in a ``finally``; on an aborted transaction that drop fails too."""
    con = duckdb.connect()
    labels = history._Labels(con)
    con.execute("BEGIN TRANSACTION")
    labels.table("reps", "SELECT 'a' UNION ALL SELECT 'b'")
    with pytest.raises(duckdb.ConversionException, match="INT32"):
        try:
            con.execute("SELECT CAST('x' AS INTEGER)")  # a run-time error aborts the transaction
        except BaseException:
            labels.drop(failing=True)  # the connection refuses every statement now: the read's error is kept
            raise
    with pytest.raises(duckdb.TransactionException):  # a drop that fails after a good read is not hidden
        labels.drop()
    con.execute("ROLLBACK")
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone() == (0,)
