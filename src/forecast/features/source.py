"""Where features read the CRM from: a DuckDB connection on which the canonical tables are visible.

Features are SQL over the canonical tables, so the same code runs on the warehouse file and on
in-memory frames (tests, a simulated CRM that was never ingested).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from forecast.data.as_of import EVENT_TIMES
from forecast.data.pipeline import DEFAULT_PIPELINE, SalesPipeline
from forecast.data.schema import TABLES
from forecast.data.warehouse import Warehouse, connect_duckdb
from forecast.timeutil import as_of_after

_SQL_TYPES = {
    "str": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
}


class FeatureSource:
    """A connection where ``leads``, ``opportunities``, … and ``pipeline_stages`` can be queried.

    Args:
        con: The connection.
        pipeline: The pipeline the deals follow.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, pipeline: SalesPipeline) -> None:
        self.con = con
        self.pipeline = pipeline
        self.con.execute("CREATE OR REPLACE TEMP TABLE _stages (stage VARCHAR, stage_order INTEGER)")
        self.con.executemany(
            "INSERT INTO _stages VALUES (?, ?)", [[s.name, s.order] for s in pipeline.stages]
        )

    def data_end(self) -> pd.Timestamp:
        """The latest event time in the data: labels after it are unknown (censored)."""
        parts = [
            f'SELECT max("{col}") AS t FROM "{table}"' for table, cols in EVENT_TIMES.items() for col in cols
        ]
        value = self.con.execute(f"SELECT max(t) FROM ({' UNION ALL '.join(parts)})").fetchone()
        if value is None or value[0] is None:
            raise ValueError("the data holds no dated events; nothing to snapshot")
        return pd.Timestamp(value[0])

    def default_as_of(self) -> pd.Timestamp:
        """The CRM's default as-of: midnight after the day of its latest event.

        As :func:`~forecast.timeutil.as_of_after` computes it.

        Raises:
            ValueError: If the data holds no dated event.
        """
        return as_of_after(self.data_end())

    def df(self, sql: str, params: list[object] | None = None) -> pd.DataFrame:
        """Run a query and return a frame."""
        return self.con.execute(sql, params or []).df()


@contextmanager
def warehouse_source(path: Path) -> Iterator[FeatureSource]:
    """Open the warehouse read-only as a feature source.

    Raises:
        FileNotFoundError: If the warehouse does not exist.
    """
    wh = Warehouse(path)
    pipeline = wh.pipeline() or DEFAULT_PIPELINE
    with wh.connect(read_only=True) as con:
        yield FeatureSource(con, pipeline)


@contextmanager
def frames_source(
    tables: Mapping[str, pd.DataFrame], pipeline: SalesPipeline = DEFAULT_PIPELINE
) -> Iterator[FeatureSource]:
    """An in-memory feature source over canonical frames; missing tables are empty.

    Args:
        tables: Canonical frames by table name (typed as after validation).
        pipeline: The pipeline the deals follow.
    """
    con = connect_duckdb()
    try:
        for name, spec in TABLES.items():
            # Declared canonical types: DuckDB would type an all-null string column as INTEGER.
            cols = ", ".join(f'"{c.name}" {_SQL_TYPES[c.kind]}' for c in spec.columns)
            con.execute(f'CREATE TABLE "{name}" ({cols})')
            if name in tables:
                frame = tables[name]
                present = [c.name for c in spec.columns if c.name in frame.columns]
                # the columns as they are (a frame[present] would copy ten million rows first)
                chosen = pd.DataFrame({c: frame[c] for c in present}, copy=False)
                con.register(f"_frame_{name}", chosen if frame.columns.is_unique else frame[present])
                con.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM "_frame_{name}"')
                con.unregister(f"_frame_{name}")
        yield FeatureSource(con, pipeline)
    finally:
        con.close()
