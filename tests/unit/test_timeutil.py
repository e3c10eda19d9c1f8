from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from forecast.errors import InputError, cli_message
from forecast.timeutil import parse_time, resolve_as_of, to_utc_naive


def test_to_utc_naive_converts_offsets_and_keeps_naive_values() -> None:
    assert to_utc_naive(pd.Timestamp("2025-03-01T12:00+02:00")) == pd.Timestamp("2025-03-01T10:00")
    assert to_utc_naive(pd.Timestamp("2025-03-01T12:00")) == pd.Timestamp("2025-03-01T12:00")
    aware = datetime(2025, 3, 1, 12, tzinfo=timezone(timedelta(hours=-5)))
    assert to_utc_naive(aware) == pd.Timestamp("2025-03-01T17:00")
    column = pd.Series(pd.to_datetime(["2025-03-01T12:00+01:00"], utc=True)).dt.tz_convert("Europe/Paris")
    out = to_utc_naive(column)
    assert out.dt.tz is None and out.iloc[0] == pd.Timestamp("2025-03-01T11:00")
    naive = pd.Series(pd.to_datetime(["2025-03-01"]))
    assert to_utc_naive(naive) is naive


@pytest.mark.parametrize("value", ["", "  ", "nat", "not-a-date"])
def test_parse_time_refuses_what_is_not_a_time(value: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_time(value, "to")
    assert caught.value.parameter == "to" and str(caught.value).startswith("to ")
    assert "--" not in str(caught.value)  # the domain names the parameter; the CLI shows the flag
    assert cli_message(caught.value).startswith("--to ")


def test_resolve_as_of_uses_the_default_only_when_nothing_is_given() -> None:
    calls: list[int] = []

    def default() -> pd.Timestamp:
        calls.append(1)
        return pd.Timestamp("2025-01-01")

    assert resolve_as_of("2025-02-01T00:00Z", default) == pd.Timestamp("2025-02-01")
    assert resolve_as_of(datetime(2025, 2, 1, tzinfo=UTC), default) == pd.Timestamp("2025-02-01")
    assert not calls
    assert resolve_as_of(None, default) == pd.Timestamp("2025-01-01") and calls == [1]
