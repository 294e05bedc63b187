"""The live alarm pipeline: one thread owns the engine and feeds the AlarmBook, in arrival order.

The engine keeps its state in plain numpy arrays and is not thread-safe, so every call to it
(readings, the clock, forecasts) runs on this one thread. Work arrives through a WorkQueue:

- reading batches from the collector's processing thread (`on_batch`, a batch listener). The
  queue is bounded; when it is full the collector *waits* (up to `put_timeout_s`) instead of
  dropping: readings lost to the engine are alarms missed, while a slower ingest only lets the
  broker hold messages a little longer (the collector acknowledges them after storage anyway).
  Only if the engine is stuck for longer than that is the batch dropped, counted and logged,
  so a wedged engine cannot stop storage as well.
- named time-driven jobs (`post`): advance (stale data, delays expiring in silence), shelve
  expiry, forecast refresh. A job already pending is not queued twice, so a slow round never
  piles up ticks behind it.

Batches waiting together are concatenated and processed as one (the engine takes readings in
any order), so a backlog is worked off in a few large vectorised calls. The clock for the jobs
is the wall clock; readings carry their own (device) times.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alerts.engine.conditions import ConditionChange
from alerts.stats import AlarmStats
from sensors.readings import ReadingBatch
from sensors.readings import now_ms as _now_ms

if TYPE_CHECKING:
    from alerts.book.book import AlarmBook
    from alerts.engine.alarm_engine import AlarmEngine

logger = logging.getLogger(__name__)

ADVANCE = "advance"
EXPIRE_SHELVES = "expire_shelves"
REFRESH_FORECASTS = "refresh_forecasts"
JOBS = (ADVANCE, EXPIRE_SHELVES, REFRESH_FORECASTS)


@dataclass(frozen=True, slots=True)
class Work:
    """What the consumer takes in one go: batches in arrival order (with their enqueue times) and jobs."""

    batches: list[ReadingBatch]
    enqueued_s: list[float]  # time.monotonic() at enqueue, one per batch
    jobs: list[str]
    calls: list[Callable[[], None]] = field(default_factory=list)  # work for the engine's thread


class WorkQueue:
    """Bounded batches plus coalesced jobs, for one consumer; thread-safe."""

    def __init__(
        self,
        max_readings: int = 1_000_000,
        put_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_readings = max_readings
        self.put_timeout_s = put_timeout_s
        self._clock = clock
        self._cond = threading.Condition()
        self._batches: deque[tuple[ReadingBatch, float]] = deque()
        self._readings = 0
        self._jobs: dict[str, None] = {}  # an ordered set
        self._calls: list[Callable[[], None]] = []
        self._closed = False
        self.waits = 0  # puts that found the queue full and waited
        self.dropped_batches = 0
        self.dropped_readings = 0

    @property
    def depth(self) -> int:
        """Readings waiting."""
        with self._cond:
            return self._readings

    @property
    def pending_batches(self) -> int:
        with self._cond:
            return len(self._batches)

    def _full(self, n: int) -> bool:
        # a batch larger than the whole bound still goes in when the queue is empty
        return bool(self._batches) and self._readings + n > self.max_readings

    def put_batch(self, batch: ReadingBatch) -> bool:
        """Queue a batch, waiting up to put_timeout_s for room; False if it was dropped."""
        n = len(batch)
        with self._cond:
            if self._closed:
                return False
            if self._full(n):
                self.waits += 1
                self._cond.wait_for(lambda: self._closed or not self._full(n), self.put_timeout_s)
                if self._closed or self._full(n):
                    self.dropped_batches += 1
                    self.dropped_readings += n
                    return False
            self._batches.append((batch, self._clock()))
            self._readings += n
            self._cond.notify_all()
            return True

    def post(self, job: str) -> None:
        """Ask for a job; one already pending is not queued again."""
        with self._cond:
            if not self._closed and job not in self._jobs:
                self._jobs[job] = None
                self._cond.notify_all()

    def post_call(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the consumer's thread (after the batches and jobs of its take); each once."""
        with self._cond:
            if not self._closed:
                self._calls.append(fn)
                self._cond.notify_all()

    def take(self, timeout_s: float | None = None) -> Work | None:
        """Everything waiting (possibly nothing after `timeout_s`); None once closed and drained."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._batches or self._jobs or self._calls, timeout_s)
            if self._closed and not self._batches and not self._jobs and not self._calls:
                return None
            batches, self._batches = self._batches, deque()
            jobs, self._jobs = list(self._jobs), {}
            calls, self._calls = self._calls, []
            self._readings = 0
            self._cond.notify_all()  # room for waiting producers
        return Work([b for b, _ in batches], [t for _, t in batches], jobs, calls)

    def close(self) -> None:
        """Refuse new work; take() returns what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class AlarmPipeline:
    """The thread that owns the engine: readings and clock jobs in, condition changes to the book."""

    def __init__(
        self,
        engine: AlarmEngine,
        book: AlarmBook,
        queue: WorkQueue,
        stats: AlarmStats,
        clock_ms: Callable[[], int] = _now_ms,
    ):
        self.engine = engine
        self.book = book
        self.queue = queue
        self.stats = stats
        self.clock_ms = clock_ms
        self._thread: threading.Thread | None = None
        self.last_work_s: float | None = None  # time.monotonic() when the thread last finished work

    # ---- producers (any thread)

    def on_batch(self, batch: ReadingBatch) -> None:
        """The collector's batch listener: enqueue only (never runs the engine on the caller's thread)."""
        if len(batch) and not self.queue.put_batch(batch):
            logger.error(
                "alarm queue full for %.1f s: dropped %d readings (total dropped %d)",
                self.queue.put_timeout_s,
                len(batch),
                self.queue.dropped_readings,
            )

    def post(self, job: str) -> None:
        self.queue.post(job)

    # ---- lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="alarm-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish what is queued, then end the thread."""
        self.queue.close()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- the thread

    def _loop(self) -> None:
        while True:
            work = self.queue.take(1.0)
            if work is None:
                return
            self.run(work)

    def run(self, work: Work) -> None:
        """Process one take: the batches as one, then the jobs (public for tests)."""
        if work.batches:
            try:
                self._process(work)
            except Exception:
                self.stats.add(errors=1)
                logger.exception("alarm engine failed on a batch of %d readings", sum(map(len, work.batches)))
        for job in work.jobs:
            try:
                self._job(job)
            except Exception:
                self.stats.add(errors=1)
                logger.exception("alarm job %s failed", job)
        for call in work.calls:
            try:
                call()
            except Exception:
                self.stats.add(errors=1)
                logger.exception("call on the alarm engine's thread failed")
        self.last_work_s = time.monotonic()

    def _process(self, work: Work) -> None:
        batch = ReadingBatch.concat(work.batches)
        started = time.perf_counter()
        changes = self.engine.process(batch)
        self._apply(changes)
        done = time.perf_counter()
        now_s = time.monotonic()
        self.stats.observe_batch(
            readings=len(batch),
            seconds=done - started,
            waited_s=[now_s - t for t in work.enqueued_s],
        )

    def _job(self, job: str) -> None:
        now = self.clock_ms()
        if job == ADVANCE:
            self._apply(self.engine.advance(now), now)
        elif job == EXPIRE_SHELVES:
            self.book.expire_shelves(now)
        elif job == REFRESH_FORECASTS:
            self._apply(self.engine.refresh_forecasts(now), now)
        else:
            raise ValueError(f"unknown alarm job {job!r}")

    def _apply(self, changes: list[ConditionChange], now_ms: int | None = None) -> None:
        if changes:
            self.stats.add(conditions=len(changes))
            self.book.on_changes(changes, self.clock_ms() if now_ms is None else now_ms)
