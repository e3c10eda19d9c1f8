"""Source adapters: read CRM exports and map them onto the canonical tables.

Every adapter returns a :class:`~forecast.data.sources.base.SourceBatch`; validation, type
coercion and loading happen afterwards, the same way for every source.
"""
