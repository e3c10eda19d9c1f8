from forecast.models.config import LightGBMSettings
from forecast.models.pipeline import CalibratedLGBMClassifier
from forecast.models.survival import DiscreteTimeHazard

TREE_PARAMS = (
    "n_estimators",
    "learning_rate",
    "num_leaves",
    "min_child_samples",
    "subsample",
    "colsample_bytree",
    "reg_lambda",
    "early_stopping_rounds",
)


def test_every_tree_model_defaults_to_the_config_s_lightgbm_settings() -> None:
    settings = LightGBMSettings()
    for estimator in (CalibratedLGBMClassifier(), DiscreteTimeHazard()):
        params = estimator.get_params()
        assert {k: params[k] for k in TREE_PARAMS} == {k: getattr(settings, k) for k in TREE_PARAMS}
