"""Models: the scoring pipeline, calibration, baselines, time to close (scoring with them: ``forecast.scoring``)."""
