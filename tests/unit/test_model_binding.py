"""Models bound to their warehouse: the identity, the references and the check (no MLflow here)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from forecast.binding import (
    CurrentWarehouse,
    ModelBindingError,
    ModelRef,
    check_binding,
    model_refs,
    parse_ref,
)
from forecast.data.warehouse import Warehouse, warehouse_id
from forecast.errors import InputError
from forecast.models.metadata import ModelMetadata


def test_a_warehouse_gets_one_identity_that_imports_keep(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "a.duckdb")
    with wh.connect():
        pass
    first = wh.identity()
    with wh.connect():  # a later write (an import) keeps it
        pass
    assert warehouse_id(tmp_path / "a.duckdb") == first
    with Warehouse(tmp_path / "b.duckdb").connect():
        pass
    assert warehouse_id(tmp_path / "b.duckdb") != first  # another file, another warehouse


def test_an_old_warehouse_gets_an_identity_on_first_read(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE leads (lead_id VARCHAR)")  # made before identities existed
    con.close()
    first = warehouse_id(path)
    assert len(first) == 36 and warehouse_id(path) == first


def test_no_warehouse_has_no_identity(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no warehouse here yet"):
        warehouse_id(tmp_path / "absent.duckdb")


@pytest.mark.parametrize(
    ("text", "alias", "version"),
    [
        ("deal_win", "champion", None),
        ("deal_win@challenger", "challenger", None),
        ("deal_win:3", "champion", "3"),
    ],
)
def test_a_reference_names_an_alias_or_a_version(text: str, alias: str, version: str | None) -> None:
    ref = parse_ref(text, "deal_win", "--model")
    assert (ref.name, ref.alias, ref.version, ref.explicit) == ("deal_win", alias, version, True)
    assert str(ref) == text.replace("@champion", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [("a/b", "not a valid name"), ("x:v2", "must be a number"), ("x@a b", "alias after '@'")],
)
def test_a_bad_reference_names_the_option(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_ref(text, "deal_win", "--close-model")


def test_models_map_roles_and_refuse_conflicts() -> None:
    defaults = {"deal_win": ("deal_win", "--model"), "time_to_close": ("time_to_close", "--close-model")}
    refs = model_refs(defaults, {"deal_win": None}, "time_to_close=ttc:2")
    assert not refs["deal_win"].explicit and refs["deal_win"].name == "deal_win"
    assert refs["time_to_close"].explicit and str(refs["time_to_close"]) == "ttc:2"
    assert refs["time_to_close"].option == "--models"
    with pytest.raises(InputError, match="unknown role 'churn'"):
        model_refs(defaults, None, "churn=x")
    with pytest.raises(InputError, match="both --model and --models"):
        model_refs(defaults, {"deal_win": "a"}, "deal_win=b")
    with pytest.raises(InputError, match="role=MODEL"):
        model_refs(defaults, None, "deal_win")


def test_the_check_refuses_a_default_and_warns_for_a_name(tmp_path: Path) -> None:
    here = CurrentWarehouse(tmp_path / "b.duckdb", "b" * 36)
    mine = ModelMetadata(warehouse_id="b" * 36, source="warehouse")
    theirs = ModelMetadata(warehouse_id="a" * 36, warehouse="/data/a.duckdb", source="warehouse")
    flat = ModelMetadata(source="flat_export")
    default = ModelRef("deal_win", "deal_win")
    named = ModelRef("deal_win", "deal_win", option="--model", explicit=True)
    assert check_binding(mine, "deal_win", "1", default, here) is None
    assert check_binding(theirs, "deal_win", "1", default, None) is None  # no warehouse read
    with pytest.raises(ModelBindingError) as refused:
        check_binding(theirs, "deal_win", "1", default, here)
    message = str(refused.value)
    for part in ("deal_win v1", "/data/a.duckdb", "b.duckdb", "train deal-win --promote", "--model deal_win"):
        assert part in message, message
    with pytest.raises(ModelBindingError, match="a flat export"):
        check_binding(flat, "deal_win", "2", default, here)
    with pytest.raises(ModelBindingError, match="unknown origin"):
        check_binding(ModelMetadata(), "deal_win", "3", default, here)
    warning = check_binding(theirs, "deal_win", "1", named, here)
    assert warning is not None and "named with --model" in warning and "used as asked" in warning
