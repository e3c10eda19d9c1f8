"""``forecast dashboard`` (the manager's pages) and ``forecast report`` (the weekly report file)."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from forecast.cli.main import (
    ModelsOpt,
    app,
    as_of_option,
    context_settings,
    fail,
    input_errors,
    refs_or_exit,
)
from forecast.dashboard.deferred import WAIT_SECONDS

if TYPE_CHECKING:
    from forecast.config import Settings

LOOPBACK = "127.0.0.1"
STOP_SECONDS = 2.0
"""How long a stopping dashboard waits for its warm-up's computation in progress to end."""

DASHBOARD_HELP = (
    "Serve the sales manager's dashboard: read-only pages (Overview, Reps, Pipeline, Insights, Models) "
    "over the warehouse (--warehouse) and the registry's champions, with the CLI's numbers. Filters "
    "live in the URL. With FORECAST_API_TOKEN set the pages need a login with the token; without "
    "one the dashboard listens on loopback only unless --host is given (docs/dashboard.md)."
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command(help=DASHBOARD_HELP)
def dashboard(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8050,
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default 127.0.0.1; another needs to be given explicitly)."),
    ] = None,
    models: ModelsOpt = None,
    keep: Annotated[
        bool,
        typer.Option(
            "--keep/--no-keep",
            help="Keep computed pages in <data dir>/dashboard-cache, so that a restart over the same "
            "warehouse, champions, code and configuration reads them back instead of computing them.",
        ),
    ] = True,
    wait: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Seconds a page request waits for its figures; a view that takes longer (another as "
            "of on a large CRM: minutes) answers at once with a page that says it is being computed "
            "and reloads itself until it is ready.",
        ),
    ] = WAIT_SECONDS,
    prepare: Annotated[
        bool,
        typer.Option(
            "--prepare",
            help="Compute the pages a server's warm-up computes into the page store, then exit (no "
            "server): the batch's last step, so that the next dashboard over the same warehouse and "
            "champions reads its pages back at once instead of computing them (docs/dashboard.md).",
        ),
    ] = False,
    hold: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=24 * 60.0,
            help="Pause running dashboards' warm-up over this warehouse for at most these minutes, "
            "then exit (no server): the batch's first step, before it writes the warehouse; its "
            "--prepare ends the pause (a dead batch's lapses at the deadline). 0 ends it now "
            "(docs/deploy.md).",
        ),
    ] = None,
) -> None:
    """Start the dashboard in this process until interrupted (``--prepare``: fill its store; ``--hold``)."""
    from forecast.dashboard.store import MODEL_ROLES, default_store

    settings = context_settings(ctx)
    refs = refs_or_exit(False, MODEL_ROLES, None, models)
    if hold is not None:  # before the batch's first write: the warehouse may not exist yet
        if prepare or not keep:
            fail(
                False,
                "--hold opens a batch's window and --prepare ends it (--no-keep has no store to hold): "
                "run them as separate steps",
            )
        _hold(settings, refs, hold)
        return
    if not settings.warehouse.is_file():
        fail(False, f"no warehouse at {settings.warehouse}: run `forecast ingest` (or `forecast run`) first")
    if prepare:
        if not keep:
            fail(False, "--prepare writes the page store and --no-keep turns it off: drop one of the two")
        _prepare(settings, refs)
        return
    import uvicorn

    from forecast.dashboard.app import create_app

    try:
        store = default_store(settings, refs) if keep else None
        application = create_app(settings, refs=refs, store=store, wait_seconds=wait)
    except ValueError as exc:  # a blank FORECAST_API_TOKEN
        fail(False, str(exc))
    bind = host or LOOPBACK
    if not is_loopback(bind) and settings.api_token is None:
        print(
            f"forecast: warning: the dashboard listens on {bind} without FORECAST_API_TOKEN: anyone who "
            "reaches this address reads the pages",
            file=sys.stderr,
            flush=True,
        )
    login = " (log in with FORECAST_API_TOKEN)" if settings.api_token is not None else ""
    print(f"forecast: dashboard on http://{bind}:{port}/{login}", file=sys.stderr, flush=True)
    code = 0
    try:
        uvicorn.run(application, host=bind, port=port, log_level="warning", access_log=False)
    except KeyboardInterrupt:  # uvicorn 0.54 returns after a Ctrl-C; another version may raise it
        code = 130
    _exit_past_the_warm_up(application, code)


def _exit_past_the_warm_up(application: Any, code: int) -> None:
    """Exit with ``code``, not waiting for a computation in progress.

    A daemon thread still inside DuckDB's or LightGBM's C++ code when the interpreter finalises
    aborts the process ("terminate called without an active exception", exit 134): the warm-up's,
    or a page computed in the background. The warm-up is asked to stop and given
    :data:`STOP_SECONDS`; the as-of process is closed; then, with such a thread still alive, the
    process leaves at once after flushing the logs (a page in progress is not kept: the store never
    holds a partial file).
    """
    import logging
    import os
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
    warmer = getattr(application.state, "warmer", None)
    worker = getattr(getattr(application.state, "dashboard", None), "worker", None)
    if warmer is not None:
        warmer.stop(timeout=STOP_SECONDS)
    if worker is not None:
        worker.close()
    main = threading.main_thread()
    if any(t.daemon and t is not main and t.is_alive() for t in threading.enumerate()):
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if code:
        raise typer.Exit(code)


def _prepare(settings: Settings, refs: dict[str, Any]) -> None:
    """``forecast dashboard --prepare``: the warm-up's views into the store.

    Exits 2 on bad input (a busy warehouse, one without data, a ``--models`` model the registry
    does not hold), 1 when the pages were not all kept (the state moved meanwhile, the store could
    not be written) or on a bug.
    """
    from forecast.dashboard.data import Reader
    from forecast.dashboard.store import default_store
    from forecast.dashboard.warm import prepare
    from forecast.tracking.periods import PeriodError

    with input_errors(False, (PeriodError, FileNotFoundError, ValueError)):
        reader = Reader(settings, refs=refs, store=default_store(settings, refs))
        unknown = [
            f"{ref.option} {role}={ref}"
            for role, ref in refs.items()
            if ref.explicit and not _held(reader, role)
        ]
        if unknown:
            fail(
                False,
                f"{', '.join(unknown)}: the registry holds no such model version (see the Models page)",
            )
        done = prepare(reader)
    summary = (
        f"{done.kept} results kept in {done.store} ({done.assembled} pages put together from "
        f"{done.computed} figures computed), {done.loaded} read back, in {done.seconds:.1f} s"
    )
    if not done.ok:
        unwritten = f" ({done.not_kept} computed, not written)" if done.not_kept else ""
        fail(
            False,
            f"the dashboard's pages were not all kept{unwritten}: the warehouse or a champion changed "
            "meanwhile, the registry could not be read, or the store could not be written (any error "
            f"is logged above); run it again. {summary}",
            1,
        )
    print(f"forecast: dashboard pages prepared: {summary}", file=sys.stderr, flush=True)
    if done.missing:
        print(
            f"forecast: {done.missing} results show something missing (a model the forecast or the flags "
            "could not use, or a registry that did not answer: the pages say which) and are not kept: a "
            "visit computes them",
            file=sys.stderr,
            flush=True,
        )


def _hold(settings: Settings, refs: dict[str, Any], minutes: float) -> None:
    """``forecast dashboard --hold``: ask running dashboards' warm-ups to wait for the batch."""
    from datetime import UTC, datetime

    from forecast.dashboard.store import default_store

    store = default_store(settings, refs)
    until = store.hold(minutes * 60.0)
    if minutes == 0:
        if store.held_until() is not None:
            fail(False, f"the hold in {store.hold_folder} could not be removed (logged above)", 1)
        print(
            f"forecast: no hold on the dashboard's pages ({store.hold_folder})", file=sys.stderr, flush=True
        )
        return
    if until is None:
        fail(False, f"the hold could not be written in {store.hold_folder} (logged above)", 1)
    at = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
    print(
        f"forecast: running dashboards over {settings.warehouse} pause their warm-up until "
        f"`forecast dashboard --prepare` ends, or {at} at the latest ({store.hold_folder})",
        file=sys.stderr,
        flush=True,
    )


def _held(reader: Any, role: str) -> bool:
    """Whether the registry resolves the model named for ``role`` (its version or alias)."""
    from forecast.dashboard.warm import champions

    return all(version is not None for name, version in champions(reader) if name.startswith(f"{role}="))


REPORT_HELP = (
    "Write the weekly report: the dashboard's Overview, Reps and Insights for one as of and period as ONE "
    "self-contained HTML file (stylesheet and charts inline, no link or external reference) that can be "
    "mailed, with the headline figures against the previous period; --rep, --team, --region and --source "
    "narrow it as the dashboard's filters do; --pdf also prints it beside the HTML with headless Chromium "
    "(docs/dashboard.md)."
)


@app.command(help=REPORT_HELP)
def report(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write (atomically).")],
    period: Annotated[
        str,
        typer.Option(
            help="Tracking period: day, week, month, quarter (the last complete one) or "
            "YYYY-MM-DD..YYYY-MM-DD."
        ),
    ] = "week",
    as_of: Annotated[
        str | None,
        as_of_option("Report as known at this time (default: midnight after the warehouse's last day)."),
    ] = None,
    pdf: Annotated[
        bool, typer.Option("--pdf", help="Also print the report to the same name with .pdf (Chromium).")
    ] = False,
    horizon: Annotated[
        str, typer.Option(help="The revenue forecast's period length: week, month or quarter.")
    ] = "month",
    rep: Annotated[str | None, typer.Option(help="Narrow the figures to this rep (a rep id).")] = None,
    team: Annotated[str | None, typer.Option(help="Narrow the figures to this team.")] = None,
    region: Annotated[str | None, typer.Option(help="Narrow the figures to this region.")] = None,
    source: Annotated[
        str | None, typer.Option(help="Narrow the figures to this source (of the leads and deals).")
    ] = None,
) -> None:
    """Write ``out`` (and its PDF with ``--pdf``).

    The filters are the dashboard's (``Filters.from_query``, the pages' query string), checked as the
    pages check them: an unknown value, or a rep outside the given team or region, exits 2 naming
    the option and the value.
    """
    from forecast.dashboard import pdf as printing
    from forecast.dashboard.data import Filters, Reader
    from forecast.dashboard.report import report_html
    from forecast.io import write_text
    from forecast.tracking.periods import PeriodError

    settings = context_settings(ctx)
    if not settings.warehouse.is_file():
        fail(False, f"no warehouse at {settings.warehouse}: run `forecast ingest` (or `forecast run`) first")
    if out.suffix.lower() not in (".html", ".htm"):
        fail(False, f"--out {out}: the report is HTML, name it *.html")
    browser = None
    if pdf:
        try:
            browser = printing.require_browser()  # before the work, not after it
        except printing.BrowserMissingError as exc:
            fail(False, str(exc))
    with input_errors(False, (PeriodError,)):
        given = {"rep": rep, "team": team, "region": region, "source": source}
        query = {"as_of": as_of or "", "period": period, "horizon": horizon}
        filters = Filters.from_query({**query, **{k: v or "" for k, v in given.items()}})
        html = report_html(Reader(settings), filters)
    write_text(out, html)
    print(f"forecast: report written to {out}", file=sys.stderr, flush=True)
    if browser is not None:
        target = out.with_suffix(".pdf")
        try:
            printing.print_pdf(out, target, browser)
        except RuntimeError as exc:
            fail(False, str(exc), code=1)
        print(f"forecast: PDF written to {target}", file=sys.stderr, flush=True)
