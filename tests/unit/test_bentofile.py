from __future__ import annotations

import importlib

import bentoml
from bentoml._internal.bento.build_config import BentoBuildConfig

from tests.conftest import REPO


def test_bentofile_is_valid_and_names_an_importable_service() -> None:
    with (REPO / "bentofile.yaml").open(encoding="utf-8") as fh:
        config = BentoBuildConfig.from_yaml(fh)
    module_name, _, attr = config.service.partition(":")
    service = getattr(importlib.import_module(module_name), attr)
    assert isinstance(service, bentoml.Service)
    assert config.name == "forecast"
