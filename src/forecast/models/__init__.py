"""Models: the scoring pipeline, calibration, baselines, explanations."""
