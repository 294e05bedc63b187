"""What a backtest's calibration counts (alerts/calibration.py): reliability bins and band coverage."""

from __future__ import annotations

import numpy as np

from alerts.calibration import ForecastLog, Outcomes, calibrate
from alerts.engine.conditions import ConditionKind

H = int(ConditionKind.H)
HOUR = 3600.0


def outcomes(t_s: list[float], x: list[float]) -> Outcomes:
    """One sensor (slot 0) with readings `x` at times `t_s` (s)."""
    return Outcomes(np.zeros(len(t_s), dtype=np.intp), np.array(t_s) * 1000, np.array(x, dtype=np.float64))


def log_of(judgements: list[tuple[float, float, float, float]]) -> ForecastLog:
    """A log of one forecast sensor with H = 10 and a 2 h horizon; judgements (t, p, band low, high)."""
    log = ForecastLog(
        np.array([0]), np.array([2 * HOUR]), np.array([[np.nan, np.nan, 10.0, 20.0]]), np.array([0.4])
    )
    for t, p, low, high in judgements:
        log.next_s[:] = -np.inf  # every judgement sampled
        log(np.array([0]), np.array([t]), np.array([p]), np.array([H]), np.array([high]), np.array([low]),
            np.array([high]))  # fmt: skip
    return log


def test_a_crossing_within_the_horizon_scores_the_band_and_a_later_one_counts_as_not_reached():
    # the limit is reached at 1 h (inside the first judgement's horizon and band) and not again
    out = outcomes([0, 1800, 3600, 5 * HOUR], [5.0, 8.0, 11.0, 5.0])
    log = log_of([(0.0, 0.9, 1800.0, 4000.0), (-3 * HOUR, 0.9, -2 * HOUR, -HOUR)])
    c = calibrate(log, out, [])
    assert c.judged == 2 and c.known == 2
    assert (c.band_known, c.band_inside) == (1, 1)  # the second judgement's horizon ended before 1 h
    top = next(b for b in c.reliability if b["n"])
    assert top["n"] == 2 and top["observed"] == 0.5


def test_a_warning_with_no_crossing_or_no_known_horizon_is_never_counted_as_reached_inside_its_band():
    out = outcomes([0, 1800, 3600], [5.0, 6.0, 7.0])  # never reaches H
    no_horizon = {"slot": 0, "t_s": 0.0, "limit": 10.0, "up": True, "low_s": 0.0, "high_s": np.inf}
    c = calibrate(log_of([]), out, [no_horizon, {**no_horizon, "horizon_s": 2 * HOUR}])
    assert (c.warnings, c.warnings_reached, c.warnings_inside) == (2, 0, 0)
    reached = outcomes([0, 1800], [5.0, 12.0])
    late = {**no_horizon, "horizon_s": 600.0}  # crossing at 30 min, after a 10-minute horizon
    c = calibrate(log_of([]), reached, [late, {**no_horizon, "horizon_s": 2 * HOUR}])
    assert (c.warnings, c.warnings_reached, c.warnings_inside) == (2, 1, 1)
