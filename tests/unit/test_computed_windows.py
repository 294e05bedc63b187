"""Rolling windows of computed sensors (issue 12): the kernel of sensors/windows.py, the window
functions of sensors/formula.py, their use in sensors/computed.py and the seed from the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from ingest.store import StoreUnavailable
from ingest.window_seed import seed_windows
from sensors import SensorIndex, load_registry
from sensors.computed import ComputedSensors
from sensors.formula import FormulaError, parse_formula
from sensors.readings import ReadingBatch
from sensors.windows import WindowState
from tests.support.memory_store import MemoryStore

T0 = 1_795_392_000_000  # on a whole day (UTC)
MIN = 60_000
HOUR_S = 3600.0
STALE = 180_000


# ---- the kernel, one sensor at a time


def feed(state: WindowState, ts_ms, values, quality=None, row: int = 0) -> list[tuple[float, bool]]:
    """Each reading into `row`, then the window at its time: [(value, good)]."""
    out = []
    quality = [0] * len(ts_ms) if quality is None else quality
    for t, x, q in zip(ts_ms, values, quality, strict=True):
        rows, t_arr = np.array([row]), np.array([t], np.int64)
        state.add(rows, t_arr, np.array([float(x)]), np.array([q], np.int8), np.array([STALE]))
        v, good = state.value(rows, t_arr)
        out.append((float(v[0]), bool(good[0])))
    return out


def brute_sum(ts_ms, values, t, window_ms, buckets=60) -> float:
    """The sum the windows promise: readings in the buckets (K - B, K] of t's bucket K."""
    k = np.asarray(ts_ms) * buckets // window_ms
    now = t * buckets // window_ms
    return float(np.asarray(values)[(k > now - buckets) & (k <= now)].sum())


def test_a_sum_over_an_hour_adds_the_readings_of_its_buckets_across_bucket_boundaries():
    rng = np.random.default_rng(3)
    ts = T0 + np.cumsum(rng.integers(5_000, 90_000, 400))  # irregular, 5-90 s apart
    rain = rng.exponential(0.2, 400).round(1)
    got = feed(WindowState("sum", HOUR_S, 1), ts.tolist(), rain.tolist())
    want = [brute_sum(ts[: i + 1], rain[: i + 1], t, 3_600_000) for i, t in enumerate(ts.tolist())]
    assert [v for v, _ in got] == pytest.approx(want)


def test_a_window_is_uncertain_until_covered_since_the_start_then_good():
    ts = [T0 + i * MIN for i in range(121)]
    got = feed(WindowState("sum", HOUR_S, 1), ts, [1.0] * 121)
    assert got[58] == (59.0, False)  # the window starts a minute before the first reading
    assert got[59] == (60.0, True)  # the window [T0, T0 + 59 min] (60 one-minute buckets), covered
    assert got[120] == (60.0, True)


def test_a_gap_longer_than_the_stale_time_is_uncovered_until_it_leaves_the_window_and_old_buckets_leave():
    ts = [T0 + i * MIN for i in range(70)] + [T0 + (100 + i) * MIN for i in range(70)]  # 30 min silent
    got = feed(WindowState("sum", HOUR_S, 1), ts, [1.0] * 140)
    assert got[69] == (60.0, True)
    assert got[70] == (30.0, False)  # back after 31 min: 29 readings before the gap, and its own
    assert got[70 + 59] == (60.0, False)  # the gap still ends inside the window
    assert got[70 + 60] == (60.0, True)
    after_a_day = feed(WindowState("sum", HOUR_S, 1), [T0, T0 + 86_400_000], [5.0, 1.0])
    assert after_a_day[1] == (1.0, False)  # the old bucket that holds the same ring position left


def test_a_duplicate_or_an_older_reading_changes_nothing():
    state = WindowState("sum", HOUR_S, 1)
    feed(state, [T0, T0 + MIN], [1.0, 2.0])
    again = feed(state, [T0 + MIN, T0 + 30_000, T0], [2.0, 7.0, 1.0])
    assert [v for v, _ in again] == [3.0, 3.0, 3.0]


def test_bad_readings_add_nothing_and_uncertain_ones_make_the_window_uncertain_while_inside():
    ts = [T0 + i * MIN for i in range(200)]
    quality = [0] * 200
    quality[100], quality[101] = 2, 1
    got = feed(WindowState("sum", HOUR_S, 1), ts, [1.0] * 200, quality)
    assert got[99] == (60.0, True)
    assert got[100] == (59.0, False)  # bad: not added, and its intervals uncovered
    assert got[101][1] is False and got[160][1] is False  # the uncertain reading is in the window
    assert got[161] == (60.0, True)


def test_a_time_weighted_mean_weighs_each_interval_by_its_length_and_skips_gaps():
    # every minute: 10 up to minute 50, then 40; the window at minute 60 holds the intervals
    # ending at minutes 1..60, each with the mean of its two ends (trapezoid rule)
    ts = [T0 + i * MIN for i in range(61)]
    got = feed(WindowState("mean", HOUR_S, 1), ts, [10.0] * 51 + [40.0] * 10)
    assert got[50] == (10.0, False)  # the window starts before the first reading
    assert got[60][0] == pytest.approx((50 * 10 + 25 + 9 * 40) / 60) and got[60][1]
    gap = feed(WindowState("mean", HOUR_S, 1), [T0, T0 + MIN, T0 + 11 * MIN], [10.0, 10.0, 40.0])
    assert gap[2] == (10.0, False)  # 10 min without a reading (> stale): that interval counts nothing


def test_a_rate_is_the_least_squares_slope_per_day_and_needs_two_readings():
    ts = np.arange(0, 48 * 60) * MIN + T0
    disp = 3.0 + 2.5 * (ts - T0) / 86_400_000 + np.sin(np.arange(ts.size)) * 0.01  # 2.5 mm/d + noise
    got = feed(WindowState("rate", 86_400.0, 1), ts.tolist(), disp.tolist())
    assert np.isnan(got[0][0])
    assert got[-1][0] == pytest.approx(2.5, abs=0.01) and got[-1][1]
    k = ts * 60 // 86_400_000  # the readings of the window's 60 buckets of 24 min
    inside = k > k[-1] - 60
    want = np.polyfit((ts[inside] - T0) / 86_400_000, disp[inside], 1)[0]
    assert got[-1][0] == pytest.approx(want, rel=1e-9)


def test_rows_of_one_state_are_independent_and_fed_in_one_pass():
    state = WindowState("sum", HOUR_S, 3)
    for i in range(5):
        t = np.full(2, T0 + i * MIN, np.int64)
        state.add(np.array([0, 2]), t, np.array([1.0, 10.0]), np.zeros(2, np.int8), np.full(2, STALE))
    v, _ = state.value(np.arange(3), np.full(3, T0 + 4 * MIN, np.int64))
    assert v[0] == 5.0 and np.isnan(v[1]) and v[2] == 50.0


# ---- the formula language


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("sum_over(rain, 0)", "from 60 to 2678400"),
        ("sum_over(rain, -3600)", "from 60 to 2678400"),
        ("sum_over(rain, 1e9)", "from 60 to 2678400"),
        ("sum_over(rain, k)", "window must be a number"),
        ("sum_over(rain, 3600 * 24)", "window must be a number"),
        ("sum_over(rain, True)", "window must be a number"),
        ("sum_over(rain * 2, 3600)", "the name of an input"),
        ("sum_over(k, 3600)", "the name of an input"),
        ("sum_over(rain)", "takes 2 arguments"),
        ("median_over(rain, 3600)", "not allowed"),
    ],
)
def test_a_window_over_anything_but_an_input_and_a_literal_window_in_range_is_refused(expr, says):
    with pytest.raises(FormulaError, match=says):
        parse_formula({"expr": expr, "inputs": {"rain": "RG-01"}, "constants": {"k": 3600}})


def test_a_formula_lists_its_window_terms_once_each():
    f = parse_formula(
        {"expr": "sum_over(r, 3600) + 0 * sum_over(r,3600) + rate_over(r, 86400)", "inputs": {"r": "RG-01"}}
    )
    assert [(w.key, w.kind, w.input, w.window_s) for w in f.windows] == [
        ("sum_over(r, 3600)", "sum", "r", 3600.0),
        ("rate_over(r, 86400)", "rate", "r", 86400.0),
    ]


# ---- computed sensors with windows


def tailings_site(site_id: str = "tsf-a", interval_s: int = 60) -> dict:
    def sensor(sid: str, kind: str = "rainfall", unit: str = "mm", **more) -> dict:
        return {"id": sid, "name": sid, "kind": kind, "unit": unit, "range": [-1000, 1000],
                "interval_s": interval_s, **more}  # fmt: skip

    return {
        "id": site_id,
        "name": "尾矿库",
        "kind": "tailings",
        "grade": 3,
        "sensors": [
            sensor("RG-01"),
            sensor("RG-01.1h", compute={"expr": "sum_over(rain, 3600)", "inputs": {"rain": "RG-01"}}),
            sensor("RG-01.24h", compute={"expr": "sum_over(rain, 86400)", "inputs": {"rain": "RG-01"}}),
            sensor("GN-01", kind="displacement"),
            sensor(
                "GN-01.v",
                kind="displacement_rate",
                unit="mm/d",
                compute={"expr": "rate_over(d, 86400)", "inputs": {"d": "GN-01"}},
            ),
            sensor(
                "GN-01.a",
                kind="displacement_rate",
                unit="mm/d2",
                compute={"expr": "rate_over(v, 86400)", "inputs": {"v": "GN-01.v"}},
            ),
        ],
    }


def index_of(tmp_path: Path, *sites: dict) -> SensorIndex:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"sites": list(sites)}, allow_unicode=True))
    return SensorIndex.build(load_registry(path))


def rows_of(index: SensorIndex, rows: list[tuple[str, str, int, float]]) -> ReadingBatch:
    return ReadingBatch(
        np.array([index.by_site[site][sid] for site, sid, *_ in rows], np.int32),
        np.array([r[2] for r in rows], np.int64),
        np.array([r[3] for r in rows], float),
        np.zeros(len(rows), np.int8),
    )


def by_sensor(index: SensorIndex, b: ReadingBatch, site: str = "tsf-a") -> dict[str, tuple[float, int]]:
    """The last derived reading of each computed sensor of a site: id -> (value, quality)."""
    out = {}
    for s, v, q in zip(b.slot.tolist(), b.value.tolist(), b.quality.tolist(), strict=True):
        if index.sensor(s).site == site:
            out[index.sensor(s).id] = (round(v, 6), q)
    return out


@pytest.mark.deep  # thousands of readings of many gauges: the deep profile (make test, CI)
def test_rainfall_over_1_h_and_24_h_of_many_gauges_and_acceleration_from_a_computed_velocity(tmp_path):
    index = index_of(tmp_path, *(tailings_site(f"tsf-{i}", interval_s=600) for i in range(3)))
    computed = ComputedSensors(index)
    assert len(computed.levels) == 2  # velocity, then acceleration over it
    last: dict[str, tuple[float, int]] = {}
    for minute in range(0, 3 * 24 * 60, 10):
        t = T0 + minute * MIN
        days = minute / 1440
        rows = [(f"tsf-{i}", "RG-01", t, 0.1 * (i + 1)) for i in range(3)]
        rows += [(f"tsf-{i}", "GN-01", t, 1.5 * days**2) for i in range(3)]  # a = 3 mm/d²
        got = computed.derive(rows_of(index, rows))
        last = by_sensor(index, got, "tsf-2")
    assert last["RG-01.1h"] == (pytest.approx(0.3 * 6), 0)
    assert last["RG-01.24h"] == (pytest.approx(0.3 * 144), 0)
    v, a = last["GN-01.v"], last["GN-01.a"]
    assert v[0] == pytest.approx(3 * 3.0 - 1.5, abs=0.1)  # the slope over the last day, at its middle
    assert a[0] == pytest.approx(3.0, abs=0.05) and a[1] == 0


def test_a_redelivered_or_late_batch_does_not_count_twice(tmp_path):
    index = index_of(tmp_path, tailings_site())
    computed = ComputedSensors(index)
    for minute in range(5):
        b = rows_of(index, [("tsf-a", "RG-01", T0 + minute * MIN, 1.0)])
        once = by_sensor(index, computed.derive(b))
    again = by_sensor(index, computed.derive(b))  # QoS 1 redelivery of the last message
    late = by_sensor(index, computed.derive(rows_of(index, [("tsf-a", "RG-01", T0 + 30_000, 9.0)])))
    assert once["RG-01.1h"][0] == 5.0 and again["RG-01.1h"][0] == 5.0 and late == {}


def test_readings_of_one_gauge_in_one_batch_feed_the_window_as_one_by_one(tmp_path):
    index = index_of(tmp_path, tailings_site())
    rng = np.random.default_rng(7)
    rain = rng.exponential(0.3, 90).round(1)
    rows = [("tsf-a", "RG-01", T0 + i * MIN, float(x)) for i, x in enumerate(rain)]
    one_by_one = ComputedSensors(index)
    singles = [one_by_one.derive(rows_of(index, [r])) for r in rows]
    batched = ComputedSensors(index).derive(rows_of(index, rows[::-1]))  # one message, newest first
    assert by_sensor(index, batched) == by_sensor(index, ReadingBatch.concat(singles))


def test_windows_seeded_from_the_store_are_good_at_once_after_a_restart(tmp_path):
    index = index_of(tmp_path, tailings_site())
    store = MemoryStore(index)
    now = T0 + 2 * 86_400_000
    minutes = np.arange(-1500, 0)
    store.put("tsf-a", "RG-01", (now + minutes * MIN).tolist(), [0.5] * minutes.size)
    store.put("tsf-a", "GN-01", (now + minutes * MIN).tolist(), (minutes / 1440 * 2.0).tolist())
    cold, warm = ComputedSensors(index), ComputedSensors(index)
    assert seed_windows(warm, store, index, now) == 2 * (
        1440 + 48
    )  # each input over its longest window + 2 buckets
    assert {c.sensors for c in store.calls} == {("GN-01", "GN-01.v", "RG-01")}
    live = rows_of(index, [("tsf-a", "RG-01", now, 0.5), ("tsf-a", "GN-01", now, 0.0)])
    assert by_sensor(index, cold.derive(live))["RG-01.24h"] == (0.5, 1)  # empty window: uncertain
    got = by_sensor(index, warm.derive(live))
    assert got["RG-01.24h"] == (pytest.approx(0.5 * 1417), 0)  # 59 buckets of 24 min and a minute
    assert got["RG-01.1h"] == (pytest.approx(0.5 * 60), 0)
    assert got["GN-01.v"] == (pytest.approx(2.0), 0)


def test_a_store_that_cannot_answer_leaves_the_windows_empty(tmp_path):
    index = index_of(tmp_path, tailings_site())
    store = MemoryStore(index, fail=StoreUnavailable("down"))
    assert seed_windows(ComputedSensors(index), store, index, T0) == 0
