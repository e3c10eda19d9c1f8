"""The sales manager's dashboard: read-only pages over the warehouse and the registry (docs/dashboard.md).

A front end like ``cli`` and ``serving``: it calls the same jobs the CLI calls (tracking reports,
insights, the revenue job, the flags job, the registry) and adds no metric of its own. Only the
CLI imports it (``forecast dashboard``).
"""
