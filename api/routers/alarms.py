"""Alarms: the current list, one alarm, its history, acknowledge and shelve, and the EEMUA figures.

Every route needs a logged-in user (api/auth): reads show only the sites in the user's scope (an
alarm outside it is a 404, as if it did not exist), writes need the role's permission, are done
under the user's own name and audited. Domain errors become HTTP answers in api/main.py
(UnknownAlarm 404, InvalidTransition 409, InvalidCommand 422).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from alerts.book.alarm_numbers import normalize_alarm_ref
from alerts.book.records import AuditEntry
from alerts.engine.conditions import Priority
from alerts.engine.lifecycle import DEFAULT_TZ, Alarm, AlarmState, UnknownAlarm, local_iso
from alerts.reports.collect import eemua_between
from api.auth.deps import PrincipalDep, audit, check_site, current_principal, forbidden, require
from api.auth.model import Action, Principal, shelve_action
from api.deps import ServiceDep, json_response, sees_site, site_map
from api.routers.sites import parse_time
from api.schemas import (
    AckRequest,
    AlarmMetricsPublic,
    AlarmPublic,
    AlarmsPublic,
    AuditEntryPublic,
    AuditPublic,
    CommentRequest,
    FloodPublic,
    FloodsPublic,
    HistoryEntryPublic,
    HistoryPublic,
    PriorityName,
    ReasonRequest,
    ShelveRequest,
    SilenceRequest,
)
from api.service_port import ServicePort
from sensors.readings import now_ms as _now_ms

router = APIRouter(prefix="/api/v1", tags=["alarms"], dependencies=[Depends(current_principal)])

AlarmIdPath = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


def _tz(service: ServicePort, site: str) -> str:
    s = site_map(service).get(site)
    return s.timezone if s is not None else DEFAULT_TZ


def _site(service: ServicePort, site_id: str):
    return site_map(service).get(site_id)


def _public(service: ServicePort, a: Alarm, sites: dict | None = None) -> AlarmPublic:
    """The alarm for the API, with its site's name and place and its sensor's latest reading."""
    sites = site_map(service) if sites is None else sites
    engine = service.alarms.engine
    last_x, last_t = engine.last_x, engine.last_t  # the engine may swap these arrays: take them once
    slot = engine.index.by_site.get(a.site, {}).get(a.source)
    current = None
    if slot is not None and last_t[slot] >= 0 and math.isfinite(x := float(last_x[slot])):
        current = x
    return AlarmPublic.from_alarm(a, _tz(service, a.site), sites.get(a.site), current)


def _alarm_in_scope(principal: Principal, service: ServicePort, alarm_id: str):
    """The alarm if the caller may see its site; otherwise UnknownAlarm, word for word the answer for
    an alarm that never existed, so a 404 does not tell a user that another site's alarm exists."""
    try:
        a = service.alarms.book.get(alarm_id)
    except UnknownAlarm:
        a = None
    if a is None or not sees_site(principal, service, a.site):
        raise UnknownAlarm(f"no alarm {alarm_id!r}")
    return a


@dataclass(frozen=True, slots=True)
class Operation:
    """An operator step on one alarm: who asks, on which alarm, through which service."""

    service: ServicePort
    request: Request
    principal: Principal
    alarm_id: str

    @property
    def book(self):
        return self.service.alarms.book

    def run(self, action: str, detail: str, step: Callable[[str], Alarm]) -> AlarmPublic:
        """The alarm in scope (else 404), `step(user)` done under the login's name, audited, the alarm
        returned."""
        _alarm_in_scope(self.principal, self.service, self.alarm_id)
        a = step(self.principal.username)
        audit(self.request, self.principal, action, target=a.alarm_id, detail=detail)
        return _public(self.service, a)


def operation(action: Action | None = None) -> Callable[..., Operation]:
    """A dependency giving the Operation on the path's alarm, for a caller whose role allows `action`
    (None: any logged-in caller; the route checks what it needs)."""
    # a default, not an annotation: annotations here are strings, resolved in the module's namespace
    caller = Depends(require(action) if action is not None else current_principal)

    def dependency(
        request: Request,
        service: ServiceDep,
        alarm_id: str = AlarmIdPath,
        principal: Principal = caller,
    ) -> Operation:
        return Operation(service, request, principal, alarm_id)

    return dependency


@router.get("/alarms", response_model=AlarmsPublic)
def list_alarms(
    service: ServiceDep,
    principal: PrincipalDep,
    site: str | None = Query(None, max_length=64),
    state: AlarmState | None = None,
    priority: PriorityName | None = None,
    active_only: bool = Query(True, description="leave out NORMAL points (nothing to see or do)"),
    since_ms: int | None = Query(None, ge=0, le=2**53, description="raised at or after (ms since the epoch)"),
    until_ms: int | None = Query(None, ge=0, le=2**53, description="raised before (ms since the epoch)"),
    limit: int = Query(500, ge=1, le=5000),
) -> AlarmsPublic:
    """Retrieve alarms, highest priority and newest first."""
    if state is not None:
        states = {state}
    elif active_only:
        states = set(AlarmState) - {AlarmState.NORMAL}
    else:
        states = set(AlarmState)
    if site is not None:
        check_site(principal, _site(service, site))
    current = service.alarms.book.current(site=site, states=states)
    alarms = [a for a in current if sees_site(principal, service, a.site)]
    if priority is not None:
        alarms = [a for a in alarms if a.priority is Priority[priority.upper()]]
    if since_ms is not None or until_ms is not None:
        lo, hi = since_ms or 0, until_ms if until_ms is not None else 2**63
        alarms = [a for a in alarms if a.raised_ms is not None and lo <= a.raised_ms < hi]
    sites = site_map(service)
    data = [_public(service, a, sites) for a in alarms[:limit]]
    return json_response(AlarmsPublic(data=data, count=len(data)))


@router.get("/alarms/{alarm_id}", response_model=AlarmPublic)
def get_alarm(service: ServiceDep, principal: PrincipalDep, alarm_id: str = AlarmIdPath) -> AlarmPublic:
    """Retrieve one alarm by its number (A000123)."""
    a = _alarm_in_scope(principal, service, alarm_id)
    return _public(service, a)


@router.post("/alarms/{alarm_id}/ack", response_model=AlarmPublic)
def acknowledge_alarm(
    body: AckRequest, op: Annotated[Operation, Depends(operation(Action.ACKNOWLEDGE))]
) -> AlarmPublic:
    """Acknowledge an alarm, under the caller's name."""
    return op.run(
        "acknowledge", body.comment, lambda user: op.book.acknowledge(op.alarm_id, user, body.comment)
    )


@router.post("/alarms/{alarm_id}/shelve", response_model=AlarmPublic)
def shelve_alarm(body: ShelveRequest, op: Annotated[Operation, Depends(operation())]) -> AlarmPublic:
    """Shelve an alarm for some minutes, with a reason (long shelves need a supervisor)."""
    role = op.principal.user
    if not role.may(shelve_action(body.minutes)):
        raise forbidden(f"role {role.role.value} may not shelve for {body.minutes:g} minutes")
    seconds = body.minutes * 60.0
    detail = f"{body.minutes:g} min: {body.reason}"
    return op.run("shelve", detail, lambda user: op.book.shelve(op.alarm_id, user, seconds, body.reason))


@router.post("/alarms/{alarm_id}/unshelve", response_model=AlarmPublic)
def unshelve_alarm(
    body: AckRequest, op: Annotated[Operation, Depends(operation(Action.SHELVE))]
) -> AlarmPublic:
    """End a shelve early (it annunciates the alarm again if it is still active)."""
    return op.run("unshelve", body.comment, lambda user: op.book.unshelve(op.alarm_id, user, body.comment))


@router.post("/alarms/{alarm_id}/comment", response_model=AlarmPublic)
def comment_alarm(
    body: CommentRequest, op: Annotated[Operation, Depends(operation(Action.COMMENT))]
) -> AlarmPublic:
    """Attach a note to an alarm (journalled with the caller's name)."""
    return op.run("comment", body.text[:200], lambda user: op.book.comment(op.alarm_id, user, body.text))


@router.post("/alarms/{alarm_id}/out-of-service", response_model=AlarmPublic)
def remove_from_service(
    body: ReasonRequest, op: Annotated[Operation, Depends(operation(Action.OUT_OF_SERVICE))]
) -> AlarmPublic:
    """Take an alarm point out of service (a supervisor's decision, with a reason)."""
    step = op.book.set_out_of_service
    return op.run("out_of_service", body.reason, lambda user: step(op.alarm_id, user, body.reason))


@router.post("/alarms/{alarm_id}/return-to-service", response_model=AlarmPublic)
def return_to_service(
    body: AckRequest, op: Annotated[Operation, Depends(operation(Action.OUT_OF_SERVICE))]
) -> AlarmPublic:
    """Put an alarm point back in service."""
    step = op.book.return_to_service
    return op.run("return_to_service", body.comment, lambda user: step(op.alarm_id, user, body.comment))


@router.post("/alarms/silence")
def silence_alarms(service: ServiceDep, principal: PrincipalDep, body: SilenceRequest) -> dict:
    """Record that a console silenced its horn for these alarms (they stay unacknowledged): one audit
    row per alarm, so the trail shows who silenced what from which console. Alarms outside the
    caller's scope, or unknown, are left out and counted, never revealed."""
    now = _now_ms()
    recorded: list[str] = []
    for ref in dict.fromkeys(normalize_alarm_ref(a) for a in body.alarm_ids):
        try:
            a = _alarm_in_scope(principal, service, ref)
        except UnknownAlarm:
            continue
        details = {"console": body.console}
        service.alarms.journal.add_audit(
            AuditEntry(now, principal.user.username, "silence", "ok", a.alarm_id, a.key, "", "", details)
        )
        recorded.append(a.alarm_id)
    return {"recorded": recorded, "ignored": len(body.alarm_ids) - len(recorded)}


@router.get("/audit", response_model=AuditPublic)
def alarm_audit(
    service: ServiceDep,
    principal: PrincipalDep,
    site: str | None = Query(None, max_length=64),
    alarm_id: str | None = Query(None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
    user: str | None = Query(None, max_length=64),
    limit: int = Query(500, ge=1, le=5000),
) -> AuditPublic:
    """The alarm audit trail (who did what to which alarm, when, why; refusals too), newest first."""
    if site is not None:
        check_site(principal, _site(service, site))
    ref = normalize_alarm_ref(alarm_id) if alarm_id else None
    rows = service.alarms.journal.audit_log(site=site, alarm_id=ref, user=user, limit=limit)
    data = [
        AuditEntryPublic(
            time=local_iso(r.time_ms, _tz(service, r.key[0] if r.key else "")),
            time_ms=r.time_ms,
            user=r.user,
            action=r.action,
            outcome=r.outcome,
            alarm_id=r.alarm_id,
            site=r.key[0] if r.key else None,
            source=r.key[2] if r.key else None,
            reason=r.reason,
            error=r.error,
            details=dict(r.details or {}),
        )
        for r in rows
        # rows without a site (source-wide system actions) are shown to all-sites users only
        if sees_site(principal, service, r.key[0] if r.key else None)
    ]
    return AuditPublic(data=data, count=len(data))


@router.get("/alarms/{alarm_id}/history", response_model=HistoryPublic)
def alarm_history(
    service: ServiceDep,
    principal: PrincipalDep,
    alarm_id: str = AlarmIdPath,
    limit: int = Query(1000, ge=1, le=10_000),
) -> HistoryPublic:
    """Retrieve the journaled events of one alarm episode, oldest first."""
    ref = normalize_alarm_ref(alarm_id)
    rows = service.alarms.journal.history(alarm_id=ref, limit=limit, newest_first=False)
    if not rows or not sees_site(principal, service, rows[0].key[0]):
        raise UnknownAlarm(f"no alarm {alarm_id!r} in the journal")
    data = [HistoryEntryPublic.from_entry(h, _tz(service, h.key[0])) for h in rows]
    return HistoryPublic(data=data, count=len(data))


@router.get("/alarm-metrics", response_model=AlarmMetricsPublic)
def alarm_metrics(
    service: ServiceDep,
    principal: PrincipalDep,
    hours: float = Query(24.0, ge=1 / 6, le=24 * 31, description="period ending now (10 min to 31 days)"),
    start: str | None = Query(None, alias="from", max_length=64, description="ISO 8601 + offset, or ms"),
    end: str | None = Query(None, alias="to", max_length=64, description="ISO 8601 + offset, or ms"),
) -> AlarmMetricsPublic:
    """Retrieve EEMUA 191 alarm-system figures (rates, floods, bad actors, standing, priorities), over
    the last `hours`, or over [from, to) when both are given (the period of a report)."""
    if principal.user.scope.kind != "all":
        raise HTTPException(403, "the EEMUA figures cover every site: they need an all-sites scope")
    if start is None and end is None:
        return AlarmMetricsPublic.from_report(service.alarms.eemua(hours))
    if start is None or end is None:
        raise HTTPException(422, "give both from and to, or neither")
    start_ms, end_ms = parse_time(start, "from"), parse_time(end, "to")
    if not 0 < end_ms - start_ms <= 31 * 86_400_000:
        raise HTTPException(422, "to must be after from, by at most 31 days")
    return AlarmMetricsPublic.from_report(eemua_between(service.alarms.journal, start_ms, end_ms))


@router.get("/alarm-floods", response_model=FloodsPublic)
def alarm_floods(service: ServiceDep, principal: PrincipalDep) -> FloodsPublic:
    """Sites in alarm flood now (more than 10 alarms raised in 10 minutes, EEMUA 191)."""
    data = [
        FloodPublic(site=site, since=local_iso(since, _tz(service, site)), alarms_10min=count)
        for site, since, count in service.alarms.current_floods()
        if sees_site(principal, service, site)
    ]
    return FloodsPublic(data=data, count=len(data))
