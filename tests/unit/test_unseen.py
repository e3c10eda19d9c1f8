"""Categorical values a model never saw: named per row, rare-but-seen ones told apart (issue 17 item 6)."""

from __future__ import annotations

import pickle
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from forecast.categories import OTHER
from forecast.models.pipeline import CategoryEncoder, build_pipeline
from forecast.models.unseen import (
    category_encoder,
    known_values,
    known_values_text,
    seen_values,
    unseen_values,
    unseen_warnings,
)
from forecast.scoring.scored import warnings_column
from forecast.serving.schemas import DealRecord
from forecast.serving.scoring import UnknownValueError, check_stages


def _training() -> pd.DataFrame:
    # "won" and "lost" are frequent; "demo" appears once (pooled into OTHER, but seen)
    stages = ["proposal"] * 12 + ["negotiation"] * 12 + ["demo"]
    return pd.DataFrame(
        {
            "stage": stages,
            "source": ["web"] * 20 + ["event"] * 4 + [None],
            "amount": np.arange(len(stages), dtype=float),
        }
    )


def _encoder() -> CategoryEncoder:
    return CategoryEncoder(["stage", "source"], min_count=10).fit(_training())


def test_rare_but_seen_values_are_not_unseen_and_never_seen_ones_are() -> None:
    enc = _encoder()
    assert "demo" not in enc.levels_["stage"]  # pooled: levels_ alone cannot tell it was seen
    rows = pd.DataFrame(
        {
            "stage": ["demo", "bogus_stage", None, "proposal", OTHER],
            "source": ["event", "carrier pigeon", "web", np.nan, "web"],
            "amount": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    assert unseen_values(enc, rows) == [
        [],
        [("stage", "bogus_stage"), ("source", "carrier pigeon")],
        [],
        [],
        [],
    ]


def test_a_pipeline_and_its_pickle_answer_as_the_encoder() -> None:
    train = _training()
    pipe = build_pipeline(["stage", "source", "amount"], ["stage", "source"], LogisticRegression())
    prep = pipe.steps[1][1].fit(train)
    pipe.steps[1] = ("categories", prep)
    loaded = pickle.loads(pickle.dumps(pipe))
    rows = pd.DataFrame({"stage": ["bogus"], "source": ["web"], "amount": [1.0]})
    assert category_encoder(loaded) is not None
    assert unseen_values(loaded, rows) == [[("stage", "bogus")]]
    assert unseen_warnings(loaded, rows) == [
        ["stage 'bogus' was never seen in training; scored as an unknown level"]
    ]


def test_values_are_compared_as_the_encoder_looks_them_up() -> None:
    enc = CategoryEncoder(["tier"], min_count=1).fit(pd.DataFrame({"tier": [1, 2, 2]}))
    rows = pd.DataFrame({"tier": pd.Series([1, 3, None, "2", 2.0], dtype=object)})
    got = unseen_values(enc, rows)
    assert got == [[], [("tier", "3")], [], [], [("tier", "2.0")]]
    codes = enc.encode(rows)[:, 0]
    # unseen exactly where a sent value encodes as missing
    assert [bool(g) for g in got] == list(np.isnan(codes) & rows["tier"].notna().to_numpy())


def test_unfitted_pipelines_and_absent_columns_warn_of_nothing() -> None:
    rows = pd.DataFrame({"stage": ["bogus"]})
    assert unseen_values(CategoryEncoder(["stage"]), rows) == [[]]
    assert unseen_values(object(), rows) == [[]]
    assert unseen_values(_encoder(), pd.DataFrame({"amount": [1.0]})) == [[]]
    assert seen_values(_encoder(), "amount") is None


def test_known_values_leave_the_pooled_level_out_and_the_list_is_bounded() -> None:
    assert known_values(_encoder(), "stage") == ["demo", "negotiation", "proposal"]
    text = known_values_text([f"s{i:02d}" for i in range(30)], limit=3)
    assert text == "'s00', 's01', 's02', … (27 more)"


def test_batch_warnings_column_is_empty_text_when_nothing_is_unseen() -> None:
    rows = pd.DataFrame({"stage": ["proposal", "bogus"], "source": ["web", "fax"], "amount": [1.0, 2.0]})
    got = warnings_column(_encoder(), rows)
    assert got[0] == ""
    assert got[1] == (
        "stage 'bogus' was never seen in training; scored as an unknown level; "
        "source 'fax' was never seen in training; scored as an unknown level"
    )


def _model() -> Any:
    return SimpleNamespace(pipeline=_encoder(), name="deal_win", version="3")


def test_an_unknown_stage_names_each_deal_and_the_known_stages() -> None:
    deals = [
        DealRecord(opportunity_id="O1", stage="proposal"),
        DealRecord(opportunity_id="O2", stage="bogus_stage"),
        DealRecord(opportunity_id="O3"),
        DealRecord(opportunity_id="O4", stage="Proposal"),
    ]
    with pytest.raises(UnknownValueError) as caught:
        check_stages(_model(), deals, "deals", single=False)
    assert caught.value.paths == [["deals", 1, "stage"], ["deals", 3, "stage"]]
    assert caught.value.rule == "unknown_stage"
    message = str(caught.value)
    assert message.startswith("deals.1.stage: 'bogus_stage' is not a stage deal_win v3 saw in training")
    assert "'demo', 'negotiation', 'proposal'" in message and OTHER not in message
    with pytest.raises(UnknownValueError) as one:
        check_stages(_model(), [deals[1]], "deal", single=True)
    assert one.value.paths == [["deal", "stage"]]


def test_known_and_missing_stages_pass_and_a_model_without_stage_refuses_nothing() -> None:
    check_stages(_model(), [DealRecord(opportunity_id="O1", stage="demo")], "deal", single=True)
    check_stages(_model(), [DealRecord(opportunity_id="O1")], "deal", single=True)
    no_stage = SimpleNamespace(
        pipeline=CategoryEncoder(["source"]).fit(_training()), name="deal_win", version="1"
    )
    check_stages(no_stage, [DealRecord(opportunity_id="O1", stage="bogus")], "deal", single=True)


def test_a_few_rows_value_by_value_answer_as_a_large_frame() -> None:
    """Frames of up to 64 rows are checked value by value: the same answers as the Series path."""
    enc = _encoder()
    awkward: list[object] = ["demo", "bogus", None, np.nan, pd.NA, OTHER, 3, 2.5, True, "", "proposal"]
    rows = pd.DataFrame(
        {
            "stage": pd.Series(awkward, dtype=object),
            "source": pd.Series(list(reversed(awkward)), dtype=object),
            "amount": np.arange(len(awkward), dtype=float),
        }
    )
    large = pd.concat([rows] * 7, ignore_index=True)  # 77 rows: the Series path
    assert len(large) > 64
    expected = unseen_values(enc, large)[: len(rows)]
    assert any(expected)
    assert unseen_values(enc, rows) == expected
    assert [unseen_values(enc, rows.iloc[[i]])[0] for i in range(len(rows))] == expected
