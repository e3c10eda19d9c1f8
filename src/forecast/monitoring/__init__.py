"""Monitoring: Evidently drift and data-quality reports, our own calibration checks, one verdict.

``policy`` (typed config and the pure verdict), ``frames`` (pure frame helpers), ``calibration``
(Brier, ECE, reliability by decile), ``drift`` (Evidently, imported lazily) and ``job``
(orchestration, files, MLflow). Nothing is imported or read at import time.
"""
