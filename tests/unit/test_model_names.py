from pathlib import Path

from forecast.models.names import MODEL_NAMES, cli_name
from forecast.serving.store import REQUIRED_MODELS, SERVED_MODELS

TRAINING = Path(__file__).resolve().parents[2] / "training"


def test_every_model_name_has_its_training_config() -> None:
    for name in MODEL_NAMES:
        assert (TRAINING / f"{name}.yaml").is_file(), name


def test_the_service_serves_known_models_and_the_cli_spells_them_with_hyphens() -> None:
    assert set(REQUIRED_MODELS) <= set(SERVED_MODELS) <= set(MODEL_NAMES)
    assert cli_name("churn_risk_leads") == "churn-risk-leads"
