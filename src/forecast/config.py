"""Typed settings. Values come from ``FORECAST_*`` environment variables and CLI overrides.

Nothing happens at import time: call :func:`load_settings` where settings are needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGED_CONFIG_DIR = Path(__file__).resolve().parent / "defaults"
"""Copies of the repository's ``training/*.yaml`` shipped inside the package (a test keeps them equal)."""


SQLITE_PREFIX = "sqlite:///"
"""How a SQLite tracking URI starts: a fourth slash makes its path absolute (``sqlite:////abs/x.db``)."""


def checkout_root() -> Path | None:
    """The repository forecast runs from (the folder holding ``training/`` and ``src/``), else ``None``.

    A wheel or a Bento has no ``training/`` next to its source: it has no checkout.
    """
    root = Path(__file__).resolve().parents[2]
    return root if (root / "training").is_dir() else None


def default_config_dir() -> Path:
    """The repository's ``training/`` folder when forecast runs from a checkout, else the packaged copies.

    A wheel or a Bento has no ``training/`` next to its source: it reads the configs shipped in
    ``forecast/defaults/`` instead of silently falling back to built-in defaults.
    """
    root = checkout_root()
    return root / "training" if root is not None else PACKAGED_CONFIG_DIR


def relative_sqlite_path(uri: str) -> str | None:
    """The path of a SQLite tracking URI when it is relative (``sqlite:///mlflow.db``), else ``None``.

    ``sqlite:////abs/x.db`` (absolute), in-memory SQLite and every other scheme give ``None``.
    """
    if not uri.startswith(SQLITE_PREFIX):
        return None
    path = uri.removeprefix(SQLITE_PREFIX)
    if path in ("", ":memory:") or path.startswith(("/", ":memory:?")):
        return None
    return path


def anchored_tracking_uri(uri: str, root: Path) -> str:
    """``uri`` with a relative SQLite path made absolute against ``root``; other URIs unchanged.

    MLflow reads ``sqlite:///mlflow.db`` relative to the current folder: a command run from another
    folder would open (and create) another, empty store. Anchored at the project root, every
    command and the service open the same file wherever they run.

    Args:
        uri: A tracking URI (``sqlite:///mlflow.db``, ``sqlite:////abs/mlflow.db``,
            ``http://host:5000``, ``postgresql://...``).
        root: The project root (:attr:`Settings.project_root`).

    Returns:
        The URI to give MLflow.
    """
    path = relative_sqlite_path(uri)
    return uri if path is None else SQLITE_PREFIX + (root.resolve() / path).as_posix()


class Settings(BaseSettings):
    """Global settings of forecast.

    Attributes:
        project_root: The folder a relative SQLite tracking URI (the default ``sqlite:///mlflow.db``)
            and a relative ``mlflow_artifacts`` are resolved against, never the current folder, so
            that every command and the service share one store wherever they run: the checkout
            forecast runs from (:func:`checkout_root`), or ``FORECAST_PROJECT_ROOT``. An installed
            package has none: a relative SQLite URI is then refused where MLflow is used
            (:func:`forecast.registry.client`).
        warehouse: Path of the DuckDB warehouse file.
        data_dir: Where the main job writes its simulated CRM and other local outputs.
        mlflow_tracking_uri: MLflow tracking store: a database-backed store works offline (a relative
            SQLite path is anchored at ``project_root``), ``http://host:port`` a shared tracking
            server (docs/deploy.md).
        mlflow_artifacts: Folder for MLflow artifacts of the experiments forecast creates in a local
            store (relative: under ``project_root``); a tracking server keeps its own artifact store.
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
        ingest_chunk_rows: Rows a streamed import reads and checks at a time.
        ingest_stream_bytes: A canonical or Salesforce import whose files hold more bytes streams
            in chunks through a DuckDB staging file (bounded memory); ``0`` streams every one.
        ingest_memory_limit: DuckDB's memory limit during a streamed import (e.g. ``1GB``).
    """

    model_config = SettingsConfigDict(env_prefix="FORECAST_", extra="ignore")

    project_root: Path | None = Field(default_factory=lambda: checkout_root())
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
    ingest_chunk_rows: int = Field(default=250_000, ge=1)
    ingest_stream_bytes: int = Field(default=64_000_000, ge=0)
    ingest_memory_limit: str = Field(
        default="1GB", pattern=r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"
    )

    @model_validator(mode="after")
    def _anchor_mlflow_paths(self) -> Settings:
        """Anchor a relative SQLite store and artifacts folder at ``project_root``, never the cwd.

        Without a project root a relative SQLite URI is kept as given and refused where MLflow is
        used (:func:`forecast.registry.client`), so commands that never touch MLflow still run.
        """
        if self.project_root is None:
            return self
        root = self.project_root.resolve()
        self.project_root = root
        self.mlflow_tracking_uri = anchored_tracking_uri(self.mlflow_tracking_uri, root)
        if not self.mlflow_artifacts.is_absolute():
            self.mlflow_artifacts = root / self.mlflow_artifacts
        return self


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
