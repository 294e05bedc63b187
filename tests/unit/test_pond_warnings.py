"""Tailings warning levels (issue 12 items 2-3): point colours from blue..red thresholds, items
raised by k points one colour below, one pond-level alarm whose colour rises and is notified anew."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.engine.alarm_engine import AlarmEngine
from alerts.engine.conditions import ConditionKind, Priority
from alerts.engine.lifecycle import AlarmRaised, acknowledge, apply_condition
from alerts.notify.escalation import Chain, Step, due_notifications
from sensors.index import SensorIndex
from sensors.model import Registry
from sensors.readings import ReadingBatch
from sensors.registry import RegistryError, parse_registry_text, registry_to_json

T0 = 1_795_392_000_000
MIN = 60_000

POND = """
sites:
  - id: tsf-1
    name: 某尾矿库
    kind: tailings
    grade: 3
    warning_items:
      - {id: phreatic-A, name: 浸润线A断面, points: [PZ-A1, PZ-A2, PZ-A3]}
    sensors:
      - {id: PL-01, name: 库水位, kind: pond_level, unit: m, range: [230, 250], interval_s: 300,
         warning_levels: {blue: 243.0, yellow: 244.0, orange: 245.0, red: 246.0}, deadband: 0.1}
      - {id: PZ-A1, name: 浸润线A1, kind: phreatic_depth, unit: m, range: [0, 30], interval_s: 600,
         warning_levels: {blue: 7.0, yellow: 6.0, orange: 5.3, red: 4.8}, deadband: 0.1}
      - {id: PZ-A2, name: 浸润线A2, kind: phreatic_depth, unit: m, range: [0, 30], interval_s: 600,
         warning_levels: {blue: 7.0, yellow: 6.0, orange: 5.3, red: 4.8}, deadband: 0.1}
      - {id: PZ-A3, name: 浸润线A3, kind: phreatic_depth, unit: m, range: [0, 30], interval_s: 600,
         warning_levels: {blue: 7.0, yellow: 6.0, orange: 5.3, red: 4.8}, deadband: 0.1}
      - {id: RG-01, name: 雨量, kind: rainfall, unit: mm/h, range: [0, 240], interval_s: 60}
"""
QUIET = {"PL-01": 240.0, "PZ-A1": 9.0, "PZ-A2": 9.0, "PZ-A3": 9.0, "RG-01": 0.0}


def registry(text: str = POND) -> Registry:
    sites, issues = parse_registry_text(text)
    if issues:
        raise RegistryError(issues)
    return Registry(tuple(sites))


class Pond:
    """An engine over the pond, fed one reading per sensor per call."""

    def __init__(self, text: str = POND):
        self.index = SensorIndex.build(registry(text))
        self.engine = AlarmEngine(self.index, start_ms=T0)
        self.t = T0

    def feed(self, minutes: float = 10, **values: float) -> list:
        self.t += int(minutes * MIN)
        ids = list(values)
        slots = np.array([self.index.slot("tsf-1", i.replace("_", "-")) for i in ids], dtype=np.int32)
        order = np.argsort(slots)
        batch = ReadingBatch(
            slots[order],
            np.full(len(ids), self.t, dtype=np.int64),
            np.array([values[i] for i in ids], dtype=float)[order],
            np.zeros(len(ids), dtype=np.int8),
        )
        return [c for c in self.engine.process(batch) if c.kind is ConditionKind.WARNING_LEVEL]

    def quiet(self) -> list:
        return self.feed(**{k.replace("-", "_"): v for k, v in QUIET.items()})

    def snapshot(self) -> dict:
        assert self.engine.pond_warnings is not None
        return self.engine.pond_warnings.snapshot("tsf-1")


def levels(changes) -> list[tuple[bool, str]]:
    return [(c.active, c.level) for c in changes]


def test_a_point_reaches_the_highest_colour_whose_threshold_it_reached_in_its_direction():
    pond = Pond()
    assert pond.quiet() == []
    pond.feed(PL_01=244.2, PZ_A1=5.2)  # pond level rising past yellow; phreatic depth falling past orange
    points = {p["sensor"]: p["level"] for item in pond.snapshot()["items"] for p in item["points"]}
    assert points == {"PL-01": "YELLOW", "PZ-A1": "ORANGE", "PZ-A2": None, "PZ-A3": None}


def test_one_pond_alarm_rises_blue_to_red_with_its_evidence_and_returns_to_normal():
    pond = Pond()
    pond.quiet()
    assert levels(pond.feed(PL_01=243.1)) == [(True, "BLUE")]
    assert levels(pond.feed(PL_01=244.1)) == [(True, "YELLOW")]
    (orange,) = pond.feed(PL_01=245.0)
    assert (orange.level, orange.priority, orange.scope, orange.source) == (
        "ORANGE",
        Priority.HIGH,
        "pond",
        "tsf-1",
    )
    assert "库水位 橙色 (PL-01 橙色)" in orange.message
    (red,) = pond.feed(PL_01=246.5)
    assert red.priority is Priority.CRITICAL
    assert levels(pond.feed(PL_01=245.95)) == []  # within the deadband of red: held
    assert levels(pond.feed(PL_01=240.0)) == [(False, "NORMAL")]


def test_three_points_at_yellow_raise_their_item_and_the_pond_to_orange():
    pond = Pond()
    pond.quiet()
    assert levels(pond.feed(PZ_A1=5.9, PZ_A2=5.9)) == [(True, "YELLOW")]
    (change,) = pond.feed(PZ_A3=5.95)
    assert change.level == "ORANGE"  # no point is orange: the count of three yellow is
    assert "浸润线A断面 橙色 (PZ-A1 黄色, PZ-A2 黄色, PZ-A3 黄色)" in change.message
    item = pond.snapshot()["items"][0]
    assert (item["id"], item["level"]) == ("phreatic-A", "ORANGE")


def test_two_points_at_orange_make_red_and_the_counts_are_configurable():
    pond = Pond()
    pond.quiet()
    assert levels(pond.feed(PZ_A1=5.2, PZ_A2=5.2)) == [(True, "RED")]
    relaxed = Pond(
        POND.replace("    warning_items:", "    warning_escalation: {item: {red: 3}}\n    warning_items:")
    )
    relaxed.quiet()
    assert levels(relaxed.feed(PZ_A1=5.2, PZ_A2=5.2)) == [(True, "ORANGE")]


def test_a_colour_is_raised_only_after_the_on_delay_and_a_bad_reading_leaves_the_count():
    pond = Pond(
        POND.replace(
            "deadband: 0.1}\n      - {id: PZ-A1", "deadband: 0.1, on_delay_s: 1200}\n      - {id: PZ-A1"
        )
    )
    pond.quiet()
    assert pond.feed(PL_01=244.5) == []  # yellow since now ...
    assert pond.feed(PL_01=244.5) == []  # ... for 10 min of a 20 min on-delay
    assert levels(pond.feed(PL_01=244.5)) == [(True, "YELLOW")]
    pond.feed(PZ_A1=5.9)
    t = pond.t + 10 * MIN
    slot = pond.index.slot("tsf-1", "PZ-A1")
    bad = ReadingBatch(
        np.array([slot], np.int32), np.array([t], np.int64), np.array([5.9]), np.array([2], np.int8)
    )
    pond.engine.process(bad)
    assert pond.snapshot()["items"][0]["points"][0]["level"] is None


def test_after_a_restart_the_pond_waits_for_every_point_and_repeats_no_colour():
    before = Pond()
    before.quiet()
    (red,) = before.feed(PZ_A1=5.2, PZ_A2=5.2)
    alarm, _ = apply_condition(None, red, red.time_ms)
    alarm, _ = acknowledge(alarm, "op", red.time_ms + MIN)
    after = Pond()
    after.engine.restore_active({red.key})
    assert after.feed(PZ_A1=5.2) == []  # one point of four: not a picture of the pond yet
    (again,) = after.feed(PZ_A2=5.2, PZ_A3=9.0, PL_01=240.0)
    alarm, events = apply_condition(alarm, again, again.time_ms)
    assert again.level == "RED" and events == [] and alarm.acked


def test_a_silent_point_does_not_hold_the_pond_mute_past_its_stale_time():
    pond = Pond()
    assert pond.feed(PL_01=244.5) == []
    assert levels(pond.feed(minutes=31, PL_01=244.5)) == [(True, "YELLOW")]  # PZ-* never heard: 30 min


def test_a_colour_rise_of_an_acknowledged_pond_alarm_is_annunciated_and_notified_again():
    pond = Pond()
    pond.quiet()
    (blue,) = pond.feed(PL_01=243.1)
    alarm, _ = apply_condition(None, blue, blue.time_ms)
    alarm, _ = acknowledge(alarm, "op", blue.time_ms + MIN)
    (yellow,) = pond.feed(PL_01=244.1)
    alarm, events = apply_condition(alarm, yellow, yellow.time_ms)
    raised = [e for e in events if isinstance(e, AlarmRaised)]
    assert len(raised) == 1 and raised[0].escalated and raised[0].to_contract_event()["escalated"] is True
    assert not alarm.acked and alarm.alarm_id == raised[0].alarm_id and alarm.escalated_ms == yellow.time_ms

    class Officer:
        id, phone = "p1", "13800000000"

    chain = Chain((Step("operator", 0),))
    (note,) = due_notifications(alarm, chain, yellow.time_ms, lambda *_: [Officer()])
    assert note.key == f"{alarm.alarm_id}@YELLOW/s0/r0/p1"
    (down,) = pond.feed(PL_01=243.5)  # back to blue: news of no danger, not annunciated again
    alarm, events = apply_condition(alarm, down, down.time_ms)
    assert down.level == "BLUE" and not any(isinstance(e, AlarmRaised) for e in events)


def test_the_registry_round_trips_warning_levels_items_and_escalation():
    reg = registry()
    again = Registry(tuple(parse_registry_text(registry_to_json(reg).decode())[0]))
    assert again.sites == reg.sites


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("{blue: 7.0, yellow: 6.0, orange: 5.3, red: 4.8}", None),
        ("{blue: 7.0, yellow: 8.0, orange: 5.3, red: 4.8}", "must rise (or all fall) strictly"),
        ("{red: 4.8}", "say its direction"),
        ("{red: 4.8, direction: up}", "direction must be rising or falling"),
        ("{blue: 7.0, red: 4.8, direction: rising}", "contradicts the thresholds"),
        ("{purple: 1.0}", "unknown warning level"),
        ("{red: 99.0, direction: falling}", "outside the instrument range"),
    ],
)
def test_warning_levels_are_validated(change, message):
    text = POND.replace(
        "warning_levels: {blue: 7.0, yellow: 6.0, orange: 5.3, red: 4.8}", f"warning_levels: {change}", 1
    )
    _, issues = parse_registry_text(text)
    if message is None:
        assert issues == []
    else:
        assert any(message in i.message for i in issues), issues


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ("[{id: A, name: a, points: [PZ-A1, PZ-X]}]", "'PZ-X' is not a sensor of this site"),
        ("[{id: A, name: a, points: [RG-01]}]", "sensor RG-01 has no warning_levels"),
        ("[{id: A, name: a, points: [PZ-A1]}, {id: B, name: b, points: [PZ-A1]}]", "is in two items"),
        ("[{id: A, name: a, points: []}]", "non-empty list"),
        ("[{id: A, name: a, points: [PZ-A1], colour: red}]", "unknown key"),
    ],
)
def test_warning_items_name_points_of_the_site_each_once(items, message):
    text = POND.replace("[{id: phreatic-A, name: 浸润线A断面, points: [PZ-A1, PZ-A2, PZ-A3]}]", "")
    text = POND.replace(
        "      - {id: phreatic-A, name: 浸润线A断面, points: [PZ-A1, PZ-A2, PZ-A3]}\n", ""
    ).replace("    warning_items:\n", f"    warning_items: {items}\n")
    _, issues = parse_registry_text(text)
    assert any(message in i.message for i in issues), issues


def test_warning_levels_belong_to_tailings_sites_and_escalation_counts_are_positive():
    _, issues = parse_registry_text(
        POND.replace("kind: tailings", "kind: chemical").replace("grade: 3", "grade: 2")
    )
    assert any("are for tailings sites" in i.message for i in issues)
    _, issues = parse_registry_text(
        POND.replace("    warning_items:", "    warning_escalation: {item: {red: 0}}\n    warning_items:")
    )
    assert any("positive integer" in i.message for i in issues)
