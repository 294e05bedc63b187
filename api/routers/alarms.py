"""Alarms: the current list, one alarm, its history, acknowledge and shelve, and the EEMUA figures.

Minimal on purpose (issue 3); authentication and the full API come later. Domain errors become
HTTP answers in api/main.py (UnknownAlarm 404, InvalidTransition 409, InvalidCommand 422).
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Query

from alerts.conditions import Priority
from alerts.journal import normalize_alarm_ref
from alerts.lifecycle import DEFAULT_TZ, AlarmState, UnknownAlarm, local_iso
from api.deps import ServiceDep
from api.schemas import (
    AckRequest,
    AlarmMetricsPublic,
    AlarmPublic,
    AlarmsPublic,
    FloodPublic,
    FloodsPublic,
    HistoryEntryPublic,
    HistoryPublic,
    PriorityName,
    ShelveRequest,
)
from hazmon.bootstrap import Service

router = APIRouter(prefix="/api/v1", tags=["alarms"])

AlarmIdPath = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


def _tz(service: Service, site: str) -> str:
    for s in service.registry.sites:
        if s.id == site:
            return s.timezone
    return DEFAULT_TZ


@router.get("/alarms", response_model=AlarmsPublic)
def list_alarms(
    service: ServiceDep,
    site: str | None = Query(None, max_length=64),
    state: AlarmState | None = None,
    priority: PriorityName | None = None,
    active_only: bool = Query(True, description="leave out NORMAL points (nothing to see or do)"),
    limit: int = Query(500, ge=1, le=5000),
) -> AlarmsPublic:
    """Retrieve alarms, highest priority and newest first."""
    if state is not None:
        states = {state}
    elif active_only:
        states = set(AlarmState) - {AlarmState.NORMAL}
    else:
        states = set(AlarmState)
    alarms = service.alarms.book.current(site=site, states=states)
    if priority is not None:
        alarms = [a for a in alarms if a.priority is Priority[priority.upper()]]
    data = [AlarmPublic.from_alarm(a, _tz(service, a.site)) for a in alarms[:limit]]
    return AlarmsPublic(data=data, count=len(data))


@router.get("/alarms/{alarm_id}", response_model=AlarmPublic)
def get_alarm(service: ServiceDep, alarm_id: str = AlarmIdPath) -> AlarmPublic:
    """Retrieve one alarm by its number (A000123)."""
    a = service.alarms.book.get(alarm_id)
    return AlarmPublic.from_alarm(a, _tz(service, a.site))


@router.post("/alarms/{alarm_id}/ack", response_model=AlarmPublic)
def acknowledge_alarm(body: AckRequest, service: ServiceDep, alarm_id: str = AlarmIdPath) -> AlarmPublic:
    """Acknowledge an alarm."""
    a = service.alarms.book.acknowledge(alarm_id, body.user, body.comment)
    return AlarmPublic.from_alarm(a, _tz(service, a.site))


@router.post("/alarms/{alarm_id}/shelve", response_model=AlarmPublic)
def shelve_alarm(body: ShelveRequest, service: ServiceDep, alarm_id: str = AlarmIdPath) -> AlarmPublic:
    """Shelve an alarm for some minutes, with a reason."""
    a = service.alarms.book.shelve(alarm_id, body.user, body.minutes * 60.0, body.reason)
    return AlarmPublic.from_alarm(a, _tz(service, a.site))


@router.get("/alarms/{alarm_id}/history", response_model=HistoryPublic)
def alarm_history(
    service: ServiceDep, alarm_id: str = AlarmIdPath, limit: int = Query(1000, ge=1, le=10_000)
) -> HistoryPublic:
    """Retrieve the journaled events of one alarm episode, oldest first."""
    ref = normalize_alarm_ref(alarm_id)
    rows = service.alarms.journal.history(alarm_id=ref, limit=limit, newest_first=False)
    if not rows:
        raise UnknownAlarm(f"no alarm {alarm_id!r} in the journal")
    data = [HistoryEntryPublic.from_entry(h, _tz(service, h.key[0])) for h in rows]
    return HistoryPublic(data=data, count=len(data))


@router.get("/alarm-metrics", response_model=AlarmMetricsPublic)
def alarm_metrics(
    service: ServiceDep, hours: float = Query(24.0, gt=0, le=24 * 31, description="period ending now")
) -> AlarmMetricsPublic:
    """Retrieve EEMUA 191 alarm-system figures (rates, floods, bad actors, standing, priorities)."""
    return AlarmMetricsPublic.from_report(service.alarms.eemua(hours))


@router.get("/alarm-floods", response_model=FloodsPublic)
def alarm_floods(service: ServiceDep) -> FloodsPublic:
    """Sites in alarm flood now (more than 10 alarms raised in 10 minutes, EEMUA 191)."""
    data = [
        FloodPublic(site=site, since=local_iso(since, _tz(service, site)), alarms_10min=count)
        for site, since, count in service.alarms.current_floods()
    ]
    return FloodsPublic(data=data, count=len(data))
