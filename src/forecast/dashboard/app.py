"""The dashboard as a Starlette app: read-only pages over the warehouse and the registry.

``create_app(settings)`` builds it; ``forecast dashboard`` serves it with uvicorn. Pages are
server-rendered HTML with inline SVG charts and one stylesheet shipped in the package
(``static/dashboard.css``): no script, no font, nothing fetched from another host, and the
Content-Security-Policy says so to the browser.

With ``FORECAST_API_TOKEN`` set, every page but ``/login``, ``/healthz`` and the stylesheet needs a
session: ``POST /login`` compares the token in constant time and sets the service's signed
session cookie (HttpOnly, SameSite=Strict; :mod:`forecast.web_session`, the same rules as the
API's docs page, so a token rotation ends both). Without a token the pages are open, and the CLI
binds to loopback unless told otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from forecast import web_session as session
from forecast.config import Settings
from forecast.dashboard import choices, compare, pages
from forecast.dashboard.data import Cut, Filters, Listing, Reader
from forecast.dashboard.deferred import REFRESH_SECONDS, Deferred
from forecast.dashboard.rooted import RootedLinks
from forecast.dashboard.store import PageStore
from forecast.dashboard.warm import EVERY_SECONDS, Warmer
from forecast.dashboard.worker import AsOfWorker, WorkerLostError, WorkerUnavailableError, serve
from forecast.errors import InputError
from forecast.io import csv_text

MAX_FORM_BYTES = 4096
"""The login form's largest body."""
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
OPEN_PATHS = frozenset({"/login", "/healthz", "/static/dashboard.css", "/favicon.ico"})
PAGES = {
    "/": ("Overview", "overview"),
    "/reps": ("Reps", "reps"),
    "/pipeline": ("Pipeline", "pipeline"),
    "/prospects": ("Prospects", "prospects"),
    "/activity": ("Activity and process", "activity"),
    "/insights": ("Insights", "insights"),
    "/models": ("Models", "models"),
}
"""Each page's path, title and the dashboard's method computing its body."""


def dashboard_token(settings: Settings) -> bytes | None:
    """The token pages need (``None``: open); a blank ``FORECAST_API_TOKEN`` is refused, not open.

    Raises:
        ValueError: The variable is set but blank.
    """
    if settings.api_token is None:
        return None
    token = settings.api_token.get_secret_value().strip().encode()
    if not token:
        raise ValueError("FORECAST_API_TOKEN is set but blank: set a token or unset the variable")
    return token


def _html(text: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def _preparing(title: str, target: str) -> HTMLResponse:
    """``202 Accepted``: a page that reloads ``target`` after :data:`REFRESH_SECONDS`.

    Its figures are being computed (:mod:`forecast.dashboard.deferred`).
    """
    headers = {"Refresh": str(REFRESH_SECONDS), "Retry-After": str(REFRESH_SECONDS)}
    return _html(pages.preparing_page(title, target, REFRESH_SECONDS), 202, headers)


def _local(path: str) -> str:
    """A redirect target on this site only (``/`` for anything else)."""
    return path if path.startswith("/") and not path.startswith(("//", "/\\")) else "/"


class _Dashboard:
    """The dashboard's endpoints over one reader, with the login rule of ``settings``.

    With ``wait_seconds`` (a server: ``forecast dashboard``, the HTTP service), pages of another as
    of than the default are computed in a child process (:mod:`forecast.dashboard.worker`), which
    runs one of its own without a wait (:func:`as_of_process`).
    """

    def __init__(
        self,
        settings: Settings,
        reader: Reader | None = None,
        refs: Mapping[str, Any] | None = None,
        store: PageStore | None = None,
        wait_seconds: float | None = None,
    ) -> None:
        self.settings = settings
        self.token = dashboard_token(settings)
        self.read = reader or Reader(settings, refs=refs, store=store)
        self.deferred = Deferred(wait_seconds)
        self.worker = (
            AsOfWorker(settings, self.read.refs, as_of_process, self.read.store)
            if wait_seconds is not None
            else None
        )

    def authorised(self, request: Request) -> bool:
        if self.token is None:
            return True
        value = session.cookie(request.headers.get("cookie", "").encode("latin-1"))
        return value is not None and session.session_ok(value, self.token)

    def compute(self, path: str, query: Mapping[str, str]) -> tuple[Cut, tuple[str, str, str]]:
        """Page ``path``'s cut summary and body (as of, period, HTML) for the URL's ``query``.

        Raises:
            InputError: A bad filter, or a rep, team, region or source the CRM does not have.
            FileNotFoundError: No warehouse.
            ValueError: A warehouse that cannot be read.
        """
        filters = Filters.from_query(query)
        body: Callable[[Filters, Mapping[str, str]], tuple[str, str, str]] = getattr(self, PAGES[path][1])
        with self.read.as_of_turn(filters.as_of):
            cut = self.read.cut(filters)
            choices.check_known(cut.known, cut.as_of, filters)  # an unknown rep, team, ...: 400
            return cut, body(filters, query)

    def elsewhere(self, as_of: str | None, method: str, *args: Any) -> Any:
        """``method(*args)``, in the as-of process for another as of (this process's otherwise).

        Pages of one as of go before another's (:meth:`Reader.as_of_turn`), as in this process.
        """
        if as_of is not None and self.worker is not None:
            with self.read.as_of_turn(as_of):
                try:
                    return self.worker.call(method, *args, follow=self.read.followed())
                except WorkerUnavailableError:  # computed here, as without the process
                    pass
        return getattr(self, method)(*args)

    def counters(self) -> dict[str, int]:
        """The reader's counts (:attr:`Reader.computed`, ``cuts_read``, ...), for tests and benchmarks."""
        r = self.read
        return {"computed": r.computed, "assembled": r.assembled, "loaded": r.loaded, "reads": r.cuts_read}

    def page(self, path: str) -> Callable[[Request], Response]:
        title = PAGES[path][0]

        def endpoint(request: Request) -> Response:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if not self.authorised(request):
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            try:
                filters = Filters.from_query(request.query_params)
                query = dict(request.query_params)

                def compute() -> tuple[Cut, tuple[str, str, str]]:
                    return self.elsewhere(filters.as_of, "compute", path, query)

                # a page of a warehouse or champions gone by is not handed out for the new ones
                done, answer = self.deferred.answer((self.read.state(), target), compute)
                if not done or answer is None:
                    return _preparing(title, target)
                cut, (as_of, period, html) = answer
            except WorkerLostError as exc:
                return _html(pages.simple_page(title, str(exc)), 503)
            except InputError as exc:
                return _html(pages.simple_page("Bad filter", str(exc)), 400)
            except FileNotFoundError:
                message = (
                    f"No warehouse at {self.settings.warehouse}: run forecast ingest (or forecast run) first."
                )
                return _html(pages.simple_page(title, message), 404)
            except ValueError as exc:
                return _html(pages.simple_page(title, f"The warehouse cannot be read: {exc}"), 503)
            text = pages.layout(
                title, path, filters, as_of, html, cut.known, period, logout=self.token is not None
            )
            return _html(text)

        return endpoint

    def overview(self, f: Filters, _: Mapping[str, str]) -> tuple[str, str, str]:
        o = self.read.overview(f)
        changes = compare.overview_changes(self.read, f)
        return o.as_of, o.period, pages.overview_body(o, changes, pages.overview_notes(f))

    def reps(self, f: Filters, _: Mapping[str, str]) -> tuple[str, str, str]:
        r = self.read.reps(f)
        return r["as_of"], r["period"].label, pages.reps_body(r, compare.reps_changes(self.read, f, r))

    def pipeline(self, f: Filters, _: Mapping[str, str]) -> tuple[str, str, str]:
        p = self.read.pipeline(f)
        return p["as_of"], p["period"].label, pages.pipeline_body(p)

    def insights(self, f: Filters, _: Mapping[str, str]) -> tuple[str, str, str]:
        doc = self.read.insights(f)
        return doc["as_of"], doc["period"]["label"], pages.insights_body(doc, f)

    def models(self, f: Filters, _: Mapping[str, str]) -> tuple[str, str, str]:
        return self.read.cut(f).as_of.isoformat(), "", pages.models_body(self.read.models())

    def prospects(self, f: Filters, query: Mapping[str, str]) -> tuple[str, str, str]:
        listing = Listing.from_query(query)
        p = self.read.prospects(f)
        return p["as_of"], p["period"].label, pages.prospects_body(p, f, listing)

    def activity(self, f: Filters, _: Mapping[str, str]) -> tuple[str, str, str]:
        a = self.read.activity(f)
        return a["as_of"], a["period"].label, pages.activity_body(a, f)

    def prospects_csv(self, request: Request) -> Response:
        """Every prospect of the filters, in the page's sort, as a neutralised CSV attachment."""
        if not self.authorised(request):
            return PlainTextResponse("log in first (/login)", status_code=401, headers=SECURITY_HEADERS)
        try:
            filters = Filters.from_query(request.query_params)
            stamp, text = self.elsewhere(filters.as_of, "csv_of", dict(request.query_params))
        except WorkerLostError as exc:
            return PlainTextResponse(str(exc), status_code=503, headers=SECURITY_HEADERS)
        except InputError as exc:
            return PlainTextResponse(str(exc), status_code=400, headers=SECURITY_HEADERS)
        except FileNotFoundError:
            message = (
                f"No warehouse at {self.settings.warehouse}: run forecast ingest (or forecast run) first."
            )
            return PlainTextResponse(message, status_code=404, headers=SECURITY_HEADERS)
        except ValueError as exc:
            return PlainTextResponse(
                f"The warehouse cannot be read: {exc}", status_code=503, headers=SECURITY_HEADERS
            )
        headers = {
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="prospects-{stamp}.csv"',
        }
        return Response(text, media_type="text/csv; charset=utf-8", headers=headers)

    def csv_of(self, query: Mapping[str, str]) -> tuple[str, str]:
        """The as of's date and every prospect of the URL's filters, in its sort, as CSV text.

        Raises:
            InputError, FileNotFoundError, ValueError: As :meth:`compute`.
        """
        filters = Filters.from_query(query)
        listing = Listing.from_query(query)
        with self.read.as_of_turn(filters.as_of):
            cut = self.read.cut(filters)
            choices.check_known(cut.known, cut.as_of, filters)
            p = self.read.prospects(filters)
            rows = None if listing.sort is None else listing.apply(p["rows"])
            text = self.read.prospects_csv(filters) if rows is None else csv_text(rows)
        return p["as_of"][:10], text

    async def login_form(self, request: Request) -> Response:
        if request.method == "GET":
            if self.token is None:
                return RedirectResponse("/", status_code=303)
            return _html(pages.login_page(_local(request.query_params.get("next", "/"))))
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return _html(pages.simple_page("Log in", "The form is too large."), 413)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        target = _local(form.get("next", "/"))
        if self.token is None:
            return RedirectResponse(target, status_code=303)
        if not session.token_ok(form.get("token", "").encode(), self.token):
            return _html(pages.login_page(target, "Wrong token."), 401)
        https = session.is_https(request.url.scheme, _raw_headers(request))
        response = RedirectResponse(target, status_code=303)
        response.raw_headers.append(
            (b"set-cookie", session.set_cookie(session.session_value(self.token), https))
        )
        return response

    async def logout(self, request: Request) -> Response:
        if not session.same_origin(_raw_headers(request)):
            return _html(pages.simple_page("Log out", "Log out from the dashboard's own page."), 403)
        response = RedirectResponse("/login" if self.token is not None else "/", status_code=303)
        https = session.is_https(request.url.scheme, _raw_headers(request))
        response.raw_headers.append((b"set-cookie", session.clear_cookie(https)))
        return response

    async def stylesheet(self, request: Request) -> Response:
        headers = {**SECURITY_HEADERS, "Cache-Control": "max-age=3600"}
        return Response(pages.stylesheet(), media_type="text/css", headers=headers)

    async def favicon(self, request: Request) -> Response:
        """No icon: ``204``, so that a browser's first visit logs no failed request."""
        return Response(status_code=204, headers={**SECURITY_HEADERS, "Cache-Control": "max-age=86400"})

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")


def as_of_process(
    conn: Connection, settings: Settings, refs: Mapping[str, Any], store: PageStore | None
) -> None:
    """The as-of process's main (:mod:`forecast.dashboard.worker`).

    A dashboard of its own, without a wait, over ``settings``' warehouse and registry and the
    server's page store (its pages are kept between runs too, under the champions the server noted,
    checked against the registry before each write as the server's are), answering the server's
    calls on ``conn``.
    """
    from functools import partial

    from forecast.dashboard.warm import champions

    dashboard = _Dashboard(settings, refs=refs, store=store)
    dashboard.read.check_champions(partial(champions, dashboard.read))
    serve(conn, dashboard)


def create_app(
    settings: Settings,
    reader: Reader | None = None,
    warm_every: float | None = EVERY_SECONDS,
    refs: Mapping[str, Any] | None = None,
    store: PageStore | None = None,
    wait_seconds: float | None = None,
) -> Starlette:
    """The dashboard for ``settings``' warehouse and registry.

    While the app runs (its lifespan: uvicorn's start to its stop, or a ``with TestClient(app)``
    block), a :class:`~forecast.dashboard.warm.Warmer` computes every page's default view ahead, then
    one filter of each kind (rep, team, region, source: what every filter of that kind needs), at
    start and after each change of the warehouse or of a champion; it is ``app.state.warmer``.

    Args:
        settings: Where the warehouse and the registry are; ``api_token`` turns the login on.
        reader: The data reader (default: a new one with its own cache).
        warm_every: How often the warm-up looks for a change, in seconds (``0``: only at start;
            ``None``: no warm-up, every page computed on its first visit).
        refs: The models named by role (``forecast dashboard --models``), when not a new ``reader``'s
            default champions (e.g. ``deal_win`` -> ``deal_win_maven`` on the Maven sample).
        store: Where a new ``reader`` also keeps whole pages between runs
            (:mod:`forecast.dashboard.store`; ``None``: in memory only).
        wait_seconds: How long a page request waits for its page before answering that it is being
            computed (:mod:`forecast.dashboard.deferred`; ``forecast dashboard`` and the HTTP service
            wait :data:`~forecast.dashboard.deferred.WAIT_SECONDS`); ``None``: until it is ready.
            With a wait, pages of another as of are computed in a child process
            (:mod:`forecast.dashboard.worker`, ``app.state.dashboard.worker``; stopped with the
            app's lifespan); without one, in this process.
    """
    app = _Dashboard(settings, reader, refs, store, wait_seconds)
    warmer = Warmer(app.read, warm_every, filtered=True) if warm_every is not None else None

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if warmer is not None:
            warmer.start()
        try:
            yield
        finally:
            if warmer is not None:
                warmer.stop()
            if app.worker is not None:
                app.worker.close()

    routes: list[Any] = [
        *(Route(path, app.page(path)) for path in PAGES),
        Route("/prospects.csv", app.prospects_csv),
        Route("/login", app.login_form, methods=["GET", "POST"]),
        Route("/logout", app.logout, methods=["POST"]),
        Route("/static/dashboard.css", app.stylesheet),
        Route("/healthz", app.healthz),
        Route("/favicon.ico", app.favicon),
    ]
    # links and redirects follow a mount point (the HTTP service's /dashboard); alone, a no-op
    made = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(RootedLinks)])
    made.state.warmer = warmer
    made.state.reader = app.read
    made.state.deferred = app.deferred
    made.state.dashboard = app
    return made


def _raw_headers(request: Request) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in request.headers.raw}
