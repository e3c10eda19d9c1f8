"""Typed settings. Values come from ``FORECAST_*`` environment variables and CLI overrides.

Nothing happens at import time: call :func:`load_settings` where settings are needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGED_CONFIG_DIR = Path(__file__).resolve().parent / "defaults"
"""Copies of the repository's ``training/*.yaml`` shipped inside the package (a test keeps them equal)."""


def default_config_dir() -> Path:
    """The repository's ``training/`` folder when forecast runs from a checkout, else the packaged copies.

    A wheel or a Bento has no ``training/`` next to its source: it reads the configs shipped in
    ``forecast/defaults/`` instead of silently falling back to built-in defaults.
    """
    repo = Path(__file__).resolve().parents[2] / "training"
    return repo if repo.is_dir() else PACKAGED_CONFIG_DIR


class Settings(BaseSettings):
    """Global settings of forecast.

    Attributes:
        warehouse: Path of the DuckDB warehouse file.
        data_dir: Where the main job writes its simulated CRM and other local outputs.
        mlflow_tracking_uri: MLflow tracking store (a database-backed store works offline).
        mlflow_artifacts: Folder for MLflow artifacts of the experiments forecast creates.
        models_dir: Where promoted models' cards are written (``<models_dir>/<name>/``).
        outputs_dir: Default folder for batch outputs (scores).
        pipeline_file: Optional YAML pipeline definition for canonical imports.
        config_dir: Folder of the YAML configs (``<model>.yaml``, ``flags.yaml``,
            ``monitoring.yaml``); default: :func:`default_config_dir`.
        log_level: Logging level for messages on stderr.
        api_token: When set, every HTTP endpoint but the health probes needs
            ``Authorization: Bearer <token>`` (``FORECAST_API_TOKEN``).
        serve_warehouse: Whether the HTTP service reads the warehouse (revenue of the whole
            pipeline, flags learned from history); ``forecast serve --warehouse`` sets it.
        serve_models: The models the HTTP service serves by role, as ``forecast serve --models``
            (``lead_scoring=my_leads,deal_win=deal_win@challenger``; empty: every champion).
        reload_seconds: How often the service checks the registry's champion aliases (0: never;
            ``POST /admin/reload`` checks at once).
        max_body_bytes: Largest request body the service reads (larger: 413).
        serve_workers: Worker processes of the HTTP service (one per core it may use).
        reload_signal: A file the service's workers watch: ``POST /admin/reload`` on any worker
            writes it and every worker checks its champions (``forecast serve`` sets it).
        warehouse_lock_wait: Seconds to wait for the warehouse while another process holds its
            lock (an import writing) before giving up with "in use by another process".
        max_reject_share: Largest share of a table's rows one validation rule may reject before
            ``ingest`` and ``validate`` refuse the import (exit 2, nothing written); losses an
            adapter declares as known are reported instead. ``1`` never refuses.
        max_file_bytes: Largest input file (CSV or Parquet) read; larger is refused (exit 2).
        max_columns: Most columns an input file may have.
        max_line_bytes: Longest line of an input CSV, in bytes (checked before parsing).
        max_cell_bytes: Longest cell or column name of an input file, in characters.
    """

    model_config = SettingsConfigDict(env_prefix="FORECAST_", extra="ignore")

    warehouse: Path = Field(default=Path("data/warehouse.duckdb"))
    data_dir: Path = Field(default=Path("data"))
    mlflow_tracking_uri: str = Field(default="sqlite:///mlflow.db")
    mlflow_artifacts: Path = Field(default=Path("mlartifacts"))
    models_dir: Path = Field(default=Path("models"))
    outputs_dir: Path = Field(default=Path("data/outputs"))
    pipeline_file: Path | None = None
    config_dir: Path = Field(default_factory=lambda: default_config_dir())
    log_level: str = Field(default="INFO")
    api_token: SecretStr | None = None
    serve_warehouse: bool = False
    serve_models: str = ""
    reload_seconds: float = Field(default=30.0, ge=0)
    max_body_bytes: int = Field(default=10_000_000, ge=1_000)
    serve_workers: int = Field(default=2, ge=1, le=64)
    reload_signal: Path | None = None
    warehouse_lock_wait: float = Field(default=30.0, ge=0)
    max_reject_share: float = Field(default=0.05, ge=0, le=1)
    max_file_bytes: int = Field(default=2_000_000_000, ge=1)
    max_columns: int = Field(default=2_000, ge=1)
    max_line_bytes: int = Field(default=10_000_000, ge=1)
    max_cell_bytes: int = Field(default=1_000_000, ge=1)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, then apply non-``None`` CLI overrides.

    Args:
        **overrides: Field values given on the command line; ``None`` means "not given".

    Returns:
        The settings.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**given)


def config_file(name: str, settings: Settings | None = None) -> Path:
    """``<config_dir>/<name>``: a YAML config (``flags.yaml``, ``deal_win.yaml``, ...).

    Args:
        name: File name inside the config folder.
        settings: Settings to read ``config_dir`` from (default: the environment's).

    Returns:
        The path (it may not exist: callers decide whether that is an error).
    """
    return (settings or load_settings()).config_dir / name
