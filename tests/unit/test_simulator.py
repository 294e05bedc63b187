"""Simulator physics and incidents (simulators/signals.py, incidents.py): fast, no servers."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pytest

from sensors.model import Registry
from sensors.registry import parse_registry_text
from simulators.generate import generate_registry
from simulators.incidents import Incident, IncidentEngine, parse_incident
from simulators.payloads import DeviceLayout
from simulators.signals import FleetModel
from simulators.stream import Simulation

# ---- a small registry with every physics: tanks, LPG sphere, a 2oo3 gas group, a tailings pond

REGISTRY_YAML = """
sites:
  - id: tank-farm
    name: 测试储罐区
    kind: chemical
    grade: 2
    location: {lat: 22.56, lon: 113.12}
    sensors:
      - {id: T1-LT, name: T1储罐液位, kind: level, unit: m, range: [0, 16], interval_s: 10,
         limits: {ll: 0.8, l: 1.2, h: 14.2, hh: 14.8}, device: tf-gw}
      - {id: T1-TT, name: T1储罐温度, kind: temperature, unit: °C, range: [-20, 80], interval_s: 60,
         limits: {h: 45, hh: 55}, device: tf-gw}
      - {id: T1-PT, name: T1储罐压力, kind: pressure, unit: kPa, range: [-3, 5], interval_s: 5,
         limits: {ll: -0.4, l: -0.2, h: 1.6, hh: 1.9}, device: tf-gw}
      - {id: FT-1, name: 进料流量, kind: flow, unit: m3/h, range: [0, 800], interval_s: 5,
         limits: {h: 600, hh: 700}, device: tf-gw}
      - {id: GT-1, name: 可燃气体A, kind: gas_lel, unit: "%LEL", range: [0, 100], interval_s: 1,
         limits: {h: 25, hh: 50}, group: pump-lel, device: gds}
      - {id: GT-2, name: 可燃气体B, kind: gas_lel, unit: "%LEL", range: [0, 100], interval_s: 1,
         limits: {h: 25, hh: 50}, group: pump-lel, device: gds}
      - {id: GT-3, name: 可燃气体C, kind: gas_lel, unit: "%LEL", range: [0, 100], interval_s: 1,
         limits: {h: 25, hh: 50}, group: pump-lel, device: gds}
      - {id: GT-H2S, name: 硫化氢, kind: gas_toxic, unit: mg/m3, range: [0, 30], interval_s: 2,
         limits: {h: 10, hh: 20}, device: gds}
      - {id: AT-1, name: 氧含量, kind: oxygen, unit: "%VOL", range: [0, 25], interval_s: 2,
         limits: {l: 19.5, h: 23.5}, device: gds}
  - id: lpg-station
    name: 测试液化石油气站
    kind: chemical
    grade: 1
    location: {lat: 21.9, lon: 113.2}
    sensors:
      - {id: V1-PT, name: V1液化石油气球罐压力, kind: pressure, unit: MPa, range: [0, 2.5], interval_s: 5,
         limits: {h: 1.45, hh: 1.6}, device: lpg-gw}
      - {id: V1-TT, name: V1球罐液相温度, kind: temperature, unit: °C, range: [-20, 60], interval_s: 30,
         limits: {h: 40, hh: 45}, device: lpg-gw}
      - {id: V1-LT, name: V1球罐液位, kind: level, unit: "%", range: [0, 100], interval_s: 10,
         limits: {ll: 10, l: 15, h: 85, hh: 90}, device: lpg-gw}
  - id: pond
    name: 测试尾矿库
    kind: tailings
    grade: 3
    location: {lat: 25.1, lon: 113.7}
    sensors:
      - {id: PL-1, name: 库水位, kind: pond_level, unit: m, range: [230, 250], interval_s: 300,
         limits: {h: 244.5, hh: 247.3}, device: rtu-1}
      - {id: RG-1, name: 雨量计, kind: rainfall, unit: mm/h, range: [0, 240], interval_s: 60,
         limits: {h: 16.7, hh: 33.3}, device: rtu-1}
      - {id: DB-1, name: 干滩长度, kind: dry_beach, unit: m, range: [0, 400], interval_s: 600,
         limits: {ll: 70, l: 80}, device: rtu-1}
      - {id: PZ-1, name: 浸润线埋深, kind: phreatic_depth, unit: m, range: [0, 30], interval_s: 600,
         limits: {ll: 4.8, l: 5.28}, device: rtu-2}
      - {id: GNSS-1, name: GNSS位移, kind: displacement, unit: mm, range: [-100, 300], interval_s: 600,
         limits: {h: 40, hh: 50}, device: rtu-2}
      - {id: SP-1, name: 渗流量, kind: seepage, unit: L/s, range: [0, 30], interval_s: 300,
         limits: {h: 6, hh: 8}, device: rtu-2}
"""

NOV = datetime(2026, 11, 23, tzinfo=UTC).timestamp()
JUL = datetime(2026, 7, 20, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def registry() -> Registry:
    sites, issues = parse_registry_text(REGISTRY_YAML, "test.yaml")
    assert not issues, issues
    return Registry(sites=tuple(sites))


def slot(model: FleetModel, site: str, sensor: str) -> int:
    return next(i for i, s in enumerate(model.sensors) if s.key == (site, sensor))


def run(model: FleetModel, engine: IncidentEngine | None = None, *, times: np.ndarray) -> np.ndarray:
    """Values at each time, shape (n_times, n_sensors)."""
    rows = []
    for t in times:
        v = model.step(float(t))
        rows.append(engine.apply(float(t), v) if engine else v)
    return np.array(rows)


def assert_quiet(model: FleetModel, values: np.ndarray) -> None:
    """Every value inside its range and strictly inside its alarm limits (vectorised over all sensors)."""
    assert np.isfinite(values).all()
    assert (values >= model.range_lo).all() and (values <= model.range_hi).all()
    for limit, below in (
        (model.limit_h, True),
        (model.limit_hh, True),
        (model.limit_l, False),
        (model.limit_ll, False),
    ):
        set_ = ~np.isnan(limit)
        bad = (values[:, set_] >= limit[set_]) if below else (values[:, set_] <= limit[set_])
        assert not bad.any(), [model.sensors[i].key for i in np.flatnonzero(set_)[bad.any(axis=0)]]


# ---- quiet physics


def test_same_seed_same_values_other_seed_other_values(registry: Registry) -> None:
    times = NOV + np.arange(0, 3600, 10.0)
    a = run(FleetModel(registry, seed=7), times=times)
    b = run(FleetModel(registry, seed=7), times=times)
    c = run(FleetModel(registry, seed=8), times=times)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.deep
@pytest.mark.parametrize("start", [NOV, JUL], ids=["november", "july"])
def test_quiet_fleet_stays_in_range_and_inside_limits_for_a_day(registry: Registry, start: float) -> None:
    model = FleetModel(registry, seed=1)
    assert_quiet(model, run(model, times=start + np.arange(0, 86400, 60.0)))


def test_generated_fleet_is_quiet_too() -> None:
    model = FleetModel(generate_registry(8, 40, seed=3), seed=3)
    assert_quiet(model, run(model, times=JUL + np.arange(0, 86400, 120.0)))


@pytest.mark.parametrize("start", [NOV, JUL], ids=["november", "july"])
def test_lpg_pressure_follows_the_day_peaking_mid_afternoon_below_h(registry: Registry, start: float) -> None:
    model = FleetModel(registry, seed=2)
    times = start + np.arange(0, 2 * 86400, 300.0)
    p = run(model, times=times)[:, slot(model, "lpg-station", "V1-PT")]
    day2 = slice(len(times) // 2, None)
    peak_t = times[day2][np.argmax(p[day2])]
    local_hour = datetime.fromtimestamp(peak_t, ZoneInfo("Asia/Shanghai")).hour
    assert 12 <= local_hour <= 18
    assert p[day2].max() - p[day2].min() > 0.05  # MPa: ~±3 °C of liquid temperature
    assert p.max() < 1.45
    assert 0.4 < p.mean() < 1.2  # propane vapour pressure at ~15-30 °C


def test_tank_level_fills_and_draws_at_plausible_rates(registry: Registry) -> None:
    model = FleetModel(registry, seed=4)
    times = NOV + np.arange(0, 4 * 86400, 600.0)
    level = run(model, times=times)[:, slot(model, "tank-farm", "T1-LT")]
    assert level.max() - level.min() > 3.0  # it moves: fill and draw cycles
    rate_m_per_h = np.abs(np.diff(level)) / (600 / 3600)
    assert rate_m_per_h.max() < 0.5  # 0.15-0.35 m/h plus gauge noise (DOMAIN §7.1)


@pytest.mark.deep
def test_gas_baseline_near_zero_with_noise_clipped_at_zero(registry: Registry) -> None:
    model = FleetModel(registry, seed=5)
    values = run(model, times=NOV + np.arange(0, 3 * 3600, 3.0))
    gas = values[:, [slot(model, "tank-farm", s) for s in ("GT-1", "GT-2", "GT-3")]]
    assert gas.min() == 0.0
    assert 0.0 < gas.mean() < 3.0
    assert 0.5 < gas.std() < 1.5
    o2 = values[:, slot(model, "tank-farm", "AT-1")]
    assert abs(o2.mean() - 20.9) < 0.2
    h2s = values[:, slot(model, "tank-farm", "GT-H2S")]
    assert h2s.min() >= 0 and h2s.mean() < 1.0


def test_rain_is_mostly_zero_and_showers_raise_the_pond(registry: Registry) -> None:
    model = FleetModel(registry, seed=6)
    times = NOV + np.arange(0, 12 * 86400, 900.0)
    values, excess_m = [], []
    for t in times:
        values.append(model.step(float(t)))
        excess_m.append(model.site_pond_excess_m[2])
    rain = np.array(values)[:, slot(model, "pond", "RG-1")]
    assert (rain == 0).mean() > 0.8 and rain.max() > 0
    assert max(excess_m) > 0.005  # showers reach the pond (4-8 mm of level per mm of rain)
    gnss = np.array(values)[:, slot(model, "pond", "GNSS-1")]
    slope_mm_per_day = np.polyfit((times - times[0]) / 86400, gnss, 1)[0]
    assert abs(slope_mm_per_day) < 0.2  # creeping a few mm per year


# ---- incidents


def engine_for(
    registry: Registry, *specs: str, start: float = NOV, seed: int = 0
) -> tuple[FleetModel, IncidentEngine]:
    model = FleetModel(registry, seed=seed)
    incidents = [parse_incident(s) for s in specs]
    return model, IncidentEngine(model, DeviceLayout.build(model.sensors), incidents, start, seed=seed)


def first_crossing(times: np.ndarray, values: np.ndarray, limit: float) -> float:
    above = np.flatnonzero(values >= limit)
    return float(times[above[0]]) if above.size else math.inf


def test_leak_crosses_h_on_the_lead_detector_then_later_and_lower_on_its_group(registry: Registry) -> None:
    model, engine = engine_for(registry, "leak:tank-farm/GT-2@+60s~10m")
    times = NOV + np.arange(0, 1200, 1.0)
    values = run(model, engine, times=times)
    lead, *others = (values[:, slot(model, "tank-farm", s)] for s in ("GT-2", "GT-1", "GT-3"))
    t_lead = first_crossing(times, lead, 25.0)
    assert NOV + 60 < t_lead < NOV + 60 + 60  # T90 well under a minute
    assert first_crossing(times, lead, 50.0) < math.inf  # and HH
    for other in others:
        assert t_lead < first_crossing(times, other, 25.0) < math.inf
        assert other.max() < lead.max()
    assert lead[-60:].max() < 25.0  # the release stopped at +10 min and the gas cleared
    assert values[:, slot(model, "tank-farm", "GT-H2S")].max() < 10.0  # not in the group


def test_overfill_keeps_rising_past_h_and_hh(registry: Registry) -> None:
    model, engine = engine_for(registry, "overfill:tank-farm/T1-LT@+2m")
    times = NOV + np.arange(0, 3600, 10.0)
    level = run(model, engine, times=times)[:, slot(model, "tank-farm", "T1-LT")]
    t_h = first_crossing(times, level, 14.2)
    t_hh = first_crossing(times, level, 14.8)
    assert NOV + 120 < t_h < t_hh < NOV + 120 + 20 * 60
    assert level[-1] == 16.0  # top of the range: overflowing


def test_stuck_gauge_holds_one_value_then_lives_again(registry: Registry) -> None:
    model, engine = engine_for(registry, "stuck:tank-farm/T1-PT@+5m~30m")
    times = NOV + np.arange(0, 3600, 5.0)
    pt = run(model, engine, times=times)[:, slot(model, "tank-farm", "T1-PT")]
    stuck = (times >= NOV + 300) & (times < NOV + 2100)
    assert np.unique(pt[stuck]).size == 1
    assert np.unique(pt[~stuck]).size > 50


def test_spike_is_one_sample(registry: Registry) -> None:
    model, engine = engine_for(registry, "spike:tank-farm/T1-PT@+100s")
    times = NOV + np.arange(0, 600, 5.0)
    pt = run(model, engine, times=times)[:, slot(model, "tank-farm", "T1-PT")]
    high = np.flatnonzero(pt > 1.6)
    assert high.tolist() == [20]  # t = +100 s
    assert pt[20] == pytest.approx(-3 + 0.97 * 8)


def test_spike_waits_for_the_sensor_to_be_due(registry: Registry) -> None:
    model, engine = engine_for(registry, "spike:tank-farm/T1-TT@+1s")
    i = slot(model, "tank-farm", "T1-TT")
    due = np.zeros(model.n, dtype=bool)
    assert engine.apply(NOV + 1, model.step(NOV + 1), due)[i] < 45
    due[i] = True
    assert engine.apply(NOV + 2, model.step(NOV + 2), due)[i] == pytest.approx(-20 + 0.97 * 100)
    assert engine.apply(NOV + 3, model.step(NOV + 3), due)[i] < 45


def test_storm_fills_the_pond_past_h_shortens_the_beach_then_drains(registry: Registry) -> None:
    model, engine = engine_for(registry, "storm:pond@+1h~3h")
    times = NOV + np.arange(0, 2 * 86400, 300.0)
    values = run(model, engine, times=times)
    rain, pond, beach = (values[:, slot(model, "pond", s)] for s in ("RG-1", "PL-1", "DB-1"))
    during = (times >= NOV + 3600) & (times < NOV + 4 * 3600)
    assert np.median(rain[during]) > 33.3  # above the red rainstorm intensity
    assert first_crossing(times, pond, 244.5) < NOV + 4 * 3600 + 600
    peak = int(np.argmax(pond))
    assert NOV + 3.5 * 3600 <= times[peak] <= NOV + 4.5 * 3600
    assert pond[-1] < pond[peak] - 0.2  # drains through the decant
    assert beach[peak] < beach[0] - 20  # shorter dry beach while the pond is high


def test_creep_inverse_velocity_falls_linearly_to_failure(registry: Registry) -> None:
    start, life = NOV, 12 * 3600.0
    times = start + np.arange(0, life + 3600, 600.0)
    model_q = FleetModel(registry, seed=9)
    model, engine = engine_for(registry, "creep:pond/GNSS-1@+0s~12h", seed=9)
    i = slot(model, "pond", "GNSS-1")
    # Same seed: the quiet parts cancel and the incident's own displacement remains.
    moved = run(model, engine, times=times)[:, i] - run(model_q, times=times)[:, i]
    before = times < start + 0.9 * life
    v = np.diff(moved[before]) / np.diff(times[before])
    t_mid = (times[before][1:] + times[before][:-1]) / 2
    inv = 1 / v
    fit = np.polyfit(t_mid, inv, 1)
    r2 = 1 - np.sum((np.polyval(fit, t_mid) - inv) ** 2) / np.sum((inv - inv.mean()) ** 2)
    assert fit[0] < 0 and r2 > 0.99
    assert -fit[1] / fit[0] == pytest.approx(start + life, abs=0.05 * life)  # 1/v reaches 0 at failure
    after = run(*engine_for(registry, "creep:pond/GNSS-1@+0s~12h", seed=9), times=times)[:, i]
    assert after[times >= start + life].min() == 300.0  # failed: the monument reads off the top


def test_outage_silences_the_device_and_reports_its_status(registry: Registry) -> None:
    sim = Simulation(registry, start_s=NOV, incidents=[parse_incident("outage:tank-farm/gds@+10s~20s")])
    seen: list[tuple[float, str, bytes]] = []
    for k in range(60):
        t = sim.tick_time(k)
        seen += [(t - NOV, m.topic, m.payload) for m in sim.tick(t)]
    gds = [s for s, topic, _ in seen if topic == "hazmon/v1/tank-farm/gds/readings"]
    assert gds and not [s for s in gds if 10 <= s < 30]
    assert len([s for s in gds if s >= 30]) == 30
    status = [(s, p) for s, topic, p in seen if topic == "hazmon/v1/tank-farm/gds/status"]
    assert status == [(10.0, b"offline"), (30.0, b"online")]
    assert [s for s, topic, _ in seen if topic == "hazmon/v1/tank-farm/tf-gw/readings" and 10 <= s < 30]


# ---- incident specs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("leak:site-1/GT-101@+60s~10m", Incident("leak", "site-1", "GT-101", 60.0, 600.0)),
        ("stuck:site-1/T101-LT@2h", Incident("stuck", "site-1", "T101-LT", 7200.0, None)),
        ("storm:pond-7~3h", Incident("storm", "pond-7", None, 0.0, 10800.0)),
        ("outage:s/gw-1@+1.5m", Incident("outage", "s", "gw-1", 90.0, None)),
        ("creep:s/GNSS-1@1h30m~2d04h", Incident("creep", "s", "GNSS-1", 5400.0, 187200.0)),
    ],
)
def test_incident_specs_parse(text: str, expected: Incident) -> None:
    assert parse_incident(text) == expected
    assert parse_incident(str(expected)) == expected  # str() writes the same syntax


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("leak", "expected KIND:SITE"),
        ("flood:site/x", "unknown kind"),
        ("leak:site", "needs SITE/SENSOR"),
        ("leak:site/x@soon", "bad duration"),
        ("leak:site/x@+1m~0s", "positive"),
    ],
)
def test_bad_incident_specs_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_incident(text)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("leak:nowhere/GT-1", "unknown site 'nowhere'"),
        ("leak:tank-farm/GT-9", "no sensor 'GT-9'"),
        ("leak:tank-farm/T1-LT", "is a level sensor; leak applies to gas_lel, gas_toxic"),
        ("overfill:tank-farm/GT-1", "overfill applies to level"),
        ("outage:tank-farm/gw-9", "no device or sensor 'gw-9'"),
        ("storm:tank-farm", "no rainfall, pond_level or dry_beach"),
    ],
)
def test_incidents_that_do_not_fit_the_fleet_are_refused(registry: Registry, spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        engine_for(registry, spec)


def test_outage_accepts_a_sensor_for_its_device(registry: Registry) -> None:
    model, engine = engine_for(registry, "outage:tank-farm/GT-1@+0s")
    layout = DeviceLayout.build(model.sensors)
    assert engine.silenced(NOV + 1).tolist() == [d == ("tank-farm", "gds") for d in layout.devices]


def test_payload_values_stay_finite_json_numbers(registry: Registry) -> None:
    sim = Simulation(registry, start_s=NOV, incidents=[parse_incident("creep:pond/GNSS-1@+0s~10m")])
    for k in range(0, 3600, 60):
        for m in sim.tick(sim.tick_time(k)):
            if m.readings:
                assert all(math.isfinite(item["v"]) for item in orjson.loads(m.payload)["readings"])
