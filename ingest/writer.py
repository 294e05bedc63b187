"""Batch accepted readings into reading-store writes, spooling to disk while the store is away.

Durability contract with the collector: `submit(batch, on_durable)` calls `on_durable` only once
the batch is either in the store (InfluxDB) or fsynced in the spool. The collector acknowledges
the MQTT messages then, so anything not yet durable is still owned by the broker and is
redelivered after a crash. Nothing else acknowledges: a spool that is full or whose disk refuses
the write holds the batch (and, through the broker's receive window, what follows it) until the
store or the disk takes it, and a batch that is still not durable when the writer stops, or whose
write failed in a way nobody expected, is never acknowledged. Order is kept: while the spool is
not empty new batches go behind it. The writer speaks only to the ingest/store.py port: a batch is
encoded by the store into opaque bytes, which are what is sent and what the spool keeps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from ingest.spool import Spool, SpoolError, SpoolFull
from ingest.stats import IngestStats
from ingest.store import ReadingStore, StoreRejected, StoreUnavailable
from sensors.readings import ReadingBatch

logger = logging.getLogger(__name__)


class BatchWriter:
    """One background thread owns all writes, so batches reach InfluxDB in arrival order."""

    def __init__(
        self,
        store: ReadingStore,
        spool: Spool,
        stats: IngestStats,
        max_points: int = 10_000,
        max_age_s: float = 0.5,
        max_pending_points: int = 2_000_000,
        retry_min_s: float = 0.5,
        retry_max_s: float = 15.0,
        max_in_flight: int = 2,
    ):
        self.store = store
        self.spool = spool
        self.stats = stats
        self.max_points = max_points
        self.max_age_s = max_age_s
        self.max_pending_points = max_pending_points
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self._cond = threading.Condition()
        self._pending: list[tuple[ReadingBatch, Callable[[], None] | None]] = []
        self._pending_points = 0
        self._oldest = 0.0
        self._taken_oldest: float | None = None  # the take being handed to the store: its oldest batch
        self._stopping = False
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = retry_min_s
        self._next_try = 0.0  # monotonic time of the next InfluxDB attempt while it is down
        self._down = False
        # Writes are pipelined: while InfluxDB ingests one request the next is built and sent,
        # so both cores work. Acks still wait until every chunk of their flush is durable.
        self._senders = ThreadPoolExecutor(max_in_flight, thread_name_prefix="influx-send")
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._in_flight = 0
        self._state_lock = threading.Lock()
        self.stats.spool_bytes, self.stats.spool_segments = spool.bytes, spool.segments

    # ---- producer side

    def submit(self, batch: ReadingBatch, on_durable: Callable[[], None] | None = None) -> None:
        """Queue a batch; blocks while too many points wait (backpressure towards the broker)."""
        with self._cond:
            while self._pending_points >= self.max_pending_points and not self._stopping:
                self._cond.wait(0.5)
            first = not self._pending
            if first:
                self._oldest = time.monotonic()
            self._pending.append((batch, on_durable))
            self._pending_points += len(batch)
            self.stats.pending_points = self._pending_points
            # the first batch starts the max_age_s clock: an idle writer must not sleep its full second
            if first or self._pending_points >= self.max_points:
                self._cond.notify_all()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="influx-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Flush what is pending (to InfluxDB or the spool) and stop."""
        with self._cond:
            self._stopping = True
            self._stopped.set()  # a sender holding a batch for the spool stops waiting too
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout_s)
        self._senders.shutdown(wait=True)  # the last writes in flight, and their acks

    def store_current(self) -> bool:
        """True while the store holds everything accepted but the last flush or so: its last write
        did not fail, the spool is empty and no backlog waits (the history check asks the store
        only then; a store that does not answer leaves the readings unverified)."""
        with self._cond:
            return not self._down and self.spool.segments == 0 and self._pending_points <= self.max_points

    def backlog_s(self, mono_now: float | None = None) -> float:
        """How long the oldest accepted batch not yet handed to the store has waited (0: none).

        Normally under a second (a flush every max_age_s); more means the store or this process
        cannot keep up, while readings arrive on time (so ingest is not `catching_up`)."""
        now = time.monotonic() if mono_now is None else mono_now
        with self._cond:
            since = [
                t for t in (self._taken_oldest, self._oldest if self._pending else None) if t is not None
            ]
        return max(0.0, now - min(since)) if since else 0.0

    def idle(self) -> bool:
        """True when nothing is pending or in flight and the spool is empty."""
        with self._cond:
            return not self._pending and self._in_flight == 0 and self.spool.segments == 0

    # ---- writer thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._due():
                    self._cond.wait(self._wait_time())
                taken, self._pending = self._pending, []
                self._taken_oldest = self._oldest if taken else None
                self._pending_points = 0
                self.stats.pending_points = 0
                stopping = self._stopping
                self._cond.notify_all()
            try:
                if taken:
                    self._flush(taken)
                self._replay()
            except Exception:  # the writer must outlive any bug in one batch
                logger.exception("writer loop error")
                time.sleep(0.5)
            finally:
                with self._cond:
                    self._taken_oldest = None
            if stopping:
                with self._cond:
                    if not self._pending:
                        return

    def _due(self) -> bool:
        if self._pending and (
            self._pending_points >= self.max_points or time.monotonic() - self._oldest >= self.max_age_s
        ):
            return True
        return self.spool.segments > 0 and time.monotonic() >= self._next_try

    def _wait_time(self) -> float:
        waits = [1.0]
        if self._pending:
            waits.append(self.max_age_s - (time.monotonic() - self._oldest))
        if self.spool.segments:
            waits.append(self._next_try - time.monotonic())
        return max(0.005, min(waits))

    def _flush(self, taken: list[tuple[ReadingBatch, Callable[[], None] | None]]) -> None:
        """Send the taken batches as write-sized requests; run their callbacks once all are durable.

        If any chunk did not become durable, no callback runs: its readings, and those it was
        flushed with, stay unacknowledged at the broker, which delivers them again."""
        batch = ReadingBatch.concat([b for b, _ in taken])
        callbacks = [cb for _, cb in taken if cb is not None]
        chunks = range(0, len(batch), self.max_points)
        remaining = [len(chunks)]
        all_durable = [True]
        lock = threading.Lock()

        def chunk_done(future: Future) -> None:
            with self._cond:
                self._in_flight -= 1
            self._slots.release()
            durable = self._durable(future)
            with lock:
                remaining[0] -= 1
                all_durable[0] = all_durable[0] and durable
                last = remaining[0] == 0
            if not last:
                return
            if all_durable[0]:
                self._run_callbacks(callbacks)
            else:
                self.stats.add(batches_withheld=1)
                logger.error(
                    "%d readings are not durable: left unacknowledged at the broker (%d messages)",
                    len(batch),
                    len(callbacks),
                )

        if not chunks:
            self._run_callbacks(callbacks)
            return
        for start in chunks:
            part = batch.take(slice(start, start + self.max_points))
            body = self.store.encode(part)
            self._slots.acquire()
            with self._cond:
                self._in_flight += 1
            self._senders.submit(self._store_durably, body, len(part)).add_done_callback(chunk_done)

    @staticmethod
    def _durable(future: Future) -> bool:
        """Whether a chunk's write ended durable; an unexpected error is logged and counts as not."""
        if future.cancelled():
            return False
        error = future.exception()
        if error is not None:
            logger.error("writing a chunk failed unexpectedly", exc_info=error)
            return False
        return bool(future.result())

    def _run_callbacks(self, callbacks: list[Callable[[], None]]) -> None:
        for callback in callbacks:
            try:
                callback()
            except Exception:
                self.stats.add(callback_errors=1)
                logger.exception("on_durable callback failed")

    def _store_durably(self, body: bytes, n_points: int) -> bool:
        """Write to InfluxDB, or spool; True once the body is durable somewhere.

        While neither takes it (InfluxDB away and the spool full or its disk refusing) the body is
        held here, retried, and the broker keeps what follows; False if the writer stops first."""
        if self.spool.segments == 0 and not self._down and self._try_write(body, n_points):
            self.stats.add(points_written=n_points)
            return True
        while True:
            try:
                self.spool.append(body)
            except SpoolError as e:
                self._spool_refused(e)
                if self._stopping:
                    return False
                self._replay(force=True)
                if self.spool.segments == 0 and self._try_write(body, n_points):
                    self.stats.add(points_written=n_points)
                    self._spool_recovered("the held readings went to InfluxDB")
                    return True
                self._stopped.wait(min(self._backoff, 1.0))
                continue
            self._spool_recovered("spool writable again")
            self.stats.add(points_spooled=n_points)
            self._sync_spool_stats()
            with self._cond:  # the writer thread plans its next replay from the spool's state
                self._cond.notify_all()
            return True

    def _spool_refused(self, error: SpoolError) -> None:
        """Count and show (in /healthz) a spool that cannot take a body; log once per episode."""
        with self._state_lock:
            first = self.stats.spool_error is None
            self.stats.spool_error = str(error)
            self.stats.add(spool_refusals=1)
        if first:
            what = "full" if isinstance(error, SpoolFull) else "failing"
            logger.error(
                "spool %s (%s); holding readings unacknowledged until InfluxDB or the disk takes them",
                what,
                error,
            )

    def _spool_recovered(self, how: str) -> None:
        with self._state_lock:
            if self.stats.spool_error is None:
                return
            self.stats.spool_error = None
        logger.warning("%s: readings are acknowledged again", how)

    def _try_write(self, body: bytes, n_points: int) -> bool:
        """One write attempt; True if InfluxDB has the data (or refused it for good)."""
        t0 = time.perf_counter()
        try:
            self.store.write_encoded(body)
        except StoreUnavailable as e:
            self.stats.add(write_failures=1)
            self._mark_down(str(e))
            return False
        except StoreRejected as e:
            # 4xx: retrying the same body cannot help, so count and log rather than block the
            # stream. (On a 400 "partial write" InfluxDB 1.x has stored the valid points; the
            # counter then overstates the loss, which errs on the side of attention.)
            self.stats.add(points_refused=n_points, write_failures=1)
            logger.error("InfluxDB refused a batch of %d points: %s", n_points, e)
            self._mark_up()
            return True
        self.stats.observe_write(time.perf_counter() - t0)
        self._mark_up()
        return True

    def _replay(self, force: bool = False) -> None:
        """Send spooled segments oldest first while InfluxDB accepts them."""
        while self.spool.segments and (force or time.monotonic() >= self._next_try):
            head = self.spool.peek()
            if head is None:
                return
            seq, body = head
            n_points = self.store.encoded_points(body)
            if not self._try_write(body, n_points):
                return
            with self._cond:  # idle() must never see the spool empty before the counters say so
                self.spool.remove(seq)
                self.stats.add(points_written=n_points, points_replayed=n_points)
                self._sync_spool_stats()
            if self.spool.segments == 0:
                logger.info("spool drained")
            with self._cond:
                if self._pending_points >= self.max_points:
                    return  # let fresh data go behind the spool without waiting for the whole replay

    def _mark_down(self, reason: str) -> None:
        with self._state_lock:
            if not self._down:
                logger.warning("InfluxDB unavailable, spooling to disk: %s", reason)
            self._down = True
            self.stats.influx_up = False
            self._next_try = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self.retry_max_s)

    def _mark_up(self) -> None:
        with self._state_lock:
            if self._down:
                logger.info("InfluxDB reachable again")
            self._down = False
            self.stats.influx_up = True
            self._backoff = self.retry_min_s
            self._next_try = 0.0

    def _sync_spool_stats(self) -> None:
        self.stats.spool_bytes, self.stats.spool_segments = self.spool.bytes, self.spool.segments
