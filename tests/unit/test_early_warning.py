"""Early warnings through the engine: raised once ahead of the crossing, graded, cleared, restart-safe."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.engine.alarm_engine import AlarmEngine, EngineConfig
from alerts.engine.conditions import ConditionKind, Priority
from alerts.engine.early_warning import FAILURE_LEVEL, EarlyWarningConfig, attach_early_warnings
from sensors.index import SensorIndex
from sensors.model import Limits, Registry, Sensor, Site
from sensors.readings import ReadingBatch

T0 = 1_795_392_000_000  # ms
MIN = 60_000
HOUR = 3_600_000
EW = ConditionKind.EARLY_WARNING


def tank(sensor_id: str = "LT-1", forecast: bool = True, **kw) -> Sensor:
    return Sensor(
        id=sensor_id, site="s1", name="1号储罐液位", kind="level", unit="m", range=(0.0, 20.0),
        interval_s=60.0, limits=Limits(ll=1.0, l=2.0, h=16.5, hh=18.0), deadband=0.05,
        forecast=forecast, device="gw", **kw,
    )  # fmt: skip


#: a 24 h horizon on level, to exercise the machinery on a slow ramp (the default for tank level is 2 h)
DAY_HORIZON = EarlyWarningConfig(channels={"level": ((2 * 3600.0, 24 * 3600.0),)})


def engine_for(
    *sensors: Sensor, config: EarlyWarningConfig | None = DAY_HORIZON
) -> tuple[AlarmEngine, SensorIndex]:
    reg = Registry(sites=(Site(id="s1", name="站", kind="chemical", grade=2, sensors=tuple(sensors)),))
    index = SensorIndex.build(reg)
    engine = AlarmEngine(index, EngineConfig(stale_if_never_heard=False), start_ms=T0)
    attach_early_warnings(engine, {"s1": "Asia/Shanghai"}, config)
    return engine, index


def batch(slot: np.ndarray, t: np.ndarray, x: np.ndarray) -> ReadingBatch:
    n = len(t)
    return ReadingBatch(
        np.asarray(slot, np.int32), np.asarray(t, np.int64), np.asarray(x, np.float64), np.zeros(n, np.int8)
    )


def fill_then_hold(hours: float = 40.0, rate_m_per_h: float = 0.25, seed: int = 1):
    """A tank at 8 m, filling from hour 4 at `rate` (noise 1 cm); minute samples."""
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(int(hours * 60)) * MIN
    h = (t - T0) / HOUR
    x = 8.0 + rate_m_per_h * np.clip(h - 4.0, 0, None) + rng.normal(0, 0.01, len(t))
    return t, x


def run(engine: AlarmEngine, t: np.ndarray, x: np.ndarray, slot: int = 0, chunk: int | None = None):
    changes = []
    step = chunk or len(t)
    for i in range(0, len(t), step):
        sl = slice(i, i + step)
        changes += engine.process(batch(np.full(len(t[sl]), slot), t[sl], x[sl]))
    return changes


@pytest.mark.deep
def test_a_filling_tank_is_warned_once_hours_before_h_with_a_band_holding_the_truth():
    engine, _ = engine_for(tank())
    t, x = fill_then_hold()
    changes = run(engine, t, x)
    warns = [c for c in changes if c.kind == EW]
    h_alarm = next(c for c in changes if c.kind == ConditionKind.H and c.active)
    crossing_ms = T0 + 4 * HOUR + (16.5 - 8.0) / 0.25 * HOUR  # 38 h
    raised = [c for c in warns if c.active]
    first = raised[0]
    assert first.level == "H" and first.limit == 16.5
    lead_h = (crossing_ms - first.time_ms) / HOUR
    assert 12 <= lead_h <= 24.5, lead_h
    assert first.time_ms < h_alarm.time_ms
    # the ETA is when a reading (1 cm noise) is expected to reach H if the fill goes on: a little before
    # the line, within 8 % of the lead time; every band (10-90 % if it comes) holds the truth
    on_h = [c for c in raised if c.level == "H"]
    assert all(abs(c.eta_ms - crossing_ms) < 0.08 * (crossing_ms - c.time_ms) for c in on_h)
    assert all(c.eta_low_ms <= crossing_ms <= c.eta_high_ms for c in on_h)
    # later changes are re-grades of the same warning (priority rises as the crossing nears), not re-raises
    prios = [c.priority for c in raised if c.level == "H"]
    assert prios == sorted(prios) and prios[-1] == Priority.HIGH
    assert all("预计" in c.message and "高限" in c.message for c in raised)


@pytest.mark.deep
def test_by_default_a_routine_fill_is_not_warned_but_an_overfill_is_warned_before_h():
    rng = np.random.default_rng(9)
    t = T0 + np.arange(20 * 60) * MIN
    h = (t - T0) / HOUR
    routine = 8.0 + 0.5 * np.clip(h - 1.0, 0, 10.0) + rng.normal(0, 0.005, len(t))  # stops at 13 m (H 16.5)
    overfill = 8.0 + 0.5 * np.clip(h - 1.0, 0, None) + rng.normal(0, 0.005, len(t))  # H at 18 h
    engine, _ = engine_for(tank("LT-1"), tank("LT-2"), config=None)
    slots = np.r_[np.zeros(len(t)), np.ones(len(t))].astype(np.int32)
    changes = [c for c in engine.process(batch(slots, np.r_[t, t], np.r_[routine, overfill])) if c.kind == EW]
    assert {c.source for c in changes} == {"LT-2"}
    first = changes[0]
    crossing = T0 + 18 * HOUR
    assert first.active and first.level == "H" and 1.5 * HOUR <= crossing - first.time_ms <= 2.1 * HOUR


def fast_v(peak: float, rate_m_per_h: float, seed: int = 3):
    """A tank at 8 m for 6 h, filled at `rate` to `peak`, emptied at the same rate to 8 m, held 6 h."""
    rng = np.random.default_rng(seed)
    up_h = (peak - 8.0) / rate_m_per_h
    h = np.arange(0, (12 + 2 * up_h) * 60) / 60.0
    x = 8.0 + rate_m_per_h * np.clip(np.minimum(h - 6.0, 6.0 + 2 * up_h - h), 0, None)
    return T0 + (h * HOUR).astype(np.int64), x + rng.normal(0, 0.005, len(h))


@pytest.mark.parametrize(("peak", "rate"), [(17.5, 8.5), (17.2, 4.0)])
def test_a_tank_emptied_right_after_a_fast_fill_gets_no_early_warning_on_its_way_down(peak, rate):
    # H 16.5, HH 18: the line fitted over the last 2 h still points up for a while after the top of the V
    engine, _ = engine_for(tank(), config=None)
    t, x = fast_v(peak, rate)
    top_ms = int(t[np.argmax(x)])
    falling = [c for c in run(engine, t, x) if c.kind == EW and c.active and c.time_ms > top_ms]
    assert falling == [], [(c.level, (c.time_ms - top_ms) / MIN, c.value) for c in falling]


def test_a_fill_that_slows_down_short_of_hh_keeps_its_early_warning_of_hh():
    # 8.5 m/h past H, then 1 m/h on toward HH 18 (reached 1.5 h later): still moving toward it
    engine, _ = engine_for(tank(), config=None)
    h = np.arange(0, 12 * 60) / 60.0
    x = 8.0 + 8.5 * np.clip(h - 6.0, 0, 1.0) + 1.0 * np.clip(h - 7.0, 0, None)
    t = T0 + (h * HOUR).astype(np.int64)
    x = x + np.random.default_rng(4).normal(0, 0.005, len(h))
    changes = run(engine, t, x)
    hh_at = next(c.time_ms for c in changes if c.kind == ConditionKind.HH and c.active)
    slow_from = T0 + 7 * HOUR
    warned = [
        c for c in changes if c.kind == EW and c.active and c.level == "HH" and slow_from < c.time_ms < hh_at
    ]
    assert warned, "the slower fill toward HH was not warned before HH"


@pytest.mark.deep
def test_a_rainstorm_on_a_pond_is_warned_by_the_short_channel_hours_ahead():
    pond = Sensor(
        id="PL-1", site="s1", name="库水位", kind="pond_level", unit="m", range=(0.0, 50.0),
        interval_s=300.0, limits=Limits(h=32.0, hh=33.0), forecast=True, device="gw",
    )  # fmt: skip
    engine, _ = engine_for(pond, config=None)
    rng = np.random.default_rng(2)
    t = T0 + np.arange(48 * 12) * 5 * MIN
    h = (t - T0) / HOUR
    x = 30.0 + 0.25 * np.clip(h - 40.0, 0, None) + rng.normal(0, 0.01, len(t))  # storm inflow from 40 h
    changes = [c for c in run(engine, t, x) if c.kind == EW and c.active]
    assert changes and changes[0].level == "H"
    crossing = T0 + 48 * HOUR
    assert crossing - changes[0].time_ms >= 3 * HOUR
    assert changes[0].time_ms > T0 + 40 * HOUR  # nothing during the quiet 40 h


@pytest.mark.deep
def test_streaming_minute_by_minute_equals_one_batch():
    t, x = fill_then_hold(hours=30)
    one, _ = engine_for(tank())
    many, _ = engine_for(tank())
    a = [c for c in run(one, t, x) if c.kind == EW]
    b = [c for c in run(many, t, x, chunk=7) if c.kind == EW]
    assert a == b and len(a) >= 1


@pytest.mark.deep
def test_sensors_without_the_forecast_flag_and_steady_noise_give_no_warning():
    engine, _ = engine_for(tank("LT-1", forecast=False), tank("LT-2"))
    rng = np.random.default_rng(3)
    t = T0 + np.arange(48 * 60) * MIN
    slots = np.r_[np.zeros(len(t)), np.ones(len(t))].astype(np.int32)
    tt = np.r_[t, t]
    x = np.r_[8.0 + 0.25 * np.clip((t - T0) / HOUR - 4, 0, 8), 8.0 + rng.normal(0, 0.05, len(t))]
    changes = engine.process(batch(slots, tt, x))
    assert [c for c in changes if c.kind == EW] == []


@pytest.mark.deep
def test_a_warning_clears_some_hours_after_the_fill_stops():
    engine, _ = engine_for(tank())
    rng = np.random.default_rng(5)
    t = T0 + np.arange(36 * 60) * MIN
    h = (t - T0) / HOUR
    x = 6.0 + 0.35 * np.clip(h - 2.0, 0, 24.0) + rng.normal(0, 0.01, len(t))  # fill 2 h -> 26 h, then hold
    changes = [c for c in run(engine, t, x) if c.kind == EW]
    assert changes[0].active
    stop = T0 + 26 * HOUR
    cleared = [c for c in changes if not c.active]
    # the EW slope (tau 2 h) fades over a few tau before it stops being significant
    assert len(cleared) == 1 and stop < cleared[0].time_ms < stop + 6 * HOUR
    assert sum(1 for c in changes if c.active and c.time_ms > cleared[0].time_ms) == 0


@pytest.mark.deep
def test_restart_with_an_active_warning_sends_no_new_raise_only_updates():
    t, x = fill_then_hold()
    engine, _ = engine_for(tank())
    first = [c for c in run(engine, t[:1500], x[:1500]) if c.kind == EW]
    assert first and first[0].active
    restarted, _ = engine_for(tank())
    restarted.restore_active({("s1", "sensor", "LT-1", "EARLY_WARNING")})
    again = [c for c in run(restarted, t[1500:1800], x[1500:1800]) if c.kind == EW]  # the data go on
    # the journal says it is active: whatever follows is an update of the same alarm point (active=True
    # with new details), and the lifecycle turns a same-state change into an update, never a raise
    assert again and all(c.active for c in again)
    assert restarted.forecaster.active[0]


@pytest.mark.deep
def test_silent_trend_lapses_on_the_clock():
    engine, _ = engine_for(tank())
    t, x = fill_then_hold()
    run(engine, t[:1500], x[:1500])
    assert engine.forecaster.active[0]
    last = int(t[1499])
    changes = []
    for now in range(last, last + 6 * HOUR, 5 * MIN):
        changes += engine.refresh_forecasts(now)
    off = [c for c in changes if not c.active]
    assert len(off) == 1 and off[0].time_ms > last + 2 * HOUR  # tau (2 h) of silence, then 15 min


@pytest.mark.deep
def test_accelerating_creep_gets_a_failure_time_forecast():
    disp = Sensor(
        id="GNSS-1", site="s1", name="坝顶位移", kind="displacement", unit="mm", range=(-500.0, 2000.0),
        interval_s=1800.0, limits=Limits(h=1500.0), forecast=True, device="gw",
    )  # fmt: skip
    engine, _ = engine_for(disp)
    rng = np.random.default_rng(7)
    tf_h = 15 * 24.0
    hours = np.arange(0, tf_h - 2, 0.5)
    a = 2.0  # tertiary creep: v = 1 / (a (Tf - t)), 1/v falling linearly (Fukuzono)
    x = -np.log((tf_h - hours) / tf_h) * 1.0 / a * 100 + rng.normal(0, 0.7, len(hours))
    t = (T0 + hours * HOUR).astype(np.int64)
    changes = [c for c in run(engine, t, x) if c.kind == EW and c.active]
    fail = [c for c in changes if c.level == FAILURE_LEVEL]
    assert fail, "no inverse-velocity warning"
    tf_ms = T0 + tf_h * HOUR
    lead_h = (tf_ms - fail[0].time_ms) / HOUR
    assert lead_h >= 6, lead_h
    assert fail[0].eta_ms <= tf_ms + 0.2 * (tf_ms - fail[0].time_ms)  # errs early, the safe side
