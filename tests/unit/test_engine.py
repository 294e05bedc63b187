"""Kernels on raw arrays and the engine on readings: limits, delays, faults, staleness, votes."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.engine import kernels
from alerts.engine.alarm_engine import AlarmEngine, EngineConfig
from alerts.engine.conditions import ConditionKind as K
from sensors.index import SensorIndex
from sensors.model import Limits, Registry, Sensor, Site
from sensors.readings import ReadingBatch

T0 = 1_795_392_000_000
NAN, INF = np.nan, np.inf


# ---- kernels on raw arrays


def test_limit_conditions_trip_at_the_limit_and_clear_past_the_deadband():
    limits = np.array([[1.0, 2.0, 8.0, 9.0]] * 6)
    x = np.array([8.0, 7.95, 7.95, 0.5, NAN, INF])
    was = np.array([[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]], bool)
    got = kernels.limit_conditions(x, limits, np.full(6, 0.1), was)
    assert got.tolist() == [
        [False, False, True, False],  # 8.0 >= H
        [False, False, True, False],  # was on, 7.95 > 8.0 - 0.1: stays on (hysteresis)
        [False, False, False, False],  # was off, 7.95 < H
        [True, True, False, False],  # below L and LL
        [False, False, False, False],  # NaN: no condition, even if it was on
        [False, False, True, True],  # +inf is above every high limit
    ]


def test_unconfigured_limits_never_trip():
    got = kernels.limit_conditions(
        np.array([1e9, -1e9]), np.full((2, 4), NAN), np.zeros(2), np.zeros((2, 4), bool)
    )
    assert not got.any()


def test_delays_hold_a_change_until_it_has_persisted():
    raw = np.array([[True], [True], [False]])
    active = np.array([[False], [False], [True]])
    pending = np.array([[-1], [1_000], [0]])
    t = np.array([1_000, 6_000, 500])
    new, since = kernels.apply_delays(raw, active, pending, t, np.full(3, 5_000), np.full(3, 1_000))
    assert new.ravel().tolist() == [False, True, True]
    assert since.ravel().tolist() == [1_000, -1, 0]


def rollup(now_ms, ref, after, device_of, n_devices):
    """device_rollup over every sensor that stale_sensors finds overdue."""
    stale = kernels.stale_sensors(now_ms, ref, after)
    return kernels.device_rollup(now_ms, stale, ref, after, device_of, n_devices)


def test_stale_devices_roll_up_and_cover_their_sensors():
    # device 0 went quiet at 100 (its fast sensor 0 sets the pace: 30 after); device 1 still speaks
    # (sensor 3 at 190) so its silent sensor 2 is reported alone; sensor 4 has no device
    ref = np.array([100, 40, 50, 190, 0])
    after = np.array([30, 120, 30, 30, 30])
    device_of = np.array([0, 0, 1, 1, -1])
    dev, sensors, silent_at = rollup(200, ref, after, device_of, 2)
    assert dev.tolist() == [True, False]
    assert sensors.tolist() == [False, False, True, False, True]
    assert silent_at.tolist() == [130, 220]


def test_sensors_falling_silent_with_their_device_wait_for_its_verdict():
    ref = np.array([100, 95])  # the gateway's last message at 100
    after = np.array([20, 60])  # sensor 1 is overdue at 155, sensor 0 at 120
    device_of = np.array([0, 0])
    for now in (121, 150):  # sensor 0 overdue: held, the device's pace is its fastest live sensor
        dev, sensors, _ = rollup(now, ref, after, device_of, 1)
        assert dev.tolist() == [True] and not sensors.any()
    dev, sensors, _ = rollup(119, ref, after, device_of, 1)
    assert dev.tolist() == [False] and not sensors.any()


def test_a_long_dead_sensor_does_not_set_its_devices_pace():
    ref = np.array([0, 1_000])  # sensor 0 (fast) died long ago; sensor 1 reports every 100
    after = np.array([30, 300])
    device_of = np.array([0, 0])
    dev, sensors, silent_at = rollup(1_100, ref, after, device_of, 1)
    assert dev.tolist() == [False] and sensors.tolist() == [True, False]
    assert silent_at.tolist() == [1_300]


def test_votes_need_k_healthy_voters_and_degrade_with_a_faulty_one():
    group_of = np.array([0, 0, 0, 1, 1, 1])
    alarm = np.array([True, False, False, True, False, False])
    faulty = np.array([False, False, False, False, True, False])
    voted, degraded, votes = kernels.group_votes(alarm, faulty, group_of, 2, np.array([2, 2]))
    assert voted.tolist() == [False, True] and degraded.tolist() == [False, True] and votes.tolist() == [1, 1]


def test_out_of_range_tolerates_full_scale_but_not_beyond():
    got = kernels.out_of_range(np.array([100.0, 100.5, 101.5, -2.0, NAN]), np.zeros(5), np.full(5, 100.0))
    assert got.tolist() == [False, False, True, True, False]


# ---- engine on readings


def sensor(id_: str, **kw) -> Sensor:
    base = dict(
        id=id_,
        site="s",
        name=id_,
        kind="level",
        unit="m",
        range=(0.0, 20.0),
        interval_s=10.0,
        limits=Limits(l=2.0, h=16.0, hh=18.0),
        deadband=0.2,
        device="gw",
    )
    base.update(kw)
    return Sensor(**base)


def engine_for(*sensors: Sensor) -> tuple[AlarmEngine, SensorIndex]:
    index = SensorIndex.build(Registry((Site("s", "站", "chemical", 2, tuple(sensors)),)))
    return AlarmEngine(index, start_ms=T0), index


def readings(slot: int, values, start=T0, step_ms=10_000, quality=0) -> ReadingBatch:
    n = len(values)
    return ReadingBatch(
        np.full(n, slot, np.int32),
        start + np.arange(n, dtype=np.int64) * step_ms,
        np.asarray(values, float),
        np.full(n, quality, np.int8),
    )


def kinds(changes) -> list[tuple[str, bool]]:
    return [(c.level, c.active) for c in changes]


def test_on_delay_raises_only_after_the_condition_persisted():
    eng, _ = engine_for(sensor("LT", on_delay_s=25))
    changes = eng.process(readings(0, [15, 16.5, 16.6, 16.7, 16.8]))
    assert kinds(changes) == [("H", True)]
    # first above H at +10 s, held 25 s: in effect from +35 s (the +40 s sample confirmed it); the stamp
    # is when the delay ran out, so batching and clock ticks cannot move it
    assert changes[0].time_ms == T0 + 35_000
    assert changes[0].limit == 16.0 and "≥ 16 m" in changes[0].message


def test_a_delay_confirmed_by_the_clock_is_stamped_like_one_confirmed_by_a_sample():
    by_sample, _ = engine_for(sensor("LT", on_delay_s=25))
    by_clock, _ = engine_for(sensor("LT", on_delay_s=25))
    a = by_sample.process(readings(0, [15, 16.5, 16.6, 16.7, 16.8]))
    assert by_clock.process(readings(0, [15, 16.5, 16.6, 16.7])) == []
    b = by_clock.advance(T0 + 37_000)
    assert [(c.kind, c.active, c.time_ms) for c in a] == [(c.kind, c.active, c.time_ms) for c in b]


def test_streaming_in_chunks_gives_the_same_changes_as_one_batch():
    rng = np.random.default_rng(3)
    values = np.clip(np.cumsum(rng.normal(0, 0.6, 400)) + 10, -1, 21)
    one, _ = engine_for(sensor("LT", on_delay_s=15, off_delay_s=5))
    chunked, _ = engine_for(sensor("LT", on_delay_s=15, off_delay_s=5))
    whole = one.process(readings(0, values))
    parts = []
    for lo in range(0, 400, 37):
        parts += chunked.process(readings(0, values[lo : lo + 37], start=T0 + lo * 10_000))
    assert [(c.kind, c.active, c.time_ms) for c in parts] == [(c.kind, c.active, c.time_ms) for c in whole]
    assert len(whole) > 4


def test_duplicates_and_out_of_order_readings_change_nothing():
    eng, _ = engine_for(sensor("LT"))
    eng.process(readings(0, [10, 11, 12]))
    before = eng.active.copy()
    assert eng.process(readings(0, [19, 19], start=T0)) == []  # older and equal times
    assert (eng.active == before).all() and eng.late_or_duplicate == 2


def test_one_sample_spike_is_a_fault_not_a_process_alarm():
    eng, _ = engine_for(sensor("LT"))
    noise = 10 + 0.01 * np.sin(np.arange(40))
    values = [*noise, 19.5, *noise[:3]]
    changes = eng.process(readings(0, values))
    assert kinds(changes) == [("spike", True), ("spike", False)]
    assert changes[0].time_ms == T0 + 40 * 10_000


def test_a_real_step_is_alarmed_one_sample_later_not_treated_as_a_spike():
    eng, _ = engine_for(sensor("LT"))
    values = [*(10 + 0.01 * np.sin(np.arange(40))), 19.5, 19.6, 19.7]
    changes = eng.process(readings(0, values))
    assert ("HH", True) in kinds(changes) and ("spike", True) not in kinds(changes)


def test_a_slow_sensor_s_jump_past_hh_alarms_at_once_not_one_interval_later():
    # a piezometer reporting every 10 min: holding the jump as a possible spike would annunciate a
    # real HH 10 min late
    eng, _ = engine_for(sensor("PZ", interval_s=600.0))
    values = [*(10 + 0.01 * np.sin(np.arange(40))), 19.5]
    changes = eng.process(readings(0, values, step_ms=600_000))
    assert ("HH", True) in kinds(changes) and ("spike", True) not in kinds(changes)
    assert [c.time_ms for c in changes if c.level == "HH"] == [T0 + 40 * 600_000]


def test_a_slow_sensor_s_spike_past_hh_alarms_and_returns_with_the_next_reading():
    eng, _ = engine_for(sensor("PZ", interval_s=600.0))
    noise = 10 + 0.01 * np.sin(np.arange(40))
    changes = eng.process(readings(0, [*noise, 19.5, *noise[:3]], step_ms=600_000))
    assert [k for k in kinds(changes) if k[0] == "HH"] == [("HH", True), ("HH", False)]


def test_a_slow_sensor_s_jump_short_of_a_critical_limit_is_still_held_as_a_possible_spike():
    eng, _ = engine_for(sensor("PZ", interval_s=600.0))
    noise = 10 + 0.01 * np.sin(np.arange(40))
    changes = eng.process(readings(0, [*noise, 17.0, *noise[:3]], step_ms=600_000))
    assert kinds(changes) == [("spike", True), ("spike", False)]


def test_a_gauge_stuck_during_a_fill_is_a_fault_within_minutes():
    eng, _ = engine_for(sensor("LT"))
    fill = 8 + 0.0007 * np.arange(120) * 10  # 0.25 m/h, sampled every 10 s
    stuck = np.full(60, fill[-1])
    changes = eng.process(readings(0, [*fill, *stuck]))
    faults = [c for c in changes if c.level == "stuck"]
    assert faults and faults[0].active
    assert faults[0].time_ms - (T0 + 119 * 10_000) <= 10 * 60_000


def gas_rising_then_steady(level: float, steps: int) -> list[float]:
    """A 1 %LEL-resolution detector: a steady release rises to `level`, then reads it every 2 s."""
    noise = np.round(0.4 * np.sin(np.arange(60)), 0)
    rise = np.round(np.linspace(0, level, 30), 0)
    return [*noise, *rise, *np.full(steps, level)]


def test_a_steady_reading_at_the_detectors_resolution_is_not_stuck_for_minutes():
    gas = sensor("GT", kind="gas_lel", unit="%LEL", range=(0.0, 100.0), limits=Limits(h=20.0, hh=40.0))
    eng, _ = engine_for(gas)
    changes = eng.process(readings(0, gas_rising_then_steady(56.0, 140), step_ms=2_000))  # 4.7 min flat
    assert ("HH", True) in kinds(changes) and ("stuck", True) not in kinds(changes)


def test_stuck_after_s_is_read_per_sensor():
    eng, _ = engine_for(sensor("A", stuck_after_s=60), sensor("B"))
    fill = [*(8 + 0.0007 * np.arange(120) * 10), *[8.0833] * 12]  # frozen for two minutes
    assert ("stuck", True) in kinds(eng.process(readings(0, fill)))
    assert ("stuck", True) not in kinds(eng.process(readings(1, fill)))


@pytest.mark.parametrize("declared", [0.0, 0.05])
@pytest.mark.deep
def test_a_quantised_gauge_in_a_slow_fill_is_not_stuck_between_its_steps(declared):
    # 0.25 m/h read at 5 cm resolution: the reading steps every 12 minutes; declared or learned
    eng, _ = engine_for(sensor("LT", resolution=declared))
    level = np.round((8 + 0.25 * np.arange(6 * 360) / 360) / 0.05) * 0.05  # 6 h every 10 s
    assert ("stuck", True) not in kinds(eng.process(readings(0, level)))


def bursts(n_bursts: int, high: float, rest: float, burst: int = 3, gap: int = 120) -> list[float]:
    """Noise, then one-minute samples of a batch load: `burst` samples high, `gap` samples at rest."""
    quiet = [*(rest + 0.01 * np.sin(np.arange(60)))]
    return [*quiet, *(([high] * burst + [rest] * gap) * n_bursts)]


def test_a_daily_batch_jump_is_a_spike_once_then_the_sensor_s_own_behaviour():
    eng, _ = engine_for(sensor("FT", kind="flow", unit="m3/h", range=(0.0, 100.0), limits=Limits(hh=95.0)))
    values = [*(10 + 0.01 * np.sin(np.arange(60)))]
    for _ in range(6):  # one sample at 70 every 200 samples, back to 10 the next
        values += [70.0] + [10.0 + 0.01 * np.sin(k) for k in range(199)]
    changes = eng.process(readings(0, values, step_ms=60_000))
    assert [c.active for c in changes if c.level == "spike"] == [True, False]


def test_a_bursty_signal_back_at_its_resting_value_is_not_faulted_at_every_rest():
    # ten batches, two hours at rest between them (longer than the 30-minute slow stuck check)
    eng, _ = engine_for(sensor("FT", kind="flow", unit="m3/h", range=(0.0, 100.0), limits=Limits(hh=95.0)))
    changes = eng.process(readings(0, bursts(10, high=40.0, rest=2.0), step_ms=60_000))
    stuck_on = [c for c in changes if c.level == "stuck" and c.active]
    assert len(stuck_on) == 2  # the first two rests, until the engine knows the sensor rests at 2


def test_an_instrument_freezing_at_different_values_is_stuck_every_time():
    eng, _ = engine_for(sensor("FT", kind="flow", unit="m3/h", range=(0.0, 100.0), limits=Limits(hh=95.0)))
    values: list[float] = []
    for k in range(6):  # an hour of noise, then an hour frozen at wherever it was
        values += [*(30 + k + 2 * np.sin(np.arange(60) * 0.7))]
        values += [values[-1]] * 60
    changes = eng.process(readings(0, values, step_ms=60_000))
    assert len([c for c in changes if c.level == "stuck" and c.active]) == 6


def test_a_rain_gauge_reading_zero_for_days_is_not_stuck():
    eng, _ = engine_for(
        sensor("RG", kind="rainfall", unit="mm/h", range=(0.0, 200.0), limits=Limits(h=50.0), interval_s=600)
    )
    values = [*np.abs(np.sin(np.arange(30))), *np.zeros(500)]
    assert eng.process(readings(0, values, step_ms=600_000)) == []


def test_out_of_range_and_bad_quality_are_faults():
    eng, _ = engine_for(sensor("A"), sensor("B"))
    c1 = eng.process(readings(0, [10, 25]))
    c2 = eng.process(readings(1, [10, 10], quality=2))
    assert ("out_of_range", True) in kinds(c1) and ("bad_quality", True) in kinds(c2)


def test_silent_gateway_is_one_incident_and_clears_when_data_returns():
    eng, _ = engine_for(sensor("A"), sensor("B"), sensor("C", device="other"))
    eng.process(
        ReadingBatch(
            np.array([0, 1, 2], np.int32), np.full(3, T0, np.int64), np.full(3, 10.0), np.zeros(3, np.int8)
        )
    )
    eng.process(readings(2, [10, 10, 10, 10, 10, 10], start=T0 + 10_000))
    changes = eng.advance(T0 + 60_000)
    assert [(c.scope, c.source, c.active, c.time_ms) for c in changes] == [
        ("device", "gw", True, T0 + 30_000)
    ]
    eng.process(readings(0, [10.0], start=T0 + 70_000))
    # the gateway is back, but B is still silent: now it is B's own incident
    after = eng.advance(T0 + 71_000)
    assert {(c.scope, c.source, c.active, c.time_ms) for c in after} == {
        ("device", "gw", False, T0 + 70_000),  # back with its first reading
        ("sensor", "B", True, T0 + 30_000),  # silent since its own deadline
    }


def test_two_out_of_three_detectors_vote_and_degrade_to_one_out_of_two_on_a_fault():
    gas = dict(
        kind="gas_lel",
        unit="%LEL",
        range=(0.0, 100.0),
        limits=Limits(h=25.0, hh=50.0),
        group="G",
        interval_s=1.0,
        deadband=1.0,
    )
    eng, _ = engine_for(sensor("D1", **gas), sensor("D2", **gas), sensor("D3", **gas))
    first = eng.process(
        ReadingBatch(
            np.array([0, 1, 2], np.int32),
            np.full(3, T0, np.int64),
            np.array([30.0, 5.0, 5.0]),
            np.zeros(3, np.int8),
        )
    )
    assert ("VOTE", True) not in kinds(first)
    votes = eng.process(readings(1, [31.0], start=T0 + 1_000))
    assert ("VOTE", True) in kinds(votes) and votes[-1].priority.name == "CRITICAL"

    eng2, _ = engine_for(sensor("D1", **gas), sensor("D2", **gas), sensor("D3", **gas))
    eng2.process(readings(2, [5.0], quality=2))  # D3 faulty
    degraded = eng2.process(readings(0, [30.0], start=T0 + 1_000))
    assert ("VOTE", True) in kinds(degraded) and "降级" in degraded[-1].message


def test_restored_active_conditions_are_not_raised_again():
    eng, _ = engine_for(sensor("LT"))
    eng.restore_active({("s", "sensor", "LT", "H")})
    assert eng.process(readings(0, [16.5, 16.6])) == []


def test_a_fault_restored_from_the_journal_ends_with_the_first_healthy_reading():
    eng, _ = engine_for(sensor("LT"))
    eng.restore_active({("s", "sensor", "LT", "FAULT")})
    changes = eng.process(readings(0, [10.0, 10.1]))
    assert [(c.kind.name, c.active) for c in changes] == [("FAULT", False)]
    assert changes[0].time_ms == T0 and not eng.active[0, 5]


def test_a_fault_restored_from_the_journal_stays_while_the_sensor_is_still_faulty():
    eng, _ = engine_for(sensor("LT"))
    eng.restore_active({("s", "sensor", "LT", "FAULT")})
    changes = eng.process(readings(0, [10.0], quality=2))
    assert all(c.active for c in changes if c.kind.name == "FAULT") and eng.active[0, 5]


@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_non_finite_values_do_not_crash_the_engine(value):
    eng, _ = engine_for(sensor("LT"))
    eng.process(readings(0, [10.0, value, 10.0]))


# ---- shortcuts: the fast paths raise exactly what evaluating every rule on every reading raises


def random_fleet(rng: np.random.Generator, n_sites: int = 3, per_site: int = 12) -> SensorIndex:
    """Sites of random sensors: limits (some missing), deadbands, delays, rate limits, groups, devices."""
    kinds = ["level", "gas_lel", "rainfall", "pressure", "displacement"]
    sites = []
    for k in range(n_sites):
        sensors = []
        for i in range(per_site):
            lim = np.sort(rng.uniform(10, 90, 4))
            keep = rng.random(4) < 0.7
            ll, l_, h, hh = (float(v) if on else None for v, on in zip(lim, keep, strict=True))
            sensors.append(
                Sensor(
                    id=f"X{i}",
                    site=f"s{k}",
                    name=f"X{i}",
                    kind=kinds[int(rng.integers(len(kinds)))],
                    unit="u",
                    range=(0.0, 100.0),
                    interval_s=float(rng.choice([1.0, 10.0])),
                    limits=Limits(ll=ll, l=l_, h=h, hh=hh),
                    deadband=float(rng.choice([0.0, 0.5, 2.0])),
                    on_delay_s=float(rng.choice([0.0, 2.0, 15.0])),
                    off_delay_s=float(rng.choice([0.0, 3.0])),
                    forecast=bool(rng.random() < 0.3),
                    group=f"G{i % 3}" if i < 6 else None,
                    device=f"gw{i % 2}" if rng.random() < 0.9 else None,
                    roc_per_min=float(rng.uniform(5, 50)) if rng.random() < 0.3 else None,
                    roc_window_s=float(rng.choice([5.0, 30.0])),
                )
            )
        sites.append(Site(f"s{k}", f"站{k}", "chemical", 2, tuple(sensors)))
    return SensorIndex.build(Registry(tuple(sites)))


def random_readings(rng: np.random.Generator, n: int, steps: int) -> ReadingBatch:
    """`steps` ticks of every sensor: walks across limits, spikes, flatlines, gaps, bad quality, NaN."""
    x = rng.uniform(20, 80, n)
    frozen = np.zeros(n, dtype=bool)
    parts = []
    for k in range(steps):
        frozen ^= rng.random(n) < 0.03
        x = np.where(frozen, x, np.clip(x + rng.normal(0, 3, n), -5, 105))
        v = x.copy()
        spike = rng.random(n) < 0.02
        v[spike] = np.where(v[spike] > 50, 0.0, 100.0)
        v[rng.random(n) < 0.005] = np.nan
        heard = rng.random(n) < 0.9 if k % 40 < 30 else rng.random(n) < 0.2  # outages
        t = T0 + k * 1_000 + rng.integers(0, 1_000, n)
        quality = (rng.random(n) < 0.02).astype(np.int8) * 2
        parts.append(ReadingBatch(np.arange(n, dtype=np.int32), t, v, quality).take(np.flatnonzero(heard)))
    return ReadingBatch.concat(parts)


def change_list(changes) -> list[tuple]:
    """Every field of each change, in order (NaN as text, so that equal lists compare equal)."""
    return [
        (
            c.site,
            c.scope,
            c.source,
            c.kind,
            c.active,
            c.time_ms,
            c.level,
            str(c.value),
            str(c.limit),
            c.message,
        )
        for c in changes
    ]


def feed(engine: AlarmEngine, batch: ReadingBatch, cuts: list[int], clock: list[int]) -> list[tuple]:
    """Process the batch cut at `cuts`, advancing the clock after each part; return every change."""
    out = []
    for lo, hi, now in zip([0, *cuts], [*cuts, len(batch)], clock, strict=True):
        out += change_list(engine.process(batch.take(slice(lo, hi))))
        out += change_list(engine.advance(now))
    return out


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.deep
def test_shortcuts_raise_exactly_what_full_evaluation_raises(seed):
    rng = np.random.default_rng(seed)
    index = random_fleet(rng)
    n = len(index)
    batch = random_readings(rng, n, 160)
    mode = seed % 3
    if mode == 1:  # arrival order: shuffled within a few seconds, with duplicates
        jitter = batch.ts_ms + rng.integers(-3_000, 3_000, len(batch))
        batch = batch.take(np.argsort(jitter, kind="stable"))
        dup = rng.integers(0, len(batch), len(batch) // 20)
        batch = ReadingBatch.concat([batch, batch.take(dup)]).take(
            np.argsort(np.r_[np.arange(len(batch)), dup], kind="stable")
        )
    elif mode == 2:  # sorted by time, as a replay reads it
        batch = batch.take(np.argsort(batch.ts_ms, kind="stable"))
    cuts = sorted(rng.choice(np.arange(1, len(batch)), size=40, replace=False).tolist())
    if mode == 0:  # whole ticks: each sensor at most once per batch, in slot order (the fast path)
        ticks = np.flatnonzero(np.diff(batch.slot) <= 0) + 1
        cuts = sorted(set(ticks.tolist()) - set(rng.choice(ticks, len(ticks) // 3).tolist()))
    ends = [*cuts, len(batch)]
    clock = [
        int(batch.ts_ms[lo:hi].max(initial=T0)) + int(rng.integers(0, 50_000))
        for lo, hi in zip([0, *cuts], ends, strict=True)
    ]
    clock = np.maximum.accumulate(clock).tolist()
    restored = {
        ("s0", "sensor", "X7", "H"),
        ("s0", "sensor", "X8", "FAULT"),
        ("s1", "group", "G1", "VOTE"),
        ("s1", "device", "gw0", "STALE"),
        ("s2", "sensor", "X9", "STALE"),
    }
    got, want = [], []
    for shortcuts, out in ((True, got), (False, want)):
        engine = AlarmEngine(
            index, EngineConfig(shortcuts=shortcuts, stale_if_never_heard=seed % 2 == 0), start_ms=T0
        )
        engine.restore_active(restored)
        out += feed(engine, batch, cuts, clock)
    assert got == want
    assert len(want) > 50


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.deep
def test_one_reading_at_a_time_raises_what_one_big_batch_raises(seed):
    rng = np.random.default_rng(100 + seed)
    index = random_fleet(rng)
    batch = random_readings(rng, len(index), 120)
    shuffled = batch.take(rng.permutation(len(batch)))  # any arrival order within the batch
    whole = AlarmEngine(index, start_ms=T0)
    big = change_list(whole.process(shuffled)) + change_list(whole.advance(T0 + 200_000))
    single = AlarmEngine(index, start_ms=T0)
    one = []
    for i in np.lexsort((batch.ts_ms, batch.slot)).tolist():  # each sensor's readings in time order
        one += change_list(single.process(batch.take(slice(i, i + 1))))
    one += change_list(single.advance(T0 + 200_000))
    # per-sensor conditions do not depend on how readings are batched; votes are stamped per round
    assert sorted(c for c in big if c[3] != K.VOTE) == sorted(c for c in one if c[3] != K.VOTE)
    assert (whole.group_active == single.group_active).all()
    assert len(big) > 100
