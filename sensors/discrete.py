"""Discrete signals of safety systems (issue 12): an interlock in service or bypassed, an ESD
normal or tripped, a valve closed / open / travelling, a gas-detection controller healthy or in
fault, power on or off (docs/contracts.md §2).

A discrete sensor's readings are the codes 0, 1, ... of its states (a payload may also name the
state, §1), stored like any reading. `state_alarms` names the states that are abnormal and how
long each may last before it is an alarm: an interlock bypassed for maintenance is normal for a
shift, not for a week. Pure data and validation; the engine's arrays are in
alerts/engine/state_alarms.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sensors.numbers import finite_number

STATE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_STATES = 16
PRIORITIES = ("low", "medium", "high", "critical")

Bad = Callable[[str, str], None]  # (message, key)


@dataclass(frozen=True, slots=True)
class StateAlarm:
    """An alarm while the signal is in `state` for at least `after_s` (the on-delay)."""

    state: str
    after_s: float = 0.0
    priority: str = "high"

    def document(self) -> dict[str, Any]:
        return {"after_s": self.after_s, "priority": self.priority}


def parse_states(raw: Any, default: tuple[str, ...], bad: Bad) -> tuple[str, ...]:
    """The sensor key `states`: the names of codes 0, 1, ... (2 to 16, distinct); the kind's by default."""
    if raw is None:
        return default
    if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_STATES:
        bad(f"states must be a list of 2 to {MAX_STATES} state names (codes 0, 1, ...)", "states")
        return default
    if any(isinstance(n, bool) for n in raw):
        bad("a state name read as true/false: quote on, off, yes and no in YAML ('off')", "states")
        return default
    if not all(isinstance(n, str) and STATE_NAME_RE.match(n) for n in raw):
        bad("each state name must match [a-z][a-z0-9_]{0,31}", "states")
        return default
    if len(set(raw)) != len(raw):
        bad("state names must be distinct", "states")
        return default
    return tuple(raw)


def parse_state_alarms(raw: Any, states: tuple[str, ...], bad: Bad) -> tuple[StateAlarm, ...]:
    """The sensor key `state_alarms`: `{state: {after_s, priority}}` for the abnormal states."""
    key = "state_alarms"
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or not raw:
        bad("state_alarms must map state names to {after_s, priority}", key)
        return ()
    out = []
    for name, spec in raw.items():
        where = f"{key}.{name}"
        if isinstance(name, bool):
            bad("a state name read as true/false: quote on, off, yes and no in YAML ('off')", key)
            continue
        if name not in states:
            bad(f"unknown state {name!r} (one of {', '.join(states)})", where)
            continue
        spec = {} if spec is None else spec
        if not isinstance(spec, Mapping):
            bad("must be a mapping {after_s, priority}", where)
            continue
        for k in spec:
            if k not in ("after_s", "priority"):
                bad("unknown key (use after_s, priority)", f"{where}.{k}")
        after = finite_number(spec.get("after_s", 0))
        if after is None or after < 0:
            bad("after_s must be a non-negative number of seconds", f"{where}.after_s")
            continue
        priority = spec.get("priority", "high")
        if priority not in PRIORITIES:
            bad(f"priority must be one of {', '.join(PRIORITIES)}", f"{where}.priority")
            continue
        out.append(StateAlarm(name, float(after), priority))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Contradiction:
    """An alarm when the signal is in `state` while `sensor` (a measurement of the site) has risen by
    `rises_by` since the state began: a valve reported closed while the flow behind it rises."""

    state: str
    sensor: str
    rises_by: float
    priority: str = "high"

    def document(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "sensor": self.sensor,
            "rises_by": self.rises_by,
            "priority": self.priority,
        }


def parse_contradiction(raw: Any, states: tuple[str, ...], bad: Bad) -> Contradiction | None:
    """The sensor key `contradicts`: `{state, sensor, rises_by, priority}`."""
    key = "contradicts"
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        bad("contradicts must be a mapping {state, sensor, rises_by, priority}", key)
        return None
    for k in raw:
        if k not in ("state", "sensor", "rises_by", "priority"):
            bad("unknown key (use state, sensor, rises_by, priority)", f"{key}.{k}")
    state, sensor, rise = raw.get("state"), raw.get("sensor"), raw.get("rises_by")
    priority = raw.get("priority", "high")
    ok = True
    if state not in states:
        bad(f"state must be one of {', '.join(states)}", f"{key}.state")
        ok = False
    if not isinstance(sensor, str) or not sensor:
        bad("sensor must name a measurement of this site", f"{key}.sensor")
        ok = False
    rise = finite_number(rise)
    if rise is None or rise <= 0:
        bad("rises_by must be a positive number in the sensor's unit", f"{key}.rises_by")
        ok = False
    if priority not in PRIORITIES:
        bad(f"priority must be one of {', '.join(PRIORITIES)}", f"{key}.priority")
        ok = False
    return Contradiction(state, sensor, float(rise), priority) if ok else None
