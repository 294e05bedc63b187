"""Per-sensor reporting schedule: which sensors are due at a tick, each at its own `interval_s`."""

from __future__ import annotations

import numpy as np

#: Tolerance for float tick times (a tick at 9.9999999 s still serves a sensor due at 10 s).
_EPS_S = 1e-6


class DueSchedule:
    """Every sensor reports at the first tick and then once per `interval_s`.

    Ticks coarser than an interval are not caught up with extra samples: a gateway polls its
    sensors when it runs and reports the current value, it does not invent the missed ones.
    """

    def __init__(self, interval_s: np.ndarray):
        self.interval_s = np.asarray(interval_s, dtype=np.float64)  # (n_sensors,)
        self.next_due_s: np.ndarray | None = None  # (n_sensors,) epoch s

    def due(self, t_s: float) -> np.ndarray:
        """Return a (n_sensors,) bool mask of the sensors due at `t_s`, and book their next time."""
        if self.next_due_s is None:
            self.next_due_s = np.full(self.interval_s.shape, float(t_s))
        due = t_s + _EPS_S >= self.next_due_s
        if due.any():
            interval = self.interval_s[due]
            late = t_s + _EPS_S - self.next_due_s[due]
            self.next_due_s[due] += (np.floor(late / interval) + 1.0) * interval
        return due


def tick_for(interval_s: np.ndarray, lo_s: float = 0.1, hi_s: float = 60.0) -> float:
    """Tick length for a fleet: its fastest interval, bounded to [lo_s, hi_s]."""
    if len(interval_s) == 0:
        return 1.0
    return float(min(max(float(np.min(interval_s)), lo_s), hi_s))
