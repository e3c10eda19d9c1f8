"""Tree threads come from FORECAST_THREADS, else the cores this process may use."""

from __future__ import annotations

import pytest

from forecast.models.pipeline import SMALL_BATCH, predict_threads
from forecast.models.threads import ENV, available_cores, tree_threads


def test_the_variable_sets_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "3")
    assert tree_threads() == 3
    assert predict_threads(SMALL_BATCH + 1) == 3
    assert predict_threads(SMALL_BATCH) == 1  # small batches stay on one thread


def test_unset_means_every_available_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert tree_threads() == available_cores() >= 1


@pytest.mark.parametrize("raw", ["0", "-2", "two", "1.5"])
def test_a_bad_value_is_named(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(ENV, raw)
    with pytest.raises(ValueError, match=ENV):
        tree_threads()
