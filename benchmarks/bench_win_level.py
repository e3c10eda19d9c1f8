"""Where the deal-win level gap comes from: truth, labels, and the served model on the history and the future.

Usage: ``uv run python benchmarks/bench_win_level.py [--worlds history-24m stages-8 history-6m cycle-20]
[--seeds 1 2] [--leads-per-month 1000] [--set snapshots.tail_to=eventual] [--edge-monotone pava]
[--variants] [--tag NAME]``. Per world and
seed (about 1 minute for 12 months at 1,000 leads a month, 3 for 24 months, on the shared 2-core
machine) it prints one JSON line: the simulator's truth by creation quarter around the cut (eventual
wins, wins within the label horizon H of creation, the true probability), the training labels by
snapshot quarter, the served model's mean against wins within H and eventual wins on the history's
snapshots (rebuilt from the whole simulation, so uncensored), and on the 3 months after the cut the
matrix's judgement (``forecast.robustness.evaluate_deal_win``) with the wins within H beside the
eventual ones. With ``--variants`` the same served model is also judged on that future with each
way of keeping the hazard's calibrated curves monotone across edges (:data:`VARIANTS`), with
p_win reaching as trained and stopping at H. Figures in docs/models.md ("Where the level gap
comes from").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.data.as_of import crm_as_of
from forecast.data.ingest import ingest
from forecast.data.simulate import simulate_crm
from forecast.data.simulation.worlds import load_world
from forecast.data.warehouse import Warehouse
from forecast.evaluate import expected_calibration_error
from forecast.features.build import build_feature_table
from forecast.features.snapshots import AT_CREATION, LabelConfig
from forecast.features.source import frames_source
from forecast.models.config import TrainingConfig
from forecast.models.pipeline import isotonic_predict, predict_frame
from forecast.models.survival import EDGE_MONOTONE, DiscreteTimeHazard, monotone_edges
from forecast.models.win_blend import HazardBlendedClassifier
from forecast.robustness import _future_rows, _write_crm, cut_of, evaluate_deal_win
from forecast.training.binary import train_binary
from forecast.training.datasets import snapshot_dates, warehouse_input

REPO = Path(__file__).resolve().parents[1]


def q_of(ts: pd.Series, cut: pd.Timestamp) -> np.ndarray:
    """Quarter index relative to the cut (-1: the 91 days before it, 0: the 91 after)."""
    return np.floor((pd.to_datetime(ts) - cut) / pd.Timedelta(days=91.3)).astype(int).to_numpy()


def parts(model, pipe, rows):
    if not isinstance(model, HazardBlendedClassifier):
        return None
    prep = pipe[:-1].transform(rows)
    return {
        "classifier": float(model.classifier_proba(prep)[:, 1].mean()),
        "hazard": float(model.win_within(prep).mean()),
    }


def _raw_within(hazard: Any, x: pd.DataFrame, days: float) -> np.ndarray:
    """The hazard's uncalibrated P(won within ``days``), interpolated as its calibrated one is."""
    k, at, frac = hazard.win_within_interval(days)
    _closed, won = hazard._curves_from(hazard._interval_proba(x, k=k))
    return np.asarray(won[:, at] + frac * (won[:, at + 1] - won[:, at]))


def _raw_tail(self: HazardBlendedClassifier, x: pd.DataFrame, within: np.ndarray) -> np.ndarray | None:
    """An experiment (``--raw-tail``): the wins after the label horizon from the uncalibrated curve."""
    if self.p_win_days_ is None:
        return None
    frame = predict_frame(self, x)
    far = _raw_within(self.hazard_, frame, self.p_win_days_)
    return np.maximum(far - _raw_within(self.hazard_, frame, self.hazard_days_), 0.0)


def _carried(self: DiscreteTimeHazard, curve: np.ndarray, name: str) -> np.ndarray:
    """An experiment: the calibration ratio of the last edge half the rows reach, carried forward.

    Past that edge the raw curve times that edge's calibrated-to-raw ratio, then the running maximum.
    """
    calibrators = self.calibrators_.get(name)
    if not calibrators:
        return curve
    rows = np.asarray(self.edge_rows_)
    out = curve.copy()
    for j, iso in enumerate(calibrators[: curve.shape[1]]):
        if iso is not None:
            out[:, j] = isotonic_predict(iso, curve[:, j])
    last = int(np.flatnonzero(rows >= 0.5 * rows[0])[-1])
    if last >= curve.shape[1] - 1:  # a curve read before that edge stops there
        return np.maximum.accumulate(out, axis=1)
    ratio = out[:, last] / np.maximum(curve[:, last], 1e-12)
    out[:, last + 1 :] = np.minimum(curve[:, last + 1 :] * ratio[:, None], 1.0)
    return np.maximum.accumulate(out, axis=1)


def _equal(self: DiscreteTimeHazard, curve: np.ndarray) -> np.ndarray:
    """An experiment: the least-squares fit across edges with every edge weighted alike."""
    return monotone_edges(curve, "pava")


VARIANTS: dict[str, tuple[str, Any, Any]] = {
    "max": ("max", None, None),
    "pava": ("pava", None, None),
    "pava_equal": ("pava", None, _equal),
    "carry_half": ("max", _carried, None),
}
"""Per variant: ``edge_monotone``, a replacement ``_calibrated`` and a replacement ``_monotone``."""


def variants(
    model: HazardBlendedClassifier,
    served: Any,
    rows: pd.DataFrame,
    truth: pd.DataFrame,
    past: Any,
    won: np.ndarray,
    closed_at: np.ndarray,
    as_of: np.ndarray,
    h: int,
) -> dict:
    """The served model judged with each of :data:`VARIANTS` (its hazard restored after)."""
    hazard = model.hazard_
    reach = model.p_win_days_
    kept = hazard.edge_monotone
    frame = predict_frame(model, served[:-1].transform(rows))
    by = np.stack([won & (closed_at < as_of + np.timedelta64(int(t), "D")) for t in hazard.edges], axis=1)
    in_h = won & (closed_at < as_of + np.timedelta64(h, "D"))
    out: dict[str, Any] = {}
    for name, (mono, calibrated, monotone) in VARIANTS.items():
        hazard.edge_monotone = mono
        for attr, fn in (("_calibrated", calibrated), ("_monotone", monotone)):
            hazard.__dict__.pop(attr, None)
            if fn is not None:
                setattr(hazard, attr, fn.__get__(hazard))
        try:
            incidence = hazard.win_incidence(frame)
            assert incidence is not None
            within = model.win_within(frame)
            for tail_to in ("eventual", "cycle"):
                model.p_win_days_ = reach if tail_to == "eventual" else None
                ev = evaluate_deal_win(served, rows, truth, past)
                out[f"{name}/{tail_to}"] = {
                    k: ev.get(k) for k in ("auc", "ece", "brier", "mean_p", "win_rate")
                }
            model.p_win_days_ = reach
            tail = model.tail(frame, within)
            row = out[f"{name}/eventual"]
            row["curve_brier"] = round(float(((incidence - by) ** 2)[:, 1:].mean()), 5)
            if tail is not None and reach is not None:
                later = won & ~in_h & (closed_at < as_of + np.timedelta64(int(reach), "D"))
                row["tail"] = round(float(tail.mean()), 4)
                row["later_wins"] = round(float(later.mean()), 4)
        finally:
            model.p_win_days_ = reach
            hazard.edge_monotone = kept
            hazard.__dict__.pop("_calibrated", None)
            hazard.__dict__.pop("_monotone", None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", nargs="+", default=["history-24m", "stages-8", "history-6m", "cycle-20"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--leads-per-month", type=float, default=500.0)
    ap.add_argument("--config", type=Path, default=REPO / "training" / "deal_win.yaml")
    ap.add_argument("--set", nargs="*", default=[], help="snapshots.KEY=VALUE or lightgbm.KEY=VALUE")
    ap.add_argument("--tag", default="base")
    ap.add_argument(
        "--raw-tail",
        action="store_true",
        help="experiment: the served model's later wins from the hazard's uncalibrated curve",
    )
    ap.add_argument(
        "--variants",
        action="store_true",
        help="experiment: judge the served model with each monotone combination across edges",
    )
    ap.add_argument(
        "--edge-monotone",
        choices=EDGE_MONOTONE,
        default=None,
        help="experiment: how every hazard trained here keeps its calibrated curves from falling",
    )
    args = ap.parse_args()
    if args.edge_monotone is not None:
        defaults = list(DiscreteTimeHazard.__init__.__defaults__ or ())
        defaults[-1] = args.edge_monotone  # the last parameter of DiscreteTimeHazard
        DiscreteTimeHazard.__init__.__defaults__ = tuple(defaults)
    if args.raw_tail:
        HazardBlendedClassifier.tail = _raw_tail  # type: ignore[method-assign]
    base = TrainingConfig.from_yaml(args.config)
    for item in args.set:
        key, value = item.split("=", 1)
        sect, name = key.split(".", 1)
        sub = getattr(base, sect)
        cur = getattr(sub, name)
        val: object = value
        if isinstance(cur, bool):
            val = value.lower() in ("1", "true", "yes")
        elif isinstance(cur, int):
            val = int(value)
        elif isinstance(cur, float) or cur is None:
            try:
                val = float(value)
            except ValueError:
                val = None if value == "none" else value
        base = base.model_copy(update={sect: sub.model_copy(update={name: val})})
    for seed in args.seeds:
        for name in args.worlds:
            t0 = time.perf_counter()
            world = load_world(name).model_copy(
                update={"leads_per_month": args.leads_per_month, "seed": seed}
            )
            sim = simulate_crm(world.to_config(extra_months=6))
            pipeline = world.pipeline()
            cut = cut_of(world)
            past = crm_as_of(sim.tables, cut, pipeline)
            truth = sim.truth["truth_opportunities"].copy()
            opps = sim.tables["opportunities"].set_index("opportunity_id")
            truth["created_at"] = opps.loc[truth["opportunity_id"], "created_at"].to_numpy()
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                wh = Warehouse(root / "warehouse.duckdb")
                ingest(
                    _write_crm(past, root / "crm"),
                    "canonical",
                    wh,
                    pipeline=pipeline,
                    as_of=cut + pd.Timedelta(days=400),
                )
                data, _table, config = warehouse_input(root / "warehouse.duckdb", base)
                result = train_binary(data, config)
            h = int(config.snapshots.horizon_days)
            far = config.snapshots.p_win_days
            out: dict = {
                "tag": args.tag,
                "world": name,
                "seed": seed,
                "H": h,
                "p_win_days": far,
                "kind": result.model_kind,
                "edge_monotone": getattr(
                    getattr(result.pipeline[-1], "hazard_", None), "edge_monotone", None
                ),
            }
            won = truth["eventual_outcome"].eq("won").to_numpy()
            closed_at = pd.to_datetime(truth["eventual_closed_at"])
            dur = (closed_at - pd.to_datetime(truth["created_at"])).dt.days.to_numpy()
            tq = q_of(truth["created_at"], cut)
            # (a) truth by creation quarter
            a = {}
            for k in sorted(set(tq)):
                if k < -8 or k > 1:
                    continue
                s = tq == k
                a[int(k)] = {
                    "n": int(s.sum()),
                    "won": round(float(won[s].mean()), 3),
                    "won_in_H": round(float((won & (dur < h))[s].mean()), 3),
                    "true_p": round(float(truth["true_p_win"][s].mean()), 3),
                    "obs_p": round(float(truth["p_win_observable"][s].mean()), 3),
                }
            out["truth_by_creation_q"] = a
            # (b) training labels
            frame = data.frame
            lab = frame[data.label].notna() & ~frame[data.censored].astype(bool)
            fq = q_of(frame["as_of"], cut)
            b = {}
            for k in sorted(set(fq[lab.to_numpy()])):
                s = lab.to_numpy() & (fq == k)
                b[int(k)] = {
                    "n": int(s.sum()),
                    "label": round(float(frame.loc[s, data.label].astype(float).mean()), 3),
                }
            out["labels_by_asof_q"] = b
            out["labelled_rows"] = int(lab.sum())
            out["label_mean"] = round(float(frame.loc[lab, data.label].astype(float).mean()), 4)
            # eval model on its test slice
            yt = result.test_frame[data.label].astype(float).to_numpy()
            out["test_slice"] = {
                "n": len(yt),
                "label": round(float(yt.mean()), 4),
                "p": round(float(result.test_p.mean()), 4),
            }
            served = result.pipeline
            model = served[-1]
            # (c) served model on history snapshots (built from the full simulation: labels uncensored)
            with frames_source(sim.tables, pipeline) as src:
                dates = [d for d in snapshot_dates(src, config) if d < cut]
                hist = build_feature_table(
                    src, "opportunity", dates, LabelConfig.both(h), data_end=sim.end
                ).frame
                born = build_feature_table(
                    src, "opportunity", AT_CREATION, LabelConfig.both(h), data_end=sim.end
                ).frame
            born = born[born["as_of"] < cut]
            hist = pd.concat(
                [hist.assign(at_creation=False), born.assign(at_creation=True)], ignore_index=True
            )
            tr = truth.set_index("opportunity_id")
            ev = tr.loc[hist["opportunity_id"], "eventual_outcome"].eq("won").to_numpy()
            eca = pd.to_datetime(tr.loc[hist["opportunity_id"], "eventual_closed_at"]).to_numpy()
            as_of = pd.to_datetime(hist["as_of"]).to_numpy()
            inh = ev & (eca < as_of + np.timedelta64(h, "D"))
            p = served.predict_proba(hist)[:, 1]
            hq = q_of(hist["as_of"], cut)
            c = {}
            for k in sorted(set(hq)):
                s = hq == k
                c[int(k)] = {
                    "n": int(s.sum()),
                    "p": round(float(p[s].mean()), 3),
                    "won_in_H": round(float(inh[s].mean()), 3),
                    "won": round(float(ev[s].mean()), 3),
                }
            # last H days before the cut: dropped from training
            s = as_of >= np.datetime64(cut - pd.Timedelta(days=h))
            c["lastH"] = {
                "n": int(s.sum()),
                "p": round(float(p[s].mean()), 3),
                "won_in_H": round(float(inh[s].mean()), 3),
                "won": round(float(ev[s].mean()), 3),
            }
            s = ~s
            c["labelled"] = {
                "n": int(s.sum()),
                "p": round(float(p[s].mean()), 3),
                "won_in_H": round(float(inh[s].mean()), 3),
                "won": round(float(ev[s].mean()), 3),
            }
            out["history_by_asof_q"] = c
            # (d) future
            rows = _future_rows(sim, pipeline, "opportunity", cut, 3, LabelConfig(90, h))
            evd = evaluate_deal_win(served, rows, sim.truth["truth_opportunities"], past)
            fe = tr.loc[rows["opportunity_id"], "eventual_outcome"].eq("won").to_numpy()
            fca = pd.to_datetime(tr.loc[rows["opportunity_id"], "eventual_closed_at"]).to_numpy()
            fas = pd.to_datetime(rows["as_of"]).to_numpy()
            fin = fe & (fca < fas + np.timedelta64(h, "D"))
            pf = served.predict_proba(rows)[:, 1]
            d = {
                k: evd.get(k)
                for k in (
                    "auc",
                    "stage_auc",
                    "ece",
                    "stage_only_ece",
                    "brier",
                    "stage_brier",
                    "stage_ece_max",
                    "mean_p",
                    "win_rate",
                    "deals",
                    "auc_creation",
                    "best_auc_creation",
                )
            }
            d["won_in_H"] = round(float(fin.mean()), 4)
            d["ece_vs_won_in_H"] = round(float(expected_calibration_error(fin.astype(int), pf)), 4)
            if far:
                fin2 = fe & (fca < fas + np.timedelta64(int(far), "D"))
                d["won_in_p_win_days"] = round(float(fin2.mean()), 4)
            d["true_p"] = round(float(tr.loc[rows["opportunity_id"], "true_p_win"].mean()), 4)
            cr = rows["at_creation"].to_numpy(dtype=bool)
            d["creation"] = {
                "p": round(float(pf[cr].mean()), 3),
                "won": round(float(fe[cr].mean()), 3),
                "won_in_H": round(float(fin[cr].mean()), 3),
            }
            d["weekly"] = {
                "p": round(float(pf[~cr].mean()), 3),
                "won": round(float(fe[~cr].mean()), 3),
                "won_in_H": round(float(fin[~cr].mean()), 3),
            }
            d["parts"] = parts(model, served, rows)
            if args.variants and isinstance(model, HazardBlendedClassifier):
                d["variants"] = variants(
                    model, served, rows, sim.truth["truth_opportunities"], past, fe, fca, fas, h
                )
            out["future"] = d
            hp = parts(model, served, hist)
            out["history_parts"] = hp
            out["seconds"] = round(time.perf_counter() - t0, 1)
            print(json.dumps(out), flush=True)
            print(f"{name} s{seed}: {out['seconds']}s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
