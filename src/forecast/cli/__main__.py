"""``python -m forecast.cli``."""

from forecast.cli import app

app()
