"""Days of a fleet's past in bulk: every sensor's readings at its own interval, and their 1-minute rollup.

The demo (issue 14 item 7) needs a week of history in InfluxDB before it starts, so trends, reports,
the learned behaviour of the early warnings and the rolling windows have something to read. Publishing
a week over MQTT would take far too long (6 million readings for the example registry), so the same
physics (simulators/signals.py `FleetModel`) is stepped on a coarse *physics tick* and sampled for
every sensor at its own interval, all in array operations:

- the model is stepped once per tick (10 s) for the whole fleet: a Python loop per tick, never per
  reading (60 480 steps for a week);
- each sensor's readings lie on its own grid of whole multiples of its interval (so the same call gives
  the same timestamps, and a rerun overwrites a point rather than adding one), and take the value
  interpolated linearly between the two ticks around them;
- interpolating between two noisy ticks shrinks the white measurement noise by `(1-w)² + w²`, so the
  missing part is added back: every reading has the noise of a live one;
- values are folded into the quiet band and rounded to the instrument's resolution as live ones are.

Time is generated in chunks of whole minutes, so each chunk also yields its rollup (min, mean, max,
count per sensor and minute), which the continuous query of docs/contracts.md §5 only computes for
readings up to 10 minutes late. Pure: no I/O (simulators/backfill.py writes the chunks).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from simulators.signals import FleetModel

#: The physics tick of the history: the model's slow motions (drift, tank cycles, rain) are smooth
#: at this scale; faster sensors are interpolated between ticks.
PHYSICS_TICK_S = 10.0
#: Time per chunk: a few hundred thousand readings of the example fleet, one InfluxDB request or two.
CHUNK_S = 3600.0
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class HistoryChunk:
    """Readings of [start_ms, end_ms), sensor-major (each sensor's in time order), and their rollup."""

    start_ms: int
    end_ms: int
    slot: np.ndarray  # (n,) int64: model slot
    ts_ms: np.ndarray  # (n,) int64
    value: np.ndarray  # (n,) float64
    minute_slot: np.ndarray  # (m,) int64: the rollup, one row per sensor and minute with readings
    minute_ms: np.ndarray  # (m,) int64: the minute's start
    minute_min: np.ndarray  # (m,) float64
    minute_mean: np.ndarray  # (m,) float64
    minute_max: np.ndarray  # (m,) float64
    minute_count: np.ndarray  # (m,) int64

    def __len__(self) -> int:
        return int(self.slot.shape[0])


def reading_times(interval_s: np.ndarray, start_ms: np.ndarray, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """(slot, ts_ms) of every reading on each slot's grid (multiples of its interval) in [start, end).

    `start_ms` is per slot, so a sensor already stored up to some time resumes after it.
    """
    step = np.round(np.asarray(interval_s, dtype=np.float64) * 1000).astype(np.int64)  # (n,)
    first = -(-np.asarray(start_ms, dtype=np.int64) // step) * step  # ceil to the grid
    counts = np.maximum(0, -(-(end_ms - first) // step))
    slot = np.repeat(np.arange(step.size, dtype=np.int64), counts)
    offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return slot, first[slot] + offsets * step[slot]


def minute_rollup(
    slot: np.ndarray, ts_ms: np.ndarray, value: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(slot, minute_ms, min, mean, max, count) per sensor and minute of sensor-major, time-sorted data."""
    if slot.size == 0:
        empty_i, empty_f = np.empty(0, np.int64), np.empty(0, np.float64)
        return empty_i, empty_i, empty_f, empty_f, empty_f, empty_i
    minute = ts_ms - ts_ms % MINUTE_MS
    new = np.r_[True, (slot[1:] != slot[:-1]) | (minute[1:] != minute[:-1])]
    starts = np.flatnonzero(new)
    count = np.diff(np.r_[starts, slot.size])
    total = np.add.reduceat(value, starts)
    return (
        slot[starts],
        minute[starts],
        np.minimum.reduceat(value, starts),
        total / count,
        np.maximum.reduceat(value, starts),
        count.astype(np.int64),
    )


class HistoryGenerator:
    """Steps a FleetModel through [start, end) and yields HistoryChunks; the model is left at `end`.

    The model must not have been stepped past `start`: the live fleet (simulators/stream.py) goes on
    from the state the history leaves, so the trend continues where the backfill ended.
    """

    def __init__(
        self,
        model: FleetModel,
        start_ms: int | np.ndarray,
        end_ms: int,
        *,
        seed: int = 0,
        tick_s: float = PHYSICS_TICK_S,
        chunk_s: float = CHUNK_S,
    ):
        if chunk_s % 60 or chunk_s <= 0 or tick_s <= 0:
            raise ValueError("chunk_s must be a positive number of whole minutes, tick_s positive")
        self.model = model
        self.end_ms = int(end_ms)
        self.slot_start_ms = np.broadcast_to(np.asarray(start_ms, dtype=np.int64), (model.n,)).copy()
        self.tick_ms = round(tick_s * 1000)
        self.chunk_ms = round(chunk_s * 1000)
        # chunks on whole minutes of the epoch, so no minute of the rollup is split between two
        first = int(self.slot_start_ms.min(initial=self.end_ms))
        self.start_ms = first - first % MINUTE_MS
        self.interval_s = np.array([s.interval_s for s in model.sensors], dtype=np.float64)
        self._rng = np.random.default_rng([seed, 0x415])  # the model's own draws stay as live ones

    def total_readings(self) -> int:
        """How many readings the whole range holds (for a progress display)."""
        step = np.round(self.interval_s * 1000).astype(np.int64)
        first = -(-self.slot_start_ms // step) * step
        return int(np.maximum(0, -(-(self.end_ms - first) // step)).sum())

    def __iter__(self) -> Iterator[HistoryChunk]:
        m = self.model
        if self.start_ms >= self.end_ms:
            return
        tick = self.tick_ms
        t_prev = self.start_ms
        v_prev = m.step(t_prev / 1000.0)
        for a in range(self.start_ms, self.end_ms, self.chunk_ms):
            b = min(a + self.chunk_ms, self.end_ms)
            # ticks covering [a, b]: the one at a (from the last chunk) and every tick after it up to b
            n_ticks = -(-(b - a) // tick)
            times = a + tick * np.arange(n_ticks + 1, dtype=np.int64)
            values = np.empty((m.n, n_ticks + 1))  # (n_sensors, ticks)
            values[:, 0] = v_prev
            for k in range(1, n_ticks + 1):
                values[:, k] = m.step(times[k] / 1000.0)
            t_prev, v_prev = int(times[-1]), values[:, -1]
            slot, ts = reading_times(self.interval_s, np.maximum(self.slot_start_ms, a), b)
            yield self._chunk(a, b, slot, ts, times, values)
        if t_prev != self.end_ms:  # leave the model at the end, where the live fleet goes on
            m.step(self.end_ms / 1000.0)

    def _chunk(
        self, a: int, b: int, slot: np.ndarray, ts: np.ndarray, times: np.ndarray, values: np.ndarray
    ) -> HistoryChunk:
        m = self.model
        pos = (ts - times[0]) / self.tick_ms
        k = np.minimum(pos.astype(np.int64), times.size - 2)
        w = pos - k
        v = values[slot, k] * (1.0 - w) + values[slot, k + 1] * w
        # restore the measurement noise the interpolation averaged away
        lost = np.sqrt(np.fmax(0.0, 2.0 * w * (1.0 - w)))  # 1 - (1-w)² - w², as a standard deviation
        v += m.noise_sigma[slot] * lost * self._rng.standard_normal(v.size)
        hi, lo = m.quiet_hi[slot], m.quiet_lo[slot]
        v = np.where(m.has_hi_alarm[slot] & (v > hi), 2 * hi - v, v)
        v = np.where(m.has_lo_alarm[slot] & (v < lo), 2 * lo - v, v)
        v = np.clip(v, lo, hi)
        v = np.round(v * m.scale[slot]) / m.scale[slot]
        rollup = minute_rollup(slot, ts, v)
        return HistoryChunk(a, b, slot, ts, v, *rollup)
