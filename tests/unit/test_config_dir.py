from pathlib import Path

import pytest

from forecast.config import PACKAGED_CONFIG_DIR, config_file, default_config_dir, load_settings
from forecast.flags.job import load_flags_config
from tests.conftest import REPO


def test_the_default_config_dir_is_the_repository_training_folder() -> None:
    assert default_config_dir() == REPO / "training"
    assert load_settings().config_dir == REPO / "training"


def test_the_packaged_configs_are_the_training_folder_s() -> None:
    shipped = {p.name: p.read_bytes() for p in PACKAGED_CONFIG_DIR.glob("*.yaml")}
    repo = {p.name: p.read_bytes() for p in (REPO / "training").glob("*.yaml")}
    assert shipped == repo, "copy training/*.yaml to src/forecast/defaults/"


def test_load_flags_config_finds_its_yaml_via_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (REPO / "training" / "flags.yaml").read_text(encoding="utf-8")
    assert "horizon_days: 30" in text
    (tmp_path / "flags.yaml").write_text(text.replace("horizon_days: 30", "horizon_days: 45", 1), "utf-8")
    monkeypatch.setenv("FORECAST_CONFIG_DIR", str(tmp_path))
    assert config_file("flags.yaml") == tmp_path / "flags.yaml"
    assert load_flags_config().horizon_days == 45
    assert load_flags_config(settings=load_settings(config_dir=REPO / "training")).horizon_days == 30
