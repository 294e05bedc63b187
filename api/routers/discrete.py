"""Daily figures of a site's discrete signals (issue 12): hours in each state, and for interlocks
the in-service ratio (联锁投用率) and bypass hours (alerts/discrete_kpis.py), from the stored
readings of one local day.

Errors: unknown site 404, a bad day 422, InfluxDB unreachable 503 (refusing 502), as JSON.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from alerts.discrete_kpis import LOOKBACK_MS, in_service_ratio, state_hours
from api.auth.deps import PrincipalDep, current_principal
from api.deps import ServiceDep
from api.routers.sites import SiteIdPath, _site
from ingest.store import StorageError, StoreRejected
from sensors.readings import now_ms as _now_ms

router = APIRouter(prefix="/api/v1", tags=["sites"], dependencies=[Depends(current_principal)])
MAX_POINTS = 200_000  # per signal and day (a signal reporting every second: 86 400)


class SignalDayPublic(BaseModel):
    id: str
    name: str
    kind: str
    hours: dict[str, float]  # state name -> hours of the day in it
    unknown_hours: float  # before any known state, or after a bad reading
    in_service_ratio: float | None = None  # interlocks: in service / known time
    bypass_hours: float | None = None  # interlocks: hours bypassed


class DiscreteDayPublic(BaseModel):
    site: str
    day: str  # the site's local day, YYYY-MM-DD
    start_ms: int
    end_ms: int  # the day's end, or now for today
    interlocks: int
    in_service_ratio: float | None  # all interlocks: in service / known time
    bypass_hours: float  # all interlocks
    signals: list[SignalDayPublic]


@router.get("/sites/{site_id}/discrete-kpis", response_model=DiscreteDayPublic)
def discrete_kpis(
    service: ServiceDep,
    principal: PrincipalDep,
    site_id: SiteIdPath,
    day: str | None = Query(None, max_length=10, description="local day YYYY-MM-DD; default today"),
) -> DiscreteDayPublic:
    """Retrieve one local day of the site's discrete signals: hours per state, interlock in-service ratio."""
    site = _site(service, site_id, principal)
    tz = ZoneInfo(site.timezone)
    now = _now_ms()
    try:
        the_day = date.fromisoformat(day) if day else datetime.fromtimestamp(now / 1000, tz).date()
    except ValueError:
        raise HTTPException(422, detail=f"day must be YYYY-MM-DD: {day!r}") from None
    start_ms = int(datetime.combine(the_day, time(), tz).timestamp() * 1000)
    end_ms = int(datetime.combine(the_day + timedelta(days=1), time(), tz).timestamp() * 1000)
    if start_ms >= now:
        raise HTTPException(422, detail=f"{the_day} has not begun in {site.timezone}")
    end_ms = min(end_ms, now)
    signals = [s for s in site.sensors if s.discrete]
    series = {}
    if signals:
        try:
            found = service.read_history(
                site.id, [s.id for s in signals], start_ms - LOOKBACK_MS, end_ms, "raw", MAX_POINTS
            )
        except StoreRejected as e:
            raise HTTPException(502, detail=f"the reading store refused the query: {e}") from None
        except StorageError as e:
            raise HTTPException(503, detail=f"reading store unreachable: {e}") from None
        series = {s.sensor: s for s in found}
    rows, interlock_known, interlock_in, bypass = [], 0.0, 0.0, 0.0
    n_interlocks = 0
    for s in signals:
        found_s = series.get(s.id)
        ts = found_s.ts_ms if found_s is not None else np.zeros(0, dtype=np.int64)
        values = found_s.values.get("value") if found_s is not None else None
        quality = found_s.values.get("quality") if found_s is not None else None
        codes = values if values is not None else np.zeros(len(ts))
        q = (
            np.nan_to_num(quality, nan=0).astype(np.int64)
            if quality is not None
            else np.zeros(len(ts), np.int64)
        )
        hours = state_hours(ts, codes, q, start_ms, end_ms, len(s.states))
        row = SignalDayPublic(
            id=s.id,
            name=s.name,
            kind=s.kind,
            hours={name: round(float(h), 4) for name, h in zip(s.states, hours.hours, strict=True)},
            unknown_hours=round(hours.unknown_hours, 4),
        )
        if s.kind == "interlock":
            n_interlocks += 1
            ratio = in_service_ratio(hours, s.states.index("in_service") if "in_service" in s.states else 0)
            bypassed = float(hours.hours[s.states.index("bypassed")]) if "bypassed" in s.states else 0.0
            row.in_service_ratio = None if ratio is None else round(ratio, 4)
            row.bypass_hours = round(bypassed, 4)
            interlock_known += hours.known_hours
            interlock_in += hours.known_hours * (ratio or 0.0)
            bypass += bypassed
        rows.append(row)
    return DiscreteDayPublic(
        site=site.id,
        day=the_day.isoformat(),
        start_ms=start_ms,
        end_ms=end_ms,
        interlocks=n_interlocks,
        in_service_ratio=round(interlock_in / interlock_known, 4) if interlock_known > 0 else None,
        bypass_hours=round(bypass, 4),
        signals=rows,
    )
