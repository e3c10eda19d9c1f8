"""Scoring: a loaded model's probabilities, bands, reasons and close dates, without I/O.

One home for the code that turns model inputs into scores, shared by the batch job
(:mod:`forecast.batch`, which reads the warehouse or a file and writes the outputs) and the HTTP
service (:mod:`forecast.serving.scoring`), so both give the same numbers:

- ``frame`` (:func:`~forecast.scoring.frame.score_frame`: probability, score, band and reasons of
  each row), ``bands``, ``close_dates`` (a time-to-close model's close-date distribution),
  ``export_rows`` (rows in a flat export's shape, with rejects), ``scored`` (what scoring returns:
  :class:`~forecast.scoring.scored.Scored`), ``model`` (what scoring reads of a loaded model);
- ``fastpath`` (the array path: a fitted pipeline on one float matrix), ``contributions`` (each
  input column's share of the log-odds), ``reasons`` (the top reasons of each row) and
  ``phrasing`` (a reason in English).

Nothing here reads the warehouse, MLflow or files; nothing is imported or read at import time.
"""
