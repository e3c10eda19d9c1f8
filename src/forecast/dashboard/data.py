"""What the dashboard shows, read through the functions the CLI calls: no metric of its own.

Every figure comes from the code behind a command (docs/dashboard.md lists which):

- the revenue forecast, goals and pacing from :func:`forecast.revenue.job.revenue_job` (``forecast revenue``,
  with its default simulations and seed, so the numbers are the CLI's);
- flags from :func:`forecast.flags.job.flags_job` (``forecast flags``);
- tracking tables from :func:`forecast.tracking.api.report` (``forecast metrics``) and insights from
  :func:`forecast.tracking.insights.insights` (``forecast insights``);
- the models from the registry (:func:`forecast.registry.model_info`, the champions' runs).

What the warehouse or the registry lacks (no quotas, no champion, no warehouse) is a :class:`Missing`
with a sentence saying what to do, never a zero. Results are cached per warehouse state (its file's
modification time), as of and filters: the warehouse is read-only here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

import duckdb
import pandas as pd

from forecast.config import Settings
from forecast.errors import InputError
from forecast.models.names import DEAL_WIN, MODEL_NAMES, TIME_TO_CLOSE
from forecast.timeutil import parse_time
from forecast.tracking.data import ALL_LABEL, TrackingData
from forecast.tracking.periods import Period, named_kind

if TYPE_CHECKING:
    from forecast.dashboard.store import PageStore
    from forecast.tracking.sql_cut import SqlCut

SIMULATIONS = 10_000
"""``forecast revenue``'s default number of simulations (with its default seed 0): the same numbers."""
WIN_LEVEL = "deal_win"
"""``forecast revenue --win-level``'s default: where the open deals' win probability comes from."""
PERIODS = 3
"""Periods forecast ahead (``forecast revenue``'s default)."""
HORIZONS = ("week", "month", "quarter")
SCOPES = ("rep", "team", "region", "source")
"""The filters that narrow the figures to a group, most specific first. They compose: the lists
(prospects, reps) keep the rows every given filter matches; a grouped table or the forecast follows the
most specific given (:attr:`Filters.scope`), and a page says which other filter it could not apply."""
REP_SCOPES = ("rep", "team", "region")
"""The filters a rep belongs to (a rep is in one team and one region: the most specific implies the rest)."""
REVENUE_GROUPS = ("rep", "team", "region")
"""The groupings the revenue forecast can be split by (``forecast revenue --group``)."""
PAGE_SIZE = 100
"""Prospects per page (the CSV export has them all)."""
PROSPECT_COLUMNS = (
    "kind",
    "rep",
    "team",
    "status",
    "score",
    "score_band",
    "last_contact",
    "days_since_contact",
    "next_action",
    "next_action_at",
    "deal_size",
    "expected_close",
    "web_visits_30d",
    "pricing_views_30d",
    "social_actions_30d",
    "last_engagement",
)
"""The Prospects page's columns after the id (the CSV export has every column of the report)."""
PROSPECT_SORTS = ("prospect_id", *PROSPECT_COLUMNS, "region", "source", "channel", "created_at")
"""The columns the Prospects page sorts by (``?sort=col``, ``?sort=-col`` descending)."""
NO_SCORE = "no score yet: run forecast score leads --write-back"
NO_ACTIVITIES = (
    "no activity (call, email, meeting) is recorded in the warehouse up to the as of: the activity "
    "figures are left out or blank, never zeros"
)
NO_LEADS = (
    "no lead is recorded in the warehouse up to the as of (a source of deals only): the lead figures "
    "are left out, and a count of leads or prospects of 0 means that"
)
ACTIVITY_COLUMNS = (
    "calls",
    "emails_sent",
    "reply_rate",
    "meetings_completed",
    "meeting_held_rate",
    "selling_hours",
)
"""The per-rep figures counted from activities (a source without activities has none, not zeros)."""
WHOLE_REPORTS = (("performance", True), ("process", True), ("effectiveness", False), ("funnel", False))
"""The reports a filtered view reads grouped by its filter, and whether the previous period's too
(the comparison with the period before): :meth:`Reader.whole_reports`."""
PERSISTED = ("page", "prospects.csv", "revenue", "flags", "insights")
"""The kinds of result a :class:`~forecast.dashboard.store.PageStore` keeps on disk: whole pages
(and the small cut every page's form reads), and the three documents an Overview of another filter
would otherwise compute again (the forecast of a grouping, every group at once; the flags; the
insights of the period, which the Overview reads apart from the Insights page); not the CRM read or
the reports the pages come from."""
CUTS = ("tracking", "crm")
"""The kinds of held results that are a whole cut of the CRM at an as of (gigabytes on a large CRM)."""
NO_FORECAST = (
    "No forecast yet: train deal-win and time-to-close to see the forecast "
    "(forecast train deal-win --promote; forecast train time-to-close --promote)."
)

if TYPE_CHECKING:
    from forecast.revenue.engine import DealModels

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Missing:
    """Data the warehouse or the registry does not hold, and what to do about it."""

    message: str
    detail: str = ""


@dataclass(frozen=True)
class Filters:
    """The page's filters, all from the URL's query string.

    Attributes:
        as_of: ``--as-of`` (default: midnight after the warehouse's last day).
        period: The tracking period (``--period``: day, week, month, quarter or D1..D2; default: the
            last complete month).
        horizon: The revenue forecast's period length (``forecast revenue --by``).
        rep, team, region, source: Narrow the figures to one group.
    """

    as_of: str | None = None
    period: str | None = None
    horizon: str = "month"
    rep: str | None = None
    team: str | None = None
    region: str | None = None
    source: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Filters:
        """The filters of a query string (empty values are absent).

        Raises:
            InputError: An unknown horizon, or an as-of that is not a time.
        """
        values = {k: (query.get(k) or "").strip() or None for k in ("as_of", "period", *SCOPES)}
        horizon = (query.get("horizon") or "month").strip() or "month"
        if horizon not in HORIZONS:
            raise InputError(f"'{horizon}': use week, month or quarter", parameter="horizon")
        made = cls(horizon=horizon, **values)
        made.when()  # check it now: a bad as-of is the request's fault
        return made

    def when(self) -> pd.Timestamp | None:
        """The as-of time, or ``None`` for the warehouse's default."""
        return None if self.as_of is None else parse_time(self.as_of, "as_of")

    @property
    def scopes(self) -> list[tuple[str, str]]:
        """Every group filter given, ``(grouping, value)``, most specific first."""
        return [(key, getattr(self, key)) for key in SCOPES if getattr(self, key) is not None]

    @property
    def scope(self) -> tuple[str, str] | None:
        """The most specific group filter given (what a grouped table follows), or ``None`` for everyone."""
        scopes = self.scopes
        return scopes[0] if scopes else None

    def unapplied(self, applied: tuple[str, ...], what: str) -> list[str]:
        """Notes for the given filters that ``what`` does not follow.

        ``applied`` are the groupings it follows; a rep-level filter is implied by a more specific one
        (a rep's team and region: :meth:`Reader.tracking` refuses a rep outside the team or region).
        """
        scope = self.scope
        implied = REP_SCOPES[REP_SCOPES.index(scope[0]) :] if scope and scope[0] in REP_SCOPES else ()
        return [
            f"{what}: not split by {key}, so the {key} filter ({value}) does not apply"
            for key, value in self.scopes
            if key not in applied and not (key in implied and scope is not None and scope[0] in applied)
        ]

    def query(self, **changes: Any) -> str:
        """The query string of these filters with ``changes`` (``""`` when nothing is set)."""
        merged = replace(self, **changes) if changes else self
        pairs = [(k, getattr(merged, k)) for k in ("as_of", "period", "horizon", *SCOPES)]
        kept = [(k, v) for k, v in pairs if v is not None and not (k == "horizon" and v == "month")]
        return "?" + urlencode(kept) if kept else ""

    def key(self) -> tuple[str | None, ...]:
        """A hashable form for caches.

        A named period has one spelling (``Week``, `` week``: ``week``), and ``month``, which names
        the default's period (the last complete month), is the default (:func:`period_key`).
        """
        period = period_key(self.period)
        return (self.as_of, period, self.horizon, self.rep, self.team, self.region, self.source)


HORIZON_PAGES = frozenset({"overview"})
"""The pages whose figures depend on the forecast's horizon (its forecast and pacing)."""


def _key_for(name: str, filters: Filters) -> tuple[str | None, ...]:
    """The filters' cache key for page ``name``: without the horizon unless the page reads it."""
    return (filters if name in HORIZON_PAGES else replace(filters, horizon="month")).key()


def period_key(spec: str | None) -> str | None:
    """The period ``spec`` as the page caches key it: the same period, one spelling.

    A named period is its kind as :func:`~forecast.tracking.periods.parse_period` reads it
    (:func:`~forecast.tracking.periods.named_kind`); ``month`` is the default's period (``None``);
    anything else (a range) is kept as written.
    """
    kind = named_kind(spec)
    if kind is None:
        return spec
    return None if kind == "month" else kind


@dataclass(frozen=True)
class Listing:
    """How a long list is shown: its sort (``?sort=col`` or ``-col``) and page (``?page=``, from 1)."""

    sort: str | None = None
    page: int = 1

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Listing:
        """The sort and page of a query string.

        Raises:
            InputError: A column the list cannot be sorted by, or a page that is not a positive integer.
        """
        sort = (query.get("sort") or "").strip() or None
        if sort is not None and sort.removeprefix("-") not in PROSPECT_SORTS:
            raise InputError(f"'{sort}': sort by one of {', '.join(PROSPECT_SORTS)}", parameter="sort")
        raw = (query.get("page") or "1").strip() or "1"
        if not raw.isdigit() or int(raw) < 1:
            raise InputError(f"'{raw}': a page is a positive integer", parameter="page")
        return cls(sort, int(raw))

    @property
    def column(self) -> str | None:
        """The sort column (``None``: the report's own order)."""
        return None if self.sort is None else self.sort.removeprefix("-")

    @property
    def descending(self) -> bool:
        """Whether the sort is descending (``-col``)."""
        return self.sort is not None and self.sort.startswith("-")

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` sorted (stable, blanks last); the report's order without a sort."""
        column = self.column
        if column is None or column not in frame.columns:
            return frame
        return frame.sort_values(
            column, ascending=not self.descending, kind="stable", na_position="last"
        ).reset_index(drop=True)


@dataclass
class Overview:
    """The Overview page's numbers."""

    as_of: str
    period: str
    group: str | None
    figures: dict[str, Any]
    forecast: list[dict[str, Any]] | Missing
    pacing: list[dict[str, Any]] | Missing
    flags: dict[str, Any] | Missing
    insights: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    has_leads: bool = True
    """Whether the warehouse records any lead up to the as of (the lead figures are left out if not)."""


@dataclass(frozen=True)
class Cut:
    """What every page's frame needs of the warehouse cut at the as-of, without the cut itself.

    Attributes:
        as_of: The cut's time.
        known: Each group filter's values (:func:`forecast.dashboard.choices.known`).
        rep_groups: Each rep's team and region (to refuse a rep filter with another team or region).
    """

    as_of: pd.Timestamp
    known: dict[str, list[str]]
    rep_groups: dict[str, tuple[str, str]]


@dataclass(frozen=True)
class Facts:
    """What a page says of the warehouse cut at the as-of besides its figures.

    Attributes:
        as_of: The cut's time.
        notes: What the figures cannot say (:attr:`~forecast.tracking.data.TrackingData.notes`).
        has_activities: Whether an activity is recorded before the as of.
        has_leads: Whether a lead is recorded before the as of.
        first_recorded: The earliest lead, deal or activity recorded before it (``None``: none).
        rep_groups: Each rep's team and region (:attr:`Cut.rep_groups`: a page computing its
            figures checks a rep filter with these, never asking for the cut inside its turn).
    """

    as_of: pd.Timestamp
    notes: list[str]
    has_activities: bool
    has_leads: bool
    first_recorded: pd.Timestamp | None
    rep_groups: dict[str, tuple[str, str]]


class Turns:
    """One computation at a time, the requests' before the background's (a small priority lock).

    Re-entrant: a computation that needs another result computes it in its own turn.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._depth = 0
        self._waiting = 0  # requests waiting for a turn
        self._local = threading.local()

    @contextmanager
    def background(self) -> Iterator[None]:
        """Mark this thread's turns as background ones while inside."""
        self._local.background = True
        try:
            yield
        finally:
            self._local.background = False

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for this thread's turn (a background thread also waits while a request waits)."""
        me = threading.get_ident()
        background = getattr(self._local, "background", False)
        with self._cond:
            if self._owner != me:
                if not background:
                    self._waiting += 1
                try:
                    while self._owner is not None or (background and self._waiting):
                        self._cond.wait()
                finally:
                    if not background:
                        self._waiting -= 1
                self._owner = me
            self._depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
                    self._cond.notify_all()


class Reader:
    """Reads the dashboard's figures for one warehouse and registry (``settings``), with a cache.

    The cache is keyed by the state (:meth:`state`: the warehouse file's modification time and the
    registry's generation, which :meth:`note_champions` moves when a champion changes), the as-of and
    the filters. Computations take turns (:class:`Turns`: one at a time, the machine's cores are few,
    and pandas holds the GIL), a request before the background warm-up; a lookup of a held result
    never waits for them, and a request for a result being computed waits for that computation
    instead of repeating it. It holds 256 results, least recently used out first: a cold filtered
    view keeps its group's rows (small), and the whole reads and reports stay held beside them.

    With a ``store`` (:class:`~forecast.dashboard.store.PageStore`), whole pages (the kinds of
    :data:`PERSISTED`) are also written to disk once computed and read back instead of computed in
    a later process, under a fingerprint of the warehouse, the champions, the settings, the
    configuration and the code (:meth:`fingerprint`). It is used once the champions are known
    (:meth:`note_champions`: the warm-up's first look), and never for a page showing something
    missing (a registry that could not be read may answer at the next look).
    """

    def __init__(
        self,
        settings: Settings,
        cache_size: int = 256,
        refs: Mapping[str, Any] | None = None,
        store: PageStore | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        """Where whole pages are also kept between runs (``None``: in memory only)."""
        self._fingerprints: dict[tuple[Any, ...], str] = {}
        self.refs: dict[str, Any] = dict(refs or {})
        """The models named by role (``forecast dashboard --models``: e.g. ``deal_win=deal_win_maven``);
        the other roles use their champions bound to the warehouse."""
        self._cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()  # guards the cache and the pending map (held briefly)
        self._pending: dict[tuple[Any, ...], threading.Event] = {}
        self._turns = Turns()
        self._as_of_free = threading.Condition()  # pages of another as of, one as of at a time
        self._as_of_busy: str | None = None
        self._as_of_depth = 0
        self._champions: tuple[tuple[str, str | None], ...] | None = None
        self._read_champions: Callable[[], tuple[tuple[str, str | None], ...]] | None = None
        self._registry_read: tuple[float, tuple[tuple[str, str | None], ...] | None] | None = None
        self._generation = 0
        self._seen: tuple[int, int] | None = None  # the state the last lookup saw
        self._listeners: list[Callable[[], None]] = []
        self.computed = 0
        """How many results were computed (not found in the cache), for tests and benchmarks: the
        figures; a page put together from held figures counts in :attr:`assembled`."""
        self.assembled = 0
        """How many pages (:meth:`page`) were put together (not found in the cache nor the store)."""
        self.loaded = 0
        """How many results were read back from :attr:`store` (not computed), for tests and benchmarks."""
        self.cuts_read = 0
        """How many times the CRM was read and cut at an as of, for tests and benchmarks."""
        self.saved = 0
        """How many results were written to :attr:`store`."""
        self.unsaved = 0
        """How many results of a kind the store keeps were not written to it: the state or the
        champions moved during their computation, the registry could not be read, the champions were
        not noted yet, or the write failed (logged)."""
        self.missing = 0
        """How many results were not written because they show something missing (no champion)."""

    def state(self) -> tuple[int, int]:
        """The state: the warehouse file's modification time (0: none) and the registry's generation."""
        path = self.settings.warehouse
        return (path.stat().st_mtime_ns if path.is_file() else 0, self._generation)

    def followed(self) -> tuple[int, tuple[tuple[str, str | None], ...] | None]:
        """What another reader takes to follow this one (:meth:`follow`)."""
        with self._lock:
            return self._generation, self._champions

    def follow(self, generation: int, champions: tuple[tuple[str, str | None], ...] | None) -> None:
        """Take the registry generation and the champions another reader noted (:meth:`followed`).

        The dashboard's as-of process (:mod:`forecast.dashboard.worker`) follows the server's
        reader, whose warm-up looks at the registry: a new generation is a new state here too, and
        the champions name the results kept in the store. Other champions than those last taken
        let go of every result held (they may have been computed with the models before them: the
        server's first look at the registry does not move the generation when its own cache is
        empty, as this reader's may not be).
        """
        with self._lock:
            if champions != self._champions:
                self._cache.clear()
                self._fingerprints = {}
            self._generation = generation
            self._champions = champions

    def note_champions(self, champions: tuple[tuple[str, str | None], ...]) -> bool:
        """Record the registry's champion versions; a change (after the first look) is a new state.

        With a store, the first look starts a new state too when results are held already (a visit
        before it): their models were loaded before the versions were known, so they are not written
        under them (without a store the first look keeps them).

        Returns:
            Whether they changed since the last look (the first look is not a change).
        """
        with self._lock:
            changed = self._champions is not None and champions != self._champions
            held = bool(self._cache or self._pending)
            if changed or (self._champions is None and held and self.store is not None):
                self._generation += 1
            self._champions = champions
            return changed

    def check_champions(self, read: Callable[[], tuple[tuple[str, str | None], ...]] | None) -> None:
        """Read the registry again before each write to the store (``read``: the warm-up's look).

        A result is written only while the registry still holds the versions last noted: one
        computed after a promotion the warm-up has not looked at yet is not kept under the old
        versions' fingerprint.
        """
        self._read_champions = read

    def holds(self, key: tuple[Any, ...]) -> bool:
        """Whether the cache holds ``key``'s result for the current state (:meth:`_cached`'s keys)."""
        with self._lock:
            return (self.state(), *key) in self._cache

    def keys(self) -> list[tuple[Any, ...]]:
        """The keys held for the current state (without the state)."""
        state = self.state()
        with self._lock:
            return [k[1:] for k in self._cache if k[0] == state]

    def _peek(self, key: tuple[Any, ...], state: tuple[int, int] | None = None) -> Any:
        """``key``'s result for ``state`` (default: the current one) if held (``None``: not held)."""
        full = (self.state() if state is None else state, *key)
        with self._lock:
            return self._cache.get(full)

    def _keep(self, key: tuple[Any, ...], value: Any, state: tuple[int, int] | None = None) -> None:
        """Hold ``value`` as ``key``'s result (a by-product of a computation).

        ``state`` is the state the computation started in: a by-product of a state gone by (an
        ingest landed meanwhile) is not kept, so no later computation takes it for the new one.
        """
        current = self.state()
        if value is None or (state is not None and state != current):
            return
        full = (current, *key)
        with self._lock:
            self._cache[full] = value
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def background(self) -> AbstractContextManager[None]:
        """Within it, this thread's computations wait for every request's (the warm-up's)."""
        return self._turns.background()

    def on_new_state(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (quick, no raise) when a lookup first sees a new state (an ingest, say)."""
        self._listeners.append(listener)

    def fingerprint(self, state: tuple[int, int] | None = None) -> str | None:
        """The store's fingerprint for ``state`` (default: the current one).

        ``None`` without a store or before the champions are known
        (:func:`forecast.dashboard.store.fingerprint`).
        """
        from forecast.dashboard.store import fingerprint, settings_text

        champions = self._champions
        if self.store is None or champions is None:
            return None
        state = self.state() if state is None else state
        memo_key = (state, champions)
        found = self._fingerprints.get(memo_key)
        if found is None:
            try:
                found = fingerprint(
                    self.settings.warehouse,
                    champions,
                    self.refs,
                    settings_text(self.settings),
                    self.settings.config_dir,
                )
            except OSError:  # no warehouse (yet): nothing to keep
                return None
            self._fingerprints = {memo_key: found}  # the current state's alone
        return found

    def _load(self, full: tuple[Any, ...]) -> tuple[bool, Any]:
        """``full``'s result read back from the store (``(False, None)``: not held, or not kept there)."""
        if self.store is None or full[1] not in PERSISTED:
            return False, None
        fp = self.fingerprint(full[0])
        if fp is None:
            return False, None
        return self.store.get(fp, full[1:])

    def _save(self, full: tuple[Any, ...], value: Any, since: float) -> None:
        """Write ``full``'s result to the store, if it is a kind kept there and shows nothing missing.

        Only for the state the computation started in (at ``since``), and while the registry, read
        after that start, still holds the versions noted (:meth:`check_champions`); a registry that
        cannot be read keeps nothing.
        """
        if self.store is None or full[1] not in PERSISTED:
            return
        if _shows_missing(value):
            self.missing += 1
            return
        fp = self.fingerprint(full[0])
        versions = None if fp is None or full[0] != self.state() else self._registry_now(since)
        if fp is None or versions is None or versions != self._champions:  # moved, or cannot be checked
            self.unsaved += 1
        elif self.store.put(fp, full[1:], value):
            self.saved += 1
        else:
            self.unsaved += 1

    def _registry_now(self, since: float) -> tuple[tuple[str, str | None], ...] | None:
        """The registry's versions (:meth:`check_champions`) read after ``since``, at most once a second.

        A reading older than ``since`` (the computation's start) is not used; one taken within the
        last second is (``None``: the registry could not be read then).
        """
        read = self._read_champions
        if read is None:
            return self._champions
        now = time.monotonic()
        held = self._registry_read
        if held is None or held[0] < since or now - held[0] > 1.0:
            try:
                versions: tuple[tuple[str, str | None], ...] | None = read()
            except Exception:  # unreachable: remembered for a second, nothing kept meanwhile
                versions = None
            held = self._registry_read = (now, versions)
        return held[1]

    def kept(self, key: tuple[Any, ...]) -> bool:
        """Whether the store holds ``key``'s result for the current state (a look, nothing read)."""
        fp = self.fingerprint()
        return self.store is not None and fp is not None and self.store.holds(fp, key)

    def _cached(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """``key``'s result for the current state: held, read back from the store, or computed.

        Computed once (one computation at a time; a request for it meanwhile waits for it).
        """
        full = (self.state(), *key)
        if full[0] != self._seen:
            self._seen = full[0]
            for listener in self._listeners:
                listener()
        while True:
            with self._lock:
                if full in self._cache:
                    self._cache.move_to_end(full)
                    value: T = self._cache[full]
                    return value
                pending = self._pending.get(full)
                mine = pending is None
                if pending is None:
                    pending = self._pending[full] = threading.Event()
            if not mine:  # another thread computes it: wait and take its result (or compute, if it failed)
                pending.wait()
                continue
            computed, started = False, time.monotonic()
            try:
                held, value = self._load(full)  # a file read: no turn to wait for
                if not held:
                    with self._turns.turn():
                        value = compute()
                    computed = True
                current = self.state()
                with self._lock:
                    if not computed:
                        self.loaded += 1
                    elif full[1] == "page":
                        self.assembled += 1
                    else:
                        self.computed += 1
                    if full[0] == current:  # a result of a state gone by is answered, not kept
                        for old in [k for k in self._cache if k[0] != current]:
                            del self._cache[old]  # another state's results: never asked again
                        self._cache[full] = value
                        while len(self._cache) > self._cache_size:
                            self._cache.popitem(last=False)
            finally:
                with self._lock:
                    del self._pending[full]
                pending.set()
            if computed:
                self._save(full, value, started)  # after the waiters have their answer
            return value

    @staticmethod
    def page_key(name: str, filters: Filters) -> tuple[Any, ...]:
        """The cache key of page ``name`` for the filters (:meth:`page`, :meth:`kept`).

        Only the pages of :data:`HORIZON_PAGES` are keyed by the forecast's horizon: another horizon
        finds every other page (the comparisons, the Reps page, ...) as computed for the default's.
        """
        return ("page", name, *_key_for(name, filters))

    def page(self, name: str, filters: Filters, compute: Callable[[], T]) -> T:
        """A whole page's result for the filters: held, read back from the store, or computed."""
        return self._cached(self.page_key(name, filters), compute)

    def cut(self, filters: Filters) -> Cut:
        """What every page's frame reads of the cut at the filters' as-of (kept like a page).

        Raises:
            FileNotFoundError: No warehouse.
            ValueError: A warehouse without any dated event.
            InputError: A rep filter with a team or region the rep is not in.
        """
        from forecast.dashboard.choices import known, known_in_sql

        def compute() -> Cut:
            return self._in_sql_or_read(
                filters,
                lambda sql: Cut(sql.as_of, known_in_sql(sql), _rep_groups(sql.reps)),
                lambda data: Cut(data.as_of, known(data), _rep_groups(data.reps)),
            )

        made = self._cached(("page", "cut", filters.as_of), compute)
        _check_rep_groups(made.rep_groups, filters)
        return made

    # --- tracking (forecast metrics, forecast insights) -------------------------------------------

    def tracking(self, filters: Filters) -> TrackingData:
        """The warehouse cut at the as-of (``forecast metrics``' reading).

        Raises:
            FileNotFoundError: No warehouse.
            ValueError: A warehouse without any dated event.
        """
        data = self._tracking(filters)
        _check_rep(data, filters)
        return data

    def _tracking(self, filters: Filters) -> TrackingData:
        """The warehouse cut at the filters' as-of, once per state and as-of (no check of the filters)."""
        from forecast.tracking.api import open_warehouse

        def compute() -> TrackingData:
            self._drop_cuts(filters.as_of)
            self.cuts_read += 1
            return open_warehouse(self.settings.warehouse, filters.when())

        return self._cached(("tracking", filters.as_of), compute)

    @contextmanager
    def as_of_turn(self, as_of: str | None) -> Iterator[None]:
        """Within it, a page of another as of than the default's waits while another one's is computed.

        A cut of a 1M-lead CRM holds gigabytes, and the reader holds one other as of's at a time
        (:meth:`_drop_cuts`): were two other as-ofs' pages computed at once (two deferred pages,
        :mod:`forecast.dashboard.deferred`), each would let go of the other's cut between its turns
        and read it again. Pages of one as of go on together; the default as of never waits.
        """
        if as_of is None:
            yield
            return
        with self._as_of_free:
            while self._as_of_depth and self._as_of_busy != as_of:
                self._as_of_free.wait()
            self._as_of_busy = as_of
            self._as_of_depth += 1
        try:
            yield
        finally:
            with self._as_of_free:
                self._as_of_depth -= 1
                if not self._as_of_depth:
                    self._as_of_busy = None
                    self._as_of_free.notify_all()

    def _drop_cuts(self, as_of: str | None) -> None:
        """Let go of the CRM cuts of other as-ofs than the default and ``as_of`` before reading one.

        A cut of a 1M-lead CRM holds gigabytes (the tracking data and the forecast's frames), so
        besides the default as of's the reader holds one other as of's at a time; a figure computed
        from a dropped one stays held (it is small), and the cut is read again if asked again. The
        pages take turns by as of (:meth:`as_of_turn`), so no page loses its cut midway.
        """
        with self._lock:
            for key in [k for k in self._cache if k[1] in CUTS and k[2] not in (None, as_of)]:
                del self._cache[key]

    def facts(self, filters: Filters) -> Facts:
        """The as of, notes and whether activities and leads are recorded (no figure; kept like a cut).

        From the CRM read at the as of where it is held, else asked of DuckDB (no read).

        Raises:
            FileNotFoundError: No warehouse.
            ValueError: A warehouse without any dated event.
            InputError: A rep filter with a team or region the rep is not in.
        """
        from forecast.tracking.sql_cut import recorded

        def of_read(data: TrackingData) -> Facts:
            has = (not data.activities.empty, not data.leads.empty)
            return Facts(data.as_of, list(data.notes), *has, _first_recorded(data), _rep_groups(data.reps))

        def compute() -> Facts:
            return self._in_sql_or_read(
                filters,
                lambda sql: Facts(sql.as_of, list(sql.notes), *recorded(sql), _rep_groups(sql.reps)),
                of_read,
            )

        made = self._cached(("page", "facts", filters.as_of), compute)  # kept on disk, as the cut
        _check_rep_groups(made.rep_groups, filters)  # not the cut's: a page asks for facts in its turn
        return made

    def _in_sql_or_read(
        self, filters: Filters, in_sql: Callable[[SqlCut], T | None], of_read: Callable[[TrackingData], T]
    ) -> T:
        """A result from the warehouse cut in SQL, else from the CRM read at the filters' as of.

        ``in_sql`` of the SQL cut while the CRM at that as of is not held in memory and the SQL cut
        applies; else (or where ``in_sql`` gives ``None``) ``of_read`` of the CRM read at it (read
        if need be).
        """
        from forecast.tracking.sql_cut import NotInSqlError

        if not self.holds(("tracking", filters.as_of)):
            made = None  # (a DuckDB error in the block ends it here: the read)
            with self._sql_cut(filters) as sql:
                try:
                    made = None if sql is None else in_sql(sql)
                except NotInSqlError:  # a part of the warehouse not readable as the read reads it
                    made = None
            if made is not None:
                return made
        return of_read(self._tracking(filters))

    @contextmanager
    def _sql_cut(self, filters: Filters) -> Iterator[SqlCut | None]:
        """The warehouse cut at the filters' as of in SQL, on a connection open while inside.

        ``None`` where the SQL cut is not the in-memory one (:func:`forecast.tracking.sql_cut.open_cut`):
        the caller reads the CRM. The connection is not kept: an ingest may take the file between pages.
        """
        from forecast.data.warehouse import Warehouse
        from forecast.tracking.sql_cut import applies, open_cut

        with Warehouse(self.settings.warehouse).connect(read_only=True) as con:
            try:
                applying = self._cached(("sql cut applies",), lambda: applies(con))  # once per state
                cut = open_cut(con, filters.when(), checked=True) if applying else None
            except duckdb.Error:
                log.warning("the SQL cut could not be opened: the CRM is read instead", exc_info=True)
                cut = None
            if cut is None:
                yield None
                return
            try:
                yield cut
            except duckdb.Error:  # the caller goes on after its block: to the read
                log.warning("a report in SQL failed: the CRM is read instead", exc_info=True)

    def _reports(self, filters: Filters, name: str) -> tuple[Period, Callable[..., dict[str, pd.DataFrame]]]:
        """The period of the filters and how to compute report ``name`` (as ``api.report``, less its data).

        A report DuckDB computes (:data:`forecast.tracking.sql_reports.NAMES`) is aggregated over the
        warehouse while the CRM at that as of is not held in memory (another as of than the one the
        pages were prepared for: no read of it); the others, and where the SQL cut does not apply,
        from the CRM read at the as of. The same tables either way
        (``tests/unit/test_tracking_sql_reports.py``).
        """
        from forecast.tracking import sql_reports
        from forecast.tracking.api import report
        from forecast.tracking.periods import parse_period

        if name not in sql_reports.NAMES or self.holds(("tracking", filters.as_of)):
            data = self.tracking(filters)
            return self.period(data, filters), lambda *args, **kw: report(data, *args, **kw)

        def compute(*args: Any, **kw: Any) -> dict[str, pd.DataFrame]:
            if not sql_reports.computes(name, kw.get("extras", True)):
                return report(self.tracking(filters), *args, **kw)
            return self._in_sql_or_read(
                filters,
                lambda sql: sql_reports.report(sql, *args, **kw),
                lambda data: report(data, *args, **kw),  # (the rep filter checked by facts: the period)
            )

        return parse_period(filters.period, self.facts(filters).as_of), compute

    def period(self, data: TrackingData, filters: Filters) -> Period:
        """The tracking period (``--period``; raises :class:`~forecast.tracking.periods.PeriodError`)."""
        from forecast.tracking.periods import parse_period

        return parse_period(filters.period, data.as_of)

    def report(
        self,
        filters: Filters,
        name: str,
        by: str,
        only: Collection[str] | None = None,
        *,
        main_only: bool = False,
        brief: bool = False,
    ) -> dict[str, pd.DataFrame]:
        """``forecast metrics --report name --by by`` for the filters' as-of and period (unfiltered rows).

        With ``only`` (a report that narrows: :data:`forecast.tracking.api.REPORTS`), the rows of
        those groups and ``(all)`` alone: taken from the whole report when it is held (the warm-up
        computes them, :meth:`whole_reports`), else computed for those groups alone (a filtered
        view on a cold cache: not every rep's figures for one rep's row), the same rows either way.
        With ``main_only``, the report's main table alone (``{name: table}``): taken from the
        report when it is held, else computed without its extra tables (``extras=False``). With
        ``brief`` (a report that has a brief form, :attr:`~forecast.tracking.api.Report.briefs`),
        the main table of a held report, else its brief form (the columns a comparison of
        headline figures reads, with the whole table's values), kept apart.
        """
        from forecast.tracking.api import REPORTS, narrowed

        period, report = self._reports(filters, name)
        whole = ("report", filters.as_of, period.label, name, by)
        groups = None if only is None else tuple(sorted(set(only)))
        if brief and REPORTS[name].briefs:
            return self._brief(report, period, whole, groups)
        if not main_only or not REPORTS[name].extras:  # (a report without extras: the one kept)
            if groups is None:
                return self._cached(whole, lambda: report(name, period, by))
            held = self._peek(whole)
            if held is not None:
                return narrowed(held, by, groups)
            return self._cached((*whole, groups), lambda: report(name, period, by, only=groups))
        key = whole if groups is None else (*whole, groups)
        main = (*key, "main table")
        every = (whole, (*whole, "main table"))  # every group's, with or without its extra tables
        for kept in dict.fromkeys((*every, key)):
            held = self._peek(kept)
            if held is not None:
                table = {name: held[name]}
                return narrowed(table, by, groups) if kept in every and groups is not None else table
        return self._cached(main, lambda: report(name, period, by, only=groups, extras=False))

    def _brief(
        self,
        report: Callable[..., dict[str, pd.DataFrame]],
        period: Period,
        whole: tuple[Any, ...],
        groups: tuple[str, ...] | None,
    ) -> dict[str, pd.DataFrame]:
        """:meth:`report`'s brief table: the report's held table (``whole``: its key), else the brief form."""
        from forecast.tracking.api import narrowed

        name, by = whole[-2], whole[-1]
        key = whole if groups is None else (*whole, groups)
        every = (whole, (*whole, "main table"), (*whole, "brief"))  # every group's: whole, main or brief
        for kept in dict.fromkeys((*every, key, (*key, "main table"))):
            held = self._peek(kept)
            if held is not None:
                table = {name: held[name]}
                return narrowed(table, by, groups) if kept in every and groups is not None else table
        return self._cached(
            (*key, "brief"), lambda: report(name, period, by, only=groups, extras=False, brief=True)
        )

    def whole_reports(self, filters: Filters) -> None:
        """Compute the whole reports a filtered view of the filters' grouping reads (for the warm-up).

        A filtered page computes its group's rows alone when the whole report is not held
        (:meth:`report`); the warm-up computes the whole ones once per kind of filter, so that
        every filter of that kind then takes its rows from them.
        """
        scope = filters.scope
        if scope is None:
            return
        by = scope[0]
        data = self.tracking(filters)
        # the period before, as dashboard.compare.previous_filters gives it (not imported: a cycle)
        before = replace(filters, period=self.period(data, filters).previous().spec)
        for name, both in WHOLE_REPORTS:
            for f in (filters, before) if both else (filters,):
                self.report(f, name, by)

    def insights(self, filters: Filters) -> dict[str, Any]:
        """``forecast insights --json`` for the filters' as-of and period (kept like a page).

        The document does not depend on the group filters or the forecast's horizon (a page narrows
        it), so one is kept per as-of and period.
        """
        return self.page(
            "insights", Filters(as_of=filters.as_of, period=filters.period), lambda: self._insights(filters)
        )

    def _insights(self, filters: Filters) -> dict[str, Any]:
        """The insights document of the filters' as-of and period, kept by both (not a page).

        The Overview reads it in its own turn: it must not ask for the Insights page, which a
        request registers before waiting for its turn (each would wait for the other for good).
        From the part of the CRM the rules read (:func:`forecast.tracking.sql_insights.read_part`, on
        a connection closed before the rules run) where the CRM at the as of is not held in
        memory, else from the CRM read.
        """
        from forecast.tracking import sql_insights
        from forecast.tracking.insights import insights
        from forecast.tracking.periods import parse_period

        period = parse_period(filters.period, self.facts(filters).as_of)

        def compute() -> dict[str, Any]:
            part = self._in_sql_or_read(
                filters, lambda sql: sql_insights.read_part(sql, period), lambda _: None
            )
            if part is None:
                return insights(self._tracking(filters), period).as_dict()
            return part.insights(period).as_dict()  # the rules after the connection is closed

        return self._cached(("insights", filters.as_of, period.label), compute)

    # --- revenue and flags ------------------------------------------------------------------------

    def revenue(self, filters: Filters) -> dict[str, Any] | Missing:
        """``forecast revenue --json --by horizon [--group scope]`` as of the filters' time.

        The champions are loaded once per state (:meth:`champions`), and the common shocks' spreads
        estimated once per state, as-of and model versions (they depend on nothing else): another
        horizon or group filter reuses both, with the same numbers; so it does the CRM cut at the
        as-of and its open deals scored (``RevenueForecast.scored``), which depend on nothing else.
        The forecast shares the tracking pages' read of the CRM (:meth:`tracking`: its prepared view
        and its activities and engagement events, :func:`~forecast.tracking.data.crm_frames`)
        instead of reading and preparing it again; the other tables it reads (``crm_frames``) are
        kept per state and as-of too, so a filter's forecast does not read them again (the
        forecast only reads them: ``tests/integration/test_dashboard.py`` compares a second
        grouping's document with the CLI's).
        """
        from forecast.binding import ModelBindingError
        from forecast.data.warehouse import Warehouse
        from forecast.revenue.job import revenue_job
        from forecast.tracking.data import crm_frames

        group = _revenue_group(filters)

        def compute() -> dict[str, Any] | Missing:
            try:
                state = self.state()  # the by-products below are this state's
                data = self._tracking(filters)
                crm_key = ("crm", filters.as_of)
                crm = self._peek(crm_key, state)
                if crm is None:
                    self._drop_cuts(filters.as_of)
                    with Warehouse(self.settings.warehouse).connect(read_only=True) as con:
                        crm = crm_frames(con, data)
                models, warnings = self.champions()
                versions = tuple(sorted(models.versions.items()))
                shock_key = ("shock", filters.as_of, versions, WIN_LEVEL)
                scored_key = ("open deals", filters.as_of, versions)
                result = revenue_job(
                    self.settings,
                    as_of=data.as_of,
                    periods=PERIODS,
                    by=filters.horizon,
                    group=group,
                    n_sims=SIMULATIONS,
                    seed=0,
                    models=models,
                    win_level=WIN_LEVEL,
                    shock=self._peek(shock_key, state),
                    crm=crm,
                    data=data,
                    open_deals=self._peek(scored_key, state),
                )
                self._keep(crm_key, crm, state)
                self._keep(shock_key, result.spreads, state)
                self._keep(scored_key, result.scored, state)
                # the document of `forecast revenue --json`, with the champions' warnings it gives
                return {**result.to_dict(), "warnings": list(warnings)}
            except ModelBindingError as exc:
                return Missing(str(exc))
            except LookupError as exc:
                return Missing(NO_FORECAST, str(exc).strip("'\""))
            except ValueError as exc:
                return Missing(f"The forecast cannot be made: {exc}")

        return self._cached(("revenue", filters.as_of, filters.horizon, group), compute)

    def champions(self) -> tuple[DealModels, list[str]]:
        """The forecast's two champions bound to this warehouse, and their warnings (once per state).

        Raises:
            LookupError: A champion is missing; ``ModelBindingError``: trained on another warehouse.
        """
        from forecast.revenue.job import champion_models

        return self._cached(("champions",), lambda: champion_models(self.settings, self.refs or None))

    def flags(self, filters: Filters) -> dict[str, Any] | Missing:
        """``forecast flags --json`` (deals and leads) as of the filters' time."""
        from forecast.flags.job import flags_job, load_flags_config

        def compute() -> dict[str, Any] | Missing:
            try:
                return flags_job(
                    self.settings,
                    as_of=filters.when(),
                    entities=["opportunity", "lead"],
                    config=load_flags_config(settings=self.settings),
                    limit=20,
                ).to_dict()  # the document of `forecast flags --json`
            except (LookupError, ValueError) as exc:
                return Missing(f"The flags cannot be computed: {str(exc).strip(chr(39))}")

        return self._cached(("flags", filters.as_of), compute)

    # --- pages ------------------------------------------------------------------------------------

    def overview(self, filters: Filters) -> Overview:
        """This period's bookings against goal, the forecast ahead, flags and the top insights (a page)."""
        return self.page("overview", filters, lambda: self._overview(filters))

    def _overview(self, filters: Filters) -> Overview:
        """This period's bookings against goal, the forecast ahead, flags and the top insights."""
        revenue = self.revenue(filters)
        flags = self.flags(filters)
        data = self.tracking(filters)
        scope = filters.scope
        has_leads = not data.leads.empty
        notes: list[str] = [] if has_leads else [NO_LEADS]
        top = [i for i in self._insights(filters)["insights"] if about(i, filters)][:5]
        if isinstance(revenue, Missing):
            return Overview(
                data.as_of.isoformat(), "", None, {}, revenue, revenue, flags, top, notes, has_leads
            )
        group = ALL_LABEL
        if _revenue_group(filters) is not None and scope is not None:
            group = scope[1]
        notes += filters.unapplied(REVENUE_GROUPS if group != ALL_LABEL else (), "the revenue forecast")
        rows = [r for r in revenue["forecast"] if str(r.get("group")) == group]
        from forecast.revenue.calendar import describe

        bunching = describe(revenue.get("calendar") or {})
        if bunching is not None:
            notes.append(bunching)
        current = revenue["goals"]["period"]
        figures: dict[str, Any] = {"period": current}
        if group == ALL_LABEL or scope is None:
            figures.update(revenue["goals"])
            pacing: list[dict[str, Any]] | Missing = revenue["pacing"]
        else:
            pacing = self._group_pacing(filters, scope, current)
        row = next((r for r in rows if r.get("period") == current), None)
        if row is None:
            notes.append(f"no forecast row for {group} in {current}")
        else:
            for key in ("won_to_date", "p10", "p50", "p90", "expected", "quota", "p_hit_quota"):
                figures[key] = row.get(key)
            for key in ("gap_to_goal", "deals_needed", "open_pipeline", "pipeline_coverage"):
                figures[key] = row.get(key)
            figures["goal"] = row.get("quota")
        if figures.get("goal") is None:
            notes.append(
                "no quota covers this period in the warehouse: P(hit quota), the gap and the deals "
                "needed need a quotas table (docs/data-model.md)"
            )
        return Overview(
            revenue["as_of"],
            current,
            None if group == ALL_LABEL else group,
            figures,
            rows,
            pacing,
            flags,
            top,
            notes,
            has_leads,
        )

    def _group_pacing(
        self, filters: Filters, scope: tuple[str, str], label: str
    ) -> list[dict[str, Any]] | Missing:
        """One group's daily bookings against its goal (the function behind ``forecast revenue``'s pacing)."""
        from forecast.revenue.forecast import period_grid
        from forecast.tracking.goals import daily

        data = self.tracking(filters)
        current = period_grid(data.as_of, 1, filters.horizon)[0]
        if current.label != label:
            return Missing(f"no pacing for {label}")
        table = daily(data, current, scope[0], only=scope[1])
        table = table[table[scope[0]].astype(str) == scope[1]].drop(columns=scope[0])
        if table.empty:
            return Missing(f"no bookings or goal for {scope[0]} {scope[1]} in {label}")
        out = (
            table.assign(day=pd.to_datetime(table["day"]).dt.strftime("%Y-%m-%d"))
            if "day" in table
            else table
        )
        return [{str(k): _plain(v) for k, v in r.items()} for r in out.to_dict("records")]

    def reps(self, filters: Filters) -> dict[str, Any]:
        """Per-rep performance and goals (``forecast metrics --report performance|goals``; a page)."""
        return self.page("reps", filters, lambda: self._reps(filters))

    def _reps(self, filters: Filters) -> dict[str, Any]:
        """Per-rep performance and goals (``forecast metrics --report performance|goals --by rep``)."""
        from forecast.tracking.periods import parse_period

        facts = self.facts(filters)
        period = parse_period(filters.period, facts.as_of)
        performance = self.report(filters, "performance", "rep")["performance"]
        goals = self.report(filters, "goals", "rep", main_only=True)["goals"]
        notes: list[str] = []
        keep = _reps_in(facts.rep_groups, filters)
        notes += filters.unapplied(REP_SCOPES, "the per-rep table")
        total_by, total_label = next(
            ((k, v) for k, v in filters.scopes if k in ("team", "region")), ("rep", ALL_LABEL)
        )  # the total row: the team's (or region's) when one is given, even with a rep
        totals = (
            performance
            if total_by == "rep"
            else self.report(filters, "performance", total_by, only=(total_label,))["performance"]
        )
        total = totals[totals[total_by].astype(str) == total_label]
        rows = (
            performance[performance["rep"].isin(keep)]
            if keep is not None
            else performance[performance["rep"] != ALL_LABEL]
        )
        goal_rows = goals[goals["rep"].isin(keep)] if keep is not None else goals[goals["rep"] != ALL_LABEL]
        if not facts.has_activities:  # a source without activities: no activity figure, not zeros
            notes.append(NO_ACTIVITIES)
            rows, total = _without_activities(rows), _without_activities(total)
        return {
            "as_of": facts.as_of.isoformat(),
            "period": period,
            "performance": rows.reset_index(drop=True),
            "total": total.reset_index(drop=True),
            "goals": goal_rows.reset_index(drop=True),
            "notes": [*facts.notes, *notes],
        }

    def pipeline(self, filters: Filters) -> dict[str, Any]:
        """The funnel by grouping and the stage table (``forecast metrics --report funnel``; a page)."""
        return self.page("pipeline", filters, lambda: self._pipeline(filters))

    def _pipeline(self, filters: Filters) -> dict[str, Any]:
        """The funnel by grouping and the stage table (``forecast metrics --report funnel|process``)."""
        from forecast.tracking.periods import parse_period

        facts = self.facts(filters)
        period = parse_period(filters.period, facts.as_of)
        scope = filters.scope
        by = scope[0] if scope is not None else "team"
        funnel = self.report(filters, "funnel", by, only=None if scope is None else (scope[1],))
        stages = self.report(filters, "process", "team")["stages"]
        table = funnel["funnel"]
        if scope is not None:
            table = table[table[by].astype(str).isin([scope[1], ALL_LABEL])]
        notes = [*facts.notes, *filters.unapplied((by,), "the funnel")]
        return {
            "as_of": facts.as_of.isoformat(),
            "period": period,
            "by": by,
            "funnel": table.reset_index(drop=True),
            "monthly": funnel["monthly"],
            "loss_reasons": funnel["loss_reasons"],
            "stages": stages,
            "notes": notes,
        }

    def prospects(self, filters: Filters) -> dict[str, Any]:
        """Open leads and deals at the period's end (``forecast metrics --report prospects``; a page)."""
        return self.page("prospects", filters, lambda: self._prospects(filters))

    def _prospects(self, filters: Filters) -> dict[str, Any]:
        """Open leads and deals at the period's end (``forecast metrics --report prospects``), narrowed."""
        from forecast.tracking.periods import parse_period

        facts = self.facts(filters)
        period = parse_period(filters.period, facts.as_of)
        rows = self.report(filters, "prospects", "rep")["prospects"]
        for key, value in filters.scopes:  # every filter given: they compose
            column = "rep_id" if key == "rep" else key
            rows = rows[rows[column].astype(str) == value]
        return {
            "as_of": facts.as_of.isoformat(),
            "period": period,
            "rows": rows.reset_index(drop=True),
            "scored": bool(rows["score"].notna().any()) if "score" in rows else False,
            "has_leads": facts.has_leads,
            "notes": [*facts.notes, *([] if facts.has_leads else [NO_LEADS])],
        }

    def prospects_csv(self, filters: Filters) -> str:
        """The Prospects CSV of the filters in the report's order (``/prospects.csv`` without a sort).

        Cached: on a large CRM the whole list is hundreds of thousands of rows, seconds to write.
        """
        from forecast.io import csv_text

        return self._cached(
            ("prospects.csv", *_key_for("prospects.csv", filters)),
            lambda: csv_text(self.prospects(filters)["rows"]),
        )

    def activity(self, filters: Filters) -> dict[str, Any]:
        """Activity effectiveness and the process (a page: :meth:`_activity`)."""
        return self.page("activity", filters, lambda: self._activity(filters))

    def _activity(self, filters: Filters) -> dict[str, Any]:
        """Activity effectiveness and the process (``forecast metrics --report effectiveness|process``).

        Without a filter: effectiveness by team and by channel (inbound against outbound), the
        process and its stages by channel. A filter groups both by its key and keeps its row and
        ``(all)``; the channel table then stays the whole team's (said in the notes).
        """
        from forecast.tracking.periods import parse_period

        facts = self.facts(filters)
        period = parse_period(filters.period, facts.as_of)
        scope = filters.scope
        notes = list(facts.notes) + ([] if facts.has_activities else [NO_ACTIVITIES])
        notes += [] if facts.has_leads else [NO_LEADS]
        eff_by = scope[0] if scope is not None else "team"
        proc_by = scope[0] if scope is not None else "channel"

        def narrowed(frame: pd.DataFrame, by: str) -> pd.DataFrame:
            if scope is None or (frame.empty and by not in frame.columns):  # nothing to narrow
                return frame
            return frame[frame[by].astype(str).isin([scope[1], ALL_LABEL])].reset_index(drop=True)

        only = None if scope is None else (scope[1],)
        process = self.report(filters, "process", proc_by, only=only)
        notes += filters.unapplied((eff_by,), "activity effectiveness and the process")
        if scope is not None:
            notes.append(f"inbound against outbound is the whole team's: it is not split by {scope[0]}")
        return {
            "as_of": facts.as_of.isoformat(),
            "period": period,
            "effectiveness_by": eff_by,
            "effectiveness": narrowed(
                self.report(filters, "effectiveness", eff_by, only=only)["effectiveness"], eff_by
            ),
            "channels": self.report(filters, "effectiveness", "channel")["effectiveness"],
            "process_by": proc_by,
            "process": narrowed(process["process"], proc_by),
            "stages": narrowed(process["stages"], proc_by),
            "notes": notes,
        }

    def models(self) -> list[dict[str, Any]]:
        """Each model's champion: version, training window, test metrics against baselines, monitoring."""
        return [_model_row(name, self.settings) for name in self.model_names()]

    def model_names(self) -> list[str]:
        """The registered models the pages show: every default one, then those named by role."""
        named = [str(ref.name) for ref in self.refs.values() if str(ref.name) not in MODEL_NAMES]
        return [*MODEL_NAMES, *dict.fromkeys(named)]


def about(insight: Mapping[str, Any], filters: Filters) -> bool:
    """Whether an insight concerns the rep the filters name (every insight without a rep filter)."""
    return filters.rep is None or insight.get("audience") != "rep" or insight.get("subject") == filters.rep


def _revenue_group(filters: Filters) -> str | None:
    """The grouping of ``forecast revenue --group`` the filters need (``None``: the whole team)."""
    scope = filters.scope
    return scope[0] if scope is not None and scope[0] in REVENUE_GROUPS else None


def _first_recorded(data: TrackingData) -> pd.Timestamp | None:
    """The earliest lead, deal or activity of the cut (``None``: none)."""
    firsts = [
        frame[col].min()
        for frame, col in (
            (data.leads, "created_at"),
            (data.opportunities, "created_at"),
            (data.activities, "occurred_at"),
        )
        if col in frame and not frame.empty
    ]
    known = [pd.Timestamp(t) for t in firsts if not pd.isna(t)]
    return min(known) if known else None


def _rep_groups(reps: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Each rep's ``(team, region)`` by rep id."""
    return {
        str(r): (str(t), str(g)) for r, t, g in zip(reps["rep_id"], reps["team"], reps["region"], strict=True)
    }


def _check_rep(data: TrackingData, filters: Filters) -> None:
    """Refuse a rep filter with a team or region the rep is not in (the figures would be nobody's).

    Raises:
        InputError: The rep is in another team or region (or is not a rep of the warehouse).
    """
    if filters.rep is None or (filters.team is None and filters.region is None):
        return
    reps = data.reps[data.reps["rep_id"].astype(str) == filters.rep]
    groups = {} if reps.empty else {filters.rep: (str(reps["team"].iloc[0]), str(reps["region"].iloc[0]))}
    _check_rep_groups(groups, filters)


def _check_rep_groups(groups: Mapping[str, tuple[str, str]], filters: Filters) -> None:
    """:func:`_check_rep` on each rep's ``(team, region)``."""
    if filters.rep is None or (filters.team is None and filters.region is None):
        return
    if filters.rep not in groups:
        raise InputError(f"'{filters.rep}' is not a rep of the warehouse", parameter="rep")
    for key, actual in zip(("team", "region"), groups[filters.rep], strict=True):
        given = getattr(filters, key)
        if given is not None and given != actual:
            raise InputError(
                f"rep {filters.rep} is in {key} {actual}, not {given}: drop one of the two filters",
                parameter=key,
            )


def _reps_in(groups: Mapping[str, tuple[str, str]], filters: Filters) -> list[str] | None:
    """The rep ids every rep-level filter keeps (``None``: every rep), from each rep's team and region."""
    given = [(key, value) for key, value in filters.scopes if key in REP_SCOPES]
    if not given:
        return None
    position = {"team": 0, "region": 1}
    return [
        rep
        for rep, keys in groups.items()
        if all((rep if key == "rep" else keys[position[key]]) == value for key, value in given)
    ]


def _shows_missing(value: Any) -> bool:
    """Whether a result says a model or the registry could not give its figures (not kept on disk).

    The Overview's forecast and flags come from the registry's champions; a group's pacing without
    a goal is the data's (kept). Any other result: itself or a first-level value :class:`Missing`.
    """
    if isinstance(value, Overview):
        return isinstance(value.forecast, Missing) or isinstance(value.flags, Missing)
    if isinstance(value, dict):
        return any(isinstance(v, Missing) for v in value.values())
    return isinstance(value, Missing)


def _without_activities(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the activity figures and their companions (``_n``, ``_lo``, ``_hi``)."""
    drop = [c for c in frame.columns if any(c == a or c.startswith(a + "_") for a in ACTIVITY_COLUMNS)]
    return frame.drop(columns=drop)


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _model_row(name: str, settings: Settings) -> dict[str, Any]:
    """One model's registry entry: champion, challenger, the champion run's window and metrics."""
    from forecast.registry import client, model_info

    info = model_info(name, settings)
    row: dict[str, Any] = {
        "name": name,
        "champion": info.get("champion"),
        "challenger": info.get("challenger"),
    }
    champion = info.get("champion")
    if champion is None:
        cli = name.replace("_", "-")
        row["missing"] = f"no champion: forecast train {cli} --promote"
        if name in (DEAL_WIN, TIME_TO_CLOSE):
            row["missing"] += " (the revenue forecast needs it)"
        return row
    c = client(settings)
    run = c.get_run(champion["run_id"])
    metrics = run.data.metrics
    tags = run.data.tags
    row["window"] = {k: tags.get(f"data_{k}") for k in ("from", "to", "rows")}
    row["model_kind"] = tags.get("model_kind")
    row["test"] = {k[5:]: v for k, v in sorted(metrics.items()) if k.startswith("test_")}
    baselines: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith("baseline_"):
            rest = key[len("baseline_") :]
            for metric in row["test"]:
                if rest.endswith("_" + metric):
                    baselines.setdefault(rest[: -len(metric) - 1], {})[metric] = value
                    break
    row["baselines"] = dict(sorted(baselines.items()))
    row["monitoring"] = _last_verdict(c, run.info.experiment_id, name)
    return row


def _last_verdict(c: Any, experiment_id: str, name: str) -> dict[str, Any] | None:
    """The latest ``forecast monitor`` run of ``name``: its verdict, time and reasons (``None``: never)."""
    runs = c.search_runs(
        [experiment_id],
        filter_string=f"tags.kind = 'monitoring' and tags.model_name = '{name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    run = runs[0]
    return {
        "verdict": run.data.tags.get("verdict"),
        "version": run.data.tags.get("model_version"),
        "at": pd.Timestamp(run.info.start_time, unit="ms").strftime("%Y-%m-%d %H:%M"),
        "reasons": run.data.tags.get("reasons", ""),
    }
