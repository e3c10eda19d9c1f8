"""Compute the pages' default views ahead: at the dashboard's start and after each data change.

A cold page is slow (the Overview runs the whole ``forecast revenue``), so a daemon thread computes
what the default view of every page needs (no filter: the default as-of, period and horizon) into
the reader's cache (:class:`~forecast.dashboard.data.Reader`) before anyone asks:

- at start, then whenever the state moves: the warehouse file's modification time (an ingest), or a
  champion alias of the registry (a promotion), looked at every ``every_seconds``, and at once when
  a request sees a new warehouse state first (it computes its own page; the warm-up the others);
- after the default views, one filter of each kind (:func:`filtered_pages`) and the filter form's
  other periods and horizons of the default view (:func:`period_pages`);
- one page at a time, in the background's turn: a request that arrives meanwhile computes before
  the warm-up's next item, and a request for the item being computed waits for it instead of
  repeating it (so it waits at most for that one item);
- an error is logged and the warm-up goes on with the next page; the state is tried again at the
  next look (an ingest still writing the file, for one), up to :data:`TRIES` times;
- while a batch's :func:`prepare` of the same page store runs (another process), it waits before
  each view, then reads the batch's pages back instead of computing them beside it;
- :meth:`Warmer.stop` ends it after the item in progress; nothing starts at import.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from forecast.dashboard import compare
from forecast.dashboard.data import Filters, Reader

log = logging.getLogger(__name__)

EVERY_SECONDS = 10.0
"""How often the warehouse and the champions are looked at (a file's time and one query a model)."""
TRIES = 3
"""Warm-ups of one state that may fail before the next is left for a change of state (no log flood)."""
BATCH_WAIT_SECONDS = 3600.0
"""How long one warm-up waits in all for a batch's prepare of the same store before computing anyway."""


def default_pages(reader: Reader) -> list[tuple[str, Callable[[], Any]]]:
    """What each page's default view computes, by page, the Overview (the first page opened) first."""
    default = Filters()
    return [
        ("cut", lambda: reader.cut(default)),  # every page's filter form
        ("overview", lambda: reader.overview(default)),
        ("overview changes", lambda: compare.overview_changes(reader, default)),
        ("reps", lambda: reader.reps(default)),
        ("reps changes", lambda: compare.reps_changes(reader, default)),
        ("pipeline", lambda: reader.pipeline(default)),
        ("prospects", lambda: reader.prospects(default)),
        ("prospects.csv", lambda: reader.prospects_csv(default)),
        ("activity", lambda: reader.activity(default)),
        ("insights", lambda: reader.insights(default)),
    ]


def filtered_pages(reader: Reader, reports_when_kept: bool = True) -> list[tuple[str, Callable[[], Any]]]:
    """What a filtered view of the default as-of and period computes, once per kind of filter.

    A filtered page follows its filter's grouping (a team filter: the tables and the forecast by
    team). The warm-up computes the whole reports of each kind of filter (:meth:`Reader.whole_reports`)
    and the pages with one filter of each kind (the first rep, team, region and source of the
    warehouse): every other filter of that kind then finds its figures too (its rows taken from
    the whole reports; a rep's own pacing line aside, a few milliseconds). The reports come first,
    so that the pages take their rows from them; but where the store holds every one of those
    pages (:mod:`forecast.dashboard.store`: a restart), the pages come first, read back in moments,
    and the reports (a CRM read) after them; without ``reports_when_kept`` (a batch's
    :func:`prepare`, whose process ends), not at all, since only this process would use them.
    """
    firsts = reader.cut(Filters()).known  # sorted values each filter takes
    out: list[tuple[str, Callable[[], Any]]] = []
    reports: list[tuple[str, Callable[[], Any]]] = []
    kept = True
    for key, values in firsts.items():
        if not values:
            continue
        filters = Filters(**{key: values[0]})
        for page in ("overview", "reps", "pipeline", "activity"):
            out.append((f"{page}?{key}", partial(getattr(reader, page), filters)))
            kept = kept and reader.kept(reader.page_key(page, filters))
        for page, changes in (("overview", compare.overview_changes), ("reps", compare.reps_changes)):
            out.append((f"{page} changes?{key}", partial(changes, reader, filters)))
            kept = kept and reader.kept(reader.page_key(f"{page} changes", filters))
        reports.append((f"reports?{key}", partial(reader.whole_reports, filters)))
    if kept and out:
        return out + reports if reports_when_kept else out
    return reports + out


OTHER_PERIODS = ("week", "quarter")
"""The filter form's other named periods (``month`` is the default's figures, ``day`` a cheap one)."""
OTHER_HORIZONS = ("week", "quarter")
"""The forecast's other period lengths the form offers (``month`` is the default)."""


def period_pages(reader: Reader) -> list[tuple[str, Callable[[], Any]]]:
    """The unfiltered pages of the default as-of for the form's other periods and horizons.

    Another period recomputes the reports of that period (the Overview 19-25 s at 1M leads, the
    Activity page 5 s); another horizon, the revenue forecast (the Overview 1-22 s there). They
    share the default view's CRM read, so they come after the default and filtered views, and the
    store keeps them like any page.
    """
    out: list[tuple[str, Callable[[], Any]]] = []
    for period in OTHER_PERIODS:
        filters = Filters(period=period)
        for page in ("overview", "reps", "pipeline", "prospects", "activity", "insights"):
            out.append((f"{page}?period={period}", partial(getattr(reader, page), filters)))
        out.append((f"overview changes?period={period}", partial(compare.overview_changes, reader, filters)))
        out.append((f"reps changes?period={period}", partial(compare.reps_changes, reader, filters)))
    for horizon in OTHER_HORIZONS:
        out.append((f"overview?horizon={horizon}", partial(reader.overview, Filters(horizon=horizon))))
    return out


def champions(reader: Reader) -> tuple[tuple[str, str | None], ...]:
    """Each model's version the pages read, as the registry resolves them now.

    Each registered model's champion, then each model named by role (``--models``: its version, or
    what its alias points to), every one as ``version:run`` (``None``: none), so that a registry
    rebuilt with the same version numbers is another state too.
    """
    from forecast.registry import CHAMPION, client, version_by_alias

    def named(v: Any) -> str | None:
        return None if v is None else f"{v.version}:{v.run_id}"

    from forecast.flags.job import load_flags_config

    churn = load_flags_config(settings=reader.settings).churn_risk  # the flags' models, by flags.yaml
    names = [*reader.model_names(), *(n for n in (churn.deal_model, churn.lead_model) if n)]
    out = [(name, named(version_by_alias(name, CHAMPION, reader.settings))) for name in dict.fromkeys(names)]
    for role, ref in sorted(reader.refs.items()):
        if getattr(ref, "version", None) is not None:
            try:
                found = client(reader.settings).get_model_version(ref.name, ref.version)
            except Exception:  # no such version: the pages say so themselves
                found = None
        else:
            found = version_by_alias(str(ref.name), str(getattr(ref, "alias", CHAMPION)), reader.settings)
        out.append((f"{role}={ref}", named(found)))
    return tuple(out)


class Warmer:
    """The daemon thread that keeps the reader's default views computed (see the module)."""

    def __init__(
        self,
        reader: Reader,
        every_seconds: float = EVERY_SECONDS,
        registry: Callable[[Reader], tuple[tuple[str, str | None], ...]] | None = champions,
        filtered: bool = False,
        periods: bool | None = None,
        strict: bool = False,
    ) -> None:
        """A warm-up of ``reader``'s default views.

        Args:
            reader: The reader whose cache is filled.
            every_seconds: How often the state is looked at (``<= 0``: warm once, at start).
            registry: Reads the champions (``None``: the registry is not watched).
            filtered: Also warm one filter of each kind after the default views
                (:func:`filtered_pages`); a failure there is logged and counted in :attr:`errors` but
                does not hold back the state's warm-up.
            periods: Also warm the other periods and horizons of the default view after those
                (:func:`period_pages`; ``None``: as ``filtered``), failures counted the same way.
            strict: Raise a view's error instead of logging it and going on (a batch's
                :func:`prepare`: one busy warehouse is one clear error, not a log of each view).
        """
        self.reader = reader
        self.every_seconds = every_seconds
        self.filtered = filtered
        self.periods = filtered if periods is None else periods
        self.strict = strict
        self.default_seconds: float | None = None
        """How long the default views of the last complete warm-up took (the filtered ones after)."""
        self.registry = registry
        self.warmed: tuple[int, int] | None = None
        """The state whose default views were all computed last (``None``: none yet)."""
        self.seconds: float | None = None
        """How long the last complete warm-up took."""
        self.errors = 0
        """Pages whose warm-up failed (logged), over the thread's life."""
        self._failed: tuple[tuple[int, int] | None, int] = (None, 0)  # the failing state, its tries
        self._batch_deadline: float | None = None  # when this warm-up stops waiting for a prepare
        self._stop = threading.Event()
        self._wake = threading.Event()  # a request saw a new state: look now, not at the next tick
        reader.on_new_state(self._wake.set)
        self._done = threading.Condition()
        self._thread: threading.Thread | None = None
        if registry is not None:
            reader.check_champions(partial(registry, reader))

    def start(self) -> None:
        """Start the thread (once; again after :meth:`stop` is a no-op)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="forecast-dashboard-warm", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the computation in progress; wait up to ``timeout`` seconds for the thread."""
        self._stop.set()
        self._wake.set()
        with self._done:
            self._done.notify_all()
        if self._thread is not None and timeout is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the current state's default views are computed (``False``: timeout or stopped)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._done:
            while self.warmed != self._state():
                left = None if deadline is None else deadline - time.monotonic()
                if self._stop.is_set() or (left is not None and left <= 0):
                    return False
                self._done.wait(1.0 if left is None else min(left, 1.0))
            return True

    def _state(self) -> tuple[int, int] | None:
        try:
            return self.reader.state()
        except OSError:
            return None

    def look(self) -> tuple[int, int]:
        """Note the champions (when watched) and return the state to warm."""
        if self.registry is not None:
            try:
                if self.reader.note_champions(self.registry(self.reader)):
                    log.info("a champion changed: the dashboard recomputes its default views")
            except Exception:  # the registry unreachable: the pages say so themselves
                if self.strict:
                    raise
                log.exception("reading the registry's champions failed")
        return self.reader.state()

    def warm_once(self) -> bool:
        """Compute every page's default view for the current state, if not done yet.

        Returns:
            Whether every page's default view is now computed for the state.
        """
        state = self.look()
        if state == self.warmed:
            return True
        if self._failed[0] == state and self._failed[1] >= TRIES:
            return False  # it failed TRIES times: wait for the data or a champion to change
        started, failed = time.perf_counter(), 0
        self._batch_deadline = None  # set when the prepare's lock is first seen held
        with self.reader.background():
            for name, compute in default_pages(self.reader):
                if not self._after_the_batch():
                    return False
                try:
                    compute()
                except Exception:  # a request shows the same error as a page; try again next look
                    if self.strict:
                        raise
                    failed += 1
                    log.exception("warming the dashboard's %s page failed", name)
        self.errors += failed
        if failed:
            tries = self._failed[1] + 1 if self._failed[0] == state else 1
            self._failed = (state, tries)
            return False
        defaults = time.perf_counter() - started
        listing = partial(filtered_pages, reports_when_kept=False) if self.strict else filtered_pages
        if self.filtered and not self._warm_more(listing, state):
            return False
        if self.periods and not self._warm_more(period_pages, state):
            return False
        if self.reader.state() != state:  # the data moved meanwhile: warm again
            return False
        with self._done:
            self.warmed, self.seconds = state, time.perf_counter() - started
            self.default_seconds = defaults
            self._done.notify_all()
        log.info("dashboard default views computed in %.1f s", self.seconds)
        return True

    def _warm_more(
        self, listing: Callable[[Reader], list[tuple[str, Callable[[], Any]]]], state: tuple[int, int]
    ) -> bool:
        """Compute the views ``listing`` names for ``state``; failures are logged and counted.

        Returns:
            ``False`` when stopped, or when the state moved (an ingest, a promotion): the next
            warm-up then computes the new state's default views first, not these views.
        """
        with self.reader.background():
            try:
                pages = listing(self.reader)
            except Exception:
                if self.strict:
                    raise
                self.errors += 1
                log.exception("listing the dashboard's views to warm failed")
                return True
            for name, compute in pages:
                if not self._after_the_batch() or self._state() != state:
                    return False
                try:
                    compute()
                except Exception:
                    if self.strict:
                        raise
                    self.errors += 1
                    log.exception("warming the dashboard's %s page failed", name)
        return True

    def _after_the_batch(self) -> bool:
        """Wait while a batch writes the warehouse or prepares this store's pages (``False``: stopped).

        The batch (:func:`prepare`, in another process) computes the same views; waiting for it and
        then reading its pages back saves computing them twice at once. It is waited for while its
        prepare holds the store's lock, up to :data:`BATCH_WAIT_SECONDS` over the whole warm-up from
        the lock's first sight (a hung prepare delays it once, not before each view; a hold's wait
        before it does not count), and while a hold it asked for at its start lasts
        (:meth:`~forecast.dashboard.store.PageStore.hold`: ``forecast dashboard --hold``, up to the
        deadline it set). A prepare itself (``strict``) and a reader without a store do not wait.
        """
        store = self.reader.store
        if self.strict or store is None:
            return not self._stop.is_set()
        told = ""
        while not self._stop.is_set():
            locked = store.prepare_running()
            if locked and self._batch_deadline is None:  # the cap runs from the first sight of the lock
                self._batch_deadline = time.monotonic() + BATCH_WAIT_SECONDS
            if locked and time.monotonic() < (self._batch_deadline or 0.0):
                why = "a batch prepares the dashboard's pages"
            elif store.held_until() is not None:
                why = "a batch holds the dashboard's pages until its prepare (forecast dashboard --hold)"
            else:
                if locked and told:
                    log.warning("the batch's prepare still holds the page store: the warm-up computes")
                break
            if why != told:
                log.info("%s: the warm-up waits to read them back", why)
                told = why
            self._stop.wait(1.0)
        return not self._stop.is_set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # a wake during this warm-up makes the next look come at once
            try:
                self.warm_once()
            except Exception:  # never let the thread die of one bad look
                log.exception("the dashboard warm-up failed")
            if self.every_seconds <= 0:
                break
            self._wake.wait(self.every_seconds)
        with self._done:
            self._done.notify_all()


@dataclass(frozen=True, slots=True)
class Prepared:
    """What :func:`prepare` did.

    Attributes:
        ok: Whether every view is now in the store for the state it was computed in: each page
            kept, read back, or showing something missing (``False``: the warehouse or a champion
            changed meanwhile, the store could not be written, or nothing was kept at all).
        seconds: How long it took.
        computed: Figures computed (a CRM read, a report, a forecast).
        assembled: Pages put together from figures.
        loaded: Results read back from the store (kept by an earlier run).
        kept: Results written to the store.
        not_kept: Results of a kind the store keeps that were not written (see ``ok``).
        missing: Results not kept because they show something missing (no champion of deal win or
            time to close, a registry that did not answer): a visit computes them.
        store: The store's folder for this warehouse (``None``: no store, nothing kept).
    """

    ok: bool
    seconds: float
    computed: int
    assembled: int
    loaded: int
    kept: int
    not_kept: int
    missing: int
    store: str | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``forecast run --json``'s ``dashboard``)."""
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "computed": self.computed,
            "assembled": self.assembled,
            "loaded": self.loaded,
            "kept": self.kept,
            "not_kept": self.not_kept,
            "missing": self.missing,
            "store": self.store,
        }


def prepare(
    reader: Reader, registry: Callable[[Reader], tuple[tuple[str, str | None], ...]] | None = None
) -> Prepared:
    """Compute, in this thread, every view a server's warm-up computes, into ``reader``'s store.

    The batch side of the page store (``forecast dashboard --prepare``, and the main job's last
    step): the default views, one filter of each kind with the whole reports, and the form's other
    periods and horizons, for the warehouse and champions as they are now. A dashboard started
    afterwards over the same warehouse, champions, settings, configuration and code reads each
    page back instead of computing it (seconds at a million leads instead of minutes). Run it after
    the last write to the warehouse (an ingest, a score write-back): a later write is another state.

    Args:
        reader: A reader with a store (without one the views are computed and dropped).
        registry: Reads the champions (default :func:`champions`, the server's warm-up's).

    Returns:
        What was done (:class:`Prepared`; ``ok`` says whether the store now holds it).

    Raises:
        Exception: The first view's error, as a page would show it (e.g.
            :class:`~forecast.data.warehouse.WarehouseBusyError` while another process writes).
    """
    started = time.perf_counter()
    warmer = Warmer(reader, 0, registry or champions, filtered=True, periods=True, strict=True)
    with reader.store.preparing() if reader.store is not None else contextlib.nullcontext():
        warmed = warmer.warm_once()
    ok = warmed and reader.unsaved == 0 and reader.saved + reader.loaded > 0
    return Prepared(
        ok=ok and warmer.look() == warmer.warmed,  # and no champion moved after the last write
        seconds=time.perf_counter() - started,
        computed=reader.computed,
        assembled=reader.assembled,
        loaded=reader.loaded,
        kept=reader.saved,
        not_kept=reader.unsaved,
        missing=reader.missing,
        store=None if reader.store is None else str(reader.store.folder),
    )
