"""Tanks run by operators (realism feature `modes`): receipts, settling, truck loading; vectorised.

The classic tank cycle fills and draws between random targets at 0.15-0.35 m/h at any hour. A real
tank farm works to a plan (DOMAIN §7.1):

- a receipt (ship or pipeline batch) is pumped in at 0.5-0.75 m/h (350-530 m³/h into a Φ30 m tank)
  and stopped by the operator at the tank's usual high working level, the normal fill height, 5-10 %
  of the L..H span below H (0.65-1.3 m below H 14.2 m on a 15.85 m shell);
- the product then settles and is sampled for 4-12 h;
- it is sold by truck loading, 0.15-0.3 m/h while a truck is at the bay; trucks come one after another
  on day shifts (simulators/field.py, workweek.py): nothing moves at night or at weekends;
- when the tank is down to its reorder level (15-30 % of the span) the next receipt is nominated and
  arrives 2-24 h later, at any hour.

Each tank is one slot of a few arrays; a step is a handful of numpy operations whatever the fleet.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simulators.workweek import HOUR_S

RECEIVE, SETTLE, ISSUE, WAIT = range(4)
PHASE_NAMES = ("receive", "settle", "issue", "wait")


class TankOperations:
    """Operator-driven levels of `k` tanks (true levels, in each tank's unit)."""

    def __init__(
        self,
        band_lo: np.ndarray,
        band_hi: np.ndarray,
        to_unit: np.ndarray,
        init: np.random.Generator,
        rng: np.random.Generator,
    ):
        self.band_lo = band_lo
        self.band_hi = band_hi
        self.width = band_hi - band_lo
        self.to_unit = to_unit
        self._rng = rng
        k = band_lo.size
        self.fill_rate = init.uniform(0.5, 0.75, k) * to_unit / HOUR_S  # unit/s
        self.draw_rate = init.uniform(0.15, 0.3, k) * to_unit / HOUR_S
        self.fill_target = self._fill_targets(init, np.arange(k))
        self.reorder = band_lo + init.uniform(0.15, 0.3, k) * self.width
        self.phase = init.choice(np.array([RECEIVE, SETTLE, ISSUE, WAIT]), k, p=[0.15, 0.15, 0.6, 0.1])
        self.level = np.where(self.phase == WAIT, self.reorder, init.uniform(self.reorder, self.fill_target))
        self._until_left_s = init.uniform(0.0, 8.0, k) * HOUR_S  # of a SETTLE or WAIT under way
        self.until: np.ndarray | None = None

    def _fill_targets(self, rng: np.random.Generator, idx: np.ndarray) -> np.ndarray:
        """Normal fill height of tanks `idx`: 5-10 % of the L..H span below H."""
        return self.band_hi[idx] - rng.uniform(0.05, 0.10, idx.size) * self.width[idx]

    def step(
        self, t_s: float, dt: float, loading: np.ndarray, log: Callable[[np.ndarray, str, np.ndarray], None]
    ) -> np.ndarray:
        """Advance to `t_s`; `loading` (k,) 0..1: a truck is loading at the tank's site. Return levels."""
        if self.until is None:
            self.until = t_s + self._until_left_s
        rng = self._rng
        ph = self.phase
        rate = np.where(ph == RECEIVE, self.fill_rate, np.where(ph == ISSUE, -self.draw_rate * loading, 0.0))
        lvl = self.level + rate * dt
        full = (ph == RECEIVE) & (lvl >= self.fill_target)
        low = (ph == ISSUE) & (lvl <= self.reorder)
        lvl = np.where(full, self.fill_target, np.where(low, self.reorder, lvl))
        if full.any():
            ph[full] = SETTLE
            self.until[full] = t_s + rng.uniform(4.0, 12.0, int(full.sum())) * HOUR_S
            log(np.flatnonzero(full), "receipt stops at the normal fill height", lvl[full])
        if low.any():
            ph[low] = WAIT
            self.until[low] = t_s + rng.uniform(2.0, 24.0, int(low.sum())) * HOUR_S
        settled = (ph == SETTLE) & (t_s >= self.until)
        ph[settled] = ISSUE
        start = (ph == WAIT) & (t_s >= self.until)
        if start.any():
            ph[start] = RECEIVE
            idx = np.flatnonzero(start)
            self.fill_target[idx] = self._fill_targets(rng, idx)
            self.fill_rate[idx] = rng.uniform(0.5, 0.75, idx.size) * self.to_unit[idx] / HOUR_S
            log(np.flatnonzero(start), "receipt starts", self.fill_target[start])
        self.level = lvl
        return lvl
