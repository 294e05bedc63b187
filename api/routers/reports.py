"""Reports and KPIs (issue 13 item 6; alerts/reports/): ask for a daily, shift or any-period report
of a site or a jurisdiction, list the kept ones, download them as CSV, XLSX or PDF, and read the
KPIs of any scope and period.

Scope: a report or KPI covers a set of sites; a caller may ask for, list, read or download it only
when every one of its sites lies in their scope. Anything else answers 404, as a missing one does.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from alerts.engine.lifecycle import local_iso
from alerts.reports.levels import Level
from alerts.reports.model import Report, ReportScope, sites_in, summary
from alerts.reports.periods import Period, custom_period, day_period, parse_shifts, shift_period
from alerts.reports.renderers import MEDIA_TYPES
from alerts.reports.service import ReportService, scope_timezone
from alerts.reports.store import READY, StoredReport
from api.auth.deps import PrincipalDep, current_principal, forbidden, not_found
from api.auth.model import Principal, can_see
from api.deps import ServiceDep, site_map
from api.routers.sites import parse_time
from api.service_port import ServicePort
from sensors.model import Site
from sensors.readings import now_ms as _now_ms

router = APIRouter(prefix="/api/v1", tags=["reports"], dependencies=[Depends(current_principal)])

MAX_SPAN_MS = 31 * 86_400_000
ReportIdPath = Path(min_length=1, max_length=64, pattern=r"^r[0-9a-f]{16}$")


class ReportRequest(BaseModel):
    """What report to make: a scope (level and name) and a period."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    level: Level
    name: str | None = Field(None, min_length=1, max_length=100)  # the site id or the place; not for all
    city: str | None = Field(None, min_length=1, max_length=100)  # a district's city
    period: Literal["day", "shift", "custom"] = "day"
    day: date | None = None  # day and shift: the local date (default: yesterday)
    shift: str | None = Field(None, pattern=r"^\d{1,2}:\d{2}$")  # shift: its start, HH:MM
    start: int | str | None = Field(None, alias="from")  # custom: ISO 8601 + offset, or ms
    end: int | str | None = Field(None, alias="to")


def _reports(service: ServicePort) -> ReportService:
    reports = getattr(service, "reports", None)
    if reports is None:
        raise HTTPException(404, "reports are not made by this service")
    return reports


def _scope_sites(principal: Principal, service: ServicePort, scope: ReportScope) -> list[Site]:
    """The scope's sites; 404 when there is none, or one lies outside the caller's scope."""
    sites = sites_in(scope, site_map(service).values())
    if not sites or not all(can_see(principal.user, s) for s in sites):
        raise not_found(f"no {scope.level} {scope.label!r} in your scope")
    return sites


def _visible(principal: Principal, service: ServicePort) -> set[str] | None:
    """The ids of the sites the caller sees; None for an all-sites scope (sees every report)."""
    if principal.user.scope.kind == "all":
        return None
    return {sid for sid, s in site_map(service).items() if can_see(principal.user, s)}


def _sees(visible: set[str] | None, stored: StoredReport) -> bool:
    return visible is None or visible.issuperset(stored.sites)


def _scope(level: Level, name: str | None, city: str | None) -> ReportScope:
    try:
        return ReportScope(level, name, city)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None


def _period(body: ReportRequest, tz: str, now_ms: int, shifts: tuple[time, ...]) -> Period:
    """The requested period, which must have ended (a kept report does not change afterwards)."""
    zone = ZoneInfo(tz)
    today = datetime.fromtimestamp(now_ms / 1000, zone).date()
    try:
        if body.period == "custom":
            if body.start is None or body.end is None:
                raise ValueError("a custom period needs from and to")
            start, end = parse_time(str(body.start)[:64], "from"), parse_time(str(body.end)[:64], "to")
            if not 0 < end - start <= MAX_SPAN_MS:
                raise ValueError("to must be after from, by at most 31 days")
            period = custom_period(start, end, tz)
        elif body.period == "shift":
            if body.shift is None or not shifts:
                raise ValueError("a shift report needs the shift's start (HH:MM) and HAZMON_SHIFTS")
            (start_at,) = parse_shifts(body.shift)
            period = shift_period(body.day or today, start_at, shifts, tz)
        else:
            period = day_period(body.day or today - timedelta(days=1), tz)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    if period.end_ms > now_ms:
        raise HTTPException(422, f"the period {period.label} has not ended yet")
    return period


def _public(stored: StoredReport) -> dict[str, Any]:
    p = stored.period
    return {
        "id": stored.id,
        "level": stored.scope.level,
        "name": stored.scope.name,
        "city": stored.scope.city,
        "label": stored.scope.label,
        "period": {
            "kind": p.kind,
            "label": p.label,
            "tz": p.tz,
            "start_ms": p.start_ms,
            "end_ms": p.end_ms,
            "start": local_iso(p.start_ms, p.tz),
            "end": local_iso(p.end_ms, p.tz),
        },
        "sites": len(stored.sites),
        "state": stored.state,
        "requested": local_iso(stored.requested_ms, p.tz),
        "requested_by": stored.requested_by,
        "as_of": None if stored.as_of_ms is None else local_iso(stored.as_of_ms, p.tz),
        "as_of_ms": stored.as_of_ms,
        "error": stored.error,
        "summary": stored.summary,
        "files": {
            fmt: {"bytes": size, "url": f"/api/v1/reports/{stored.id}/{fmt}"}
            for fmt, size in (stored.files or {}).items()
        },
    }


@router.post("/reports", status_code=202)
def request_report(
    service: ServiceDep, principal: PrincipalDep, body: ReportRequest, response: Response
) -> dict[str, Any]:
    """Ask for a report; it is made off the request thread (202, state `pending`), or is there
    already (200). The same scope and period always give the same report (its id)."""
    reports = _reports(service)
    scope = _scope(body.level, body.name, body.city)
    sites = _scope_sites(principal, service, scope)
    period = _period(body, scope_timezone(sites), _now_ms(), reports.shifts)
    stored, _work = reports.request(scope, period, principal.username)
    if stored.state == READY:
        response.status_code = 200
    return _public(stored)


@router.get("/reports")
def list_reports(
    service: ServiceDep,
    principal: PrincipalDep,
    level: Level | None = None,
    state: Literal["pending", "ready", "failed"] | None = None,
    limit: int = Query(200, ge=1, le=5000),
) -> dict[str, Any]:
    """List the kept reports whose sites all lie in the caller's scope, the latest period first."""
    visible = _visible(principal, service)
    rows = [r for r in _reports(service).store.list(state=state, level=level) if _sees(visible, r)]
    return {"data": [_public(r) for r in rows[:limit]], "count": len(rows)}


def _stored(service: ServicePort, principal: Principal, report_id: str) -> StoredReport:
    stored = _reports(service).store.get(report_id)
    if stored is None or not _sees(_visible(principal, service), stored):
        raise not_found("no such report")
    return stored


@router.get("/reports/{report_id}")
def get_report(service: ServiceDep, principal: PrincipalDep, report_id: str = ReportIdPath) -> dict[str, Any]:
    """One kept report's state, summary and files."""
    return _public(_stored(service, principal, report_id))


_SAFE = re.compile(r"[^\w.-]+")


@router.get("/reports/{report_id}/{fmt}")
def download_report(
    service: ServiceDep,
    principal: PrincipalDep,
    fmt: Literal["csv", "xlsx", "pdf"],
    report_id: str = ReportIdPath,
) -> FileResponse:
    """Download a ready report as CSV, XLSX or PDF; 409 while it is being made or when it failed."""
    stored = _stored(service, principal, report_id)
    path = _reports(service).store.file(stored.id, fmt)
    if stored.state != READY or not path.exists():
        why = f": {stored.error}" if stored.error else ""
        raise HTTPException(409, f"report {stored.id} is {stored.state}{why}")
    name = _SAFE.sub("_", f"hazmon-{stored.scope.label}-{stored.period.label}").strip("_")
    return FileResponse(path, media_type=MEDIA_TYPES[fmt], filename=f"{name}.{fmt}")


@router.get("/kpis")
def kpis(
    service: ServiceDep,
    principal: PrincipalDep,
    site: str | None = Query(None, max_length=64),
    district: str | None = Query(None, max_length=100),
    city: str | None = Query(None, max_length=100),
    province: str | None = Query(None, max_length=100),
    park: str | None = Query(None, max_length=100),
    start: str | None = Query(None, alias="from", max_length=64, description="ISO 8601 + offset, or ms"),
    end: str | None = Query(None, alias="to", max_length=64, description="ISO 8601 + offset, or ms"),
) -> dict[str, Any]:
    """The report's figures (alerts/reports/model.py `summary`) and its per-site lines for one site
    or place over [from, to) (default: today so far, in the scope's zone), computed now."""
    reports = _reports(service)
    named = {k: v for k, v in (("site", site), ("district", district), ("city", city), ("province", province),
                               ("park", park)) if v is not None}  # fmt: skip
    if len(named) > 1 and not (set(named) == {"district", "city"}):
        raise HTTPException(422, "name one of site, district (with its city), city, province or park")
    if not named:
        if principal.user.scope.kind != "all":
            raise forbidden("KPIs over every site need an all-sites scope; name a site or a place")
        scope = ReportScope("all")
    elif "district" in named:
        scope = _scope("district", district, city)
    else:
        ((level, name),) = named.items()
        scope = _scope(level, name, None)  # type: ignore[arg-type]
    sites = _scope_sites(principal, service, scope)
    tz = scope_timezone(sites)
    now = _now_ms()
    start_ms = _local_midnight(now, tz) if start is None else parse_time(start, "from")
    end_ms = min(now, parse_time(end, "to")) if end is not None else now
    if not 0 < end_ms - start_ms <= MAX_SPAN_MS:
        raise HTTPException(422, "to (at most now) must be after from, by at most 31 days")
    report = reports.kpis(scope, custom_period(start_ms, end_ms, tz))
    return _kpis_public(report)


def _local_midnight(now_ms: int, tz: str) -> int:
    zone = ZoneInfo(tz)
    today = datetime.fromtimestamp(now_ms / 1000, zone).date()
    return int(datetime.combine(today, time(0), zone).timestamp() * 1000)


def _kpis_public(r: Report) -> dict[str, Any]:
    tz = r.period.tz
    return {
        "level": r.scope.level,
        "name": r.scope.name,
        "city": r.scope.city,
        "label": r.scope.label,
        "from": local_iso(r.period.start_ms, tz),
        "to": local_iso(r.period.end_ms, tz),
        "start_ms": r.period.start_ms,
        "end_ms": r.period.end_ms,
        "as_of_ms": r.as_of_ms,
        "kpis": summary(r),
        "sites": [
            {
                "site": s.site,
                "name": s.name,
                "raises": s.raises,
                "by_priority": s.by_priority,
                "flood_share": round(s.flood_share, 4),
                "early_warnings": s.early_warnings,
                "crossed": s.crossed,
                "outages": s.outages,
                "outage_minutes": s.outage_minutes,
                "disposals_asked": s.disposals.asked,
                "disposals_overdue": s.disposals.overdue,
                "disposals_in_time_ratio": s.disposals.in_time_ratio,
            }
            for s in r.sites
        ],
    }
