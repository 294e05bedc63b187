"""The plant's working week: when day shifts run, as a smooth 0..1 activity of local time; pure numpy."""

from __future__ import annotations

import numpy as np

HOUR_S = 3600.0
DAY_S = 86400.0
#: Day shift ramps (local hours): people arrive 06:30-08:30 and leave 17:30-19:30.
SHIFT_START_H = (6.5, 8.5)
SHIFT_END_H = (17.5, 19.5)
#: 1970-01-01 was a Thursday: weekday index 3 with Monday = 0.
EPOCH_WEEKDAY = 3
#: Plant load at night and at weekends, relative to a weekday day shift.
OFF_SHIFT_LOAD = 0.85


def _smoothstep(x: np.ndarray, a: float, b: float) -> np.ndarray:
    """0 before a, 1 after b, a raised-cosine ramp in between (no kinks for a trend to catch)."""
    u = np.clip((x - a) / (b - a), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * u)


def weekday(local_s: np.ndarray) -> np.ndarray:
    """Day of the week of local epoch seconds, Monday = 0 .. Sunday = 6."""
    return (np.floor(np.asarray(local_s) / DAY_S).astype(np.int64) + EPOCH_WEEKDAY) % 7


def day_shift(local_s: np.ndarray) -> np.ndarray:
    """Activity of the weekday day shift: 1 from 08:30 to 17:30 Monday-Friday, 0 at night and weekends."""
    local_s = np.asarray(local_s, dtype=np.float64)
    hour = np.mod(local_s, DAY_S) / HOUR_S
    on = _smoothstep(hour, *SHIFT_START_H) - _smoothstep(hour, *SHIFT_END_H)
    return on * (weekday(local_s) < 5)


def plant_load(local_s: np.ndarray) -> np.ndarray:
    """Relative plant load: 1 on weekday day shifts, OFF_SHIFT_LOAD at night and at weekends."""
    return OFF_SHIFT_LOAD + (1.0 - OFF_SHIFT_LOAD) * day_shift(local_s)
