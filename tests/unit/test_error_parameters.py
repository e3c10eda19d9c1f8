"""Errors about a parameter name the parameter, not a command-line flag (issue 20).

The domain code is reached by the CLI and by the HTTP service; only the CLI has flags. An error
about one parameter's value carries the parameter (:class:`forecast.errors.InputError`), the CLI
shows it as its option and the service as the field's path.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd
import pytest

from forecast.errors import InputError, cli_message, option_name, parameter_name
from forecast.features.snapshots import as_of_grid
from forecast.revenue.forecast import period_grid
from forecast.tracking.common import check_grouping
from forecast.tracking.periods import parse_period
from tests.conftest import REPO

AS_OF = pd.Timestamp("2025-03-10")


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda: parse_period("fortnight", AS_OF), "period"),
        (lambda: parse_period("2025-03-01..2025-02-01", AS_OF), "period"),
        (lambda: check_grouping("activity", "colour", ["rep", "team"]), "by"),
        (lambda: period_grid(AS_OF, 0, "month"), "periods"),
        (lambda: period_grid(AS_OF, 2, "fortnight"), "by"),
        (lambda: as_of_grid(AS_OF, AS_OF - pd.Timedelta(days=3), pd.Timedelta(days=1)), "to"),
    ],
)
def test_an_error_about_a_parameter_names_it_and_the_cli_shows_its_flag(call, parameter: str) -> None:
    with pytest.raises(InputError) as caught:
        call()
    error = caught.value
    assert error.parameter == parameter
    assert str(error).startswith(f"{parameter} ") and "--" not in str(error)
    assert cli_message(error) == f"{option_name(parameter)} {error.message}"


def test_option_and_parameter_names_round_trip() -> None:
    assert option_name("as_of") == "--as-of" and parameter_name("--as-of") == "as_of"
    assert cli_message(ValueError("plain")) == "plain"
    assert cli_message(InputError("no parameter")) == "no parameter"


FLAG = re.compile(r"(?<![\w-])--[a-z]")
SERVED = (
    "serving",
    "scoring",
    "tracking",
    "revenue",
    "flags",
    "features",
    "models",
    "timeutil.py",
    "errors.py",
)
"""What the HTTP service runs (besides the batch and training jobs and the ingest, which only the CLI
and MLflow's entry points reach, and whose hints may name the command's options)."""


def _raised_texts(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for part in ast.walk(node.exc):
                if isinstance(part, ast.Constant) and isinstance(part.value, str) and FLAG.search(part.value):
                    found.append((node.lineno, part.value))
    return found


def test_code_the_service_runs_raises_no_message_naming_a_flag() -> None:
    root = REPO / "src" / "forecast"
    files = [
        p
        for name in SERVED
        for p in ((root / name).rglob("*.py") if (root / name).is_dir() else [root / name])
    ]
    assert len(files) > 40
    offenders = [
        f"{p.relative_to(root)}:{line}: {text[:60]}" for p in files for line, text in _raised_texts(p)
    ]
    assert offenders == []
