"""Discrete signals (issue 12 item 5): interlocks, ESDs, valves, controllers and power as state codes
in the registry, the payload and the engine, with state alarms after an on-delay."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alerts.engine.alarm_engine import AlarmEngine
from alerts.engine.conditions import ConditionKind, Priority
from alerts.engine.lifecycle import acknowledge, apply_condition
from ingest.payloads import PayloadDecoder, RawMessage
from sensors.index import SensorIndex
from sensors.model import Registry
from sensors.readings import ReadingBatch
from sensors.registry import RegistryError, parse_registry_text, registry_to_json

T0 = 1_795_392_000_000
HOUR = 3_600_000

SITE = """
sites:
  - id: plant-1
    name: 某化工厂
    kind: chemical
    grade: 2
    sensors:
      - {id: SIS-101, name: 1号反应釜高压联锁, kind: interlock, interval_s: 60,
         state_alarms: {bypassed: {after_s: 28800, priority: high}}}
      - {id: ESD-1, name: 紧急停车, kind: esd, interval_s: 60, state_alarms: {tripped: {priority: critical}}}
      - {id: XV-101, name: 进料切断阀, kind: valve, interval_s: 10,
         contradicts: {state: closed, sensor: FT-101, rises_by: 5.0}}
      - {id: FT-101, name: 阀后进料流量, kind: flow, unit: m3/h, range: [0, 100], interval_s: 10}
      - {id: PWR-1, name: 探测器电源, kind: power, interval_s: 60, states: [mains, battery, "off"],
         state_alarms: {battery: {after_s: 600, priority: medium}, "off": {}}}
      - {id: PT-101, name: 压力, kind: pressure, unit: MPa, range: [0, 2], interval_s: 10}
"""


def registry(text: str = SITE) -> Registry:
    sites, issues = parse_registry_text(text)
    if issues:
        raise RegistryError(issues)
    return Registry(tuple(sites))


class Plant:
    def __init__(self):
        self.index = SensorIndex.build(registry())
        self.engine = AlarmEngine(self.index, start_ms=T0)

    def feed(self, t: int, q: int = 0, **codes: float) -> list:
        ids = [k.replace("_", "-") for k in codes]
        slots = np.array([self.index.slot("plant-1", i) for i in ids], dtype=np.int32)
        order = np.argsort(slots)
        batch = ReadingBatch(
            slots[order],
            np.full(len(ids), t, dtype=np.int64),
            np.array(list(codes.values()), dtype=float)[order],
            np.full(len(ids), q, dtype=np.int8),
        )
        return self.engine.process(batch)


def states_of(changes) -> list[tuple[str, bool, str]]:
    return [(c.source, c.active, c.level) for c in changes if c.kind is ConditionKind.STATE]


def test_a_discrete_kind_brings_its_states_unit_and_range_and_round_trips():
    reg = registry()
    interlock = reg.sites[0].sensors[0]
    assert (interlock.states, interlock.unit, interlock.range) == (
        ("in_service", "bypassed"),
        "state",
        (0.0, 1.0),
    )
    power = next(s for s in reg.sites[0].sensors if s.id == "PWR-1")
    assert power.states == ("mains", "battery", "off") and power.range == (0.0, 2.0)
    assert Registry(tuple(parse_registry_text(registry_to_json(reg).decode())[0])).sites == reg.sites


@pytest.mark.parametrize(
    ("sensor", "message"),
    [
        ("{id: X, name: x, kind: interlock, interval_s: 60, limits: {h: 1}}", "has no limits"),
        ("{id: X, name: x, kind: interlock, interval_s: 60, forecast: true}", "has no forecast"),
        ("{id: X, name: x, kind: interlock, interval_s: 60, range: [0, 5]}", "range is its codes"),
        ("{id: X, name: x, kind: interlock, interval_s: 60, states: [on]}", "2 to 16 state names"),
        ("{id: X, name: x, kind: interlock, interval_s: 60, states: [a, a]}", "distinct"),
        (
            "{id: X, name: x, kind: interlock, interval_s: 60, state_alarms: {open: {}}}",
            "unknown state 'open'",
        ),
        (
            "{id: X, name: x, kind: esd, interval_s: 60, state_alarms: {tripped: {after_s: -1}}}",
            "non-negative",
        ),
        (
            "{id: X, name: x, kind: esd, interval_s: 60, state_alarms: {tripped: {priority: urgent}}}",
            "priority",
        ),
        ("{id: X, name: x, kind: esd, interval_s: 60, unit: MPa}", "not valid for esd"),
        ("{id: X, name: x, kind: power, interval_s: 60, states: [on, off]}", "quote on, off"),
        (
            "{id: X, name: x, kind: level, unit: m, range: [0, 9], interval_s: 60, states: [a, b]}",
            "discrete kinds",
        ),
        (
            "{id: X, name: x, kind: valve, interval_s: 9, "
            "contradicts: {state: closed, sensor: ESD-1, rises_by: 1}}",
            "is not a measurement of this site",
        ),
        (
            "{id: X, name: x, kind: valve, interval_s: 9, "
            "contradicts: {state: shut, sensor: FT-101, rises_by: 1}}",
            "state must be one of",
        ),
        (
            "{id: X, name: x, kind: valve, interval_s: 9, "
            "contradicts: {state: closed, sensor: FT-101, rises_by: 0}}",
            "rises_by must be a positive number",
        ),
        (
            "{id: X, name: x, kind: level, unit: m, range: [0, 9], interval_s: 9, "
            "contradicts: {state: closed, sensor: FT-101, rises_by: 1}}",
            "contradicts is for discrete kinds",
        ),
    ],
)
def test_discrete_signals_are_validated(sensor, message):
    text = SITE.replace("      - {id: PT-101,", f"      - {sensor}\n      - {{id: PT-101,")
    _, issues = parse_registry_text(text)
    assert any(message in i.message for i in issues), issues


def test_a_payload_may_name_the_state_and_a_code_must_be_an_integer():
    index = SensorIndex.build(registry())
    decoder = PayloadDecoder(index, max_lateness_ms=HOUR)
    items = [
        {"sensor": "SIS-101", "v": "bypassed"},
        {"sensor": "XV-101", "v": 2},
        {"sensor": "ESD-1", "v": 0.5},
        {"sensor": "PWR-1", "v": "on"},  # not one of its states
        {"sensor": "PT-101", "v": "bypassed"},  # an analog sensor takes no names
    ]
    raw = RawMessage(
        "hazmon/v1/plant-1/gw-1/readings", json.dumps({"ts": T0, "readings": items}).encode(), T0
    )
    result = decoder.decode([raw], T0)
    got = {
        index.sensors[s].id: v
        for s, v in zip(result.batch.slot.tolist(), result.batch.value.tolist(), strict=True)
    }
    assert got == {"SIS-101": 1.0, "XV-101": 2.0}
    assert result.reject_counts == {"bad_value": 3}
    assert "an integer code or a state name" in result.rejects[0].detail


def test_an_interlock_bypassed_alarms_after_its_on_delay_even_in_silence_and_clears_when_back():
    plant = Plant()
    assert states_of(plant.feed(T0, SIS_101=0)) == []
    assert states_of(plant.feed(T0 + HOUR, SIS_101=1)) == []  # bypassed: a shift may need it
    assert states_of(plant.engine.advance(T0 + 8 * HOUR)) == []
    (on,) = [c for c in plant.engine.advance(T0 + 9 * HOUR + 5_000) if c.kind is ConditionKind.STATE]
    assert (on.active, on.level, on.priority, on.time_ms) == (True, "BYPASSED", Priority.HIGH, T0 + 9 * HOUR)
    assert on.message == "1号反应釜高压联锁 状态旁路(摘除)已持续 8 小时"
    assert states_of(plant.feed(T0 + 10 * HOUR, SIS_101=1)) == []  # still bypassed: no second raise
    assert states_of(plant.feed(T0 + 11 * HOUR, SIS_101=0)) == [("SIS-101", False, "IN_SERVICE")]


def test_an_esd_trip_alarms_at_once_and_a_bad_reading_says_nothing_about_the_state():
    plant = Plant()
    plant.feed(T0, ESD_1=0)
    assert states_of(plant.feed(T0 + 1000, q=2, ESD_1=1)) == []
    assert states_of(plant.feed(T0 + 2000, ESD_1=1)) == [("ESD-1", True, "TRIPPED")]


def test_moving_between_two_alarmed_states_updates_the_alarm_and_a_normal_state_clears_it():
    plant = Plant()
    plant.feed(T0, PWR_1=0)
    assert states_of(plant.feed(T0 + 1000, PWR_1=2)) == [("PWR-1", True, "OFF")]
    changes = [c for c in plant.feed(T0 + 2000, PWR_1=1) if c.kind is ConditionKind.STATE]
    assert [(c.active, c.level) for c in changes] == [(False, "BATTERY")]  # battery: 10 min to go
    changes = plant.engine.advance(T0 + 2000 + 600_000)
    assert states_of(changes) == [("PWR-1", True, "BATTERY")]


def test_state_flips_are_no_spikes_and_a_state_held_for_days_is_not_stuck():
    plant = Plant()
    changes = []
    for k in range(200):
        changes += plant.feed(T0 + k * 10_000, XV_101=float(k // 50 % 2))
    for d in range(1, 4):
        changes += plant.feed(T0 + d * 24 * HOUR, XV_101=1)
        changes += plant.engine.advance(T0 + d * 24 * HOUR)
    assert [c for c in changes if c.kind is ConditionKind.FAULT] == []


def test_after_a_restart_a_state_alarm_in_the_journal_is_not_raised_again():
    before = Plant()
    (raised,) = [c for c in before.feed(T0, ESD_1=1) if c.kind is ConditionKind.STATE]
    alarm, _ = apply_condition(None, raised, raised.time_ms)
    alarm, _ = acknowledge(alarm, "op", raised.time_ms + 1000)
    after = Plant()
    after.engine.restore_active({raised.key})
    (again,) = [c for c in after.feed(T0 + 5000, ESD_1=1) if c.kind is ConditionKind.STATE]
    alarm, events = apply_condition(alarm, again, again.time_ms)
    assert events == [] and alarm.acked


def test_a_valve_reported_closed_while_the_flow_behind_it_rises_is_a_mismatch():
    plant = Plant()

    def mismatches(changes):
        return [(c.active, c.value) for c in changes if c.kind is ConditionKind.MISMATCH]

    assert mismatches(plant.feed(T0, XV_101=1, FT_101=50.0)) == []  # open, flowing
    assert mismatches(plant.feed(T0 + 10_000, XV_101=0, FT_101=20.0)) == []  # closing: the flow falls
    assert mismatches(plant.feed(T0 + 20_000, FT_101=0.5)) == []
    assert mismatches(plant.feed(T0 + 30_000, FT_101=4.0)) == []  # a 3.5 m3/h wobble
    (on,) = [c for c in plant.feed(T0 + 40_000, FT_101=6.0) if c.kind is ConditionKind.MISMATCH]
    assert (on.active, on.value, on.limit, on.priority) == (True, 5.5, 5.0, Priority.HIGH)
    assert on.message == "进料切断阀 状态关, 但阀后进料流量上升 ≥ 5 m3/h: 状态与测量矛盾"
    assert mismatches(plant.feed(T0 + 50_000, XV_101=1)) == [(False, None)]  # opened: no contradiction
