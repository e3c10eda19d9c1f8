from forecast.models.config import DEFAULT_BANDS, TrainingConfig
from forecast.models.metadata import HORIZON_FALLBACK_DAYS, ModelMetadata
from forecast.registry import LoadedModel


def test_an_old_or_empty_metadata_gets_one_default_each() -> None:
    meta = ModelMetadata.from_dict(None)
    assert meta.horizon_days == HORIZON_FALLBACK_DAYS == 90
    assert meta.bands == DEFAULT_BANDS == TrainingConfig().bands
    assert (meta.score_name, meta.features, meta.survival_edges, meta.is_warehouse) == ("p", [], [], False)
    nulls = ModelMetadata.from_dict({"horizon_days": None, "bands": {}, "features": None, "score_name": None})
    assert nulls.horizon_days == 90 and nulls.bands == DEFAULT_BANDS and nulls.features == []
    assert nulls.score_name == "p"


def test_metadata_round_trips_and_keeps_unknown_keys() -> None:
    written = {
        "model_name": "deal_win",
        "entity": "opportunity",
        "source": "warehouse",
        "features": ["age_days"],
        "horizon_days": 182,
        "survival": {"edges": [7, 14]},
        "added_later": {"x": 1},
    }
    meta = ModelMetadata.from_dict(written)
    assert meta.to_dict() == written
    assert meta.is_warehouse and meta.horizon_days == 182 and meta.survival_edges == [7.0, 14.0]


def test_a_loaded_model_parses_its_metadata_once() -> None:
    model = LoadedModel("m", "1", None, None, {"score_name": "p_win"}, "r")  # type: ignore[arg-type]
    assert model.meta.score_name == "p_win" and model.metadata == {"score_name": "p_win"}
