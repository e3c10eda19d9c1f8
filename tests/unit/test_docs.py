from __future__ import annotations

from forecast.data.docs import data_model_markdown
from tests.conftest import REPO


def test_data_model_doc_is_in_sync_with_the_schema() -> None:
    on_disk = (REPO / "docs" / "data-model.md").read_text(encoding="utf-8")
    assert on_disk == data_model_markdown(), (
        "regenerate: uv run python -m forecast.data.docs > docs/data-model.md"
    )


def test_feature_catalogue_doc_is_in_sync() -> None:
    from forecast.features.docs import catalogue_markdown

    on_disk = (REPO / "docs" / "feature-catalogue.md").read_text(encoding="utf-8")
    assert on_disk == catalogue_markdown(), (
        "regenerate: uv run python -m forecast.features.docs > docs/feature-catalogue.md"
    )
