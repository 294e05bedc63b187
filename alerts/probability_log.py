"""The early warnings' probabilities as they were judged, kept per sensor for threshold tuning. Pure.

:class:`ProbabilityRecorder` is an ``EarlyWarnings.on_judged`` hook: each judgement appends its rows'
(slot, time, probability) as numpy columns, and afterwards it answers
alerts/warning_threshold.py's ``ProbabilityHistory``: one time-sorted series per forecast sensor.
Memory: 20 bytes per judgement (a level sensor is judged every 4 min, gas every 30 s).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from alerts.warning_threshold import ProbabilitySeries
from sensors.index import SensorIndex

NEVER = np.iinfo(np.int64).max


class ProbabilityRecorder:
    """Records every judgement of the early warnings over [start_ms, end_ms); one series per sensor."""

    def __init__(
        self,
        index: SensorIndex,
        row_slots: np.ndarray,
        start_ms: int | None = None,
        end_ms: int | None = None,
        mature: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        """`row_slots`: the early warnings' slot of each row (``EarlyWarnings.slots``): its forecast sensors.

        Judgements before `start_ms` or at/after `end_ms` are not kept (a replay may start earlier, to
        learn and warm its trends up before the window that is tuned). `mature(rows)` says which rows
        judge by learned behaviour (``EarlyWarnings.mature``): the first such judgement of a sensor ends
        its warm-up (``ProbabilitySeries.learned_from_ms``)."""
        self.index = index
        self.row_slots = np.asarray(row_slots, dtype=np.int32)
        self.forecast = np.zeros(len(index), dtype=bool)
        self.forecast[self.row_slots] = True
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.mature = mature
        self.learned_from_ms = np.full(len(index), NEVER, dtype=np.int64)
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._sorted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __call__(self, rows: np.ndarray, now_s: np.ndarray, prob: np.ndarray, *_evidence) -> None:
        """The on_judged hook: (rows, now_s, prob, level, eta, low, high, horizon_s); only the chance is
        kept."""
        t_ms = np.rint(np.asarray(now_s, dtype=np.float64) * 1000.0).astype(np.int64)
        if self.mature is not None:  # warm-up ends at a sensor's first judgement by learned behaviour
            rows_a = np.asarray(rows)
            m = np.asarray(self.mature(rows_a), dtype=bool)
            np.minimum.at(self.learned_from_ms, self.row_slots[rows_a[m]], t_ms[m])
        keep = np.ones(len(t_ms), dtype=bool)
        if self.start_ms is not None:
            keep &= t_ms >= self.start_ms
        if self.end_ms is not None:
            keep &= t_ms < self.end_ms
        if not keep.any():
            return
        slot = self.row_slots[np.asarray(rows)[keep]]
        p = np.array(prob, dtype=np.float64)[keep]  # a copy: the caller's arrays are its own
        self._parts.append((slot, t_ms[keep], p))
        self._sorted = None

    def __len__(self) -> int:
        return sum(len(s) for s, _, _ in self._parts)

    def _columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All judgements, by slot then time (stable: equal times keep the order they were judged in)."""
        if self._sorted is None:
            if self._parts:
                slot, t, p = (np.concatenate(c) for c in zip(*self._parts, strict=True))
            else:
                slot, t, p = np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.float64)
            order = np.lexsort((t, slot))
            self._sorted = (slot[order], t[order], p[order])
            self._parts = [self._sorted]
        return self._sorted

    def probability_series(self, site: str, sensor: str) -> ProbabilitySeries | None:
        """The sensor's judgements in time order; None if it is unknown or has no forecasts."""
        slot = self.index.by_site.get(site, {}).get(sensor)
        if slot is None or not self.forecast[slot]:
            return None
        slots, t, p = self._columns()
        lo, hi = np.searchsorted(slots, [slot, slot + 1], side="left")
        learned = None
        if self.mature is not None:  # never learned: all of it was warm-up
            first = int(self.learned_from_ms[slot])
            learned = first if first != NEVER else (int(t[hi - 1]) + 1 if hi > lo else None)
        return ProbabilitySeries(t[lo:hi], p[lo:hi], learned)
