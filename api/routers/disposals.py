"""Closed-loop alarm disposal, 报警处置反馈 (issue 13 item 3; alerts/book/disposals.py): the enterprise
records each high or critical alarm's cause, action and person; regulators list what is overdue and
see the figures per site and district. Sites outside the caller's scope are left out or 404; the
journal audits every disposal, refused ones too.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from alerts.book.disposals import CAUSES, MAX_ACTION, MAX_PERSON, Disposal, disposal_figures
from alerts.engine.lifecycle import UnknownAlarm, local_iso
from api.auth.deps import PrincipalDep, current_principal, require
from api.auth.model import Action, Principal, can_see
from api.deps import ServiceDep, site_map
from api.routers.sites import parse_time
from api.schemas_sites import priority_name
from api.service_port import ServicePort
from sensors.readings import now_ms as _now_ms

router = APIRouter(prefix="/api/v1", tags=["disposals"], dependencies=[Depends(current_principal)])

AlarmIdPath = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
DAY_MS = 86_400_000


class DisposeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cause: Literal["process", "instrument_fault", "maintenance", "test", "false_alarm", "other"]
    action: str = Field(min_length=1, max_length=MAX_ACTION)
    person: str = Field(min_length=1, max_length=MAX_PERSON)
    comment: str = Field("", max_length=500)


def _row(d: Disposal, tz: str, now_ms: int) -> dict[str, Any]:
    return {
        "alarm_id": d.alarm_id,
        "site": d.site,
        "scope": d.scope,
        "source": d.source,
        "kind": d.kind,
        "level": d.level,
        "priority": priority_name(d.priority),
        "raised": local_iso(d.raised_ms, tz),
        "due": local_iso(d.due_ms, tz),
        "state": d.state(now_ms),
        "disposed": None if d.disposed_ms is None else local_iso(d.disposed_ms, tz),
        "cause": d.cause,
        "cause_zh": CAUSES.get(d.cause or ""),
        "action": d.action,
        "person": d.person,
        "user": d.user,
        "comment": d.comment,
    }


def _visible(principal: Principal, service: ServicePort) -> dict[str, Any]:
    return {sid: s for sid, s in site_map(service).items() if can_see(principal.user, s)}


@router.post("/alarms/{alarm_id}/dispose")
def dispose_alarm(
    service: ServiceDep,
    body: DisposeRequest,
    principal: Annotated[Principal, Depends(require(Action.DISPOSE))],
    alarm_id: str = AlarmIdPath,
) -> dict[str, Any]:
    """Record the disposal of a high or critical alarm (cause, action, person), under the caller's name."""
    journal = service.alarms.journal
    found = journal.disposal(alarm_id)
    sites = _visible(principal, service)
    if found is None or found.site not in sites:
        raise UnknownAlarm(f"no disposal is asked of alarm {alarm_id!r}")
    now = _now_ms()
    done = journal.dispose(
        alarm_id, principal.user.username, body.cause, body.action, body.person, body.comment, now
    )
    return _row(done, sites[done.site].timezone, now)


@router.get("/disposals")
def list_disposals(
    service: ServiceDep,
    principal: PrincipalDep,
    state: Literal["open", "overdue", "late", "done", "all"] = Query("all"),
    site: str | None = Query(None, max_length=64),
    city: str | None = Query(None, max_length=64),
    district: str | None = Query(None, max_length=64),
    days: int = Query(7, ge=1, le=400, description="alarms raised in the last days"),
    limit: int = Query(1000, ge=1, le=10_000),
) -> dict[str, Any]:
    """List the disposals asked in the last days, of the sites in scope, newest raise first."""
    sites = {
        sid: s
        for sid, s in _visible(principal, service).items()
        if (site is None or sid == site)
        and (city is None or s.city == city)
        and (district is None or s.district == district)
    }
    now = _now_ms()
    rows = service.alarms.journal.disposals(
        sites=list(sites), since_ms=now - days * DAY_MS, open_only=state in ("open", "overdue"), limit=limit
    )
    data = [_row(d, sites[d.site].timezone, now) for d in rows if state == "all" or d.state(now) == state]
    return {"data": data, "count": len(data)}


@router.get("/disposals/summary")
def disposal_summary(
    service: ServiceDep,
    principal: PrincipalDep,
    by: Literal["site", "district", "city"] = Query("site"),
    days: int = Query(7, ge=1, le=400),
    start: str | None = Query(None, alias="from", max_length=64, description="raised from (ISO or ms)"),
    end: str | None = Query(None, alias="to", max_length=64, description="raised before (ISO or ms)"),
) -> dict[str, Any]:
    """Per site, district or city in scope: disposals asked, done in time, done late, open, overdue
    (states as of now), of the alarms raised in the last `days`, or in [from, to) when given."""
    sites = _visible(principal, service)
    now = _now_ms()
    since = now - days * DAY_MS if start is None else parse_time(start, "from")
    until = None if end is None else parse_time(end, "to")
    groups: dict[str, list[Disposal]] = {}
    for d in service.alarms.journal.disposals(sites=list(sites), since_ms=since, limit=10**7):
        if until is not None and d.raised_ms >= until:
            continue
        s = sites[d.site]
        group = {"site": s.id, "district": s.district or "", "city": s.city or ""}[by]
        groups.setdefault(group, []).append(d)
    figures = {group: disposal_figures(ds, now) for group, ds in groups.items()}
    data = [
        {by: group, **asdict(f)}
        for group, f in sorted(figures.items(), key=lambda kv: (-kv[1].overdue, kv[0]))
    ]
    return {"data": data, "count": len(data), "days": days}
