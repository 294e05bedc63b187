"""Escalation chains from YAML (HAZMON_ROUTING), on top of the defaults in alerts/notify/escalation.py.

    chains:                       # replaces the default chain of each (type, priority) given
      alarm/critical:
        steps: [{role: operator, after_min: 0}, {role: technical_lead, after_min: 5}]
        reminder_min: 5
      fault/medium: none          # no SMS at all for this kind of alarm
    sites:                        # per-site chains, looked up before the global ones
      jianghai-tf-01:
        alarm/high: {steps: [{role: operator, after_min: 0}]}

Types: alarm, early_warning, fault, stale. Priorities: critical, high, medium, low. Roles: those
of alerts/roster.Role. Every mistake is reported with its file and key; nothing half-loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from alerts.engine.conditions import EVENT_TYPE, Priority
from alerts.notify.escalation import DEFAULT_CHAINS, Chain, Routing, Step
from alerts.notify.roster import Role

EVENT_TYPES = sorted(set(EVENT_TYPE.values()))
ChainTable = dict[tuple[str, Priority], Chain | None]


class RoutingError(ValueError):
    """A routing file with mistakes; the message lists each one with its key."""


def _parse_key(key: Any, where: str, issues: list[str]) -> tuple[str, Priority] | None:
    parts = str(key).split("/")
    if len(parts) != 2 or parts[0] not in EVENT_TYPES or parts[1].upper() not in Priority.__members__:
        issues.append(
            f"{where}.{key}: expected <type>/<priority> with type in {EVENT_TYPES} and priority in "
            f"{[p.name.lower() for p in Priority]}"
        )
        return None
    return parts[0], Priority[parts[1].upper()]


def _parse_chain(raw: Any, where: str, issues: list[str]) -> Chain | None:
    if raw is None or raw == "none":
        return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("steps"), list) or not raw["steps"]:
        issues.append(f"{where}: a chain needs a non-empty `steps` list (or `none` for no SMS)")
        return None
    steps = []
    for i, s in enumerate(raw["steps"]):
        if not isinstance(s, Mapping) or s.get("role") not in {r.value for r in Role}:
            issues.append(f"{where}.steps[{i}]: role must be one of {[r.value for r in Role]}")
            continue
        after = s.get("after_min", 0)
        if isinstance(after, bool) or not isinstance(after, int | float) or after < 0:
            issues.append(f"{where}.steps[{i}].after_min: a number of minutes >= 0")
            continue
        steps.append(Step(s["role"], float(after)))
    reminder = raw.get("reminder_min")
    if reminder is not None and (isinstance(reminder, bool) or not isinstance(reminder, int | float)):
        issues.append(f"{where}.reminder_min: a number of minutes > 0")
        return None
    unknown = set(raw) - {"steps", "reminder_min"}
    if unknown:
        issues.append(f"{where}: unknown keys {sorted(unknown)}")
    if len(steps) != len(raw["steps"]):
        return None
    try:
        return Chain(tuple(steps), None if reminder is None else float(reminder))
    except ValueError as e:
        issues.append(f"{where}: {e}")
        return None


def _parse_table(raw: Any, where: str, issues: list[str]) -> ChainTable:
    if not isinstance(raw, Mapping):
        issues.append(f"{where}: expected a mapping of <type>/<priority> to chains")
        return {}
    out: ChainTable = {}
    for key, chain_raw in raw.items():
        k = _parse_key(key, where, issues)
        if k is not None:
            out[k] = _parse_chain(chain_raw, f"{where}.{key}", issues)
    return out


def _merge(base: Mapping[tuple[str, Priority], Chain], table: ChainTable) -> dict:
    out = dict(base)
    for k, chain in table.items():
        if chain is None:
            out.pop(k, None)
        else:
            out[k] = chain
    return out


def parse_routing(text: str, file: str = "<string>") -> Routing:
    """Routing from YAML text; RoutingError naming every mistake."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise RoutingError(f"{file}: not valid YAML: {e}") from None
    issues: list[str] = []
    if not isinstance(doc, Mapping):
        raise RoutingError(f"{file}: expected a mapping with `chains` and/or `sites`")
    unknown = set(doc) - {"chains", "sites"}
    if unknown:
        issues.append(f"unknown top-level keys {sorted(unknown)}")
    chains = _merge(DEFAULT_CHAINS, _parse_table(doc.get("chains", {}), "chains", issues))
    sites: dict[str, ChainTable] = {}
    raw_sites = doc.get("sites", {})
    if not isinstance(raw_sites, Mapping):
        issues.append("sites: expected a mapping of site id to chains")
        raw_sites = {}
    for site, table in raw_sites.items():
        # kept partial, with None for `none`: Routing.chain_for looks here before the global table
        sites[str(site)] = _parse_table(table, f"sites.{site}", issues)
    if issues:
        raise RoutingError(f"{file}: " + "; ".join(issues))
    return Routing(chains=chains, sites=sites)


def load_routing(path: str | Path | None) -> Routing:
    """The routing file, or the defaults when there is none."""
    if path is None:
        return Routing()
    p = Path(path)
    return parse_routing(p.read_text(encoding="utf-8"), str(p))
