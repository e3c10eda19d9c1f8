"""The models the service serves: the registry's champions, reloaded when an alias moves.

Each served role (``lead_scoring``, ``deal_win``, ...) is a :class:`forecast.binding.ModelRef`: by
default the champion of the role's model, or what ``forecast serve --models`` names
(``FORECAST_SERVE_MODELS``). Served with the warehouse, a default champion must have been trained
on it: one trained elsewhere is not loaded (its error says why), a named one is loaded with a
warning.

Each request reads the store's current mapping once, so it is answered by one model version from
start to end. A reload loads the new champion beside the old one and then swaps one reference:
requests in flight finish on the old model, new ones get the new model, none is dropped. A load
that fails leaves the old model serving and records the error, which readiness and
``/model_info`` report until a later load succeeds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forecast.binding import CurrentWarehouse, ModelRef, check_binding, model_refs
from forecast.config import Settings
from forecast.models.names import CHURN_RISK, CHURN_RISK_LEADS, DEAL_WIN, LEAD_SCORING, TIME_TO_CLOSE
from forecast.models.win_horizon import p_win_days
from forecast.registry import CHAMPION, LoadedModel, client, load_model, version_by_alias
from forecast.scoring import fastpath

log = logging.getLogger(__name__)

SERVED_MODELS = (LEAD_SCORING, DEAL_WIN, TIME_TO_CLOSE, CHURN_RISK, CHURN_RISK_LEADS)
"""What the service loads: every endpoint's champion (a missing one disables only its endpoint)."""
REQUIRED_MODELS = (LEAD_SCORING, DEAL_WIN, TIME_TO_CLOSE)
"""Without these champions the service is not ready."""


def served_refs(settings: Settings, names: Sequence[str] = SERVED_MODELS) -> dict[str, ModelRef]:
    """The model of each served role: ``settings.serve_models`` (``--models``), else the champions.

    Raises:
        InputError: A bad ``--models`` mapping.
    """
    return model_refs({n: (n, "--models") for n in names}, None, settings.serve_models or None)


class ModelUnavailableError(LookupError):
    """No champion of a model is loaded (the endpoint answers 503 with this message)."""


@dataclass(frozen=True)
class ServedModel:
    """A loaded champion and what ``/model_info`` says of it."""

    model: LoadedModel
    loaded_at: str
    info: dict[str, Any]


@dataclass
class ModelStatus:
    """The state of one model name in the store."""

    served: ServedModel | None = None
    champion_version: str | None = None
    error: str | None = None
    error_at: str | None = None
    checked_at: str | None = None


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


KEY_METRICS = ("roc_auc", "pr_auc", "brier", "ece", "log_loss", "c_index", "ibs")


def describe_version(loaded: LoadedModel, mv: Any, run_metrics: dict[str, float]) -> dict[str, Any]:
    """Name, version, aliases, training date and key test metrics of a loaded model version."""
    meta = loaded.meta
    trained = getattr(mv, "creation_timestamp", None)
    metrics = {
        k: round(float(run_metrics[f"test_{k}"]), 6) for k in KEY_METRICS if f"test_{k}" in run_metrics
    }
    return {
        "name": loaded.name,
        "version": loaded.version,
        "aliases": sorted(getattr(mv, "aliases", None) or [CHAMPION]),
        "run_id": loaded.run_id,
        "entity": meta.entity,
        "score_name": meta.score_name,
        "trained_at": None
        if trained is None
        else datetime.fromtimestamp(trained / 1000, UTC).replace(microsecond=0).isoformat(),
        "model_kind": (getattr(mv, "tags", None) or {}).get("model_kind"),
        "horizon_days": meta.horizon_days,
        "p_win_days": p_win_days(loaded.pipeline, meta.horizon_days) if meta.score_name == "p_win" else None,
        "metrics": metrics,
        "n_features": len(meta.features),
    }


Loader = Callable[[str, Settings, str], LoadedModel]


class ModelStore:
    """Champions by name, with polling of the registry and atomic swaps.

    Args:
        settings: Where the registry is.
        names: Model names to serve.
        loader: Loads ``(name, settings, version)`` (the registry's by default).
    """

    def __init__(
        self,
        settings: Settings,
        names: Sequence[str] = SERVED_MODELS,
        loader: Loader | None = None,
        on_load: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.refs = served_refs(settings, names)
        self._current: CurrentWarehouse | None = None
        self.generation = 0
        """Grows by one with every model loaded (caches built on the models compare it)."""
        self.on_load = on_load
        self.names = tuple(names)
        self._loader = loader or (lambda name, s, version: load_model(name, s, version=version))
        self._status: dict[str, ModelStatus] = {name: ModelStatus() for name in self.names}
        self._served: dict[str, ServedModel] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self, name: str) -> ServedModel:
        """The served champion of ``name``.

        Raises:
            ModelUnavailableError: None is loaded (with why).
        """
        served = self._served.get(name)
        if served is None:
            status = self._status.get(name)
            why = status.error if status and status.error else "no champion in the registry"
            raise ModelUnavailableError(
                f"model {name!r} is not loaded: {why} (train it and run `forecast promote`)"
            )
        return served

    def optional(self, name: str) -> ServedModel | None:
        """The served champion of ``name``, or ``None``."""
        return self._served.get(name)

    def refresh(self, only: str | None = None) -> dict[str, Any]:
        """Look up every champion alias now; load the ones that moved (serialised).

        Returns:
            Per model: ``unchanged``, ``loaded``, ``absent`` or ``failed`` with the version.
        """
        names = [n for n in self.names if only is None or n == only]
        if only is not None and not names:
            raise KeyError(f"unknown model {only!r}; served models: {', '.join(self.names)}")
        with self._lock:
            return {name: self._refresh_one(name) for name in names}

    def current(self) -> CurrentWarehouse | None:
        """The served warehouse, which default champions must be bound to (``None``: not served).

        Read at the first load (not at start, so a busy warehouse fails a load, not the service).
        """
        if self._current is None and self.settings.serve_warehouse:
            self._current = CurrentWarehouse.of(self.settings.warehouse)
        return self._current

    def _version(self, ref: ModelRef) -> Any | None:
        """The registry's version behind ``ref`` (its alias, or its exact version), or ``None``."""
        if ref.version is None:
            return version_by_alias(ref.name, ref.alias, self.settings)
        from mlflow.exceptions import MlflowException

        try:
            return client(self.settings).get_model_version(ref.name, ref.version)
        except MlflowException:
            return None

    def _refresh_one(self, name: str) -> dict[str, Any]:
        status = self._status[name]
        status.checked_at = _now()
        ref = self.refs[name]
        try:
            mv = self._version(ref)
        except Exception as exc:  # the registry itself is unreachable: keep serving
            status.error, status.error_at = f"registry lookup failed: {exc}", _now()
            return {"result": "failed", "error": status.error}
        if mv is None:
            status.champion_version = None
            return {"result": "absent"}
        version = str(mv.version)
        status.champion_version = version
        current = self._served.get(name)
        if current is not None and current.model.version == version:
            status.error = status.error_at = None  # a failed newer version is no longer the champion
            return {"result": "unchanged", "version": version}
        try:
            loaded = self._loader(ref.name, self.settings, version)
            loaded.alias = ref.alias
            warning = check_binding(loaded.meta, loaded.name, loaded.version, ref, self.current())
            if warning is not None:
                log.warning("model %s: %s", name, warning)
            fastpath.coded(loaded.pipeline)  # build (and self-check) the array path before serving
            metrics = client(self.settings).get_run(loaded.run_id).data.metrics
            served = ServedModel(loaded, _now(), describe_version(loaded, mv, dict(metrics)))
        except Exception as exc:
            status.error = f"loading version {version} failed: {type(exc).__name__}: {exc}"
            status.error_at = _now()
            log.error(
                "model %s: %s (still serving %s)", name, status.error, current and current.model.version
            )
            return {"result": "failed", "version": version, "error": status.error}
        self._served = {**self._served, name: served}
        self.generation += 1
        status.served, status.error, status.error_at = served, None, None
        if self.on_load is not None:
            self.on_load()
        log.info("model %s: serving version %s", name, version)
        return {"result": "loaded", "version": version}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Whether every required model is served, and the state of each model."""
        detail = self.status()
        ok = all(self._served.get(n) is not None for n in REQUIRED_MODELS if n in self.names)
        return ok, detail

    def status(self) -> dict[str, Any]:
        """Per model: the served version, the registry's champion, the last error."""
        out: dict[str, Any] = {}
        for name in self.names:
            st = self._status[name]
            served = self._served.get(name)
            out[name] = {
                "model": str(self.refs[name]),
                "served": None if served is None else {**served.info, "loaded_at": served.loaded_at},
                "champion_version": st.champion_version,
                "required": name in REQUIRED_MODELS,
                "error": st.error,
                "error_at": st.error_at,
                "checked_at": st.checked_at,
            }
        return out

    def signal_reload(self, path: Path | None) -> str | None:
        """Tell the other workers watching ``path`` to check their champions now.

        Returns:
            ``None``, or why the signal could not be written (the other workers then follow at
            their next poll).
        """
        if path is None:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_text(f"{time.time_ns()} {os.getpid()}\n")
            tmp.replace(path)
        except OSError as exc:
            log.warning("reload signal %s not written: %s", path, exc)
            return f"the other workers were not signalled ({exc}); they follow at their next poll"
        return None

    def start_polling(self, every_seconds: float, signal: Path | None = None) -> None:
        """Check the aliases every ``every_seconds`` (``<= 0``: never) and when ``signal`` changes.

        One daemon thread; the signal file (written by :meth:`signal_reload` in any worker) is
        looked at twice a second.
        """
        if (every_seconds <= 0 and signal is None) or self._thread is not None:
            return
        tick = 0.5 if signal is not None else every_seconds

        def stamp() -> str | None:
            try:  # the content (time and pid of the writer), not the mtime, which can repeat
                return signal.read_text() if signal is not None else None
            except OSError:
                return None

        def loop() -> None:
            seen, last = stamp(), time.monotonic()
            while not self._stop.wait(tick):
                now, current = time.monotonic(), stamp()
                due = every_seconds > 0 and now - last >= every_seconds
                if not due and current == seen:
                    continue
                seen, last = current, now
                try:
                    self.refresh()
                except Exception:  # pragma: no cover - refresh records its own errors
                    log.exception("model refresh failed")

        self._thread = threading.Thread(target=loop, name="forecast-model-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
