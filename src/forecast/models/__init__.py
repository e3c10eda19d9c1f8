"""Models: the scoring pipeline, calibration, baselines, time to close.

Scoring with them lives in ``forecast.scoring``.
"""
