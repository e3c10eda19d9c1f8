"""Training: the training input, the fitting and evaluation of every model, its card and the job.

One home for the code that turns the warehouse's snapshots (or a flat export) into a logged model
(the YAML configs it reads are the repository's ``training/`` folder, copied to ``defaults/``):

- ``datasets`` (the warehouse's snapshots or a flat export -> ``ModelInput``), ``inputs``
  (:class:`~forecast.training.inputs.ModelInput`: what a model is trained on);
- ``binary`` (:func:`~forecast.training.binary.train_binary`: every binary model, its family and its
  final fit), ``splits`` (the evaluation's fitting and test rows), ``survival``
  (:func:`~forecast.training.survival.train_time_to_close`) and ``survival_metrics`` (metrics under
  censoring): pure, no MLflow or files;
- ``card`` (the model card in words) and ``job`` (:func:`~forecast.training.job.train_model_job`:
  data in, train, card, log to MLflow through :mod:`forecast.registry`, promote).

The training configuration's schema stays in :mod:`forecast.models.config` (the fitted pipeline and
the model metadata read parts of it); the metrics of probability scores stay in
:mod:`forecast.evaluate` (the baselines, the cross-fitting and monitoring use them too).
"""
