"""1-minute summaries of chosen sensors (docs/contracts.md §8): which minutes are due, and their figures.

Pure numpy. A minute [m, m + 60 s) is summarised once, after it closed and `delay_ms` more passed
(readings arrive late, the writer flushes every half second); the forwarder persists the next
minute to summarise, so a restart or an outage catches up, but at most `catchup` minutes back:
older minutes are skipped and counted, never summarised from a partial picture days later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MINUTE_MS = 60_000
BAD = 2  # quality code of a bad reading (docs/contracts.md §5)


def minute_floor(ms: int) -> int:
    return ms - ms % MINUTE_MS


@dataclass(frozen=True, slots=True)
class DueMinutes:
    """Minutes to summarise now (starts, ms, oldest first) and how many were skipped as too old."""

    minutes: list[int]
    skipped: int

    @property
    def next_position(self) -> int | None:
        """The next minute to summarise once these are done (None: nothing due)."""
        return self.minutes[-1] + MINUTE_MS if self.minutes else None


def due_minutes(position_ms: int, now_ms: int, delay_ms: int, catchup: int, limit: int = 10) -> DueMinutes:
    """The closed minutes from `position_ms` (the next one to summarise) that are due at `now_ms`.

    A minute is due when it ended at least `delay_ms` ago; only the newest `catchup` due minutes are
    kept (the older ones are `skipped`), and at most `limit` at once (the rest come next call).
    """
    position_ms = minute_floor(position_ms)
    last_due = minute_floor(now_ms - delay_ms) - MINUTE_MS  # the newest minute that ended delay_ms ago
    if last_due < position_ms:
        return DueMinutes([], 0)
    first = max(position_ms, last_due - (catchup - 1) * MINUTE_MS)
    skipped = (first - position_ms) // MINUTE_MS
    count = min((last_due - first) // MINUTE_MS + 1, limit)
    return DueMinutes([first + i * MINUTE_MS for i in range(count)], skipped)


def minute_stats(
    ts_ms: np.ndarray, values: np.ndarray, quality: np.ndarray, minute_ms: int
) -> dict[str, Any]:
    """count, bad, min, max, mean, last and last_ms of the readings in [minute, minute + 60 s).

    Bad-quality readings and missing values are left out of the figures and counted in `bad`; a
    minute without a usable reading has count 0 and null figures (a platform sees the gap).
    """
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    quality = np.asarray(quality, dtype=np.float64)
    inside = (ts_ms >= minute_ms) & (ts_ms < minute_ms + MINUTE_MS)
    usable = inside & np.isfinite(values) & (quality != BAD)
    bad = int(np.count_nonzero(inside & ~usable))
    if not usable.any():
        return {"count": 0, "bad": bad, "min": None, "max": None, "mean": None, "last": None, "last_ms": None}
    t, v = ts_ms[usable], values[usable]
    i = int(np.argmax(t))
    return {
        "count": int(v.size),
        "bad": bad,
        "min": float(v.min()),
        "max": float(v.max()),
        "mean": float(v.mean()),
        "last": float(v[i]),
        "last_ms": int(t[i]),
    }
