"""Field realism of the simulator (simulators/realism.py, field.py, modes.py, tanks.py, workweek.py)."""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pytest

from sensors.model import Registry
from sensors.registry import parse_registry_text
from simulators import cli
from simulators.generate import generate_registry
from simulators.incidents import Incident, IncidentEngine, parse_incident
from simulators.payloads import DeviceLayout
from simulators.realism import CLASSIC, FEATURES, FIELD, Realism
from simulators.signals import FleetModel
from simulators.stream import Simulation
from simulators.workweek import day_shift, plant_load, weekday

REGISTRY_YAML = """
sites:
  - id: plant
    name: 测试化工厂
    kind: chemical
    grade: 2
    location: {lat: 22.56, lon: 113.12}
    sensors:
      - {id: T1-LT, name: T1储罐液位, kind: level, unit: m, range: [0, 16], interval_s: 60,
         limits: {ll: 0.8, l: 1.2, h: 14.2, hh: 14.8}, device: tf-gw}
      - {id: T1-PT, name: T1储罐压力, kind: pressure, unit: kPa, range: [-3, 5], interval_s: 60,
         limits: {ll: -0.4, l: -0.2, h: 1.6, hh: 1.9}, device: tf-gw}
      - {id: FT-1, name: 进料流量, kind: flow, unit: m3/h, range: [0, 800], interval_s: 60,
         limits: {h: 600, hh: 700}, device: tf-gw}
      - {id: R1-TT, name: R1反应器温度, kind: temperature, unit: °C, range: [0, 250], interval_s: 60,
         limits: {ll: 120, l: 130, h: 170, hh: 180}, device: dcs}
      - {id: R2-TT, name: R2间歇反应釜温度, kind: temperature, unit: °C, range: [0, 200], interval_s: 60,
         limits: {h: 95, hh: 105}, device: dcs}
      - {id: K101-TT, name: K101压缩机出口温度, kind: temperature, unit: °C, range: [0, 200], interval_s: 60,
         limits: {h: 150, hh: 160}, device: dcs}
      - {id: K101-FT, name: K101压缩机排气流量, kind: flow, unit: m3/h, range: [0, 1500], interval_s: 60,
         limits: {h: 1300, hh: 1400}, device: dcs}
      - {id: P1-PT, name: P-101输送泵出口压力, kind: pressure, unit: MPa, range: [0, 4], interval_s: 60,
         limits: {l: 1.0, h: 3.0, hh: 3.3}, device: dcs}
      - {id: T2-TT, name: T2苯酚储罐加热温度, kind: temperature, unit: °C, range: [0, 100], interval_s: 60,
         limits: {h: 65, hh: 70}, device: tf-gw}
      - {id: GT-1, name: 可燃气体A, kind: gas_lel, unit: "%LEL", range: [0, 100], interval_s: 60,
         limits: {h: 25, hh: 50}, device: gds}
  - id: pond
    name: 测试尾矿库
    kind: tailings
    grade: 3
    location: {lat: 25.1, lon: 113.7}
    sensors:
      - {id: PL-1, name: 库水位, kind: pond_level, unit: m, range: [230, 250], interval_s: 600,
         limits: {h: 244.5, hh: 247.3}, device: rtu-1}
      - {id: RG-1, name: 雨量计, kind: rainfall, unit: mm/h, range: [0, 240], interval_s: 600,
         limits: {h: 16.7, hh: 33.3}, device: rtu-1}
      - {id: DB-1, name: 干滩长度, kind: dry_beach, unit: m, range: [0, 400], interval_s: 600,
         limits: {ll: 70, l: 80}, device: rtu-1}
      - {id: GNSS-1, name: GNSS位移, kind: displacement, unit: mm, range: [-100, 300], interval_s: 600,
         limits: {h: 40, hh: 50}, device: rtu-2}
"""

TZ = ZoneInfo("Asia/Shanghai")
MON = datetime(2026, 7, 6, tzinfo=TZ).timestamp()  # a Monday, local midnight
HOUR, DAY = 3600.0, 86400.0


@pytest.fixture(scope="module")
def registry() -> Registry:
    sites, issues = parse_registry_text(REGISTRY_YAML, "field.yaml")
    assert not issues, issues
    return Registry(sites=tuple(sites))


def slot(model: FleetModel, sensor: str) -> int:
    return next(i for i, s in enumerate(model.sensors) if s.id == sensor)


def run(model: FleetModel, times: np.ndarray) -> np.ndarray:
    """Values at each time, shape (n_times, n_sensors)."""
    return np.array([model.step(float(t)) for t in times])


def local(t_s: np.ndarray | float) -> np.ndarray:
    return np.asarray(t_s) + 8 * HOUR  # Asia/Shanghai, no daylight saving


def assert_inside_limits(model: FleetModel, values: np.ndarray) -> None:
    assert np.isfinite(values).all()
    assert (values >= model.range_lo).all() and (values <= model.range_hi).all()
    for limit, above in ((model.limit_h, True), (model.limit_hh, True), (model.limit_l, False)):
        set_ = ~np.isnan(limit)
        bad = values[:, set_] >= limit[set_] if above else values[:, set_] <= limit[set_]
        assert not bad.any(), [model.sensors[i].key for i in np.flatnonzero(set_)[bad.any(axis=0)]]


# ---- the option


def test_realism_parses_profiles_features_and_removals() -> None:
    assert Realism.parse("classic") == CLASSIC and not CLASSIC
    assert Realism.parse("field") == FIELD and FIELD.features == frozenset(FEATURES)
    assert Realism.parse("ar, modes").features == {"ar", "modes"}
    assert Realism.parse("field,-gaps").features == frozenset(FEATURES) - {"gaps"}
    assert str(Realism.parse("field")) == "field" and str(Realism.parse("modes,ar")) == "ar,modes"
    with pytest.raises(ValueError, match="unknown 'rain'"):
        Realism.parse("ar,rain")


def test_cli_takes_a_realism_and_refuses_an_unknown_one() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert parser.parse_args([]).realism == CLASSIC
    assert parser.parse_args(["--realism", "field,-gaps"]).realism == Realism.parse("field,-gaps")
    with pytest.raises(SystemExit):
        parser.parse_args(["--realism", "wild"])


def test_classic_is_the_default_and_has_no_field_physics(registry: Registry) -> None:
    times = MON + np.arange(0, 6 * HOUR, 60.0)
    default, classic = FleetModel(registry, seed=3), FleetModel(registry, seed=3, realism=CLASSIC)
    np.testing.assert_array_equal(run(default, times), run(classic, times))
    assert default.field is None and default.silent(MON) is None and default.devices_down(MON) is None


@pytest.mark.deep
def test_field_fleet_is_deterministic_by_seed(registry: Registry) -> None:
    times = MON + np.arange(0, 2 * DAY, 300.0)
    a, b, c = (FleetModel(registry, seed=s, realism=FIELD) for s in (7, 7, 8))
    va, vb, vc = run(a, times), run(b, times), run(c, times)
    np.testing.assert_array_equal(va, vb)
    assert a.field.log == b.field.log
    assert not np.array_equal(va, vc)


@pytest.mark.deep
def test_switching_a_feature_off_changes_only_what_it_does(registry: Registry) -> None:
    times = MON + np.arange(0, 3 * DAY, 300.0)
    full = FleetModel(registry, seed=2, realism=FIELD)
    no_gaps = FleetModel(registry, seed=2, realism=Realism.parse("field,-gaps"))
    no_bursts = FleetModel(registry, seed=2, realism=Realism.parse("field,-bursts"))
    v_full, v_no_gaps, v_no_bursts = run(full, times), run(no_gaps, times), run(no_bursts, times)
    np.testing.assert_array_equal(v_full, v_no_gaps)  # gaps silence sensors, they change no value
    changed = np.flatnonzero((v_full != v_no_bursts).any(axis=0))
    assert set(changed.tolist()) <= set(full.field.burst_slots.tolist())


DEC = datetime(2026, 12, 7, tzinfo=TZ).timestamp()


@pytest.mark.parametrize("start", [MON, DEC], ids=["july", "december"])
@pytest.mark.deep
def test_field_fleet_stays_inside_its_limits_for_a_week(registry: Registry, start: float) -> None:
    model = FleetModel(registry, seed=1, realism=FIELD)
    assert_inside_limits(model, run(model, start + np.arange(0, 7 * DAY, 300.0)))


@pytest.mark.deep
def test_generated_field_fleet_is_quiet_too() -> None:
    model = FleetModel(generate_registry(8, 40, seed=3), seed=3, realism=FIELD)
    assert_inside_limits(model, run(model, MON + np.arange(0, 2 * DAY, 300.0)))


# ---- coloured noise and bursts


@pytest.mark.deep
def test_ar_noise_has_the_lag1_autocorrelation_of_its_time_constant(registry: Registry) -> None:
    """The AR part is added on top of the unchanged classic draws: the difference is the AR(1) path."""
    dt = 300.0
    times = MON + np.arange(0, 3000 * dt, dt)
    i = slot(FleetModel(registry), "T1-PT")
    ar = FleetModel(registry, seed=4, realism=Realism.parse("ar"))
    x = run(ar, times)[:, i] - run(FleetModel(registry, seed=4), times)[:, i]
    tau = float(ar.field.ar_tau_s[np.flatnonzero(ar.field.ar_slots == i)[0]])
    rho = np.corrcoef(x[:-1], x[1:])[0, 1]
    assert rho == pytest.approx(math.exp(-dt / tau), abs=0.05)
    sigma = float(ar.field.ar_sigma[np.flatnonzero(ar.field.ar_slots == i)[0]])
    assert x.std() == pytest.approx(sigma, rel=0.15)
    innovation = x[1:] - rho * x[:-1]
    kurtosis = np.mean((innovation - innovation.mean()) ** 4) / innovation.var() ** 2
    assert kurtosis > 4.0  # Student-t (ν = 4) innovations: heavier tails than a normal's 3


@pytest.mark.deep
def test_gas_bursts_are_upward_heavy_tailed_and_revert(registry: Registry) -> None:
    times = MON + np.arange(0, 10 * DAY, 180.0)
    i = slot(FleetModel(registry), "GT-1")
    bursty = FleetModel(registry, seed=5, realism=Realism.parse("bursts"))
    x = run(bursty, times)[:, i] - run(FleetModel(registry, seed=5), times)[:, i]
    peak = int(np.argmax(x))
    assert x.max() > 0.5 and np.median(x) < 0.05  # rare puffs of a few %LEL, zero most of the time
    assert x.min() >= -0.011  # puffs only add gas (rounding aside)
    assert x[peak + 60] < 0.2 * x[peak]  # mean-reverting: three hours later it has mostly gone


# ---- operating modes


@pytest.mark.deep
def test_a_stopped_machine_reads_no_flow_and_a_started_one_its_running_flow(registry: Registry) -> None:
    times = MON + np.arange(0, 4 * DAY, 120.0)
    model = FleetModel(registry, seed=6, realism=Realism.parse("modes"))
    flow = run(model, times)[:, slot(model, "FT-1")]
    starts = [e.t_s for e in model.field.log if e.target == "FT-1" and e.what == "machine starts"]
    stops = [e.t_s for e in model.field.log if e.target == "FT-1" and e.what == "machine stops"]
    assert starts and stops
    at = {float(t): v for t, v in zip(times, flow, strict=True)}
    running = float(model.op[slot(model, "FT-1")])
    assert all(at[t + 600] == 0.0 for t in stops)  # 10 min after a stop: low-flow cut-off reads 0
    assert all(at[t + 600] > 0.5 * running for t in starts)  # and back at its running flow after a start


@pytest.mark.deep
def test_sensors_of_one_machine_share_its_modes(registry: Registry) -> None:
    times = MON + np.arange(0, 4 * DAY, 120.0)
    model = FleetModel(registry, seed=6, realism=Realism.parse("modes"))
    v = run(model, times)
    temp, flow = v[:, slot(model, "K101-TT")], v[:, slot(model, "K101-FT")]
    on = flow > 100.0
    assert 0.1 < on.mean() < 0.99
    assert {e.target for e in model.field.log if e.what == "machine starts"} >= {"K101"}
    settled = on & np.roll(on, 15) & np.roll(on, -15)  # half an hour into a run, not about to stop
    assert temp[settled].min() > 110.0  # loaded: 12-20 % of the band below H 150
    assert temp[~on & np.roll(~on, 45)].max() < 45.0  # stopped for 1.5 h: back with the weather
    assert temp.max() < 150.0


@pytest.mark.deep
def test_a_pump_stop_drops_its_discharge_pressure_by_the_head(registry: Registry) -> None:
    times = MON + np.arange(0, 4 * DAY, 120.0)
    model = FleetModel(registry, seed=8, realism=Realism.parse("modes"))
    i = slot(model, "P1-PT")
    p = run(model, times)[:, i]
    x = p - run(FleetModel(registry, seed=8), times)[:, i]  # the modes' own part
    field = model.field
    modes = field.modes
    head = float(modes.mode_lift[np.flatnonzero(modes.mode_slots == i)[0]])
    assert 0.25 * 2.0 <= head <= 0.35 * 2.0  # 25-35 % of the L..H band
    at = dict(zip(times.tolist(), x.tolist(), strict=True))
    stops = [e.t_s for e in field.log if e.target == "P-101" and e.what == "machine stops"]  # tag in the name
    starts = [e.t_s for e in field.log if e.target == "P-101" and e.what == "machine starts"]
    assert stops and starts
    assert all(at[t + 600] == pytest.approx(-head, abs=0.002) for t in stops)
    assert all(abs(at[t + 600]) < 0.002 for t in starts)  # running: back at its operating point
    assert p.min() > 1.0 and p.max() < 3.0  # both modes inside L..H


@pytest.mark.deep
def test_batch_reactor_heats_holds_below_h_and_rests_at_the_weekend(registry: Registry) -> None:
    times = MON + np.arange(0, 7 * DAY, 120.0)
    model = FleetModel(registry, seed=9, realism=Realism.parse("modes"))
    temp = run(model, times)[:, slot(model, "R2-TT")]
    batches = [e.t_s for e in model.field.log if e.what == "batch starts"]
    assert len(batches) >= 8  # two to three a working day
    assert all(weekday(local(t)) < 5 for t in batches)
    assert 95 - 0.16 * 95 < temp.max() < 95 - 0.09 * 95  # the recipe's hold, 10-15 % below H
    sunday = weekday(local(times)) == 6
    assert temp[sunday].max() < 45.0  # idle: the weather's temperature
    rise_c_per_h = temp[30:] - temp[:-30]  # over one hour
    assert 30.0 < rise_c_per_h.max() < 47.0  # steam heating at 30-45 °C/h (plus noise)


@pytest.mark.deep
def test_heated_tank_saw_tooths_between_its_thermostat_switch_points(registry: Registry) -> None:
    times = MON + np.arange(0, 3 * DAY, 120.0)
    model = FleetModel(registry, seed=20, realism=Realism.parse("modes"))
    temp = run(model, times)[:, slot(model, "T2-TT")]
    modes = model.field.modes
    on, off = float(modes.thermo_on[0]), float(modes.thermo_off[0])
    assert 65 - 0.18 * 65 <= off <= 65 - 0.12 * 65 and 4.0 <= off - on <= 7.0
    assert on - 0.5 <= temp.min() and temp.max() <= off + 0.5  # overshoot of one step and noise only
    rising = np.diff(temp) > 0.02
    flips = np.count_nonzero(rising[1:] != rising[:-1])
    assert flips > 10  # many heating and cooling half-cycles in three days


@pytest.mark.deep
def test_tanks_fill_to_their_normal_fill_height_and_are_drawn_only_on_day_shifts(registry: Registry) -> None:
    times = MON + np.arange(0, 14 * DAY, 300.0)
    model = FleetModel(registry, seed=10, realism=Realism.parse("modes"))
    level = run(model, times)[:, slot(model, "T1-LT")]
    receipts = [e for e in model.field.log if e.what == "receipt starts"]
    assert receipts
    assert {e.site for e in model.field.log if e.what == "truck starts"} == {"plant"}  # the pond has no bay
    assert all(14.2 - 0.1 * 13.0 - 1e-9 <= e.value <= 14.2 - 0.05 * 13.0 + 1e-9 for e in receipts)
    assert level.max() < 14.2 - 0.05 * 13.0 + 0.02  # never past the normal fill height (+ gauge noise)
    falling = level[6:] - level[:-6] < -0.04  # a truck draws 75-150 mm in 30 min; gauge noise is mm
    hour = (local(times[6:]) % DAY) / HOUR
    trucks_come = (weekday(local(times[6:])) < 5) & (hour >= 6.5) & (hour < 21.5)  # last truck by ~19:30
    assert falling.any() and not (falling & ~trucks_come).any()


@pytest.mark.deep
def test_setpoint_moves_settle_at_the_new_level(registry: Registry) -> None:
    times = MON + np.arange(0, 30 * DAY, 900.0)
    i = slot(FleetModel(registry), "R1-TT")
    moved = FleetModel(registry, seed=11, realism=Realism.parse("setpoints"))
    x = run(moved, times)[:, i] - run(FleetModel(registry, seed=11), times)[:, i]
    events = [e for e in moved.field.log if e.target == "R1-TT" and e.what == "setpoint moved by"]
    assert events
    total = 0.0
    for e in events:
        total += e.value
        settled = np.flatnonzero(times >= e.t_s + 5 * 1800.0)[0]  # five closed-loop time-constants
        assert x[settled] == pytest.approx(total, abs=0.02 * abs(e.value) + 0.011)
        assert 0.05 * 40 - 1e-9 <= abs(e.value) <= 0.15 * 40 + 1e-9  # 5-15 % of the L..H band


# ---- the working week and the seasons


def test_workweek_activity_and_load() -> None:
    noon = np.array([MON + d * DAY + 12 * HOUR for d in range(7)])
    assert day_shift(local(noon)).tolist() == [1, 1, 1, 1, 1, 0, 0]
    assert day_shift(local(MON + 3 * HOUR)) == 0.0
    assert plant_load(local(MON + 12 * HOUR)) == 1.0 and plant_load(local(MON + 3 * HOUR)) == 0.85


def test_weekly_load_lowers_flows_at_night_and_at_weekends(registry: Registry) -> None:
    times = MON + np.arange(0, 7 * DAY, 3600.0)
    i = slot(FleetModel(registry), "FT-1")
    weekly = FleetModel(registry, seed=12, realism=Realism.parse("weekly"))
    x = run(weekly, times)[:, i] - run(FleetModel(registry, seed=12), times)[:, i]
    gain = float(weekly.op[i] - weekly.range_lo[i])
    hour = ((times - MON) % DAY) / HOUR
    day = (times - MON) // DAY
    assert np.abs(x[(day < 5) & (hour == 12)]).max() < 0.2  # weekday noon: full load
    np.testing.assert_allclose(x[(day >= 5) & (hour == 12)], -0.15 * gain, atol=0.2)
    np.testing.assert_allclose(x[hour == 3], -0.15 * gain, atol=0.2)


def test_pond_stands_lower_before_the_flood_season_and_its_beach_longer(registry: Registry) -> None:
    realism = Realism.parse("seasonal")
    amp = float(FleetModel(registry, seed=13, realism=realism).field.site_season_amp_m[1])
    assert 0.8 <= amp <= 1.5
    spring = datetime(2026, 3, 27, tzinfo=UTC).timestamp()
    autumn = datetime(2026, 9, 25, tzinfo=UTC).timestamp()
    for when, expected in ((spring, -amp), (autumn, 0.0)):
        seasonal, classic = FleetModel(registry, seed=13, realism=realism), FleetModel(registry, seed=13)
        pl, db = slot(classic, "PL-1"), slot(classic, "DB-1")
        t = when + np.arange(0, 600.0 * 3, 600.0)  # half an hour: no shower has started yet
        d = run(seasonal, t)[-1] - run(classic, t)[-1]
        slope = float(seasonal.site_beach_slope[1])
        assert d[pl] == pytest.approx(expected, abs=0.01)
        assert d[db] == pytest.approx(-d[pl] / slope, abs=0.2)  # the beach follows the pond (1 mm / 1 %)


def test_wet_season_showers_are_heavier_tailed_and_stay_ordinary(registry: Registry) -> None:
    model = FleetModel(registry, seed=14, realism=Realism.parse("seasonal"))
    hours, mm_h = model.field.shower_shape(MON, np.ones(5000), np.ones(5000))
    assert hours.min() >= 0.3 and hours.max() <= 2.5
    assert mm_h.max() <= 15.0 < 16.7  # under the CMA orange intensity
    assert (mm_h > 6.0).mean() > 0.1  # the classic showers never exceed 6 mm/h


# ---- maintenance and gaps


@pytest.mark.deep
def test_maintenance_takes_a_sensor_off_line_and_brings_it_back_offset(registry: Registry) -> None:
    times = MON + np.arange(0, 60 * DAY, 1800.0)
    model = FleetModel(registry, seed=15, realism=Realism.parse("maintenance"))
    classic = FleetModel(registry, seed=15)
    values, silent = [], []
    for t in times:
        values.append(model.step(float(t)) - classic.step(float(t)))
        silent.append(model.silent(float(t)))
    x, off = np.array(values), np.array(silent)
    events = [e for e in model.field.log if e.what.startswith("maintenance")]
    assert events
    e = events[0]
    i = slot(model, e.target)
    span = float(model.range_hi[i] - model.range_lo[i])
    assert 0.003 * span - 1e-9 <= abs(e.value) <= 0.015 * span + 1e-9
    before, during = times < e.t_s, (times >= e.t_s) & (times < e.t_s + 0.5 * HOUR)
    assert off[during, i].all() and not off[before, i].any()
    back = np.flatnonzero((times >= e.t_s + 2 * HOUR) & ~off[:, i])[0]
    assert x[back, i] == pytest.approx(e.value, abs=2.0 / model.scale[i])  # a step, then it stays
    assert np.abs(x[before, i]).max() <= 1.0 / model.scale[i]


def readings_by_sensor(sim: Simulation, n_ticks: int) -> tuple[dict[str, list[float]], list[tuple]]:
    seen: dict[str, list[float]] = {s.id: [] for s in sim.model.sensors}
    status: list[tuple[float, str, bytes]] = []
    for k in range(n_ticks):
        t = sim.tick_time(k)
        for m in sim.tick(t):
            if m.readings:
                for item in orjson.loads(m.payload)["readings"]:
                    seen[item["sensor"]].append(t)
            else:
                status.append((t, m.topic, m.payload))
    return seen, status


@pytest.mark.deep
def test_a_gap_produces_no_readings_for_its_length(registry: Registry) -> None:
    sim = Simulation(registry, start_s=MON, seed=16, realism=Realism.parse("gaps"), tick_s=120.0)
    seen, status = readings_by_sensor(sim, 6 * 720)  # six days of 2-min ticks
    gaps = [e for e in sim.model.field.log if e.what == "sensor gap (s)"]
    assert gaps
    for e in gaps:
        t = np.array(seen[e.target])
        assert not ((t >= e.t_s) & (t < e.t_s + e.value)).any()
        if e.t_s + e.value + 1800 < MON + 6 * DAY:
            assert ((t >= e.t_s + e.value) & (t < e.t_s + e.value + 1800)).any()  # and it resumes
    gateway = [e for e in sim.model.field.log if e.what == "gateway gap (s)"]
    assert gateway  # a whole gateway goes silent and its broker says so
    e = gateway[0]
    members = [s.id for s in sim.model.sensors if (s.site, s.device) == (e.site, e.target)]
    for m in members:
        t = np.array(seen[m])
        assert not ((t >= e.t_s) & (t < e.t_s + e.value)).any()
    mine = [(t, p) for t, topic, p in status if topic == f"hazmon/v1/{e.site}/{e.target}/status"]
    assert mine[0] == (e.t_s, b"offline") and mine[1][1] == b"online"
    assert mine[1][0] == pytest.approx(e.t_s + e.value, abs=120.0)


# ---- scheduled operations (incident specs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("setpoint:s/R1-TT@+8d10h=+5", Incident("setpoint", "s", "R1-TT", 8 * DAY + 10 * HOUR, None, 5.0)),
        ("recal:s/GNSS-1@4d~3h=-4.5", Incident("recal", "s", "GNSS-1", 4 * DAY, 3 * HOUR, -4.5)),
        ("gap:s/gw-1@+1h~30m", Incident("gap", "s", "gw-1", HOUR, 1800.0)),
    ],
)
def test_operation_specs_parse_and_print(text: str, expected: Incident) -> None:
    assert parse_incident(text) == expected
    assert parse_incident(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("setpoint:s/x@+1h", "needs =AMOUNT"),
        ("leak:s/x@+1m=+3", "takes no =AMOUNT"),
        ("recal:s/x~1h=lots", "bad amount"),
        ("recal:s/x~1h=nan", "finite"),
    ],
)
def test_bad_operation_specs_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_incident(text)


def test_scheduled_setpoint_settles_at_the_new_level_and_goes_back(registry: Registry) -> None:
    model = FleetModel(registry, seed=17)
    engine = IncidentEngine(
        model, DeviceLayout.build(model.sensors), [parse_incident("setpoint:plant/R1-TT@+1h~6h=+5")], MON
    )
    quiet = FleetModel(registry, seed=17)
    i = slot(model, "R1-TT")
    times = MON + np.arange(0, 12 * HOUR, 300.0)
    x = np.array([engine.apply(float(t), model.step(float(t)))[i] - quiet.step(float(t))[i] for t in times])
    at = dict(zip((times - MON).tolist(), x.tolist(), strict=True))
    assert at[0.0] == 0.0
    assert at[1 * HOUR + 1800] == pytest.approx(5 * (1 - math.exp(-1)), abs=0.02)  # τ 30 min (temperature)
    assert at[6 * HOUR] == pytest.approx(5.0, abs=0.02)
    assert abs(at[11 * HOUR]) < 0.05  # put back after 6 h


def test_recal_is_a_gap_then_a_step(registry: Registry) -> None:
    spec = "recal:plant/T1-PT@+1h~30m=+0.2"
    sim = Simulation(registry, start_s=MON, seed=18, incidents=[parse_incident(spec)])
    ref = Simulation(registry, start_s=MON, seed=18)
    i = slot(sim.model, "T1-PT")
    seen, _ = readings_by_sensor(sim, 180)
    t = np.array(seen["T1-PT"])
    assert not ((t >= MON + HOUR) & (t < MON + 1.5 * HOUR)).any() and (t >= MON + 1.5 * HOUR).any()
    readings_by_sensor(ref, 180)  # the same three hours without the recalibration
    assert sim.values[i] - ref.values[i] == pytest.approx(0.2, abs=1e-6)


def test_a_gap_on_a_device_mutes_its_sensors_but_keeps_it_online(registry: Registry) -> None:
    sim = Simulation(registry, start_s=MON, seed=19, incidents=[parse_incident("gap:plant/dcs@+10m~20m")])
    seen, status = readings_by_sensor(sim, 60)
    for sensor in ("R1-TT", "K101-TT", "P1-PT"):
        t = np.array(seen[sensor])
        assert not ((t >= MON + 600) & (t < MON + 1800)).any() and (t >= MON + 1800).any()
    assert (np.array(seen["T1-LT"]) >= MON + 600).sum() > 10  # other gateways report
    assert not [p for _, topic, p in status if topic.endswith("/dcs/status") and p == b"offline"]
