"""Enterprises ranked by dynamic risk, 红橙黄蓝 (issue 13 item 2; the rule: alerts/dynamic_risk.py):
each site in scope with its score, colour and reasons, highest first, and the aggregates a
regulator reads per province, city, district or park (item 4). Recomputed at most every few
seconds whoever asks (one pass over the alarm list and one journal query)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query

from alerts.dynamic_risk import COLOURS, RiskInputs, dynamic_risk, reason_parts, reasons
from alerts.engine.conditions import ConditionKind, Priority
from alerts.engine.lifecycle import AlarmState
from api.auth.deps import PrincipalDep, current_principal
from api.auth.model import can_see
from api.deps import ServiceDep, site_map
from api.recent import Recent
from api.service_port import ServicePort
from sensors.readings import now_ms as _now_ms

router = APIRouter(prefix="/api/v1", tags=["risk"], dependencies=[Depends(current_principal)])

WEEK_MS = 7 * 86_400_000
MAX_AGE_MS = 5_000
UNACK_STATES = frozenset({AlarmState.UNACK, AlarmState.RTN_UNACK})
LISTED = frozenset({AlarmState.UNACK, AlarmState.ACK, AlarmState.RTN_UNACK})


def risk_rows(service: ServicePort, now_ms: int) -> list[dict[str, Any]]:
    """Every site's risk row, in registry order."""
    sites = list(site_map(service).values())
    pos = {s.id: i for i, s in enumerate(sites)}
    n = len(sites)
    unack = np.zeros((n, 4))
    warnings, failures, outages, overdue, overdue_crit, critical = (np.zeros(n) for _ in range(6))
    for a in service.alarms.book.current():
        i = pos.get(a.site)
        if i is None or a.state not in LISTED:
            continue
        if a.kind is ConditionKind.EARLY_WARNING and a.active:
            (failures if a.level == "FAILURE" else warnings)[i] += 1
        elif a.kind is ConditionKind.STALE and a.active:
            outages[i] += 1
        if a.state in UNACK_STATES:
            unack[i, int(a.priority) - 1] += 1
        if a.active and a.priority >= Priority.CRITICAL:
            critical[i] += 1
    journal = service.alarms.journal
    for d in journal.disposals(since_ms=now_ms - WEEK_MS, open_only=True, limit=10**7):
        i = pos.get(d.site)
        if i is not None and d.overdue(now_ms):  # not dealt with in time: no disposal by its due time
            overdue[i] += 1
            overdue_crit[i] += d.priority >= Priority.CRITICAL
    raised = journal.raises_by_site(now_ms - WEEK_MS)
    inputs = RiskInputs(
        tailings=np.array([s.kind == "tailings" for s in sites], dtype=bool),
        grade=np.array([s.grade for s in sites], dtype=np.int64),
        unack=unack,
        warnings=warnings,
        failures=failures,
        outages=outages,
        overdue=overdue,
        overdue_critical=overdue_crit,
        raises_7d=np.array([raised.get(s.id, 0) for s in sites], dtype=np.float64),
        critical_active=critical,
    )
    risk = dynamic_risk(inputs)
    return [
        {
            "site": s.id,
            "name": s.name,
            "kind": s.kind,
            "grade": s.grade,
            "province": s.province,
            "city": s.city,
            "district": s.district,
            "park": s.park,
            "location": None if s.location is None else {"lat": s.location.lat, "lon": s.location.lon},
            "score": round(float(risk.score[i]), 1),
            "colour": COLOURS[int(risk.colour[i])],
            "reasons": reasons(inputs, risk, i),
            "factors": reason_parts(inputs, risk, i),
        }
        for i, s in enumerate(sites)
    ]


_risk: Recent[list[dict[str, Any]]] = Recent(
    MAX_AGE_MS, risk_rows, version=lambda s: (s.alarms.book.version, s.alarms.journal.disposals_recorded)
)


@router.get("/jurisdictions")
def jurisdictions(
    service: ServiceDep,
    principal: PrincipalDep,
    level: Literal["province", "city", "district", "park"] = Query("city"),
) -> dict:
    """Aggregates per province, city, district or park of the sites in scope: sites by grade and by
    dynamic risk colour, unacknowledged alarms, overdue disposals; the worst first."""
    sites = site_map(service)
    now = _now_ms()
    visible = {sid for sid, s in sites.items() if can_see(principal.user, s)}
    overdue = Counter(
        d.site
        for d in service.alarms.journal.disposals(
            sites=list(visible), since_ms=now - WEEK_MS, open_only=True, limit=10**7
        )
        if d.overdue(now)
    )
    unack = Counter(a.site for a in service.alarms.book.current() if a.state in UNACK_STATES)
    areas: dict[str, dict[str, Any]] = {}
    for row in _risk.get(service)[1]:
        site = sites[row["site"]]
        if row["site"] not in visible:
            continue
        name = site.district if level == "district" else getattr(site, level)
        if name is None:
            continue
        key = f"{site.city}{name}" if level == "district" else name
        area = areas.setdefault(
            key,
            {
                "level": level,
                "name": name,
                "city": site.city if level == "district" else None,
                "sites": 0,
                "by_grade": Counter(),
                "by_colour": Counter(),
                "worst_score": 0.0,
                "unacknowledged": 0,
                "overdue_disposals": 0,
            },
        )
        area["sites"] += 1
        area["by_grade"][str(site.grade)] += 1
        area["by_colour"][row["colour"]] += 1
        area["worst_score"] = max(area["worst_score"], row["score"])
        area["unacknowledged"] += unack[site.id]
        area["overdue_disposals"] += overdue[site.id]
    data = sorted(areas.values(), key=lambda a: (-a["worst_score"], -a["overdue_disposals"], a["name"]))
    for a in data:
        a["by_grade"], a["by_colour"] = dict(a["by_grade"]), dict(a["by_colour"])
    return {"data": data, "count": len(data), "level": level}


@router.get("/risk")
def ranked_risk(
    service: ServiceDep,
    principal: PrincipalDep,
    city: str | None = Query(None, max_length=64),
    district: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=10_000),
) -> dict:
    """List the sites in scope by dynamic risk, highest first, with the reasons (at most 5 s old)."""
    sites = site_map(service)
    time_ms, all_rows = _risk.get(service)
    rows = [
        r
        for r in all_rows
        if can_see(principal.user, sites[r["site"]])
        and (city is None or r["city"] == city)
        and (district is None or r["district"] == district)
    ]
    rows.sort(key=lambda r: -r["score"])
    return {"data": rows[:limit], "count": len(rows), "time_ms": time_ms}
