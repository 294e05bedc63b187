"""Alarm episodes from condition changes, and the questions `hazmon tune` asks of them; pure numpy.

An *alarm point* is an integer key (virtual sensor x level). An *episode* is one activation of a
point until its next change (its return), or until the end of the window if it is still active.
Lookups "which episode of point k was active at time t" are single searchsorted calls on a
composite (key, time) integer, so every question is answered for all points at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alerts.metrics import DAY_MS

TIME_BITS = 41  # composite = key << 41 | (t - t0): 2**41 ms is about 69 years of history
KEY_LIMIT = 1 << (63 - TIME_BITS)


def composite(key: np.ndarray, t_ms: np.ndarray, t0_ms: int) -> np.ndarray:
    """(key, time) as one int64 that sorts by key, then time; times from t0_ms on."""
    rel = np.asarray(t_ms, dtype=np.int64) - t0_ms
    key = np.asarray(key, dtype=np.int64)
    if rel.size and (rel.min() < 0 or rel.max() >= 1 << TIME_BITS or key.max() >= KEY_LIMIT):
        raise ValueError("times before t0, more than 69 years of history or too many alarm points")
    return (key << TIME_BITS) | rel


@dataclass(frozen=True, slots=True)
class Episodes:
    """Activations of alarm points; sorted by key, then start."""

    key: np.ndarray  # (e,) int64
    start_ms: np.ndarray  # (e,) int64
    end_ms: np.ndarray  # (e,) int64: the return, or the window's end while still active
    open: np.ndarray  # (e,) bool: still active at the window's end

    def take(self, rows: np.ndarray) -> Episodes:
        return Episodes(self.key[rows], self.start_ms[rows], self.end_ms[rows], self.open[rows])

    @property
    def duration_ms(self) -> np.ndarray:
        return self.end_ms - self.start_ms


def episodes(key: np.ndarray, on: np.ndarray, t_ms: np.ndarray, end_ms: int, t0_ms: int) -> Episodes:
    """Pair each activation with the next change of its point (the engine emits strict on/off toggles)."""
    order = np.argsort(composite(key, t_ms, t0_ms), kind="stable")  # same instant: emission order
    k, o, t = np.asarray(key, np.int64)[order], on[order], np.asarray(t_ms, np.int64)[order]
    starts = np.flatnonzero(o)
    nxt = np.minimum(starts + 1, len(k) - 1)
    closed = (starts + 1 < len(k)) & (k[nxt] == k[starts])
    return Episodes(k[starts], t[starts], np.where(closed, t[nxt], end_ms), ~closed)


def state_at(
    key: np.ndarray, t_ms: np.ndarray, on: np.ndarray, q_key: np.ndarray, q_t_ms: np.ndarray, t0_ms: int
) -> np.ndarray:
    """Per query: the state of point `q_key` after its last toggle at or before `q_t_ms` (False if none)."""
    if len(key) == 0:
        return np.zeros(len(q_key), dtype=bool)
    c = composite(key, t_ms, t0_ms)
    order = np.argsort(c, kind="stable")
    c, k, o = c[order], np.asarray(key)[order], on[order]
    at = np.searchsorted(c, composite(q_key, q_t_ms, t0_ms), side="right") - 1
    safe = np.maximum(at, 0)
    return (at >= 0) & (k[safe] == q_key) & o[safe]


def active_between(
    ep: Episodes, q_key: np.ndarray, from_ms: np.ndarray, to_ms: np.ndarray, t0_ms: int
) -> np.ndarray:
    """For each query, whether point `q_key` was active at some instant of [from_ms, to_ms].

    Episodes of one point do not overlap, so the last one starting by `to_ms` is the only one
    that can still be active at `from_ms`.
    """
    if len(ep.key) == 0:
        return np.zeros(len(q_key), dtype=bool)
    at = (
        np.searchsorted(composite(ep.key, ep.start_ms, t0_ms), composite(q_key, to_ms, t0_ms), side="right")
        - 1
    )
    safe = np.maximum(at, 0)
    return (at >= 0) & (ep.key[safe] == q_key) & (ep.end_ms[safe] > from_ms)


@dataclass(frozen=True, slots=True)
class Excursions:
    """Raw limit crossings of one point merged when less than a gap apart: one process excursion each."""

    key: np.ndarray  # (x,) int64
    start_ms: np.ndarray  # (x,) first crossing
    end_ms: np.ndarray  # (x,) last return
    beyond_ms: np.ndarray  # (x,) time actually beyond the limit


def merge(ep: Episodes, gap_ms: int) -> Excursions:
    """Merge episodes of one point that start less than `gap_ms` after the previous one ended."""
    if len(ep.key) == 0:
        empty = np.zeros(0, np.int64)
        return Excursions(empty, empty, empty, empty)
    new = np.r_[True, (ep.key[1:] != ep.key[:-1]) | (ep.start_ms[1:] - ep.end_ms[:-1] >= gap_ms)]
    heads = np.flatnonzero(new)
    tails = np.r_[heads[1:], len(ep.key)] - 1
    beyond = np.add.reduceat(ep.duration_ms, heads)
    return Excursions(ep.key[heads], ep.start_ms[heads], ep.end_ms[tails], beyond)


def standing(ep: Episodes, threshold_ms: int = DAY_MS) -> np.ndarray:
    """Episodes that stood at least `threshold_ms` (EEMUA: 24 h).

    The definition of alerts/metrics.standing_alarms (active for >= threshold at a given moment),
    applied to every episode of the history instead of only to those active at its end.
    """
    return ep.duration_ms >= threshold_ms


def per_key(keys: np.ndarray, n_keys: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Count (or sum `weights`) per key 0..n_keys-1."""
    return np.bincount(np.asarray(keys, np.intp), weights=weights, minlength=n_keys)[:n_keys]


def daily_counts(t_ms: np.ndarray, end_ms: int, n_days: int) -> np.ndarray:
    """Counts per day counted back from `end_ms`, oldest day first; times outside are ignored."""
    back = (end_ms - 1 - np.asarray(t_ms, np.int64)) // DAY_MS
    back = back[(back >= 0) & (back < n_days)]
    return np.bincount(back, minlength=n_days)[::-1]
