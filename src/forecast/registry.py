"""MLflow at the edge: experiments, logging a trained model, the registry, aliases and promotion.

Every trained model is logged as a whole sklearn pipeline (raw feature columns in, probabilities
out: ``pyfunc_predict_fn="predict_proba"``), registered under its name, and given the
``challenger`` alias. :func:`promote` applies the written gate and moves ``champion``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Protocol

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline

from forecast.config import Settings, anchored_tracking_uri, relative_sqlite_path
from forecast.errors import InputError
from forecast.evaluate import baselines_not_beaten, classification_metrics
from forecast.features.splits import summary_test_cut
from forecast.io import csv_text, write_text
from forecast.models.metadata import ModelMetadata
from forecast.name_rules import check_name

CHAMPION = "champion"
CHALLENGER = "challenger"
TEST_SLICE = "evaluation/test_slice.parquet"
REFERENCE = "evaluation/reference.parquet"
EVAL_MODEL = "evaluation/eval_model.pkl"
"""The evaluation model (fitted before the test cut only): promotion compares these, not the final fits."""
"""Every snapshot row from the test cut on (all entities, not only the test's): monitoring's reference."""
CARD = "model_card.md"


class TrainedModel(Protocol):
    """What :func:`log_trained_model` reads of a trained model.

    :class:`forecast.training.binary.TrainResult` is one; the registry never imports training (the
    training job imports the registry), so this names the attributes it logs.
    """

    @property
    def pipeline(self) -> Pipeline:
        """The final model (fitted on all labelled rows), logged and served."""

    @property
    def eval_pipeline(self) -> Pipeline | None:
        """The evaluation model (fitted before the test cut), logged beside it."""

    @property
    def model_kind(self) -> str:
        """The model's family and variant (``lightgbm``, ``logistic_small_data``, ...)."""

    @property
    def metrics(self) -> dict[str, float]:
        """Metrics on the test slice."""

    @property
    def baselines(self) -> dict[str, dict[str, float]]:
        """Each baseline's metrics on the same slice."""

    @property
    def splits(self) -> dict[str, Any]:
        """How the evaluation parts were made."""

    @property
    def data(self) -> dict[str, Any]:
        """The training data's identity (hash, rows, dates, label rate)."""

    @property
    def fit(self) -> dict[str, Any]:
        """Which rows evaluated the model and which fitted the final one."""

    @property
    def deciles(self) -> pd.DataFrame:
        """The test slice's decile table."""

    @property
    def reliability(self) -> dict[str, pd.DataFrame]:
        """Reliability tables of the model and the baselines."""

    @property
    def segments(self) -> dict[str, pd.DataFrame]:
        """Calibration within each segment column."""

    @property
    def importance(self) -> pd.DataFrame:
        """Feature importance."""

    @property
    def test_frame(self) -> pd.DataFrame:
        """The test slice's rows."""

    @property
    def input_example(self) -> pd.DataFrame | None:
        """Rows to take the logged example from when the test slice is empty."""

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable metrics and facts."""
        ...


def tracking_uri(settings: Settings) -> str:
    """The store MLflow is pointed at: the settings' URI, a relative SQLite path anchored at the root.

    :class:`~forecast.config.Settings` anchors it already; this also covers settings copied
    without validation, and refuses what cannot be anchored.

    Raises:
        InputError: A relative SQLite URI and no project root (an installed package).
    """
    uri = settings.mlflow_tracking_uri
    if relative_sqlite_path(uri) is None:
        return uri
    if settings.project_root is None:
        raise InputError(
            f"is the relative SQLite store {uri!r}, and forecast runs from an installed package with "
            "no project root to resolve it against (never the current folder): set "
            "FORECAST_PROJECT_ROOT=DIR, or give an absolute URI (sqlite:////abs/path/mlflow.db) or a "
            "tracking server (http://host:5000)",
            parameter="FORECAST_MLFLOW_TRACKING_URI",
        )
    return anchored_tracking_uri(uri, settings.project_root)


def is_tracking_server(uri: str) -> bool:
    """Whether ``uri`` names an MLflow tracking server (``http(s)://``), which owns its artifact store."""
    return uri.startswith(("http://", "https://"))


def client(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store (:func:`tracking_uri`) and return a client."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep stderr readable
    # on a tracking server MLflow prints each run's link on stdout, where --json documents go
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    uri = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def ensure_experiment(name: str, settings: Settings) -> str:
    """Return the experiment id, creating the experiment if it does not exist.

    In a local store (SQLite, or a database named directly) its artifacts go under
    ``settings.mlflow_artifacts``; on a tracking server (``http(s)://``) the server's artifact store
    decides (``mlflow server --artifacts-destination``), so that every machine of a team reads them
    through the server rather than from the folder of the machine that trained.
    """
    c = client(settings)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    check_name(name, "experiment")
    if is_tracking_server(tracking_uri(settings)):
        return str(c.create_experiment(name))
    location = (settings.mlflow_artifacts / name).resolve()
    location.mkdir(parents=True, exist_ok=True)
    return str(c.create_experiment(name, artifact_location=location.as_uri()))


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list | tuple):
        out[prefix] = ",".join(map(str, value))[:5000]
    else:
        out[prefix] = value


def _requirements() -> list[str]:
    names = ["scikit-learn", "lightgbm", "pandas", "numpy", "scipy", "cloudpickle"]
    return [f"{n}=={package_version(n)}" for n in names]


@dataclass
class LoggedModel:
    """Where a trained model went."""

    run_id: str
    version: str
    model_uri: str
    experiment: str


def log_trained_model(
    result: TrainedModel,
    *,
    settings: Settings,
    model_name: str,
    experiment: str,
    params: dict[str, Any],
    card: str,
    metadata: dict[str, Any],
    input_columns: list[str],
    tags: dict[str, str] | None = None,
    reference: pd.DataFrame | None = None,
) -> LoggedModel:
    """Log params, metrics (model and baselines), evaluation artifacts, the card and the pipeline.

    The new version gets the ``challenger`` alias; promotion is separate (:func:`promote`).
    ``reference`` (optional) is logged as :data:`REFERENCE` for monitoring.
    """
    c = client(settings)
    exp_id = ensure_experiment(experiment, settings)
    flat: dict[str, Any] = {}
    _flatten("", params, flat)
    examples = (
        result.test_frame if len(result.test_frame) or result.input_example is None else result.input_example
    )
    x_example = examples[input_columns].head(5)
    # Under `mlflow run` (the MLproject) the run already exists: log into it.
    project_run = os.environ.get("MLFLOW_RUN_ID")
    run_kwargs: dict[str, Any] = (
        {"run_id": project_run}
        if project_run
        else {"experiment_id": exp_id, "run_name": f"{model_name}-{result.model_kind}"}
    )
    with mlflow.start_run(**run_kwargs) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
        mlflow.log_metrics({k: float(v) for k, v in _test_metrics(result).items()})
        mlflow.set_tags(_run_tags(result, model_name, tags))
        _log_evaluation(result, card, f"{model_name}: reliability", reference)
        version = _log_pipeline(result, model_name, x_example, metadata)
    _tag_version(c, model_name, version, result, tags)
    return LoggedModel(run.info.run_id, version, f"models:/{model_name}/{version}", experiment)


def _test_metrics(result: TrainedModel) -> dict[str, float]:
    """The finite test metrics of the model (``test_*``) and of each baseline (``baseline_<name>_*``)."""
    metrics = {f"test_{k}": v for k, v in result.metrics.items() if np.isfinite(v)}
    for name, bm in result.baselines.items():
        metrics.update({f"baseline_{name}_{k}": v for k, v in bm.items() if np.isfinite(v)})
    return metrics


def _run_tags(result: TrainedModel, model_name: str, tags: dict[str, str] | None) -> dict[str, str]:
    """The run's tags: the model, its kind, the training data's identity, and the caller's ``tags``."""
    return {
        "model_name": model_name,
        "model_kind": result.model_kind,
        "data_sha256": result.data["sha256"],
        "data_rows": str(result.data["rows"]),
        "data_from": str(result.data["from"]),
        "data_to": str(result.data["to"]),
        "data_label_rate": str(result.data["label_rate"]),
        **(tags or {}),
    }


def _log_evaluation(result: TrainedModel, card: str, plot_title: str, reference: pd.DataFrame | None) -> None:
    """Log the evaluation into the active run: splits, data identity, summary, tables, card, files.

    Args:
        result: The trained model and its evaluation.
        card: The model card (markdown).
        plot_title: The reliability plot's title.
        reference: Rows logged as :data:`REFERENCE` for monitoring, if any.
    """
    mlflow.log_dict(result.splits, "evaluation/splits.json")
    mlflow.log_dict(result.data, "evaluation/data_identity.json")
    mlflow.log_dict(result.summary(), "evaluation/summary.json")
    mlflow.log_text(csv_text(result.deciles), "evaluation/deciles.csv")
    mlflow.log_text(csv_text(result.importance), "evaluation/feature_importance.csv")
    for seg, table in result.segments.items():
        mlflow.log_text(csv_text(table), f"evaluation/calibration_by_{seg}.csv")
    mlflow.log_text(card, CARD)
    _log_evaluation_files(result, plot_title, reference)
    mlflow.log_dict(result.fit, "evaluation/fit.json")
    final = result.fit.get("final", {})
    if final:
        mlflow.log_metrics(
            {
                "final_fit_rows": float(final.get("rows", 0)),
                "final_fit_share": float(final.get("share_of_labelled", 0)),
            }
        )


def _log_evaluation_files(result: TrainedModel, plot_title: str, reference: pd.DataFrame | None) -> None:
    """Log the evaluation's files: reliability plot, test slice, reference and evaluation model."""
    with tempfile.TemporaryDirectory() as tmp:
        from forecast.evaluate import reliability_plot

        png = reliability_plot(result.reliability, Path(tmp) / "reliability.png", plot_title)
        mlflow.log_artifact(str(png), "evaluation")
        sl = Path(tmp) / "test_slice.parquet"
        result.test_frame.to_parquet(sl, index=False)
        mlflow.log_artifact(str(sl), "evaluation")
        if reference is not None:
            ref = Path(tmp) / Path(REFERENCE).name
            reference.to_parquet(ref, index=False)
            mlflow.log_artifact(str(ref), "evaluation")
        if result.eval_pipeline is not None and result.eval_pipeline is not result.pipeline:
            held = Path(tmp) / Path(EVAL_MODEL).name
            held.write_bytes(cloudpickle.dumps(result.eval_pipeline))
            mlflow.log_artifact(str(held), "evaluation")


def _log_pipeline(
    result: TrainedModel, model_name: str, x_example: pd.DataFrame, metadata: dict[str, Any]
) -> str:
    """Log the served pipeline into the active run and register it; its new version.

    Args:
        result: The trained model.
        model_name: The registered model's name.
        x_example: A few input rows (the signature and the input example).
        metadata: The model's metadata (:class:`~forecast.models.metadata.ModelMetadata`'s fields).
    """
    proba = result.pipeline.predict_proba(x_example)
    info = mlflow.sklearn.log_model(
        result.pipeline,
        name="model",
        registered_model_name=model_name,
        signature=infer_signature(x_example, proba),
        input_example=x_example,
        pyfunc_predict_fn="predict_proba",
        pip_requirements=_requirements(),
        # Our pipeline classes and LightGBM's booster are not skops-trusted types; the registry
        # is the project's own store, so cloudpickle (MLflow's long-standing format) is used.
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        metadata=metadata,
    )
    return str(info.registered_model_version)


def _tag_version(
    c: MlflowClient, model_name: str, version: str, result: TrainedModel, tags: dict[str, str] | None
) -> None:
    """Give the new version the ``challenger`` alias and its tags (headline metrics, kind, binding)."""
    c.set_registered_model_alias(model_name, CHALLENGER, version)
    for key in ("roc_auc", "brier"):
        if key in result.metrics:
            c.set_model_version_tag(model_name, version, key, f"{result.metrics[key]:.6f}")
    c.set_model_version_tag(model_name, version, "model_kind", result.model_kind)
    for key, value in (tags or {}).items():
        if key.startswith("forecast."):  # what the version is bound to (forecast.warehouse_id)
            c.set_model_version_tag(model_name, version, key, value)


def version_by_alias(name: str, alias: str, settings: Settings) -> Any | None:
    """The model version behind ``alias``, or ``None``."""
    try:
        return client(settings).get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


@dataclass
class LoadedModel:
    """A registered model loaded for scoring.

    ``metadata`` is the dict as logged; ``meta`` is its typed view (:class:`ModelMetadata`),
    parsed once here, which every reader uses.
    """

    name: str
    version: str
    alias: str | None
    pipeline: Pipeline
    metadata: dict[str, Any]
    run_id: str
    meta: ModelMetadata = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.meta = ModelMetadata.from_dict(self.metadata)


def load_model(
    name: str, settings: Settings, alias: str = CHAMPION, version: str | None = None
) -> LoadedModel:
    """Load ``models:/<name>@<alias>`` (or an exact version) as the sklearn pipeline.

    The pipeline returns probabilities (``predict_proba``), not labels. Resolving the alias once
    and loading that exact version means a promotion in between cannot mix two versions.

    Raises:
        LookupError: No such model or alias, with what to run instead.
    """
    mv = (
        version_by_alias(name, alias, settings)
        if version is None
        else client(settings).get_model_version(name, version)
    )
    if mv is None:
        raise LookupError(
            f"no model {name!r} with alias {alias!r} in {tracking_uri(settings)}; "
            f"train one (forecast train …) and promote it (forecast promote …)"
        )
    uri = f"models:/{name}/{mv.version}"
    pipeline = mlflow.sklearn.load_model(uri)
    meta = mlflow.models.Model.load(uri).metadata or {}
    return LoadedModel(name, str(mv.version), alias, pipeline, dict(meta), str(mv.run_id))


@contextmanager
def downloaded_artifact(run_id: str, path: str, settings: Settings) -> Iterator[Path]:
    """A run's artifact ``path`` downloaded to a temporary folder, removed when the block ends."""
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=tmp, tracking_uri=tracking_uri(settings)
            )
        )


@dataclass
class PromotionDecision:
    """The outcome of the promotion gate."""

    model_name: str
    challenger_version: str
    champion_version: str | None
    promoted: bool
    reason: str
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    rows: int

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)


def promote(name: str, settings: Settings, *, max_auc_drop: float = 0.005) -> PromotionDecision:
    """Apply the gate to the ``challenger`` and move ``champion`` if it passes.

    The gate: the challenger must lose to no baseline of its experiment (base rate, naive Bayes,
    logistic regression, …) on ROC-AUC or Brier on its held-out slice (:func:`_baselines_not_beaten`:
    ties within noise are not losses); then, comparing the two versions' evaluation models on the rows of
    that latest slice that neither model trained or calibrated on (those after the champion's own
    test cut), it replaces the champion only if its ROC-AUC is not lower by more than
    ``max_auc_drop`` and its Brier score is lower (fewer than 200 such rows: the champion is kept).
    Without a champion, beating the baselines is enough. The decision and both sets of metrics are logged
    as a ``promotion`` run in the model's experiment, and the champion's card is written to
    ``<models_dir>/<name>/``.

    Raises:
        LookupError: No challenger.
    """
    c = client(settings)
    chall = version_by_alias(name, CHALLENGER, settings)
    if chall is None:
        raise LookupError(f"model {name!r} has no {CHALLENGER!r} version; train one first")
    champ = version_by_alias(name, CHAMPION, settings)
    with downloaded_artifact(chall.run_id, TEST_SLICE, settings) as path:
        test = pd.read_parquet(path)
    chall_model = load_model(name, settings, CHALLENGER, version=str(chall.version))
    label = chall_model.meta.label
    if label not in test.columns:
        raise LookupError(
            f"model {name!r} v{chall.version} has no usable test slice (label {label!r} missing)"
        )
    if not len(test):
        promoted, reason = _unjudged_verdict(chall, champ, c)
        return _record(name, chall, champ, chall_model, promoted, reason, {}, None, 0, settings)
    y = test[label].astype(int).to_numpy()
    chall_eval = evaluation_model(chall.run_id, chall_model.pipeline, settings)
    chall_m = classification_metrics(y, chall_eval.predict_proba(test)[:, 1])
    beaten = _baselines_not_beaten(c.get_run(chall.run_id).data.metrics, max_auc_drop)
    same = champ is not None and str(champ.version) == str(chall.version)
    champ_m: dict[str, float] | None = chall_m if same else None
    champ_error: str | None = None
    note = ""
    if champ is not None and not same:
        chall_m, champ_m, champ_error, note = _compare_with_champion(
            name, champ, test, y, chall_eval, chall_m, settings
        )
    promoted, reason = gate_verdict(
        chall_m,
        champ_m,
        beaten=beaten,
        has_champion=champ is not None,
        same_version=same,
        champ_error=champ_error,
        note=note,
        max_auc_drop=max_auc_drop,
    )
    return _record(name, chall, champ, chall_model, promoted, reason, chall_m, champ_m, len(test), settings)


def _compare_with_champion(
    name: str,
    champ: Any,
    test: pd.DataFrame,
    y: np.ndarray,
    chall_eval: Any,
    chall_m: dict[str, float],
    settings: Settings,
) -> tuple[dict[str, float], dict[str, float] | None, str | None, str]:
    """Both evaluation models' metrics on the test rows neither trained or calibrated on.

    Returns:
        The challenger's metrics (on those rows when the champion could be compared, else as
        given), the champion's (``None`` when not compared), why not (``"only N test rows ..."``
        when too few rows, the champion's scoring error otherwise) and a note on the rows.
    """
    common, note = _rows_unseen_by(champ.run_id, test, settings)
    champ_model = load_model(name, settings, CHAMPION, version=str(champ.version))
    if len(common) < 200 or len(np.unique(y[common])) < 2:
        return (
            chall_m,
            None,
            f"only {len(common)} test rows lie after the champion's own test cut{note}",
            note,
        )
    try:
        champ_eval = evaluation_model(champ.run_id, champ_model.pipeline, settings)
        champ_m = classification_metrics(y[common], champ_eval.predict_proba(test.iloc[common])[:, 1])
        chall_common = classification_metrics(y[common], chall_eval.predict_proba(test.iloc[common])[:, 1])
    except (KeyError, ValueError) as exc:
        return chall_m, None, str(exc), note
    return chall_common, champ_m, None, note


def gate_verdict(
    chall_m: dict[str, float],
    champ_m: dict[str, float] | None,
    *,
    beaten: list[str],
    has_champion: bool,
    same_version: bool,
    champ_error: str | None,
    note: str,
    max_auc_drop: float,
) -> tuple[bool, str]:
    """The promotion gate's decision (pure): whether the challenger replaces the champion, and why.

    Args:
        chall_m: The challenger's test metrics (on the rows compared with the champion, if any).
        champ_m: The champion's metrics on the same rows, or ``None``.
        beaten: The baselines the challenger loses to (empty: it loses to none).
        has_champion: A champion exists.
        same_version: The challenger already is the champion.
        champ_error: Why the champion could not be compared (``"only ..."``: too few rows).
        note: What the compared rows are (appended to the reason).
        max_auc_drop: The largest ROC-AUC drop allowed against the champion.

    Returns:
        ``(promoted, reason)``.
    """
    if same_version:
        return False, "the challenger already is the champion"
    if beaten:
        return False, "the challenger does not beat its baselines on the test slice: " + "; ".join(beaten)
    if not has_champion:
        return True, "no champion yet; the challenger loses to no baseline"
    if champ_m is None and champ_error is not None and champ_error.startswith("only "):
        return False, f"no fair comparison: {champ_error}; the champion is kept"
    if champ_m is None:
        return True, f"the champion cannot score the challenger's test slice ({champ_error}); replaced"
    auc_ok = chall_m["roc_auc"] >= champ_m["roc_auc"] - max_auc_drop
    brier_ok = chall_m["brier"] < champ_m["brier"]
    reason = (
        f"ROC-AUC {chall_m['roc_auc']:.4f} vs {champ_m['roc_auc']:.4f} (allowed drop {max_auc_drop}): "
        f"{'ok' if auc_ok else 'too low'}; Brier {chall_m['brier']:.5f} vs {champ_m['brier']:.5f}: "
        f"{'lower' if brier_ok else 'not lower'} (on {int(chall_m['n'])} rows neither model trained on{note})"
    )
    return auc_ok and brier_ok, reason


def _record(
    name: str,
    chall: Any,
    champ: Any,
    chall_model: Any,
    promoted: bool,
    reason: str,
    chall_m: dict[str, float],
    champ_m: dict[str, float] | None,
    rows: int,
    settings: Settings,
) -> PromotionDecision:
    """Log the gate's decision as a ``promotion`` run and, if promoted, move ``champion``."""
    decision = PromotionDecision(
        name,
        str(chall.version),
        None if champ is None else str(champ.version),
        promoted,
        reason,
        chall_m,
        champ_m,
        rows,
    )
    exp_id = ensure_experiment(chall_model.meta.experiment or name, settings)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"promotion-{name}-v{chall.version}"):
        mlflow.set_tags(
            {"kind": "promotion", "model_name": name, "promoted": str(promoted), "reason": reason[:5000]}
        )
        mlflow.log_metrics({f"challenger_{k}": v for k, v in chall_m.items() if np.isfinite(v)})
        if champ_m is not None:
            mlflow.log_metrics({f"champion_{k}": v for k, v in champ_m.items() if np.isfinite(v)})
        mlflow.log_dict(decision.as_dict(), "promotion.json")
    if promoted:
        client(settings).set_registered_model_alias(name, CHAMPION, str(chall.version))
        write_champion_card(name, str(chall.version), chall.run_id, decision, settings)
    return decision


def _unjudged_verdict(chall: Any, champ: Any, c: MlflowClient) -> tuple[bool, str]:
    """The gate for a challenger whose test slice holds no known outcome yet (a short history).

    With no champion, the challenger becomes one if it loses to no baseline on what its run could
    measure (for time to close: the C-index on censored test rows, a loss being a gap beyond 0.005
    and two paired errors, ``c_index_gap_se``); a champion is never replaced on such evidence.
    """
    if champ is not None:
        return False, "no test row has a known outcome yet: no fair comparison; the champion is kept"
    metrics = c.get_run(chall.run_id).data.metrics
    own = metrics.get("test_c_index", 0.0)
    suffix = "_c_index"
    baselines = [
        k[len("baseline_") : -len(suffix)]
        for k in metrics
        if k.startswith("baseline_") and k.endswith(suffix)
    ]
    worse = sorted(
        b
        for b in baselines
        if own
        < metrics[f"baseline_{b}_c_index"] - max(0.005, 2 * metrics.get(f"baseline_{b}_c_index_gap_se", 0.0))
    )
    if worse:
        return False, f"no test row has a known outcome yet, and the C-index loses to {', '.join(worse)}"
    return True, (
        "no champion yet; no test row has a known outcome yet (a short history), and the challenger "
        "loses to no baseline on what could be measured"
    )


def evaluation_model(run_id: str, served: Any, settings: Settings) -> Any:
    """The run's evaluation model (fitted before its test cut), or the served one if none was logged.

    A served model is fitted on all labelled rows, test slice included, so only evaluation models
    can be compared on a test slice; runs logged before the final fit existed have no evaluation
    model and served the evaluation model itself.
    """
    try:
        with downloaded_artifact(run_id, EVAL_MODEL, settings) as path:
            return cloudpickle.loads(path.read_bytes())
    except (MlflowException, OSError):
        return served


def run_splits(run_id: str, settings: Settings) -> dict[str, Any] | None:
    """The split summary a run logged (``evaluation/splits.json``), or ``None`` if it has none."""
    try:
        with downloaded_artifact(run_id, "evaluation/splits.json", settings) as path:
            return dict(json.loads(path.read_text(encoding="utf-8")))
    except (MlflowException, OSError, ValueError):
        return None


def _rows_unseen_by(run_id: str, test: pd.DataFrame, settings: Settings) -> tuple[np.ndarray, str]:
    """Positions of the test rows a model of ``run_id`` never trained or calibrated on.

    With time splits, those are the rows at or after that model's own test cut. Without a time
    split nothing can be excluded, which the returned note says.
    """
    everything = np.arange(len(test))
    splits = run_splits(run_id, settings)
    if splits is None:
        return everything, "; the champion's splits are unknown"
    cut = summary_test_cut(splits)
    if cut is None or "as_of" not in test.columns:
        return everything, "; the champion was split without time, so it may have trained on some rows"
    return np.flatnonzero(pd.to_datetime(test["as_of"]).to_numpy() >= np.datetime64(cut)), ""


def _baselines_not_beaten(metrics: dict[str, float], max_auc_drop: float = 0.0) -> list[str]:
    """Baselines the model loses to on ROC-AUC or Brier, from its run's test metrics.

    The rule is :func:`forecast.evaluate.baselines_not_beaten` (training applies the same one to
    choose the served family), read from the run's ``test_*`` and ``baseline_<name>_*`` metrics.
    """
    model = {"roc_auc": metrics.get("test_roc_auc"), "brier": metrics.get("test_brier")}
    names = {
        k[len("baseline_") : -len("_roc_auc")]
        for k in metrics
        if k.startswith("baseline_") and k.endswith("_roc_auc")
    }
    baselines = {
        b: {f: metrics.get(f"baseline_{b}_{f}") for f in ("roc_auc", "brier", "brier_gap_se", "auc_gap_se")}
        for b in names
    }
    return baselines_not_beaten(model, baselines, max_auc_drop)


def write_champion_card(
    name: str, version: str, run_id: str, decision: PromotionDecision, settings: Settings
) -> Path:
    """Copy the champion's card (and its metrics) to ``<models_dir>/<name>/``."""
    with downloaded_artifact(run_id, CARD, settings) as path:
        card = path.read_text(encoding="utf-8")
    folder = settings.models_dir / check_name(name)
    write_text(
        folder / CARD, card.replace(f"# Model card: {name}\n", f"# Model card: {name} v{version}\n", 1)
    )
    write_text(
        folder / "champion.json",
        json.dumps({"version": version, "run_id": run_id, **decision.as_dict()}, indent=2, default=str)
        + "\n",
    )
    return folder / CARD


def model_info(name: str, settings: Settings) -> dict[str, Any]:
    """Versions behind the aliases, with their key metrics (for ``forecast models`` and the API)."""
    out: dict[str, Any] = {"name": name}
    for alias in (CHAMPION, CHALLENGER):
        mv = version_by_alias(name, alias, settings)
        out[alias] = (
            None if mv is None else {"version": str(mv.version), "run_id": mv.run_id, "tags": dict(mv.tags)}
        )
    return out
