"""Pure parts of the service's scoring layer: strict JSON and the records' frame."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd

from forecast.serving.schemas import DealRecord
from forecast.serving.scoring import json_safe, records_frame


def test_json_safe_gives_strict_json() -> None:
    value = {
        "date": dt.date(2026, 1, 1),
        "time": pd.Timestamp("2026-01-02 03:04:05"),
        "nat": pd.NaT,
        "np_time": np.datetime64("2026-01-03"),
        "nan": float("nan"),
        "inf": np.float64(np.inf),
        "int": np.int64(3),
        "list": [np.float32(1.5), None, "x", True],
    }
    out = json.loads(json.dumps(json_safe(value), allow_nan=False))
    assert out == {
        "date": "2026-01-01",
        "time": "2026-01-02T03:04:05",
        "nat": None,
        "np_time": "2026-01-03T00:00:00",
        "nan": None,
        "inf": None,
        "int": 3,
        "list": [1.5, None, "x", True],
    }


def test_records_frame_types_like_the_feature_tables() -> None:
    now = pd.Timestamp("2026-05-01 12:00")
    records = [
        DealRecord.model_validate(
            {"opportunity_id": "O1", "stage": "proposal", "amount": 10, "act_next_action_scheduled": True}
        ),
        DealRecord.model_validate({"opportunity_id": "O2", "as_of": "2026-04-01T00:00:00+02:00"}),
    ]
    frame = records_frame(records, "opportunity", now)
    assert list(frame["opportunity_id"]) == ["O1", "O2"]
    assert list(frame["as_of"]) == [now, pd.Timestamp("2026-03-31 22:00")]
    assert frame["amount"].dtype == np.float64 and np.isnan(frame["amount"].iloc[1])
    assert frame["act_next_action_scheduled"].tolist()[0] == 1.0
    assert np.isnan(frame["act_next_action_scheduled"].iloc[1])
    assert frame["stage"].tolist() == ["proposal", None]
