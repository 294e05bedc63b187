"""Making reports: on demand (the API) and on schedule (an APScheduler job), on one worker thread.

A request only claims the (scope, period) in the index and hands the work to the worker, so no
request thread renders a PDF. The schedule runs every few minutes: it asks for the last ended day
of every scope of the configured levels, and the last two ended shifts of every site, then drops
reports older than the retention. Asking is idempotent (alerts/reports/store.py), so the job can
run as often as it likes, and after a restart it makes what was missed (the latest periods) and
what was left pending.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.base import BaseScheduler

from alerts.book.sqlite_journal import AlarmJournal
from alerts.reports.collect import MessageSource, collect_report
from alerts.reports.levels import Level
from alerts.reports.model import Report, ReportScope, sites_in, summary
from alerts.reports.periods import DEFAULT_TZ, Period, ended_shifts, last_day
from alerts.reports.renderers import RENDERERS
from alerts.reports.store import PENDING, ReportStore, StoredReport, report_id
from sensors.model import Site
from sensors.readings import now_ms as _wall_ms

logger = logging.getLogger(__name__)

SCHEDULE_EVERY_S = 300.0  # a day's report comes within 5 minutes of midnight, a shift's of its end
DAY_MS = 86_400_000
SCHEDULER = "system"  # requested_by of the scheduled reports
MAX_PAUSE_S = 600.0  # the longest a report waits for ingest to keep up again (then it is made anyway)
PAUSE_STEP_S = 0.5
RENDER_NICE = 10  # the rendering process's niceness increment


def render_all(report: Report, formats: Sequence[str] | None = None) -> dict[str, bytes]:
    """The report in `formats` (default: every one), in a child process when the service renders there."""
    return {fmt: RENDERERS[fmt](report) for fmt in (RENDERERS if formats is None else formats)}


def scope_timezone(sites: Iterable[Site]) -> str:
    """The zone a scope's periods are cut in: its sites' most common zone (one in practice)."""
    zones = Counter(s.timezone for s in sites)
    return zones.most_common(1)[0][0] if zones else DEFAULT_TZ


def scope_groups(level: Level, sites: Sequence[Site]) -> dict[ReportScope, list[Site]]:
    """Every scope of `level` the registry's sites make (each district with its city), with its
    sites, in one pass over them."""
    groups: dict[ReportScope, list[Site]] = {}
    for s in sites:
        if level in ("all", "site"):
            scope = ReportScope(level, None if level == "all" else s.id)
        elif level == "district":
            if not s.district:
                continue
            scope = ReportScope("district", s.district, s.city)
        else:
            name = getattr(s, level)
            if not name:
                continue
            scope = ReportScope(level, name)
        groups.setdefault(scope, []).append(s)
    return groups


@dataclass
class ReportService:
    """Asks for, makes and keeps reports; `start(scheduler)` adds the schedule."""

    store: ReportStore
    sites: Sequence[Site]
    journal: AlarmJournal
    outbox: MessageSource | None = None  # None when SMS is off
    shifts: tuple[clock_time, ...] = ()
    levels: tuple[Level, ...] = ("site", "district", "city", "province", "park")
    keep_days: int = 90
    clock: Callable[[], int] = _wall_ms
    # ingest falling behind (the learner's signal, hazmon/bootstrap.py): a report waits before it is
    # made, at most max_pause_s. Rendering holds the GIL (fpdf2 and fontTools are Python), and a
    # province's first schedule asks for thousands (a day and two shifts of every site).
    pause_while: Callable[[], bool] | None = None
    max_pause_s: float = MAX_PAUSE_S
    _stopping: threading.Event = field(default_factory=threading.Event)
    # render in a child process (the service: the PDF's font work off this process's GIL, on the
    # other core) or on the worker thread (tests, which swap RENDERERS)
    render_in_process: bool = False
    _renderer: Executor | None = None
    _worker: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="reports")
    )
    _queued: set[str] = field(default_factory=set)  # ids handed to the worker and not yet made
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _job: Job | None = None  # the schedule's job, once started

    # ---- asking

    def request(
        self,
        scope: ReportScope,
        period: Period,
        by: str,
        retry: bool = True,
        sites: Sequence[Site] | None = None,
    ) -> tuple[StoredReport, Future | None]:
        """Claim the report of (scope, period) and queue it when it must be made (a failed one again
        when `retry`); returns the index row as it stands and the queued work (None: it exists, or
        is being made). `sites`: the scope's, when the caller has them."""
        ids = [s.id for s in (sites_in(scope, self.sites) if sites is None else sites)]
        if not ids:
            raise ValueError(f"no site in {scope.label}")
        found, new = self.store.claim(scope, period, ids, by, self.clock(), retry)
        return found, (self._queue(found) if new else None)

    def _queue(self, stored: StoredReport) -> Future | None:
        with self._lock:
            if stored.id in self._queued:
                return None
            self._queued.add(stored.id)
        return self._worker.submit(self.make, stored)

    def kpis(self, scope: ReportScope, period: Period) -> Report:
        """The report of (scope, period) as of now, not kept (GET /api/v1/kpis)."""
        return collect_report(scope, period, self.sites, self.journal, self.outbox, self.clock())

    # ---- making (on the worker thread)

    def make(self, stored: StoredReport) -> StoredReport | None:
        """Compute the report, write its three files, mark it ready (or failed, with why)."""
        self._yield_to_ingest()
        started = time.perf_counter()
        try:
            ids = set(stored.sites)  # the sites claimed, which the API's scope checks read
            mine = [s for s in self.sites if s.id in ids]
            report = collect_report(
                stored.scope, stored.period, mine, self.journal, self.outbox, self.clock()
            )
            sizes = {}
            for fmt, data in self._render(report).items():
                target = self.store.file(stored.id, fmt)
                tmp = target.with_suffix(f".{fmt}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, target)
                sizes[fmt] = len(data)
            self.store.finish(stored.id, report.as_of_ms, summary(report), sizes)
        except Exception as e:  # a report must never take the service down; the index says why
            logger.exception("report %s (%s %s) failed", stored.id, stored.scope.label, stored.period.label)
            self.store.fail(stored.id, f"{type(e).__name__}: {e}")
        else:
            logger.info(
                "report %s: %s %s in %.2f s",
                stored.id,
                stored.scope.label,
                stored.period.label,
                time.perf_counter() - started,
            )
        finally:
            with self._lock:
                self._queued.discard(stored.id)
        return self.store.get(stored.id)

    def _render(self, report: Report) -> dict[str, bytes]:
        if not self.render_in_process:
            return render_all(report)
        if self._renderer is None:  # spawned, not forked: a child of a big threaded process
            ctx = multiprocessing.get_context("spawn")  # niced: background work, below ingest's
            self._renderer = ProcessPoolExecutor(
                max_workers=1, mp_context=ctx, initializer=os.nice, initargs=(RENDER_NICE,)
            )
        return self._renderer.submit(render_all, report, tuple(RENDERERS)).result()

    def _yield_to_ingest(self) -> None:
        """Wait while ingest is behind, at most max_pause_s (a stop ends the wait)."""
        waited = 0.0
        while (
            self.pause_while is not None
            and waited < self.max_pause_s
            and not self._stopping.is_set()
            and self.pause_while()
        ):
            self._stopping.wait(PAUSE_STEP_S)
            waited += PAUSE_STEP_S

    # ---- the schedule

    def scheduled(self, now_ms: int | None = None) -> list[Future]:
        """Ask for the latest ended day of every scope of the levels and the latest two ended
        shifts of every site (when `site` is a level), remake what a stop left pending, and drop
        reports past the retention. Returns the work queued."""
        now = self.clock() if now_ms is None else now_ms
        queued: list[Future] = []
        for stored in self.store.list(state=PENDING):  # left by a stop: the worker's queue died with it
            work = self._queue(stored)
            if work is not None:
                queued.append(work)
        known = self.store.ids()  # one query, not one transaction per scope and period
        for level in self.levels:
            for scope, mine in scope_groups(level, self.sites).items():
                tz = scope_timezone(mine)
                periods = [last_day(now, tz)]
                if level == "site" and self.shifts:
                    periods += ended_shifts(now, self.shifts, tz)
                for period in periods:
                    if report_id(scope, period) in known:
                        continue
                    _, work = self.request(scope, period, SCHEDULER, retry=False, sites=mine)
                    if work is not None:
                        queued.append(work)
        dropped = self.store.expire(now - self.keep_days * DAY_MS)
        if dropped:
            logger.info("dropped %d reports older than %d days", dropped, self.keep_days)
        return queued

    def start(self, scheduler: BaseScheduler) -> None:
        """Run the schedule on `scheduler` (APScheduler), first one interval after start: a service
        that restarts catches up within minutes, and one that runs briefly (a test, a benchmark)
        does not spend its first minutes rendering yesterday's reports beside its work."""
        first = datetime.now(UTC) + timedelta(seconds=SCHEDULE_EVERY_S)
        self._job = scheduler.add_job(
            self.scheduled, "interval", seconds=SCHEDULE_EVERY_S, id="reports", next_run_time=first
        )

    def stop(self) -> None:
        """Finish the report being made; the queued ones stay pending and are made after a start."""
        self._stopping.set()
        if self._job is not None:
            with contextlib.suppress(JobLookupError):  # the scheduler may be gone already
                self._job.remove()
        self._worker.shutdown(wait=True, cancel_futures=True)
        if self._renderer is not None:
            self._renderer.shutdown(wait=True, cancel_futures=True)
        self.store.close()
