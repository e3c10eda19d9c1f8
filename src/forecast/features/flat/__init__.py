"""The flat-export path, one module per concern; import it through :mod:`forecast.features.tabular`.

Layers (each imports only those before it): ``schema`` and ``names`` -> ``parse`` -> ``roles`` ->
``leakage`` and ``preparer`` -> ``checks`` -> ``export``.
"""
