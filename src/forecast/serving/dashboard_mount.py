"""The dashboard's pages under the HTTP service at ``/dashboard``: the same app as ``forecast dashboard``.

The service mounts :class:`MountedDashboard` when its module is imported, but builds nothing then
(no settings are read at import): each worker makes its dashboard (``create_app`` over the
service's settings and models, :func:`dashboard_refs`) at the first request under ``/dashboard``,
and its warm-up (:mod:`forecast.dashboard.warm`) starts then, so a service whose pages nobody
opens pays nothing for them. The pages read the warehouse the service was started with (``forecast serve
--warehouse``); without one they answer 404 saying so. They keep their own login (the token form
and the session cookie, shared with the API's docs page); links and redirects are rooted at the
mount point by :class:`~forecast.dashboard.rooted.RootedLinks`.
"""

from __future__ import annotations

import threading
from typing import Any

from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from forecast.config import Settings, load_settings

PREFIX = "/dashboard"
"""Where the service mounts the pages."""


def under_prefix(path: str) -> bool:
    """Whether ``path`` is one of the dashboard's (the guard lets them handle their own login)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def dashboard_refs(settings: Settings) -> dict[str, Any]:
    """The models the pages read by role: the service's own (``forecast serve --models``).

    The dashboard reads the deal-win and time-to-close models; a ``--models`` that names other
    versions of them is what the pages show, as under ``forecast dashboard --models``.
    """
    from forecast.models.names import DEAL_WIN, TIME_TO_CLOSE
    from forecast.serving.store import served_refs

    refs = served_refs(settings)
    return {role: refs[role] for role in (DEAL_WIN, TIME_TO_CLOSE)}


def mounted_app(settings: Settings) -> Any:
    """The dashboard app the service mounts: its settings, its models (:func:`dashboard_refs`)."""
    from forecast.dashboard.app import create_app
    from forecast.dashboard.deferred import WAIT_SECONDS
    from forecast.dashboard.store import default_store

    refs = dashboard_refs(settings)
    return create_app(settings, refs=refs, store=default_store(settings, refs), wait_seconds=WAIT_SECONDS)


class MountedDashboard:
    """An ASGI app answering with this worker's dashboard, made at its first request."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def _made(self) -> Any:
        """This worker's dashboard (``None`` when the service reads no warehouse)."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    settings = load_settings()
                    if not settings.serve_warehouse:
                        self._app = False
                    else:
                        app = mounted_app(settings)
                        if app.state.warmer is not None:  # a mounted app gets no lifespan events
                            app.state.warmer.start()
                        self._app = app
        return self._app or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a request under the mount point."""
        if scope["type"] != "http":
            return
        app = self._made()
        if app is None:
            message = "the dashboard reads the warehouse: start the service with --warehouse (forecast serve)"
            await PlainTextResponse(message, status_code=404)(scope, receive, send)
            return
        await app(scope, receive, send)
