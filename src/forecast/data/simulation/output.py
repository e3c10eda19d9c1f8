"""The simulation result: canonical tables, ground truth, parameters, and deterministic file output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from forecast.data.schema import TABLES
from forecast.io import write_frame, write_text

_DTYPES = {
    "str": object,
    "int": "Int64",
    "float": "float64",
    "bool": "boolean",
    "timestamp": "datetime64[ns]",
}
PARAMS_FILE = "simulation_params.json"


def canonical_frame(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Order and type ``frame``'s columns exactly as the canonical table ``name``.

    Strings become ``object`` with ``None`` for missing values, integers ``Int64``, booleans
    ``boolean``, timestamps naive ``datetime64[ns]``.

    Raises:
        KeyError: If a canonical column is missing.
    """
    spec = TABLES[name]
    out = {}
    for col in spec.columns:
        values = frame[col.name]
        if col.kind == "str":
            obj = values.astype(object)
            out[col.name] = obj.where(obj.notna(), None)
        else:
            out[col.name] = values.astype(_DTYPES[col.kind])  # type: ignore[call-overload]
    return pd.DataFrame(out).reset_index(drop=True)


@dataclass
class Simulation:
    """A simulated CRM.

    Attributes:
        tables: Canonical tables (``reps``, ``accounts``, ``leads``, ``opportunities``,
            ``stage_history``, ``activities``, ``engagement_events``, ``quotas``).
        truth: Ground truth never ingested: ``truth_leads`` and ``truth_opportunities``.
        params: All generating parameters (JSON-serialisable).
        end: The extraction time; nothing in ``tables`` happens after it (except planned dates).
    """

    tables: dict[str, pd.DataFrame]
    truth: dict[str, pd.DataFrame]
    params: dict[str, Any]
    end: pd.Timestamp

    def write(self, out_dir: Path, fmt: Literal["parquet", "csv"] = "parquet") -> list[Path]:
        """Write every table, the truth tables and ``simulation_params.json`` to ``out_dir``.

        Each file is written to a temporary name and then renamed, so readers never see a partial
        file. The same simulation always gives byte-identical files.

        Args:
            out_dir: Directory (created if missing).
            fmt: ``parquet`` or ``csv``.

        Returns:
            The written paths, tables first, then truth, then the parameters.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []
        for name, frame in [*self.tables.items(), *self.truth.items()]:
            path = out_dir / f"{name}.{fmt}"
            write_frame(frame, path, fmt)
            paths.append(path)
        params_path = out_dir / PARAMS_FILE
        text = json.dumps({**self.params, "end": self.end.isoformat()}, sort_keys=True, indent=2) + "\n"
        write_text(params_path, text)
        paths.append(params_path)
        return paths
