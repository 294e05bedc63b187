"""Learned behaviour for `make bench-engine`: every forecast sensor fitted before the tick is timed,
and the time of a refit of a whole fleet from a month of history.

The tick bench must measure the early warnings as they run in a service that has learned: each
forecast sensor judged by its fitted model (screening, first-passage chances), not by the trend alone
as in its first hour. Fitting 1 M sensors for real would take longer than the bench, and the tick's
cost does not depend on the numbers in a model, only on its being there. So a few hundred prototype
sensors per grid step are fitted for real (alerts/engine/behaviour.py) to synthetic history of the workload's
own kind (a mean-reverting walk with a daily cycle), and every sensor gets a prototype moved to its own
centre and scaled to its own noise.

The refit figure runs the service's own learner (alerts/learning.py, chunked as in the service) over
a fleet, with a history source that makes each sensor's bin means on its own grid: the time spent
making them is measured and left out, so what is reported is the fit alone.
"""

from __future__ import annotations

import math
import time

import numpy as np

from alerts.engine import behaviour as bh
from alerts.learning import BehaviourLearner

DAY_S = 86_400.0
PROTOTYPES = 256  # fitted for real per grid step
PROTOTYPE_DAYS = 4  # enough for the profile and for maturity (at most 3 days)


class SyntheticHistory:
    """Bin means of an AR(1) walk (lag-1 correlation 0.8 per bin) plus a daily cycle, per sensor:
    centred on ``centre`` with spread ``scale``. Counts the seconds it spends making them."""

    def __init__(self, centre: np.ndarray, scale: np.ndarray, seed: int = 3):
        self.centre, self.scale = centre, scale
        self.rng = np.random.default_rng(seed)
        self.spent_s = 0.0

    def bin_means(self, slots: np.ndarray, start_ms: int, step_s: float, n_bins: int) -> np.ndarray:
        a = time.perf_counter()
        t = start_ms / 1000.0 + (np.arange(n_bins) + 0.5) * step_s
        k = len(slots)
        x = self.rng.standard_normal((k, n_bins))
        # AR(1) by a short FIR (0.8^j, j < 12): close enough, and vectorised
        ar = x.copy()
        for j in range(1, 12):
            ar[:, j:] += 0.8**j * x[:, :-j]
        ar *= math.sqrt(1 - 0.64)
        cycle = 0.5 * np.sin(2 * np.pi * t / DAY_S)
        out = self.centre[slots, None] + self.scale[slots, None] * (ar + cycle[None, :])
        out[self.rng.random((k, n_bins)) < 0.005] = np.nan  # a few empty bins
        self.spent_s += time.perf_counter() - a
        return out


def install_learned(ew, centre: np.ndarray, scale: np.ndarray, now_ms: int) -> int:
    """Give every row of ``ew`` a fitted behaviour: prototypes fitted per grid step, moved and scaled."""
    unit = np.zeros(len(centre))
    one = np.ones(len(centre))
    history = SyntheticHistory(unit, one)
    installed = 0
    for step in np.unique(ew.step_s).tolist():
        rows = np.flatnonzero(ew.step_s == step)
        k = min(len(rows), PROTOTYPES)
        n_bins = int(PROTOTYPE_DAYS * DAY_S // step)
        start = now_ms - int(n_bins * step * 1000)
        values = history.bin_means(np.zeros(k, dtype=np.intp), start, step, n_bins)
        proto = bh.fit_behaviour(
            values, start / 1000.0, step, ew.rate_windows_s[rows[:k]], fitted_ms=now_ms,
            slow_lag_s=ew.horizon_s[rows[:k]] / 8.0,
        )  # fmt: skip
        model = proto.take(np.arange(len(rows)) % k)
        slots = ew.slots[rows]
        c, s = centre[slots], scale[slots]
        model.level = c + s * model.level
        model.season = s[:, None] * model.season
        model.quantiles = s[:, None] * model.quantiles
        model.raw_quantiles = c[:, None] + s[:, None] * model.raw_quantiles
        model.tail_lo, model.tail_hi = s * model.tail_lo, s * model.tail_hi
        model.raw_tail_lo, model.raw_tail_hi = s * model.raw_tail_lo, s * model.raw_tail_hi
        model.rate_lo, model.rate_hi = s[:, None] * model.rate_lo, s[:, None] * model.rate_hi
        ew.install_behaviour(rows, model)
        installed += int(np.count_nonzero(model.fitted_ms >= 0))
    return installed


def time_refit(
    ew, centre: np.ndarray, scale: np.ndarray, now_ms: int, days: float, step_s: float | None
) -> dict:
    """Refit every row of ``ew`` from ``days`` of history through the service's learner.

    ``step_s`` forces one grid step on every row (60: the worst case, a month of 1-minute bins for
    every sensor); None keeps each sensor's own step (alerts/engine/early_warning.py learning_step_s).
    """
    if step_s is not None:
        ew.step_s[:] = step_s
    history = SyntheticHistory(centre, scale)
    learner = BehaviourLearner(ew, history, max_history_s=days * DAY_S, history_before_start=True)
    rows = np.arange(len(ew.slots))
    a = time.perf_counter()
    model = learner.fit(rows, now_ms)
    total = time.perf_counter() - a
    bins = {float(s): int(np.count_nonzero(ew.step_s == s)) for s in np.unique(ew.step_s)}
    return {
        "sensors": len(rows),
        "fitted": int(np.count_nonzero(model.fitted_ms >= 0)),
        "fit_s": total - history.spent_s,
        "history_s": history.spent_s,
        "grid_cells": int(sum(n * days * DAY_S // s for s, n in bins.items())),
        "sensors_by_step_s": bins,
    }
