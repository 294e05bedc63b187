"""The demo's history in bulk (simulators/history.py, backfill.py) and its scripted day (scenario.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from sensors.model import Registry
from sensors.registry import load_registry, parse_registry_text
from simulators.backfill import BackfillProgress, _prefixes, backfill, format_progress, rollup_lines
from simulators.cli import EXAMPLE_REGISTRY
from simulators.history import HistoryGenerator, minute_rollup, reading_times
from simulators.incidents import Incident, IncidentEngine, parse_incident
from simulators.payloads import DeviceLayout
from simulators.scenario import DEMO_DAY, Chapter, Scenario
from simulators.signals import FleetModel
from simulators.stream import Simulation

REGISTRY_YAML = """
sites:
  - id: farm
    name: 测试储罐区
    kind: chemical
    grade: 2
    sensors:
      - {id: LT, name: 储罐液位, kind: level, unit: m, range: [0, 16], interval_s: 10,
         limits: {ll: 0.8, l: 1.2, h: 14.2, hh: 14.8}, device: gw}
      - {id: GT-A, name: 可燃气体A, kind: gas_lel, unit: "%LEL", range: [0, 100], interval_s: 1,
         limits: {h: 25, hh: 50}, group: g, device: gds}
      - {id: GT-B, name: 可燃气体B, kind: gas_lel, unit: "%LEL", range: [0, 100], interval_s: 1,
         limits: {h: 25, hh: 50}, group: g, device: gds}
  - id: pond
    name: 测试尾矿库
    kind: tailings
    grade: 3
    sensors:
      - {id: PL, name: 库水位, kind: pond_level, unit: m, range: [230, 250], interval_s: 300,
         limits: {h: 244.5, hh: 247.3}, device: rtu}
      - {id: RG, name: 雨量计, kind: rainfall, unit: mm/h, range: [0, 240], interval_s: 60,
         limits: {h: 16.7, hh: 33.3}, device: rtu}
"""
T0_MS = int(datetime(2026, 11, 23, tzinfo=UTC).timestamp() * 1000)
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def registry() -> Registry:
    sites, issues = parse_registry_text(REGISTRY_YAML, "test.yaml")
    assert not issues, issues
    return Registry(sites=tuple(sites))


# ---- history


def test_reading_times_lie_on_each_sensors_own_grid_within_the_range() -> None:
    slot, ts = reading_times(np.array([1.0, 10.0, 300.0]), np.array([1500, 0, 0]), 20_000)
    assert (ts[slot == 0] == np.arange(2000, 20_000, 1000)).all()  # resumes on its grid after 1.5 s
    assert (ts[slot == 1] == [0, 10_000]).all()
    assert (ts[slot == 2] == [0]).all()
    assert (np.diff(slot) >= 0).all()  # sensor-major


def test_minute_rollup_matches_a_plain_computation() -> None:
    slot = np.array([0, 0, 0, 1, 1])
    ts = np.array([0, 30_000, 60_000, 0, 59_999])
    value = np.array([1.0, 3.0, 5.0, 2.0, 4.0])
    s, minute, lo, mean, hi, count = minute_rollup(slot, ts, value)
    assert s.tolist() == [0, 0, 1] and minute.tolist() == [0, 60_000, 0]
    assert lo.tolist() == [1.0, 5.0, 2.0] and hi.tolist() == [3.0, 5.0, 4.0]
    assert mean.tolist() == [2.0, 5.0, 3.0] and count.tolist() == [2, 1, 2]


def test_six_hours_of_history_have_every_reading_in_range_and_quiet(registry: Registry) -> None:
    model = FleetModel(registry.measured(), seed=3)
    gen = HistoryGenerator(model, T0_MS, T0_MS + 6 * HOUR_MS, seed=3)
    chunks = list(gen)
    slot = np.concatenate([c.slot for c in chunks])
    ts = np.concatenate([c.ts_ms for c in chunks])
    value = np.concatenate([c.value for c in chunks])
    assert len(slot) == gen.total_readings() == 6 * 3600 * (1 / 10 + 2 / 1 + 1 / 300 + 1 / 60)
    assert ts.min() == T0_MS and ts.max() < T0_MS + 6 * HOUR_MS
    for i, s in enumerate(model.sensors):
        t = ts[slot == i]
        assert (np.diff(t) == round(s.interval_s * 1000)).all(), s.id  # no gap, no duplicate
        v = value[slot == i]
        assert s.range[0] <= v.min() and v.max() <= s.range[1], s.id
        if s.limits.h is not None:
            assert v.max() < s.limits.h, s.id  # the history raises no alarm
    lt = value[slot == 0]
    assert lt.max() - lt.min() > 0.5  # the tank fills or draws: a trend to see
    gas = value[slot == 1]
    assert 0.3 < np.std(np.diff(gas)) < 3.0  # live-like noise (σ ≈ 1 %LEL), not smoothed away


def test_history_rollup_agrees_with_its_readings_and_chunks_split_no_minute(registry: Registry) -> None:
    model = FleetModel(registry.measured(), seed=1)
    start = T0_MS + 17_000  # not on a minute: the first chunk starts at the minute before
    chunks = list(HistoryGenerator(model, start, T0_MS + 2 * HOUR_MS + 30_000, chunk_s=1800))
    assert [c.start_ms % 60_000 for c in chunks] == [0] * len(chunks)
    for c in chunks:
        _, _, _, mean, _, count = minute_rollup(c.slot, c.ts_ms, c.value)
        assert (c.minute_count == count).all() and np.allclose(c.minute_mean, mean)
    gas = np.concatenate([c.minute_count[c.minute_slot == 1] for c in chunks])
    assert gas[0] == 43 and (gas[1:-1] == 60).all() and gas[-1] == 30


def test_the_model_goes_on_from_the_end_of_its_history(registry: Registry) -> None:
    model = FleetModel(registry.measured(), seed=2)
    end = T0_MS + 6 * HOUR_MS
    chunks = list(HistoryGenerator(model, T0_MS, end))
    last_level = chunks[-1].value[chunks[-1].slot == 0][-1]
    sim = Simulation(registry, start_s=end / 1000 + 10, model=model)
    sim.tick(end / 1000 + 10)
    assert abs(sim.values[0] - last_level) < 0.2  # the trend continues: 10 s at < 0.4 m/h
    with pytest.raises(ValueError, match="not of this registry"):
        Simulation(registry, start_s=0, model=FleetModel(Registry(sites=registry.sites[:1]).measured()))


def test_example_registry_week_fits_the_backfill_budget() -> None:
    """The demo's week: about 6 M readings; a generator over it reports its size without running it."""
    reg = load_registry(EXAMPLE_REGISTRY)
    gen = HistoryGenerator(FleetModel(reg.measured()), T0_MS - 7 * 24 * HOUR_MS, T0_MS)
    assert 5_000_000 < gen.total_readings() < 7_000_000


# ---- line protocol and progress


def test_rollup_lines_carry_the_continuous_querys_fields_and_tags(registry: Registry) -> None:
    model = FleetModel(registry.measured())
    chunk = next(iter(HistoryGenerator(model, T0_MS, T0_MS + 120_000)))
    lines = rollup_lines(_prefixes(model.sensors, "readings_1m", "min"), chunk)
    assert lines[0].startswith("readings_1m,kind=level,sensor=LT,site=farm min=")
    assert ",mean=" in lines[0] and ",max=" in lines[0]
    assert lines[0].endswith(f",count=6i {T0_MS}")  # an integer count, as count() writes it


def test_progress_line_says_how_far_and_how_long() -> None:
    assert format_progress(BackfillProgress(0, 6_000_000, 0.0)) == "backfill   0% (0.0 M of 6.0 M readings)"
    line = format_progress(BackfillProgress(2_580_000, 6_000_000, 10.0))
    assert line == "backfill  43% (2.6 M of 6.0 M readings, 13 s left)"


# ---- the seep and the storm's intensity


def test_seep_climbs_steadily_to_h_in_about_twenty_minutes_then_clears(registry: Registry) -> None:
    model = FleetModel(registry.measured(), seed=0)
    layout = DeviceLayout.build(model.sensors)
    t0 = T0_MS / 1000
    engine = IncidentEngine(model, layout, [parse_incident("seep:farm/GT-A@+60s~23m")], t0)
    times = t0 + np.arange(0, 2700, 2.0)  # the detector's 1 s would cost twice the steps
    values = np.array([engine.apply(t, model.step(t)) for t in times])
    lead, other = values[:, 1], values[:, 2]
    t_h = times[np.argmax(lead >= 25.0)] - t0
    assert 60 + 17 * 60 < t_h < 60 + 21 * 60  # slow enough for a trend to warn first
    assert lead[times - t0 < 60 + 10 * 60].max() < 16.0  # ten minutes in, well under H
    assert other.max() < lead.max() and other[times - t0 > 60 + 23 * 60 + 600].max() < 10
    assert lead[-30:].max() < 10.0  # isolated at +24 min: cleared ten minutes later


def test_storm_intensity_is_an_optional_amount() -> None:
    assert parse_incident("storm:pond~15m=60") == Incident("storm", "pond", None, 0.0, 900.0, 60.0)
    assert parse_incident("storm:pond=60").amount == 60.0
    assert parse_incident("storm:pond").amount is None
    assert parse_incident("setpoint:farm/TT=5").amount == 5.0  # an amount right after the target
    with pytest.raises(ValueError, match="positive"):
        parse_incident("storm:pond=-5")
    with pytest.raises(ValueError, match="takes no =AMOUNT"):
        parse_incident("seep:farm/GT-A=5")


def test_a_stronger_storm_reads_stronger_on_the_gauge(registry: Registry) -> None:
    model = FleetModel(registry.measured(), seed=0)
    layout = DeviceLayout.build(model.sensors)
    t0 = T0_MS / 1000
    engine = IncidentEngine(model, layout, [parse_incident("storm:pond~10m=120")], t0)
    gauge = [engine.apply(t, model.step(t))[4] for t in t0 + np.arange(0, 600, 60.0)]
    assert 80 < np.mean(gauge) < 160


# ---- the scripted day


def test_demo_day_chapters_are_ordered_and_fire_once_per_loop() -> None:
    loop = DEMO_DAY.loop_s
    starts = DEMO_DAY.starting(0.0, 2 * loop)
    assert [s.at_s for s in starts] == sorted(s.at_s for s in starts)
    assert len(starts) == 2 * len(DEMO_DAY.chapters)
    assert starts[0].at_s < 60  # something to show in the first minute
    # told in small windows, as the fleet's progress calls come, each chapter is told once
    told = [s.at_s for t in np.arange(0, loop, 0.7) for s in DEMO_DAY.starting(float(t), float(t) + 0.7)]
    assert told == [c.offset_s for c in DEMO_DAY.chapters]
    assert DEMO_DAY.story_clock(150.0) == "08:00" and DEMO_DAY.story_clock(1050.0) == "20:00"


def test_demo_day_incidents_alternate_targets_and_fit_the_example_registry() -> None:
    incidents = DEMO_DAY.incidents(2)
    overfills = [i for i in incidents if i.kind == "overfill"]
    assert [i.target for i in overfills] == ["T101-LT", "T102-LT"]
    assert overfills[1].start_s == DEMO_DAY.loop_s + 300.0
    reg = load_registry(EXAMPLE_REGISTRY)
    Simulation(reg, start_s=T0_MS / 1000, incidents=incidents)  # every target resolves
    seep = next(i for i in incidents if i.kind == "seep")
    assert next(s for s in reg.sensors() if s.key == (seep.site, seep.target)).forecast


def test_a_scenario_refuses_chapters_out_of_order() -> None:
    with pytest.raises(ValueError, match="in order"):
        Scenario("bad", 600.0, (Chapter(300.0, "b"), Chapter(100.0, "a")))


# ---- resuming after what is stored


class FakeInflux:
    """Answers `last(value)` per series as given and keeps the bodies written, by retention policy."""

    def __init__(self, newest: dict[tuple[str, str], int]):
        self.newest = newest
        self.bodies: dict[str, list[str]] = {"raw": [], "year": []}

    def query(self, q: str) -> dict:
        series = [
            {"tags": {"site": k[0], "sensor": k[1]}, "values": [[t, 1.0]]} for k, t in self.newest.items()
        ]
        return {"results": [{"series": series}]}

    def write_lines(self, body: bytes, rp: str) -> None:
        self.bodies[rp] += body.decode().split("\n")


def test_backfill_resumes_each_sensor_after_its_newest_reading_and_leaves_that_minute_alone(
    registry: Registry,
) -> None:
    newest = T0_MS + 90_000  # LT stored up to 00:01:30, mid-minute; the others nothing
    fake = FakeInflux({("farm", "LT"): newest})
    model = FleetModel(registry.measured(), seed=4)
    result = backfill(fake, model, T0_MS, T0_MS + 600_000)  # type: ignore[arg-type]
    lt_raw = [line for line in fake.bodies["raw"] if ",sensor=LT," in line]
    assert int(lt_raw[0].rsplit(" ", 1)[1]) == newest + 10_000  # its next reading on its grid
    assert len(lt_raw) == (600_000 - 100_000) // 10_000
    lt_minutes = [int(line.rsplit(" ", 1)[1]) for line in fake.bodies["year"] if ",sensor=LT," in line]
    assert lt_minutes[0] == T0_MS + 120_000  # the minute of 00:01 is the stored one's (the CQ's)
    gas_minutes = [line for line in fake.bodies["year"] if ",sensor=GT-A," in line]
    assert len(gas_minutes) == 10 and gas_minutes[0].endswith(f",count=60i {T0_MS}")
    assert result.resumed_sensors == 1 and result.readings == len(fake.bodies["raw"])
