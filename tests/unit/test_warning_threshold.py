"""Early-warning threshold from probability histories (alerts/warning_threshold.py), on synthetic series."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from alerts.warning_threshold import (
    ProbabilitySeries,
    count_warnings,
    quiet_part,
    suggest_warning_threshold,
    warning_thresholds_by_kind,
)
from sensors.model import Limits, Sensor

MIN, DAY = 60_000, 86_400_000


def series(p: list[float], step_ms: int = MIN, t0: int = 0) -> ProbabilitySeries:
    return ProbabilitySeries(
        t0 + step_ms * np.arange(len(p), dtype=np.int64), np.asarray(p, dtype=np.float64)
    )


def test_a_warning_is_a_run_at_or_above_the_threshold_that_outlasts_the_persistence_window():
    s = series([0.2, 0.7, 0.8, 0.3, 0.9, 0.95, 0.96, 0.1, 0.9])
    assert count_warnings([s], [0.5, 0.9], persistence_ms=0).tolist() == [3, 2]
    # two minutes of persistence: only the run from minute 4 to 6 lasts that long
    assert count_warnings([s], [0.5, 0.9], persistence_ms=2 * MIN).tolist() == [1, 1]


def test_runs_never_join_across_sensors_or_missing_evaluations():
    a, b = series([0.1, 0.9, 0.9]), series([0.9, 0.9, 0.1])
    assert count_warnings([a, b], [0.5], persistence_ms=0).tolist() == [2]
    gap = series([0.9, np.nan, 0.9])
    assert count_warnings([gap], [0.5], persistence_ms=0).tolist() == [2]


def test_the_lowest_threshold_quiet_enough_for_the_target_is_suggested():
    rng = np.random.default_rng(3)

    def wandering(n: int) -> list[float]:
        """A probability that drifts with a two-hour memory (smoothed noise through a logistic)."""
        z = np.convolve(rng.normal(0, 1, n + 23), np.ones(24) / np.sqrt(24), mode="valid")
        return list(1 / (1 + np.exp(-(1.5 * z - 2.5))))

    quiet = [series(wandering(2880), step_ms=5 * MIN) for _ in range(20)]  # 20 sensors x 10 days
    got = suggest_warning_threshold(quiet, quiet_days=200.0, persistence_s=600)
    allowed = got.target_per_100_days * 200.0 / 100
    assert got.threshold is not None and got.warnings[got.threshold] <= allowed
    lower = [t for t in got.warnings if t < got.threshold]
    assert lower and all(got.warnings[t] > allowed for t in lower)
    assert list(got.warnings.values()) == sorted(got.warnings.values(), reverse=True)


def test_no_threshold_is_suggested_from_too_little_quiet_time_or_when_none_is_quiet_enough():
    short = suggest_warning_threshold([series([0.1] * 100)], quiet_days=1.0)
    assert short.threshold is None and "1.0 quiet sensor-days" in short.reason
    loud = suggest_warning_threshold(
        [series([0.999, 0.1] * 500, step_ms=10 * MIN)], quiet_days=10.0, persistence_s=0
    )
    assert loud.threshold is None and loud.warnings[0.99] == 500


def test_evaluations_before_and_during_a_real_excursion_are_not_quiet():
    s = series([0.9] * (2 * 1440), t0=0)  # two days, every minute
    excursion = (DAY + 12 * 3_600_000, DAY + 13 * 3_600_000)
    quiet, days = quiet_part(s, [excursion], observed_days=2.0, lead_s=6 * 3600)
    blank = np.isnan(quiet.p)
    assert blank.sum() == 7 * 60  # 6 h before it and its hour
    assert days == pytest.approx(2.0 - 7 / 24)
    # the blanked stretch splits the run in two
    assert count_warnings([quiet], [0.5], persistence_ms=0).tolist() == [2]


def test_thresholds_are_per_kind_from_the_forecast_sensors_only():
    def tuning(sensor_id: str, kind: str, forecast: bool):
        s = Sensor(sensor_id, "s", sensor_id, kind, "m", (0.0, 1.0), 60.0, Limits(h=0.9), forecast=forecast)
        return SimpleNamespace(sensor=s, excursion_spans_ms=(), observed_days=5.0)

    class History:
        def probability_series(self, site: str, sensor: str) -> ProbabilitySeries | None:
            return series([0.65, 0.1] * 50, step_ms=30 * MIN) if sensor != "NONE" else None

    tunings = [tuning("A", "level", True), tuning("B", "level", True), tuning("C", "pressure", False)]
    got = warning_thresholds_by_kind([*tunings, tuning("NONE", "flow", True)], History(), persistence_s=0)
    assert set(got) == {"level"}
    assert got["level"].quiet_days == 10.0 and got["level"].threshold == 0.7
    assert got["level"].warnings[0.6] == 100


def test_each_kind_is_held_for_its_own_persistence_when_given_per_kind():
    def tuning(sensor_id: str, kind: str):
        s = Sensor(sensor_id, "s", sensor_id, kind, "m", (0.0, 1.0), 60.0, Limits(h=0.9), forecast=True)
        return SimpleNamespace(sensor=s, excursion_spans_ms=(), observed_days=5.0)

    class History:
        def probability_series(self, site: str, sensor: str) -> ProbabilitySeries:
            return series([0.1, 0.8, 0.8, 0.8, 0.1] * 10)  # 2-minute runs at 0.8, one a run of 5 min

    tunings = [tuning("G", "gas_lel"), tuning("L", "level"), tuning("P", "pressure")]
    got = warning_thresholds_by_kind(tunings, History(), persistence_s={"gas_lel": 60, "level": 600})
    assert got["gas_lel"].warnings[0.8] == 10 and got["gas_lel"].persistence_s == 60
    assert got["level"].warnings[0.8] == 0 and got["level"].persistence_s == 600
    # a kind the mapping does not name is held for the default persistence (300 s)
    assert got["pressure"].warnings[0.8] == 0 and got["pressure"].persistence_s == 300


def test_the_warm_up_before_a_sensor_learned_its_behaviour_is_neither_quiet_time_nor_its_warnings_false():
    """Before its behaviour is learned a sensor is judged by its trend alone, which a service that has
    run a while never is: those judgements and that time are left out of the quiet part."""

    def tuning(sensor_id: str):
        s = Sensor(sensor_id, "s", sensor_id, "level", "m", (0.0, 1.0), 60.0, Limits(h=0.9), forecast=True)
        return SimpleNamespace(sensor=s, excursion_spans_ms=(), observed_days=2.0)

    day_of_30_min = 48  # judgements every 30 min: two days in all
    warm, learned = [0.95] * 4 + [0.1] * (day_of_30_min - 4), [0.1] * day_of_30_min

    class History:
        def probability_series(self, site: str, sensor: str) -> ProbabilitySeries:
            s = series(warm + learned, step_ms=30 * MIN)
            return ProbabilitySeries(s.t_ms, s.p, learned_from_ms=day_of_30_min * 30 * MIN)

    got = warning_thresholds_by_kind([tuning("A")], History(), persistence_s=0, min_quiet_days=0.5)
    assert got["level"].quiet_days == pytest.approx(1.0, abs=0.03)
    assert got["level"].warnings[0.9] == 0
