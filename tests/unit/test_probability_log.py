"""The early warnings' probabilities kept per sensor (alerts/probability_log.py) for threshold tuning."""

from __future__ import annotations

import numpy as np

from alerts.probability_log import ProbabilityRecorder
from sensors.index import SensorIndex
from sensors.model import Limits, Registry, Sensor, Site


def index() -> SensorIndex:
    def sensor(sensor_id: str, forecast: bool) -> Sensor:
        return Sensor(
            sensor_id, "s1", sensor_id, "level", "m", (0.0, 20.0), 60.0, Limits(h=16.0), forecast=forecast
        )

    sensors = (sensor("A", True), sensor("NO-EW", False), sensor("B", True), sensor("C", True))
    return SensorIndex.build(Registry((Site(id="s1", name="站", kind="chemical", grade=2, sensors=sensors),)))


def judged(rec: ProbabilityRecorder, rows: list[int], now_s: list[float], prob: list[float]) -> None:
    """One on_judged call as EarlyWarnings makes it: (rows, now_s, prob, level, eta, low, high)."""
    n = len(rows)
    inf = np.full(n, np.inf)
    rec(np.array(rows), np.array(now_s), np.array(prob), np.full(n, -1, np.int16), inf, inf, inf)


def test_the_recorder_returns_each_forecast_sensors_probabilities_in_time_order_over_several_judgements():
    idx = index()
    row_slots = np.array([idx.slot("s1", "A"), idx.slot("s1", "B"), idx.slot("s1", "C")])  # EW rows 0, 1, 2
    rec = ProbabilityRecorder(idx, row_slots)
    judged(rec, [0, 1], [100.0, 100.0], [0.1, 0.5])
    judged(rec, [1], [40.0], [0.4])  # a clock refresh judged B earlier in event time than a round did
    prob = np.array([0.2, 0.6])
    rec(np.array([1, 0]), np.array([160.0, 160.0]), prob)
    prob[:] = 0.99  # the engine's arrays are its own: what was recorded does not change with them
    judged(rec, [0], [130.0], [0.15])

    a = rec.probability_series("s1", "A")
    b = rec.probability_series("s1", "B")
    assert a is not None and b is not None
    assert a.t_ms.tolist() == [100_000, 130_000, 160_000] and a.p.tolist() == [0.1, 0.15, 0.6]
    assert b.t_ms.tolist() == [40_000, 100_000, 160_000] and b.p.tolist() == [0.4, 0.5, 0.2]
    assert a.t_ms.dtype == np.int64 and a.p.dtype == np.float64
    c = rec.probability_series("s1", "C")  # forecast, never judged: an empty series, not None
    assert c is not None and len(c.t_ms) == 0
    assert rec.probability_series("s1", "NO-EW") is None  # no early warnings on it
    assert rec.probability_series("s1", "nope") is None and rec.probability_series("s9", "A") is None
    judged(rec, [2], [200.0], [0.3])  # more judgements after a question are still answered
    c = rec.probability_series("s1", "C")
    assert c is not None and c.t_ms.tolist() == [200_000] and len(rec) == 7


def test_judgements_outside_the_tuning_window_are_not_kept():
    idx = index()
    rec = ProbabilityRecorder(idx, np.array([idx.slot("s1", "A")]), start_ms=60_000, end_ms=120_000)
    judged(rec, [0, 0, 0, 0], [59.999, 60.0, 119.999, 120.0], [0.1, 0.2, 0.3, 0.4])
    a = rec.probability_series("s1", "A")
    assert a is not None and a.t_ms.tolist() == [60_000, 119_999] and a.p.tolist() == [0.2, 0.3]


def test_a_sensors_warm_up_ends_at_its_first_judgement_by_learned_behaviour_and_lasts_if_it_never_learned():
    idx = index()
    row_slots = np.array([idx.slot("s1", "A"), idx.slot("s1", "B"), idx.slot("s1", "C")])
    learned_at = {0: 200.0, 1: 100.0}  # row -> when it is first judged mature; row 2 never is
    now = {"t": 0.0}

    def mature(rows: np.ndarray) -> np.ndarray:
        return np.array([now["t"] >= learned_at.get(int(r), np.inf) for r in rows])

    rec = ProbabilityRecorder(idx, row_slots, mature=mature)
    for t in (50.0, 100.0, 150.0, 200.0, 250.0):
        now["t"] = t
        judged(rec, [0, 1, 2], [t, t, t], [0.1, 0.1, 0.1])
    assert rec.probability_series("s1", "A").learned_from_ms == 200_000
    assert rec.probability_series("s1", "B").learned_from_ms == 100_000
    assert rec.probability_series("s1", "C").learned_from_ms == 250_001  # all of it was warm-up
    assert ProbabilityRecorder(idx, row_slots).probability_series("s1", "A").learned_from_ms is None
