"""Bring-your-own flat export: one CSV or Parquet file from a CRM report turned into a feature table.

A sales team that has no warehouse can still train every model on a single export (a HubSpot or
Salesforce report, a spreadsheet): one row per lead or deal, an id column, a target column (yes/no,
Won/Lost, 1/0, …) and optionally a date column. This module

1. parses the target into 0/1 (:func:`parse_target`),
2. turns placeholders ("Select", "", "N/A", "-", "unknown") into missing values while keeping which
   kind of missing it was where more than one kind occurs (:func:`normalise_missing`),
3. infers each column's role (:func:`infer_roles`) and builds model-ready feature columns,
4. flags columns that leak the outcome (:func:`detect_leakage`) and excludes them unless kept.

The output (:class:`FlatExport`) holds the same kind of feature table as the warehouse snapshots:
``entity_id``, ``as_of`` (datetime64[ns], NaT without a date column), feature columns (float for
numeric and boolean features, object strings for categoricals) and ``label_target`` (Int64 0/1,
missing for rows without a target, which are kept as a scoring set).

Everything here is pure except :func:`load_flat_export`, which reads the file and calls
:func:`prepare_flat_export`. Results are deterministic (fixed fold seeds).

The code lives in :mod:`forecast.features.flat`, one module per concern: ``schema`` (column names
and roles), ``names`` (what a column name says), ``parse`` (values), ``roles`` (role inference),
``leakage`` (leak detection), ``preparer`` (:class:`FlatExportPreparer`), ``checks`` (input checks of
rows to score) and ``export`` (:func:`prepare_flat_export`). This module is the public entry point and
keeps every name it always had: models pickled before the split name
``forecast.features.tabular.FlatExportPreparer``.
"""

from forecast.features.flat.checks import score_input_errors
from forecast.features.flat.export import (
    FlatExport,
    load_flat_export,
    prepare_flat_export,
    safe_feature_names,
)
from forecast.features.flat.leakage import (
    AFTER_OUTCOME_MIN_SHARE,
    AFTER_OUTCOME_PURITY,
    AFTER_OUTCOME_TEXT,
    FILL_CLASS_PURITY,
    FILL_MIN_MISSING_SHARE,
    FILL_SHARE_GAP,
    LATER_THAN_TIME_SHARE,
    LEAKAGE_AUC,
    N_FOLDS,
    PURITY_LIFT,
    RANDOM_STATE,
    VALUE_CLASS_PURITY,
    VALUE_MIN_CLASS_COVERAGE,
    VALUE_MIN_ROWS,
    LeakageFlag,
    column_auc,
    detect_leakage,
)
from forecast.features.flat.names import (
    NUMBER_ID_TOKENS,
    OUTCOME_PHRASES,
    OUTCOME_TOKENS,
    name_tokens,
    outcome_words,
)
from forecast.features.flat.parse import normalise_missing, parse_target
from forecast.features.flat.preparer import SPEC_VERSION, BooleanMode, FlatExportPreparer, values_as_written
from forecast.features.flat.roles import (
    DATETIME_MIN_SHARE,
    ID_HIGH_CARDINALITY,
    ID_MIN_FILLED,
    ID_MIN_ROWS,
    ID_MONOTONE_SHARE,
    ID_UNIQUE_SHARE,
    MAX_LEVELS,
    NUMERIC_MIN_SHARE,
    RARE_LEVEL_MIN_COUNT,
    RARE_LEVEL_MIN_SHARE,
    TEXT_MIN_MEAN_LENGTH,
    TEXT_MIN_MEAN_WORDS,
    TEXT_MIN_UNIQUE_SHARE,
    ColumnRole,
    infer_roles,
    numeric_id_evidence,
)
from forecast.features.flat.schema import (
    AS_OF,
    DAYS_BEFORE_SUFFIX,
    ENTITY_ID,
    FEATURE_ROLES,
    LABEL,
    MISSING_KIND_SUFFIX,
    OTHER_LEVEL,
    PRESENT,
    ROW_ID,
    Role,
)

__all__ = [
    "AFTER_OUTCOME_MIN_SHARE",
    "AFTER_OUTCOME_PURITY",
    "AFTER_OUTCOME_TEXT",
    "AS_OF",
    "DATETIME_MIN_SHARE",
    "DAYS_BEFORE_SUFFIX",
    "ENTITY_ID",
    "FEATURE_ROLES",
    "FILL_CLASS_PURITY",
    "FILL_MIN_MISSING_SHARE",
    "FILL_SHARE_GAP",
    "ID_HIGH_CARDINALITY",
    "ID_MIN_FILLED",
    "ID_MIN_ROWS",
    "ID_MONOTONE_SHARE",
    "ID_UNIQUE_SHARE",
    "LABEL",
    "LATER_THAN_TIME_SHARE",
    "LEAKAGE_AUC",
    "MAX_LEVELS",
    "MISSING_KIND_SUFFIX",
    "NUMBER_ID_TOKENS",
    "NUMERIC_MIN_SHARE",
    "N_FOLDS",
    "OTHER_LEVEL",
    "OUTCOME_PHRASES",
    "OUTCOME_TOKENS",
    "PRESENT",
    "PURITY_LIFT",
    "RANDOM_STATE",
    "RARE_LEVEL_MIN_COUNT",
    "RARE_LEVEL_MIN_SHARE",
    "ROW_ID",
    "SPEC_VERSION",
    "TEXT_MIN_MEAN_LENGTH",
    "TEXT_MIN_MEAN_WORDS",
    "TEXT_MIN_UNIQUE_SHARE",
    "VALUE_CLASS_PURITY",
    "VALUE_MIN_CLASS_COVERAGE",
    "VALUE_MIN_ROWS",
    "BooleanMode",
    "ColumnRole",
    "FlatExport",
    "FlatExportPreparer",
    "LeakageFlag",
    "Role",
    "column_auc",
    "detect_leakage",
    "infer_roles",
    "load_flat_export",
    "name_tokens",
    "normalise_missing",
    "numeric_id_evidence",
    "outcome_words",
    "parse_target",
    "prepare_flat_export",
    "safe_feature_names",
    "score_input_errors",
    "values_as_written",
]
