"""Which readings would change history: a value already held at their sensor's timestamp.

The reading store keeps one point per series and timestamp, so a reading at a timestamp that
already holds a value replaces it, silently (issue 11). The guard remembers, for each sensor, its
newest timestamp and its last `ring` accepted points, and sorts a batch's readings into:

- new: newer than anything of the sensor since hazmon started, or at a timestamp the guard knows
  is free: nothing to compare;
- held: the guard remembers a value at that timestamp (`held_value`): the same value is a
  redelivery (harmless), another value a change;
- unknown: at or before the sensor's newest timestamp but no longer remembered, or older than
  `trust_from_ms` (written before this process started): only the store can say.

Pure numpy, a few passes over the batch; the memory is `ring` x 16 bytes per sensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensors.readings import ReadingBatch

RING = 4
"""Points remembered per sensor: enough to cover what the writer has accepted but not yet stored
(one flush, 0.5 s), the only points the store cannot yet answer for."""


@dataclass(slots=True)
class Screening:
    """Per reading of a batch (arrays of its length); `resolve` and `settle_repeats` complete it."""

    value: np.ndarray  # float64: the readings' values
    held: np.ndarray  # bool: a value is known at this timestamp (`held_value`)
    held_value: np.ndarray  # float64: that value (NaN where not held)
    unknown: np.ndarray  # bool: only the store can say whether a value is held

    def resolve(self, rows: np.ndarray, found: np.ndarray, stored: np.ndarray) -> None:
        """The store's answer for `rows` (of the unknown ones): `found` held `stored` values."""
        self.held[rows[found]] = True
        self.held_value[rows[found]] = stored[found]
        self.unknown[rows] = False

    @property
    def changes(self) -> np.ndarray:
        """Readings that would replace a different value held at their timestamp."""
        return self.held & (self.held_value != self.value)


class HistoryGuard:
    """Remembers what each sensor has written since start; screens batches against it."""

    def __init__(self, n_slots: int, trust_from_ms: int, ring: int = RING):
        self.trust_from_ms = trust_from_ms
        self.ring = ring
        self._ts = np.full((n_slots, ring), -1, dtype=np.int64)
        self._value = np.full((n_slots, ring), np.nan, dtype=np.float64)
        self._next = np.zeros(n_slots, dtype=np.int64)
        self._newest = np.full(n_slots, -1, dtype=np.int64)

    @property
    def nbytes(self) -> int:
        """Memory held, for the benchmark's bytes per sensor."""
        return self._ts.nbytes + self._value.nbytes + self._next.nbytes + self._newest.nbytes

    def screen(self, batch: ReadingBatch) -> Screening:
        """Sort the batch's readings into new, held and unknown (see the module's docstring),
        against what was remembered before the batch."""
        slot, ts = batch.slot.astype(np.int64), batch.ts_ms
        hit = self._ts[slot] == ts[:, None]  # (n, ring)
        held = hit.any(axis=1)
        held_value = np.full(slot.shape[0], np.nan)
        if held.any():
            rows = np.flatnonzero(held)
            held_value[rows] = self._value[slot[rows], hit[rows].argmax(axis=1)]
        newest = self._newest[slot]
        fresh = np.where(newest >= 0, ts > newest, ts >= self.trust_from_ms)
        return Screening(batch.value, held, held_value, ~held & ~fresh)

    def remember(self, batch: ReadingBatch) -> None:
        """Record accepted readings: the newest timestamp, and the last `ring` points, of each sensor."""
        n = len(batch)
        if n == 0:
            return
        slot = batch.slot.astype(np.int64)
        np.maximum.at(self._newest, slot, batch.ts_ms)
        order = np.argsort(slot, kind="stable")  # arrival order within each sensor
        sorted_slot = slot[order]
        starts = np.r_[0, np.flatnonzero(sorted_slot[1:] != sorted_slot[:-1]) + 1]
        counts = np.diff(np.r_[starts, n])
        per_row_count = np.repeat(counts, counts)
        rank = np.arange(n) - np.repeat(starts, counts)  # 0.. in arrival order within the sensor
        keep = per_row_count - rank <= self.ring  # only a sensor's last `ring` readings can stay
        rows, kept_slot = order[keep], sorted_slot[keep]
        position = (self._next[kept_slot] + rank[keep]) % self.ring
        self._ts[kept_slot, position] = batch.ts_ms[rows]
        self._value[kept_slot, position] = batch.value[rows]
        first = sorted_slot[starts]
        self._next[first] = (self._next[first] + counts) % self.ring


def settle_repeats(slot: np.ndarray, ts: np.ndarray, screening: Screening) -> None:
    """Readings of one sensor and timestamp repeated inside a batch: each later one compares with
    what the first one compared with (a value held before the batch), or else with the first one
    itself, so that sending a change twice in one message does not make the second look settled."""
    n = slot.shape[0]
    if n < 2:
        return
    order = np.lexsort((np.arange(n), ts, slot))  # by sensor, time, arrival
    s_slot, s_ts = slot[order], ts[order]
    repeat = np.r_[False, (s_slot[1:] == s_slot[:-1]) & (s_ts[1:] == s_ts[:-1])]
    if not repeat.any():
        return
    run_start = np.maximum.accumulate(np.where(~repeat, np.arange(n), 0))  # index in `order`
    later, first = order[repeat], order[run_start[repeat]]
    held_first = screening.held[first]
    screening.held_value[later] = np.where(held_first, screening.held_value[first], screening.value[first])
    screening.held[later] = True
    screening.unknown[later] = False
