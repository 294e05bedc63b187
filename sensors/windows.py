"""Rolling windows over one input's series, for computed sensors (issue 12): `sum_over`,
`mean_over` and `rate_over` of sensors/formula.py.

Memory is bounded and the same for every window: each sensor's window is a ring of BUCKETS time
buckets (a 1 h window: 1-minute buckets; 8 h: 8 minutes), each bucket holding a few sums of the
readings that fell in it. A new reading adds to its bucket; buckets that fell out of the window
are zeroed as the ring turns. Every operation is one numpy pass over the sensors of a formula shape.

The window at time t is the buckets (K - BUCKETS, K], K = t's bucket: it starts on a bucket
boundary, so it spans between W - W/BUCKETS and W. Each interval between two consecutive readings
belongs to the bucket of its end. Readings must come in time order (the caller keeps only a
reading newer than the input's latest, so a duplicate or a late one changes nothing).

A window is *covered* when it starts after the first reading taken since the process started (or
the earliest seeded from the store) and holds no *hole*: an interval between consecutive readings
longer than the input's stale time, or next to a bad reading (which adds nothing). A hole counts
in the bucket of its end until that bucket leaves the window. An uncovered window, or one holding
an uncertain reading, makes the result uncertain: a restart never shows a falsely low 24 h
rainfall as good.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from sensors.model import Quality

Kind = Literal["sum", "mean", "rate"]
BUCKETS = 60
DAY_MS = 86_400_000

# fields of a bucket: its flaws (holes and uncertain readings: the result is uncertain while any is in
# the window; every kind), then the kind's own
_FLAWS = 0
_FIELDS: dict[str, tuple[str, ...]] = {
    "sum": ("x",),  # the sum of the readings (e.g. tipping-bucket increments)
    "mean": ("area", "span"),  # the integral of the series (trapezoid rule) and the seconds it covers
    "rate": ("n", "t", "x", "tt", "tx"),  # least-squares sums; t in days from the sensor's first reading
}


class WindowState:
    """The windows of one formula term (e.g. `sum_over(rain, 3600)`) for m computed sensors."""

    def __init__(self, kind: Kind, window_s: float, m: int, buckets: int = BUCKETS):
        self.kind = kind
        self.window_ms = round(window_s * 1000)
        self.buckets = buckets
        self.acc = np.zeros((m, 1 + len(_FIELDS[kind]), buckets))  # (m, fields, buckets)
        self.last_t = np.full(m, -1, dtype=np.int64)  # the latest reading taken, ms
        self.last_x = np.full(m, np.nan)  # its value (NaN: bad)
        self.last_k = np.full(m, -1, dtype=np.int64)  # its bucket (absolute)
        self.first_t = np.full(m, -1, dtype=np.int64)  # the first reading taken: coverage starts
        self.ref_t = np.full(m, -1, dtype=np.int64)  # rate: times and values relative to the
        self.ref_x = np.full(m, np.nan)  # first reading, so the sums keep their precision

    def _bucket(self, t_ms: np.ndarray) -> np.ndarray:
        return t_ms * self.buckets // self.window_ms

    def add(
        self, rows: np.ndarray, t_ms: np.ndarray, x: np.ndarray, quality: np.ndarray, stale_ms: np.ndarray
    ) -> None:
        """Take one reading for each of ``rows`` (unique); a reading not newer than the row's
        latest is ignored. ``stale_ms``: the longest gap between readings still covered."""
        new = t_ms > self.last_t[rows]
        if not new.all():
            rows, t_ms, x, quality, stale_ms = rows[new], t_ms[new], x[new], quality[new], stale_ms[new]
        if rows.size == 0:
            return
        k = self._bucket(t_ms)
        self._turn(rows, k)
        usable = quality < Quality.BAD
        xv = np.where(usable, x, np.nan)
        t0, x0 = self.last_t[rows], self.last_x[rows]
        covered = (t0 >= 0) & (t_ms - t0 <= stale_ms) & np.isfinite(x0) & usable
        first = t0 < 0
        if first.any():
            self.first_t[rows[first]] = self.ref_t[rows[first]] = t_ms[first]
            self.ref_x[rows[first]] = x[first]
        parts = [((~first & ~covered) | (quality == Quality.UNCERTAIN)).astype(np.float64)]
        if self.kind == "sum":
            parts.append(np.where(usable, x, 0.0))
        elif self.kind == "mean":
            span_s = np.where(covered, (t_ms - t0) / 1000.0, 0.0)
            parts += [np.where(covered, (x0 + x) / 2 * span_s, 0.0), span_s]
        else:
            tau = (t_ms - self.ref_t[rows]) / DAY_MS
            xr = np.where(usable, x - self.ref_x[rows], 0.0)
            n = usable.astype(np.float64)
            tau = tau * n
            parts += [n, tau, xr, tau * tau, tau * xr]
        self.acc[rows, :, k % self.buckets] += np.stack(parts, axis=1)
        self.last_t[rows], self.last_x[rows], self.last_k[rows] = t_ms, xv, k

    def _turn(self, rows: np.ndarray, k: np.ndarray) -> None:
        """Zero the buckets that leave the window as the rows' latest bucket moves on to ``k``."""
        step = np.where(self.last_k[rows] < 0, self.buckets, k - self.last_k[rows])
        one = step == 1  # the usual case: only the bucket k itself is recycled
        self.acc[rows[one], :, k[one] % self.buckets] = 0.0
        far = step > 1
        if far.any():
            self.acc[rows[far]] *= ~self._expired(self.last_k[rows[far]], k[far])[:, None, :]

    def _expired(self, last_k: np.ndarray, k: np.ndarray) -> np.ndarray:
        """(r, buckets) bool: ring positions whose bucket (the one in (last_k - B, last_k]) is at
        or before k - B, i.e. outside the window that ends in bucket k."""
        pos = np.arange(self.buckets)
        held = last_k[:, None] - (last_k[:, None] - pos) % self.buckets  # the bucket each position holds
        return held <= (k - self.buckets)[:, None]

    def value(self, rows: np.ndarray, t_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The window ending at ``t_ms`` of each row: (value, good). NaN where there is none: no
        reading yet, no covered time (mean), fewer than two readings or all at one time (rate)."""
        k = self._bucket(t_ms)
        late = k > self.last_k[rows]
        every = (
            rows.size == self.acc.shape[0] and rows.size > 0 and rows[0] == 0 and rows[-1] == rows.size - 1
        )
        if every and not late.any():  # the usual tick: every row, each at its own latest
            sums = self.acc.sum(axis=2)  # (r, fields)
        else:
            acc = self.acc[rows]  # (r, fields, buckets), a copy
            if late.any():  # another input is newer than this one's latest: older buckets have left
                acc[late] *= ~self._expired(self.last_k[rows[late]], k[late])[:, None, :]
            sums = acc.sum(axis=2)
        with np.errstate(all="ignore"):
            if self.kind == "sum":
                value = sums[:, 1]
            elif self.kind == "mean":
                value = np.where(sums[:, 2] > 0, sums[:, 1] / sums[:, 2], np.nan)
            else:
                n, t, x, tt, tx = sums[:, 1:].T
                den = n * tt - t * t
                ok = (n >= 2) & (den > 1e-12 * np.maximum(n * tt, 1e-300))
                value = np.where(ok, (n * tx - t * x) / den, np.nan)  # per day
        start_ms = (k - self.buckets + 1) * self.window_ms // self.buckets  # at or before the window's start
        seen = self.last_t[rows] >= 0
        good = seen & (self.first_t[rows] <= start_ms) & (sums[:, _FLAWS] == 0)
        return np.where(seen, value, np.nan), good
