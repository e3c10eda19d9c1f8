"""forecast: sales-tracking intelligence from CRM history."""

__version__ = "0.1.0"
