"""Learning each forecast sensor's behaviour from its own history: when to refit, from what, and keeping it.

The fit itself is pure (alerts/engine/behaviour.py); this module decides which sensors are due, reads their
history through a :class:`HistorySource` port, and hands the result to the early warnings:

- in `hazmon backtest` the history is the replay's own readings, strictly before the refit's event time
  (:class:`ReadingsHistory`): a warning never learns from the future;
- in the service it is the reading store's 1-minute rollup (ingest/rollup_history.py over the
  ingest/store.py port: InfluxDB's `year.readings_1m`), read by a scheduled job.

Schedule: in a backtest a sensor is first fitted an hour after its first reading (the service, whose
history reaches back before it started, fits a sensor never fitted at once), then again after half
the span it was fitted on, but not sooner than an hour (so with about 1, 2, 3, 4.5, 6.75, 10 h ... of
history) and at least daily; up to ``max_history_s`` (30 days)
of history is used. A row whose fit failed (too little data) is tried again after an hour. The fitted
state is saved beside the journal (`save`/`load`), so a restart is instant.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from alerts.engine.behaviour import BehaviourModel, fit_behaviour
from sensors.readings import ReadingBatch

logger = logging.getLogger(__name__)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MAX_HISTORY_S = 30 * 86_400.0
MAX_PAUSE_S = 900.0  # a fit waits at most this long for ingest to catch up, then runs anyway
PAUSE_STEP_S = 1.0
FIT_CELLS = 4_000_000  # grid cells (sensors x bins) fitted at once: ~32 MB per array, ~1 GB peak


class LearningStopped(Exception):
    """The service is stopping: a fit in progress gave up between two chunks; nothing was installed."""


class HistorySource(Protocol):
    """Bin means of sensors' readings on a regular grid (a port: backtest readings, InfluxDB)."""

    def bin_means(self, slots: np.ndarray, start_ms: int, step_s: float, n_bins: int) -> np.ndarray:
        """(len(slots), n_bins) float64: mean reading of each sensor slot per bin, NaN where none."""
        ...


class ReadingsHistory:
    """The readings of a backtest (time-sorted) as history; a request sees only its own window."""

    def __init__(self, batch: ReadingBatch):
        good = batch.quality < 2  # a bad-quality reading is not the sensor's behaviour
        self.slot = batch.slot[good].astype(np.intp)
        self.ts = batch.ts_ms[good]
        self.value = batch.value[good]

    def bin_means(self, slots: np.ndarray, start_ms: int, step_s: float, n_bins: int) -> np.ndarray:
        k = len(slots)
        step_ms = round(step_s * 1000)
        lo, hi = np.searchsorted(self.ts, [start_ms, start_ms + n_bins * step_ms], side="left")
        row_of = np.full(max(int(self.slot.max(initial=0)), int(np.max(slots, initial=0))) + 1, -1, np.intp)
        row_of[np.asarray(slots, dtype=np.intp)] = np.arange(k)
        r = row_of[self.slot[lo:hi]]
        keep = r >= 0
        cell = r[keep] * n_bins + (self.ts[lo:hi][keep] - start_ms) // step_ms
        sums = np.bincount(cell, weights=self.value[lo:hi][keep], minlength=k * n_bins)
        counts = np.bincount(cell, minlength=k * n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (sums / counts).reshape(k, n_bins)


class BehaviourLearner:
    """Refits the behaviour of the forecast sensors that are due and installs it in the early warnings."""

    def __init__(
        self,
        early_warnings,
        history: HistorySource,
        *,
        max_history_s: float = MAX_HISTORY_S,
        store: str | Path | None = None,
        history_before_start: bool = False,
        pause_while: Callable[[], bool] | None = None,
        max_pause_s: float = MAX_PAUSE_S,
    ):
        self.ew = early_warnings
        self.history = history
        self.max_history_ms = int(max_history_s * 1000)
        self.store = Path(store) if store is not None else None
        # the service's history (InfluxDB) reaches back before it started: a sensor never fitted is
        # due at once, not an hour after the first reading this process saw
        self.history_before_start = history_before_start
        self.retry_ms = np.full(len(self.ew.slots), -1, dtype=np.int64)  # no new try before this
        self.last_fit_ms = -1
        self.last_fitted = 0
        # a whole fleet's first fit reads thousands of history chunks: stopping must not wait for it
        self._stopping = threading.Event()
        # ingest draining a backlog: a fit (reads from InfluxDB, numpy on the GIL) would halve the drain
        # rate, so it waits between chunks, but no longer than max_pause_s in all (then it goes on)
        self.pause_while = pause_while
        self.max_pause_s = max_pause_s
        self.paused_s = 0.0  # time the last fit spent waiting for ingest

    def stop(self) -> None:
        """Make a fit in progress (on another thread) give up at its next chunk, and later ones at once."""
        self._stopping.set()

    # ---- schedule

    def due(self, now_ms: int) -> np.ndarray:
        """Rows (of the early warnings) whose behaviour should be fitted now."""
        b = self.ew.behaviour
        first_ms = self.ew.t_first * 1000.0  # NaN: never heard
        never = b.fitted_ms < 0
        every = np.clip(b.span_s * 500.0, HOUR_MS, DAY_MS)
        first_due = True if self.history_before_start else now_ms - first_ms >= HOUR_MS
        due = np.where(never, first_due, now_ms - b.fitted_ms >= every)
        return np.flatnonzero(due & (now_ms >= self.retry_ms))

    def maybe_refit(self, now_ms: int) -> int:
        """Fit the rows that are due, from history before `now_ms`, and install them; returns how many."""
        rows = self.due(now_ms)
        if not len(rows):
            return 0
        model = self.fit(rows, now_ms)
        return self.install(rows, model, now_ms)

    def install(self, rows: np.ndarray, model: BehaviourModel, now_ms: int) -> int:
        """Hand a fit to the early warnings (on the engine's thread); rows it could not fit wait an hour."""
        self.ew.install_behaviour(rows, model)
        self.retry_ms[rows] = np.where(model.fitted_ms < 0, now_ms + HOUR_MS, -1)
        self.last_fit_ms = now_ms
        self.last_fitted = int(np.count_nonzero(model.fitted_ms >= 0))
        return self.last_fitted

    # ---- fitting

    def fit(self, rows: np.ndarray, now_ms: int) -> BehaviourModel:
        """Fit ``rows`` from their history in [now - max_history, now); grouped by grid step. Raises
        LearningStopped if stop() is called meanwhile."""
        ew = self.ew
        rows = np.asarray(rows, dtype=np.intp)
        self.paused_s = 0.0
        out = BehaviourModel.empty(len(rows), ew.rate_windows_s.shape[1])
        steps = ew.step_s[rows]
        for step in np.unique(steps).tolist():
            at = np.flatnonzero(steps == step)
            r = rows[at]
            step_ms = int(step * 1000)
            start = now_ms - self.max_history_ms
            if not self.history_before_start:  # a backtest's history begins with its first reading
                first = np.nanmin(ew.t_first[r]) * 1000 if np.isfinite(ew.t_first[r]).any() else now_ms
                start = max(start, int(first))
            start -= start % step_ms
            n_bins = max(0, (now_ms - start) // step_ms)
            if n_bins < 8:
                continue
            # a chunk of rows at a time: memory stays near FIT_CELLS grid cells whatever the fleet
            chunk = max(1, FIT_CELLS // n_bins)
            for lo in range(0, len(r), chunk):
                self._yield_to_ingest()
                if self._stopping.is_set():
                    raise LearningStopped(f"after {lo} of {len(r)} rows on the {step:g} s grid")
                part = slice(lo, lo + chunk)
                values = self.history.bin_means(ew.slots[r[part]], start, step, n_bins)
                model = fit_behaviour(
                    values,
                    start / 1000.0,
                    step,
                    ew.rate_windows_s[r[part]],
                    fitted_ms=now_ms,
                    slow_lag_s=ew.horizon_s[r[part]] / 8.0,
                )
                out.put(at[part], model)
        return out

    def _yield_to_ingest(self) -> None:
        """Wait while ingest catches up, within what is left of this fit's max_pause_s."""
        if self.pause_while is None:
            return
        while self.paused_s < self.max_pause_s and not self._stopping.is_set() and self.pause_while():
            if self.paused_s == 0.0:
                logger.info("learning waits while ingest drains a backlog (at most %.0f s)", self.max_pause_s)
            self._stopping.wait(PAUSE_STEP_S)
            self.paused_s += PAUSE_STEP_S

    # ---- keeping it

    def save(self) -> None:
        """Write the fitted behaviour beside the journal (atomic replace)."""
        if self.store is not None:
            self.ew.behaviour.save(self.store, self.ew.ids)

    def health(self) -> dict:
        """For /healthz: how much of the fleet has learned behaviour, and the last fit."""
        b = self.ew.behaviour
        return {
            "forecast_sensors": len(b),
            "fitted": int(np.count_nonzero(b.fitted_ms >= 0)),
            "mature": int(np.count_nonzero(self.ew.mature(np.arange(len(b))))),
            "last_fit_ms": self.last_fit_ms if self.last_fit_ms >= 0 else None,
            "last_fitted": self.last_fitted,
            "paused_s": round(self.paused_s, 1),  # the last (or current) fit's wait for ingest
        }

    def load(self) -> int:
        """Read saved behaviour for the sensors still in the registry; returns how many rows it fitted."""
        if self.store is None or not self.store.exists():
            return 0
        try:
            model = BehaviourModel.load(self.store, self.ew.ids, self.ew.rate_windows_s.shape[1])
        except (OSError, ValueError, KeyError) as e:
            logger.warning("cannot read learned behaviour %s (%s): learning it again", self.store, e)
            return 0
        rows = np.arange(len(self.ew.ids))
        self.ew.install_behaviour(rows, model)
        return int(np.count_nonzero(model.fitted_ms >= 0))
