"""Daily figures of discrete signals (issue 12): hours in each state, and for interlocks the
in-service ratio (联锁投用率) and the bypass hours that regulators ask of a site.

A discrete signal's state holds from one reading to the next: gateways often report only on
change. The state before the day is its last reading before the day (looked up over `LOOKBACK_MS`);
time before any known state is counted as unknown, and so is the time after a bad reading. Pure
numpy over one sensor's readings; the API reads them from the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOOKBACK_MS = 7 * 86_400_000  # how far before the day its first state is looked for
HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class StateHours:
    """One signal over [start, end): hours in each state (by code) and hours unknown."""

    hours: np.ndarray  # (n_states,) float64
    unknown_hours: float

    @property
    def known_hours(self) -> float:
        return float(self.hours.sum())


def state_hours(
    ts_ms: np.ndarray, codes: np.ndarray, quality: np.ndarray, start_ms: int, end_ms: int, n_states: int
) -> StateHours:
    """Hours of [start_ms, end_ms) in each state, from readings (any time order, some before start).

    Each reading's state lasts until the next reading; a reading of bad quality, or a code that is
    not a state, starts unknown time. Readings at or after `end_ms` are ignored."""
    order = np.argsort(ts_ms, kind="stable")
    t, c, q = ts_ms[order], codes[order], quality[order]
    keep = t < end_ms
    t, c, q = t[keep], c[keep], q[keep]
    code = np.where(np.isfinite(c), np.rint(np.nan_to_num(c, nan=-1.0)), -1).astype(np.int64)
    code = np.where((q >= 2) | (code < 0) | (code >= n_states), -1, code)
    begin = np.clip(t, start_ms, end_ms)
    finish = np.clip(np.r_[t[1:], end_ms], start_ms, end_ms)
    span = (finish - begin).astype(np.float64)
    known = code >= 0
    hours = np.bincount(code[known], weights=span[known], minlength=n_states)[:n_states] / HOUR_MS
    total = (end_ms - start_ms) / HOUR_MS
    return StateHours(hours, float(total - hours.sum()))


def in_service_ratio(hours: StateHours, in_service_code: int = 0) -> float | None:
    """The share of the known time an interlock was in service; None when nothing is known."""
    known = hours.known_hours
    return None if known <= 0 else float(hours.hours[in_service_code] / known)
