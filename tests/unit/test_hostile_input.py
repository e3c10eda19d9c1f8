"""Hostile input (issue 21): formula cells, huge files, path-like names, file modes, echoed values."""

from __future__ import annotations

import io
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from forecast.data.readers import ReadLimits, read_table_file
from forecast.data.sources.base import SourceError
from forecast.errors import truncate
from forecast.features.tabular import prepare_flat_export, safe_feature_names
from forecast.io import (
    csv_safe_frame,
    csv_text,
    current_umask,
    neutralise_cell,
    write_csv,
    write_frame,
    write_text,
)
from tests.conftest import hold_warehouse_lock

HOSTILE = ["=1+10", "+1+2", "-1+2", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://e")']


# --- 1. CSV formula injection ---------------------------------------------------------------------
@pytest.mark.parametrize("value", HOSTILE)
def test_a_cell_that_starts_a_formula_gets_a_quote(value: str) -> None:
    assert neutralise_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["-5", "+1.5", "-2e5", "3", ".5", "R1", "a=b", "", "'=x"])
def test_plain_numbers_and_harmless_text_are_kept(value: str) -> None:
    assert neutralise_cell(value) == value


def test_write_frame_csv_neutralises_ids_headers_and_values_but_not_numbers(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "id": ["=1+10", "R2", "@me"],
            "=1+Visits": [-3, 4, 5],  # a hostile header over a numeric column
            "reason": ["=1+Visits = 2", "-x", None],
            "amount": [-1.5, 2.0, np.nan],
            "level": pd.Categorical(["+a", "b", "+a"]),
            "mixed": pd.Series([-7, "=2+5", 1.0], dtype=object),
        }
    )
    path = tmp_path / "scores.csv"
    write_frame(frame, path, "csv")
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "id,'=1+Visits,reason,amount,level,mixed"
    assert lines[1] == "'=1+10,-3,'=1+Visits = 2,-1.5,'+a,-7"
    assert lines[2] == "R2,4,'-x,2.0,b,'=2+5"
    assert lines[3] == "'@me,5,,,'+a,1.0"
    for line in lines:
        for cell in line.split(","):
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), line
    # the frame itself is not changed: Parquet and JSON keep raw values
    assert frame.loc[0, "id"] == "=1+10" and list(frame.columns)[1] == "=1+Visits"
    write_frame(frame.drop(columns="mixed"), tmp_path / "scores.parquet")
    raw = pq.read_table(tmp_path / "scores.parquet").to_pandas()
    assert raw.loc[0, "id"] == "=1+10" and "=1+Visits" in raw.columns


def test_csv_text_and_streams_are_neutralised_too() -> None:
    frame = pd.DataFrame({"feature": ["=cmd|' /C calc'!A0"], "gain": [-0.5]})
    assert csv_text(frame).splitlines()[1] == "'=cmd|' /C calc'!A0,-0.5"
    buffer = io.StringIO()
    write_csv(frame, buffer)
    assert buffer.getvalue().splitlines()[1].startswith("'=cmd")


def test_a_frame_without_hostile_cells_is_returned_as_is() -> None:
    frame = pd.DataFrame({"id": ["R1", "R2"], "x": [-1, 2]})
    assert csv_safe_frame(frame) is frame


def test_the_rejects_of_a_batch_score_hold_no_formula(tmp_path: Path) -> None:
    from forecast.batch import rejects_path

    rejects = pd.DataFrame(
        {
            "source_row": [4],
            "id": ["=1+3"],
            "column": ["=1+Visits"],
            "rule": ["not_a_number"],
            "value": ["=2+5"],
            "message": ["'=1+Visits' expects a number"],
        }
    )
    path = rejects_path(tmp_path / "scores.csv")
    write_frame(rejects, path, "csv")
    back = pd.read_csv(path, dtype=str)
    assert back.loc[0, "id"] == "'=1+3" and back.loc[0, "column"] == "'=1+Visits"
    assert back.loc[0, "value"] == "'=2+5" and back.loc[0, "source_row"] == "4"


# --- 5. one file-permission policy -----------------------------------------------------------------
@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path: Path, umask: None, mask: int, mode: int) -> None:
    os.umask(mask)
    assert current_umask() == mask
    write_text(tmp_path / "a.txt", "x")
    write_frame(pd.DataFrame({"a": [1]}), tmp_path / "a.parquet")
    write_frame(pd.DataFrame({"a": [1]}), tmp_path / "a.csv", "csv")
    for name in ("a.txt", "a.parquet", "a.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open() gives: the same policy as the warehouse and MLflow files
    assert stat.S_IMODE(plain.stat().st_mode) == mode


# --- 2. echoed values and any header character -----------------------------------------------------
def test_echoed_values_are_truncated() -> None:
    assert truncate("x" * 10) == "x" * 10
    cut = truncate("y" * 1_000_000)
    assert len(cut) < 260 and cut.startswith("y" * 200) and cut.endswith("(1,000,000 chars)")


def test_headers_lightgbm_refuses_get_safe_unique_names() -> None:
    names = safe_feature_names(['Size "approx"', "Size _approx_", "a:b", "x[0]", "{k}", "tab\there", "ok"])
    assert names == {
        'Size "approx"': "Size _approx_",
        "Size _approx_": "Size _approx__2",
        "a:b": "a_b",
        "x[0]": "x_0_",
        "{k}": "_k_",
        "tab\there": "tab_here",
        "ok": "ok",
    }


def test_a_flat_export_with_json_characters_in_headers_trains_lightgbm() -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    n = 400
    visits = rng.poisson(2, n)
    frame = pd.DataFrame(
        {
            "Record ID": [f"R{i}" for i in range(n)],
            'Visits "web", [all]': visits.astype(str),
            "Region:{x}": rng.choice(["EU", "US"], n),
            "Converted": np.where(rng.random(n) < 0.2 + 0.1 * (visits > 2), "Yes", "No"),
        }
    )
    export = prepare_flat_export(frame, target="Converted")
    features = export.feature_columns
    assert "Visits _web__ _all_" in features
    assert any("renamed column(s) for the model" in w and "Visits" in w for w in export.warnings)
    spec = export.preparer_spec()
    assert {f["source"] for f in spec["features"]} >= {'Visits "web", [all]'}
    x = export.table[features].apply(lambda c: c.astype("category") if c.dtype == object else c)
    model = lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(x, export.table["label_target"].astype(int))
    assert len(model.booster_.feature_name()) == len(features)


# --- 3. names checked first ------------------------------------------------------------------------
BAD_NAMES = ["../../x", "a/b", "..", ".hidden", "has space", "a\\b", "", "x" * 101, "a..b", "-x", "é"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_that_could_become_another_path_is_refused(name: str) -> None:
    from forecast.errors import InputError
    from forecast.name_rules import check_name

    with pytest.raises(InputError, match="is not a valid name: it must use letters, digits"):
        check_name(name)


@pytest.mark.parametrize("name", ["lead_scoring", "byo", "deal-win.v2", "_x", "A1"])
def test_ordinary_names_pass(name: str) -> None:
    from forecast.name_rules import check_name

    assert check_name(name) == name


def test_training_configs_and_reload_requests_use_the_same_rule() -> None:
    from pydantic import ValidationError

    from forecast.models.config import TrainingConfig
    from forecast.serving.schemas import ReloadRequest

    with pytest.raises(ValidationError, match="not a valid name"):
        TrainingConfig(model_name="a/b")
    with pytest.raises(ValidationError, match="not a valid name"):
        TrainingConfig(experiment="../x")
    with pytest.raises(ValidationError) as info:
        ReloadRequest(model="../../x")
    assert info.value.errors()[0]["loc"] == ("model",)
    assert ReloadRequest(model="lead_scoring").model == "lead_scoring"


def test_jobs_check_names_before_any_work(tmp_path: Path) -> None:
    from forecast.batch import score_job
    from forecast.config import Settings
    from forecast.errors import InputError
    from forecast.models.config import TrainingConfig
    from forecast.training.job import train_model_job

    settings = Settings(
        warehouse=tmp_path / "absent.duckdb",
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        models_dir=tmp_path / "models",
    )
    config = TrainingConfig().model_copy(update={"model_name": "../../x"})  # model_copy skips validation
    with pytest.raises(InputError, match=r"'\.\./\.\./x' is not a valid name"):
        train_model_job(settings, config)
    with pytest.raises(InputError, match="'a/b' is not a valid name"):
        score_job(settings, model_name="a/b", output=tmp_path / "out.csv", input_path=tmp_path / "x.csv")
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "models").exists()


# --- 2. bounded input ------------------------------------------------------------------------------
def _limits(**kw: int) -> ReadLimits:
    return ReadLimits(**{"max_file_bytes": 10**9, "max_columns": 50, "max_line_bytes": 10_000, **kw})


def test_a_file_with_too_many_columns_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(60)) + "\n" + ",".join(["1"] * 60) + "\n")
    with pytest.raises(SourceError, match=r"wide\.csv: 60 columns in the header, more than the limit of 50"):
        read_table_file(path, limits=_limits())
    quoted = tmp_path / "quoted.csv"  # delimiters inside quotes are no columns
    quoted.write_text('a,"b,' + "," * 100 + '"\n1,2\n')
    assert read_table_file(quoted, limits=_limits()).shape == (1, 2)


@pytest.mark.timeout(120)
def test_a_million_columns_are_refused_before_pandas_parses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The raw-byte scan refuses the file; pandas (minutes and gigabytes on this file) never sees it."""
    import forecast.data.readers as readers

    def parse(*args: object, **kwargs: object) -> pd.DataFrame:
        raise AssertionError("the file reached pandas")

    monkeypatch.setattr(readers.pd, "read_csv", parse)
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(1_000_000)) + "\n" + "1," * 999_999 + "1\n")
    with pytest.raises(
        SourceError, match=r"columns in the header, more than the limit of 2,000 \(FORECAST_MAX"
    ):
        read_table_file(path, limits=ReadLimits())


def test_a_line_beyond_the_limit_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("a,b\n1,2\n3," + "x" * 20_000 + "\n")
    with pytest.raises(SourceError, match=r"long\.csv: line 3 has more than 10,000 bytes"):
        read_table_file(path, limits=_limits())


def test_a_cell_beyond_the_limit_is_refused_naming_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "cell.csv"
    path.write_text("a,b\n1,2\n3," + "y" * 5_000 + "\n")
    with pytest.raises(
        SourceError, match=r"cell\.csv: row 2, column 'b': a cell of 5,000 characters"
    ) as info:
        read_table_file(path, limits=_limits(max_cell_bytes=1_000))
    assert len(str(info.value)) < 400  # the cell is not echoed whole
    parquet = tmp_path / "cell.parquet"
    pd.DataFrame({"a": ["1", "z" * 5_000]}).to_parquet(parquet)
    with pytest.raises(SourceError, match="row 2, column 'a'"):
        read_table_file(parquet, limits=_limits(max_cell_bytes=1_000))


def test_a_file_beyond_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("a\n" + "1\n" * 1_000)
    with pytest.raises(
        SourceError, match=r"big\.csv: the file has 2,002 bytes, more than the limit of 1,000"
    ):
        read_table_file(path, limits=_limits(max_file_bytes=1_000))


def test_limits_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECAST_MAX_COLUMNS", "7")
    monkeypatch.setenv("FORECAST_MAX_CELL_BYTES", "99")
    limits = ReadLimits.from_settings()
    assert limits.max_columns == 7 and limits.max_cell_bytes == 99


def test_rejects_echo_at_most_200_characters_of_a_value() -> None:
    from forecast.data.validate import _as_text

    out = _as_text(pd.Series(["n" * 100_000, None, "ok"]))
    assert len(out[0]) < 260 and out[0].endswith("(100,000 chars)") and out[1] is None and out[2] == "ok"


# --- 4. a busy warehouse ---------------------------------------------------------------------------
@pytest.fixture
def held_warehouse(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A real second process holding DuckDB's write lock on a warehouse file."""
    path = tmp_path / "wh.duckdb"
    with hold_warehouse_lock(path) as proc:
        yield path, proc


def test_a_held_warehouse_is_waited_for_then_refused_by_name(
    held_warehouse: tuple[Path, subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from forecast.data.warehouse import Warehouse, WarehouseBusyError, connect_duckdb

    path, proc = held_warehouse
    start = time.monotonic()
    with pytest.raises(WarehouseBusyError) as info:
        connect_duckdb(str(path), lock_wait=0.6)
    waited = time.monotonic() - start
    assert 0.6 <= waited < 5
    assert (
        str(info.value) == f"the warehouse wh.duckdb is in use by another process (PID {proc.pid}), try again"
    )
    assert info.value.pid == proc.pid and isinstance(info.value, ValueError)
    monkeypatch.setenv("FORECAST_WAREHOUSE_LOCK_WAIT", "0.2")  # readers wait too (the setting)
    with pytest.raises(WarehouseBusyError), Warehouse(path).connect(read_only=True):
        pass


def test_a_lock_released_within_the_wait_is_taken(
    held_warehouse: tuple[Path, subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from forecast.data.warehouse import Warehouse

    path, proc = held_warehouse
    monkeypatch.setenv("FORECAST_WAREHOUSE_LOCK_WAIT", "20")
    assert proc.stdin is not None
    threading.Timer(0.5, lambda: (proc.stdin.write("go\n"), proc.stdin.flush())).start()  # type: ignore[union-attr]
    with Warehouse(path).connect() as con:
        assert con.execute("SELECT 42").fetchone() == (42,)


def test_ingest_into_a_held_warehouse_exits_2_with_the_rule(
    held_warehouse: tuple[Path, subprocess.Popen[str]], tmp_path: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from forecast.cli import app
    from tests.conftest import tiny_tables, write_tables

    path, proc = held_warehouse
    crm = write_tables(tmp_path / "crm", tiny_tables())
    result = CliRunner().invoke(
        app,
        ["--warehouse", str(path), "ingest", str(crm), "--json"],
        env={"FORECAST_WAREHOUSE_LOCK_WAIT": "0.3"},
    )
    assert result.exit_code == 2, result.stdout
    error = json.loads(result.stdout)["error"]
    assert error == f"the warehouse wh.duckdb is in use by another process (PID {proc.pid}), try again"


def test_a_neutralised_feature_name_reads_back_raw() -> None:
    from forecast.monitoring.job import _raw_cell

    text = csv_text(pd.DataFrame({"feature": ["=1+Visits", "'quoted", "age_days"], "importance": [3, 2, 1]}))
    back = pd.read_csv(io.StringIO(text))["feature"].tolist()
    assert back == ["'=1+Visits", "'quoted", "age_days"]
    assert [_raw_cell(f) for f in back] == ["=1+Visits", "'quoted", "age_days"]
