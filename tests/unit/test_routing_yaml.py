"""Escalation chains from YAML: overrides on top of the defaults, `none` switches SMS off, mistakes named."""

from __future__ import annotations

import pytest

from alerts.engine.conditions import Priority
from alerts.engine.lifecycle import Alarm
from alerts.notify.escalation import DEFAULT_CHAINS, Chain, Step
from alerts.notify.routing_yaml import RoutingError, load_routing, parse_routing

TEXT = """
chains:
  alarm/critical:
    steps: [{role: operator, after_min: 0}, {role: technical_lead, after_min: 0.5}]
    reminder_min: 2
  fault/medium: none
sites:
  quiet-site:
    alarm/critical: none
"""


def alarm(site: str, kind: str, priority: Priority) -> Alarm:
    return Alarm((site, "sensor", "X1", kind), "A000001", priority=priority)


def test_a_chain_given_replaces_the_default_and_the_rest_stay():
    routing = parse_routing(TEXT)
    assert routing.chain_for(alarm("s", "HH", Priority.CRITICAL)) == Chain(
        (Step("operator", 0), Step("technical_lead", 0.5)), reminder_min=2
    )
    assert routing.chain_for(alarm("s", "H", Priority.HIGH)) == DEFAULT_CHAINS[("alarm", Priority.HIGH)]


def test_none_switches_sms_off_globally_or_for_one_site():
    routing = parse_routing(TEXT)
    assert routing.chain_for(alarm("s", "FAULT", Priority.MEDIUM)) is None
    assert routing.chain_for(alarm("quiet-site", "HH", Priority.CRITICAL)) is None
    assert routing.chain_for(alarm("quiet-site", "H", Priority.HIGH)) is not None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("chains: {alarm/urgent: none}", "chains.alarm/urgent"),
        ("chains: {alarm/high: {steps: [{role: boss}]}}", "chains.alarm/high.steps[0]: role"),
        ("chains: {alarm/high: {steps: [{role: operator, after_min: -1}]}}", "after_min"),
        ("chains: {alarm/high: {steps: []}}", "non-empty `steps`"),
        ("chains: {alarm/high: {steps: [{role: operator}], every: 3}}", "unknown keys"),
        ("routes: {}", "unknown top-level keys"),
        ("chains: [", "not valid YAML"),
    ],
)
def test_every_mistake_is_named_with_its_key(text, says):
    with pytest.raises(RoutingError, match=None) as e:
        parse_routing(text, "routing.yaml")
    assert says in str(e.value) and "routing.yaml" in str(e.value)


def test_no_file_means_the_built_in_chains(tmp_path):
    assert load_routing(None).chains == DEFAULT_CHAINS
    f = tmp_path / "r.yaml"
    f.write_text(TEXT)
    assert load_routing(f).chain_for(alarm("s", "FAULT", Priority.MEDIUM)) is None
