"""Building blocks of the CRM simulator; use :func:`forecast.data.simulate.simulate_crm`.

One concern per module: ``config`` (configuration, vocabularies, coefficients), ``people`` (reps,
accounts), ``leads``, ``deals`` (opportunities and stage history), ``activity``, ``engagement``,
``quotas`` and ``output`` (the result and its files).
"""
