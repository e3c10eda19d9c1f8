"""Every export in ../shared/data with an outcome trains and scores from the CLI (bring your own).

One test per file: the four UCI bank-marketing files, Salvirt (``--target Status``) and a flat view
of Maven's pipeline (deals joined with accounts, products and teams; open deals unlabelled). Large
files are sampled (fixed seed) and LightGBM runs with fewer, larger steps, so that each test takes
seconds; where ../shared/data is absent each test skips with the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.cli import cli_env
from tests.cli import cli_json as _cli
from tests.conftest import REPO, SHARED_DATA

MAX_ROWS = 6000
SCORE_ROWS = 150


def _source(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"../shared/data/{relative} is absent: this test needs the project's shared datasets")
    return path


def _fast_config(root: Path) -> Path:
    config = yaml.safe_load((REPO / "training" / "lead_scoring.yaml").read_text(encoding="utf-8"))
    config["lightgbm"].update({"n_estimators": 400, "learning_rate": 0.08, "early_stopping_rounds": 40})
    path = root / "fast.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _sampled(frame: pd.DataFrame) -> pd.DataFrame:
    if len(frame) <= MAX_ROWS:
        return frame
    return frame.sample(n=MAX_ROWS, random_state=0).sort_index()


def _maven_flat() -> pd.DataFrame:
    folder = _source("maven-crm-sales-opportunities/sales_pipeline.csv").parent
    deals = pd.read_csv(folder / "sales_pipeline.csv", dtype=str)
    deals["product"] = deals["product"].replace({"GTXPro": "GTX Pro"})  # spelt both ways (SOURCE.md)
    flat = (
        deals.merge(pd.read_csv(folder / "accounts.csv", dtype=str), on="account", how="left")
        .merge(pd.read_csv(folder / "products.csv", dtype=str), on="product", how="left")
        .merge(pd.read_csv(folder / "sales_teams.csv", dtype=str), on="sales_agent", how="left")
    )
    flat["outcome"] = flat["deal_stage"].where(flat["deal_stage"].isin(["Won", "Lost"]))
    # close_value is 0 for every lost deal and close_date comes with the outcome: known leaks,
    # left in on purpose; the preparer must flag them.
    return flat.drop(columns=["deal_stage"])


CASES = {
    "uci_bank": ("uci-bank-marketing/bank.csv", "y", ";", ["duration"], 0.68),
    "uci_bank_full": ("uci-bank-marketing/bank-full.csv", "y", ";", ["duration"], 0.70),
    "uci_bank_additional": ("uci-bank-marketing/bank-additional.csv", "y", ";", ["duration"], 0.70),
    "uci_bank_additional_full": ("uci-bank-marketing/bank-additional-full.csv", "y", ";", ["duration"], 0.72),
    "salvirt": ("salvirt-b2b-sales/Salvirt_B2B_ML_dataset.csv", "Status", ";", [], 0.65),
    "maven_flat": ("maven", "outcome", ",", [], 0.45),  # fictional outcomes: little signal
    # The file is in time order: tested on its last rows (another regime), period columns kept out
    # of the trees and the family chosen on the newest fitting rows (docs/models.md). Measured on
    # this 6,000-row sample: LightGBM chosen, AUC 0.670 against 0.569 for the logistic regression.
    "uci_bank_additional_full_in_order": (
        "uci-bank-marketing/bank-additional-full.csv",
        "y",
        ";",
        ["duration"],
        0.62,
    ),
}
SPLITS = {"uci_bank_additional_full_in_order": "order"}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", list(CASES))
def test_a_real_export_trains_and_scores_from_the_cli(name: str, tmp_path: Path) -> None:
    relative, target, delimiter, dropped, min_auc = CASES[name]
    if relative == "maven":
        frame = _maven_flat()
    else:
        frame = pd.read_csv(_source(relative), sep=delimiter, dtype=str, keep_default_na=False)
    frame = _sampled(frame)
    export = tmp_path / "export.csv"
    frame.to_csv(export, index=False, sep=delimiter)
    env = cli_env(tmp_path)
    options = ["--delimiter", delimiter, *[a for c in dropped for a in ("--drop-column", c)]]
    if name in SPLITS:
        options += ["--split", SPLITS[name]]
    trained = _cli(
        env, "train", "lead-scoring", "--table", str(export), "--target", target,
        "--model-name", name, "--config", str(_fast_config(tmp_path)), *options,
    )  # fmt: skip
    assert trained["ok"] and trained["version"] == "1"
    assert trained["metrics"]["roc_auc"] >= min_auc
    # the model is no worse than a logistic regression on the same rows, within noise, wherever
    # the logistic regression finds signal (Maven's fictional outcomes have none: both near 0.5)
    logistic_auc = trained["baselines"]["logistic"]["roc_auc"]
    if logistic_auc >= 0.6:
        assert trained["metrics"]["roc_auc"] >= logistic_auc - 0.03
    if name in SPLITS:
        assert trained["splits"]["method"] == "row_order"
        assert trained["fit"]["family"]["choice"] == "auto"
        assert {"month", "nr.employed"} <= set(trained["fit"]["period_features"])
        assert trained["metrics"]["roc_auc"] >= logistic_auc - 0.01
    if name == "maven_flat":
        assert "close_value" not in trained["top_features"][0]["feature"]
        flagged = " ".join(trained["warnings"])
        assert "'close_value'" in flagged

    new = frame.drop(columns=[target]).head(SCORE_ROWS)
    new.to_csv(tmp_path / "new.csv", index=False, sep=delimiter)
    out = tmp_path / "scores.csv"
    keep = new.columns[0]
    scored = _cli(
        env, "score", "leads", "--input", str(tmp_path / "new.csv"), "--output", str(out),
        "--model", name, "--version", "1", "--delimiter", delimiter, "--keep-columns", keep,
    )  # fmt: skip
    assert scored["scored"] + scored["rejected"] == len(new)
    assert scored["scored"] >= 0.95 * len(new) and scored["model_version"] == "1"
    scores = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert scores.columns[0] == "source_row" and "row_id" not in scores.columns
    assert keep in scores.columns
    p = scores["p_convert"].astype(float)
    assert p.between(0, 1).all() and p.nunique() > 1
    reasons = scores["reason_up_1"].replace("", np.nan).dropna()
    assert len(reasons) > 0.5 * len(scores)
    assert not reasons.str.contains(r"= \d+\.0$", regex=True).any()  # values as the file wrote them
    assert not reasons.str.contains("__other__").any()
