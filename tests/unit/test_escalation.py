"""Escalation chains: who is told when, keys that make repeats harmless, and where the chain stops."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from alerts.engine.lifecycle import acknowledge, apply_condition, shelve
from alerts.notify.escalation import (
    OPERATOR,
    PRINCIPAL,
    REGULATOR_DUTY,
    TECHNICAL_LEAD,
    Chain,
    Routing,
    Step,
    due_notifications,
    next_due_ms,
)

T0 = 1_795_392_000_000
MIN = 60_000


@dataclass(frozen=True)
class Person:
    id: str
    phone: str


ROSTER = {
    OPERATOR: [Person("wang", "+8613800138001")],
    TECHNICAL_LEAD: [Person("li", "+8613800138002")],
    PRINCIPAL: [Person("zhao", "+8613800138003")],
    REGULATOR_DUTY: [Person("chen", "+8613800138004"), Person("liu", "+8613800138005")],
}


def duty(site: str, role: str, at_ms: int) -> list[Person]:
    return ROSTER.get(role, [])


def raised(kind=ConditionKind.HH, priority=Priority.CRITICAL, t=T0):
    change = ConditionChange("s1", "T101-LT", kind, True, t, priority, kind.name, 15.0, 14.8, "高高报警")
    alarm, _ = apply_condition(None, change, t, new_id=lambda key, t: "A000007")
    return alarm


CRITICAL = Chain(
    (Step(OPERATOR, 0), Step(TECHNICAL_LEAD, 5), Step(PRINCIPAL, 15), Step(REGULATOR_DUTY, 30)),
    reminder_min=5,
)


def keys(alarm, now_ms, chain=CRITICAL) -> list[str]:
    return [n.key for n in due_notifications(alarm, chain, now_ms, duty)]


def test_the_operator_is_told_at_once_and_the_chain_climbs_while_nobody_acknowledges():
    a = raised()
    assert keys(a, T0) == ["A000007/s0/r0/wang"]
    assert keys(a, T0 + 4 * MIN) == ["A000007/s0/r0/wang"]
    assert keys(a, T0 + 5 * MIN) == ["A000007/s0/r0/wang", "A000007/s1/r0/li"]
    at_30 = keys(a, T0 + 30 * MIN)
    assert at_30[-2:] == ["A000007/s3/r0/chen", "A000007/s3/r0/liu"]  # every regulator on duty


def test_reminders_go_to_the_newest_step_and_only_the_latest_one_is_listed():
    a = raised()
    got = due_notifications(a, CRITICAL, T0 + 27 * MIN, duty)  # step 2 (principal) since 15 min
    principal = [n for n in got if n.role == PRINCIPAL]
    assert [(n.reminder, n.due_ms) for n in principal] == [(0, T0 + 15 * MIN), (2, T0 + 25 * MIN)]
    assert all(n.reminder == 0 for n in got if n.role != PRINCIPAL)


def test_asking_again_lists_the_same_keys_so_the_outbox_stores_each_once():
    a = raised()
    first = set(keys(a, T0 + 6 * MIN))
    assert first <= set(keys(a, T0 + 6 * MIN + 30_000))


def test_acknowledgement_stops_the_chain():
    a = raised()
    acked, _ = acknowledge(a, "wang", T0 + 3 * MIN)
    assert keys(acked, T0 + 60 * MIN) == []
    assert next_due_ms(acked, CRITICAL, T0 + 3 * MIN) is None


def test_clearance_stops_the_chain_even_unacknowledged():
    a = raised()
    clear = ConditionChange("s1", "T101-LT", ConditionKind.HH, False, T0 + 2 * MIN, Priority.CRITICAL, "HH")
    rtn, _ = apply_condition(a, clear, T0 + 2 * MIN)
    assert not rtn.acked and keys(rtn, T0 + 60 * MIN) == []


def test_a_shelved_alarm_escalates_no_further():
    a = raised()
    shelved, _ = shelve(a, "wang", T0 + 120 * MIN, "检修", T0 + MIN)
    assert keys(shelved, T0 + 60 * MIN) == []


def test_next_due_is_the_next_step_then_the_next_reminder():
    a = raised()
    assert next_due_ms(a, CRITICAL, T0) == T0 + 5 * MIN
    assert next_due_ms(a, CRITICAL, T0 + 29 * MIN) == T0 + 30 * MIN
    assert next_due_ms(a, CRITICAL, T0 + 31 * MIN) == T0 + 35 * MIN


def test_routing_by_type_and_priority_with_site_overrides():
    routing = Routing(sites={"s2": {("alarm", Priority.CRITICAL): Chain((Step(PRINCIPAL, 0),))}})
    a = raised()
    assert routing.chain_for(a).steps[0].role == OPERATOR
    low = raised(ConditionKind.H, Priority.LOW)
    assert routing.chain_for(low).reminder_min is None and len(routing.chain_for(low).steps) == 1
    warn = raised(ConditionKind.EARLY_WARNING, Priority.HIGH)
    assert routing.chain_for(warn).steps[1].role == TECHNICAL_LEAD
    other = apply_condition(
        None,
        ConditionChange("s2", "X", ConditionKind.HH, True, T0, Priority.CRITICAL, "HH"),
        T0,
        new_id=lambda key, t: "A1",
    )[0]
    assert routing.chain_for(other).steps == (Step(PRINCIPAL, 0),)


def test_a_step_due_before_a_handover_goes_to_the_incoming_shift():
    def shifts(site: str, role: str, at_ms: int) -> list[Person]:
        return [Person("night", "+8613800138009")] if at_ms >= T0 + 10 * MIN else duty(site, role, at_ms)

    a = raised()
    got = due_notifications(a, CRITICAL, T0 + 12 * MIN, shifts)
    assert {n.recipient_id for n in got} == {"night"}


@pytest.mark.parametrize("steps", [(), (Step(OPERATOR, 5), Step(TECHNICAL_LEAD, 1)), (Step(OPERATOR, -1),)])
def test_malformed_chains_are_refused(steps):
    with pytest.raises(ValueError):
        Chain(steps)


@pytest.mark.deep
def test_the_example_rosters_answer_every_step_of_the_critical_chain():
    from pathlib import Path

    from alerts.notify.escalation import DEFAULT_CHAINS
    from alerts.notify.roster import duty_lookup
    from alerts.notify.roster_yaml import load_rosters
    from sensors.registry import load_registry

    examples = Path(__file__).resolve().parents[2] / "sensors" / "examples"
    registry = load_registry(examples)
    lookup = duty_lookup({s.id: s for s in registry.sites}, load_rosters(examples / "rosters"))
    change = ConditionChange(
        "jianghai-tf-01", "T101-LT", ConditionKind.HH, True, T0, Priority.CRITICAL, "HH", 15.0, 14.8
    )
    alarm, _ = apply_condition(None, change, T0, new_id=lambda key, t: "A000042")
    chain = DEFAULT_CHAINS[("alarm", Priority.CRITICAL)]
    for hour in range(0, 24, 3):  # day and night shifts, office hours and the city's night duty
        raised_at = T0 + hour * 3_600_000
        episode = replace(alarm, raised_ms=raised_at)
        due = due_notifications(episode, chain, raised_at + 30 * MIN, lookup)
        assert {n.role for n in due} == {OPERATOR, TECHNICAL_LEAD, PRINCIPAL, REGULATOR_DUTY}, hour
        assert all(n.phone.startswith("+86") for n in due)
