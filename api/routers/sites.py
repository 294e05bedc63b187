"""The control room's read side: sites with their risk colour, one site's sensors, a sensor's history
and its early-warning forecast (issue 5, item 1).

Risk colour rule: see api/site_overview.py (worst alarm on the operator list: CRITICAL or a FAILURE
forecast = red, HIGH process alarm = orange, other alarms, forecasts, faults, stale data = yellow,
nothing = blue; shelved/suppressed/out-of-service alarms are counted but do not colour).
Every route needs a user or token (api/auth); a site outside the caller's scope answers 404 and
is left out of the list.

Errors: unknown site or sensor 404, bad times 422, InfluxDB unreachable 503 (refusing 502), as JSON.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

import numpy as np
import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response

from alerts.engine.conditions import ConditionKind
from alerts.engine.lifecycle import Alarm, AlarmState, local_iso
from api.auth.deps import PrincipalDep, check_site, current_principal
from api.auth.model import Principal, can_see
from api.deps import ServiceDep, site_map
from api.recent import Recent
from api.schemas_sites import (
    AlarmCountsPublic,
    AlarmMarkerPublic,
    ComplianceDayPublic,
    CompliancePublic,
    ForecastPublic,
    HistoryColumns,
    LimitsPublic,
    SensorAlarmPublic,
    SensorHistoryPublic,
    SensorPublic,
    SiteDetailPublic,
    SitePublic,
    SitesPublic,
    WarningLevelsPublic,
    priority_name,
)
from api.service_port import ServicePort
from api.site_overview import COLOUR_NAMES, SiteOverview, SiteSlots, site_overview
from ingest.store import StorageError, StoreRejected
from sensors.exposure import daily_compliance
from sensors.index import SensorIndex
from sensors.model import Sensor, Site
from sensors.readings import now_ms as _now_ms

router = APIRouter(prefix="/api/v1", tags=["sites"], dependencies=[Depends(current_principal)])

RAW_MAX_MS = 6 * 3600 * 1000  # ranges up to this come raw, longer ones as 1-minute min/mean/max
DISCRETE_RAW_MAX_MS = 7 * 86_400_000
MAX_RANGE_MS = 400 * 86_400_000
DEFAULT_RANGE_MS = 86_400_000
MARKER_TYPES = ("AlarmRaised", "AlarmReturnedToNormal", "AlarmCleared")
_MIN_MS, _MAX_MS = 0, 4_102_444_800_000  # 1970 .. 2100
_INT_RE = re.compile(r"^-?\d{1,16}$")
_PLUS_LOST_RE = re.compile(r"(?<=\d) (\d{2}:?\d{2})$")

SiteIdPath = Annotated[str, Path(min_length=1, max_length=64)]
SensorIdPath = Annotated[str, Path(min_length=1, max_length=64)]

# ---- the slot -> site map, built once per sensor index (the registry does not change while running)

_slots_cache: dict[int, tuple[SensorIndex, SiteSlots]] = {}


def site_slots(service: ServicePort) -> tuple[SiteSlots, dict[str, Site]]:
    index = service.alarms.engine.index
    hit = _slots_cache.get(id(index))
    if hit is None or hit[0] is not index:
        hit = (index, SiteSlots.build(index.site_ids, index.site_of_slot))
        _slots_cache.clear()  # one service per process; keep no stale index alive
        _slots_cache[id(index)] = hit
    return hit[1], site_map(service)


def _site(service: ServicePort, site_id: str, principal: Principal) -> Site:
    """The site if it exists and the caller's scope covers it; 404 either way otherwise."""
    site = site_slots(service)[1].get(site_id)
    check_site(principal, site)
    return site


def _sensor(site: Site, sensor_id: str) -> Sensor:
    for s in site.sensors:
        if s.id == sensor_id:
            return s
    raise HTTPException(404, detail=f"site {site.id!r} has no sensor {sensor_id!r}")


def _site_row(site: Site, i: int, ov: SiteOverview, now_ms: int) -> dict:
    c = ov.counts[i]
    return {
        **SitePublic.base(site),
        "sensor_count": int(ov.sensor_count[i]),
        "alarm_counts": AlarmCountsPublic(
            unack=int(c[0]),
            ack=int(c[1]),
            rtn_unack=int(c[2]),
            shelved=int(c[3]),
            suppressed=int(c[4]),
            out_of_service=int(c[5]),
        ),
        "worst_priority": priority_name(int(ov.worst_priority[i])),
        "risk_colour": COLOUR_NAMES[int(ov.colour[i])],
        "data_age_s": ov.data_age_s(i, now_ms),
    }


#: the overview is recomputed at most this often, whoever asks: a console grid polled by many
#: users (and 2 000 sites of rows) costs one computation per interval, not one per request
OVERVIEW_MAX_AGE_MS = 1000


def _overview_rows(service: ServicePort, now: int) -> list[tuple[Site, dict]]:
    """Every site's row (plain JSON-ready dicts), with its Site for the scope and filter checks."""
    slots, sites = site_slots(service)
    ov = site_overview(slots, service.alarms.engine.last_t, service.alarms.book.current())
    rows = []
    for i, site_id in enumerate(slots.site_ids):
        site = sites[site_id]
        rows.append((site, SitePublic(**_site_row(site, i, ov, now)).model_dump(mode="json")))
    return rows


_overview: Recent[list[tuple[Site, dict]]] = Recent(
    OVERVIEW_MAX_AGE_MS, _overview_rows, version=lambda s: s.alarms.book.version
)


@router.get("/sites", response_model=SitesPublic)
def list_sites(
    service: ServiceDep,
    principal: PrincipalDep,
    city: str | None = Query(None, max_length=64),
    district: str | None = Query(None, max_length=64),
    province: str | None = Query(None, max_length=64),
    park: str | None = Query(None, max_length=64),
) -> Response:
    """Retrieve every site with its alarm counts, worst priority, risk colour and data age (<= 1 s old)."""
    time_ms, rows = _overview.get(service)
    data = [
        row
        for site, row in rows
        if (city is None or site.city == city)
        and (district is None or site.district == district)
        and (province is None or site.province == province)
        and (park is None or site.park == park)
        and can_see(principal.user, site)
    ]
    body = orjson.dumps({"data": data, "count": len(data), "time_ms": time_ms})
    return Response(body, media_type="application/json")


def _alarms_by_source(alarms: list[Alarm]) -> dict[tuple[str, str], list[Alarm]]:
    out: dict[tuple[str, str], list[Alarm]] = {}
    for a in alarms:
        out.setdefault((a.scope, a.source), []).append(a)
    return out


def _sensor_alarms(s: Sensor, by_source: dict[tuple[str, str], list[Alarm]]) -> list[SensorAlarmPublic]:
    keys = [("sensor", s.id)]
    if s.device:
        keys.append(("device", s.device))
    if s.group:
        keys.append(("group", s.group))
    return [SensorAlarmPublic.from_alarm(a) for k in keys for a in by_source.get(k, ())]


@router.get("/sites/{site_id}", response_model=SiteDetailPublic)
def get_site(service: ServiceDep, principal: PrincipalDep, site_id: SiteIdPath) -> SiteDetailPublic:
    """Retrieve one site with its sensors: limits, latest value and time, data age, current alarms."""
    site = _site(service, site_id, principal)
    slots, _ = site_slots(service)
    engine = service.alarms.engine
    last_x, last_t = engine.last_x, engine.last_t  # the engine may swap these arrays: take them once
    alarms = service.alarms.book.current(site=site.id)
    now = _now_ms()
    i = slots.site_pos[site.id]
    ov = site_overview(slots, last_t, alarms)
    by_source = _alarms_by_source(alarms)
    slot_of = engine.index.by_site[site.id]
    sensors = []
    for s in site.sensors:
        slot = slot_of[s.id]
        t = int(last_t[slot])
        x = float(last_x[slot])
        sensors.append(
            SensorPublic.from_sensor(
                s,
                site.timezone,
                value=None if t < 0 or not math.isfinite(x) else x,
                time_ms=None if t < 0 else t,
                now_ms=now,
                alarms=_sensor_alarms(s, by_source),
            )
        )
    return SiteDetailPublic(**_site_row(site, i, ov, now), sensors=sensors)


# ---- history


def parse_time(text: str, name: str) -> int:
    """UTC ms from ms since the epoch or ISO 8601 with an offset; 422 with a clear message otherwise."""
    # an unencoded "+08:00" in a query string arrives as " 08:00": take it as the offset it was
    text = _PLUS_LOST_RE.sub(r"+\1", text.strip())
    if _INT_RE.match(text):
        ms = int(text)
    else:
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise HTTPException(
                422, detail=f"{name}: not ISO 8601 or ms since the epoch: {text[:64]!r}"
            ) from None
        if dt.tzinfo is None:
            raise HTTPException(
                422, detail=f"{name}: ISO 8601 time needs an offset (+08:00 or Z): {text[:64]!r}"
            )
        ms = int(dt.timestamp() * 1000)
    if not _MIN_MS <= ms < _MAX_MS:
        raise HTTPException(422, detail=f"{name}: out of range (1970 to 2100): {text[:64]!r}")
    return ms


def _floats(a: np.ndarray) -> list[float | None]:
    return [None if v != v else v for v in a.tolist()]  # NaN -> null


def _ints(a: np.ndarray) -> list[int | None]:
    return [None if v != v else int(v) for v in a.tolist()]


def _marker(h, tz: str) -> AlarmMarkerPublic:
    d = h.details
    prio = d.get("priority")
    return AlarmMarkerPublic(
        time_ms=h.time_ms,
        time=local_iso(h.time_ms, tz),
        type=h.type,
        alarm_id=h.alarm_id,
        kind=h.key[3],
        level=d.get("level"),
        priority=prio if prio in ("low", "medium", "high", "critical") else None,
        value=d.get("value"),
        limit=d.get("limit"),
    )


@router.get("/sites/{site_id}/sensors/{sensor_id}/history", response_model=SensorHistoryPublic)
def sensor_history(
    service: ServiceDep,
    principal: PrincipalDep,
    site_id: SiteIdPath,
    sensor_id: SensorIdPath,
    start: str | None = Query(None, max_length=64, description="ISO 8601 + offset, or ms; default end-24h"),
    end: str | None = Query(None, max_length=64, description="ISO 8601 with offset, or ms; default now"),
    limit: int = Query(100_000, ge=1, le=200_000, description="most points returned"),
) -> SensorHistoryPublic:
    """Retrieve a sensor's readings (raw up to 6 h, else 1-minute min/mean/max) with limits and alarms."""
    site = _site(service, site_id, principal)
    sensor = _sensor(site, sensor_id)
    end_ms = _now_ms() if end is None else parse_time(end, "end")
    start_ms = end_ms - DEFAULT_RANGE_MS if start is None else parse_time(start, "start")
    if start_ms >= end_ms:
        raise HTTPException(422, detail="start must be before end")
    if end_ms - start_ms > MAX_RANGE_MS:
        raise HTTPException(422, detail="the range may span at most 400 days")
    # a discrete signal's states are not averaged: raw up to a week (its changes, the console's list)
    raw = end_ms - start_ms <= (DISCRETE_RAW_MAX_MS if sensor.discrete else RAW_MAX_MS)
    try:
        found = service.read_history(site.id, [sensor.id], start_ms, end_ms, "raw" if raw else "1m", limit)
    except StoreRejected as e:
        raise HTTPException(502, detail=f"the reading store refused the history query: {e}") from None
    except StorageError as e:
        raise HTTPException(503, detail=f"history unavailable, reading store unreachable: {e}") from None
    series = next((s for s in found if s.sensor == sensor.id), None)
    ts = series.ts_ms if series is not None else np.zeros(0, dtype=np.int64)
    cols = series.values if series is not None else {}

    def col(name: str) -> np.ndarray:
        return cols.get(name, np.full(len(ts), np.nan))

    if raw:
        columns = HistoryColumns(t_ms=ts.tolist(), value=_floats(col("value")), quality=_ints(col("quality")))
    else:
        columns = HistoryColumns(
            t_ms=ts.tolist(),
            min=_floats(col("min")),
            mean=_floats(col("mean")),
            max=_floats(col("max")),
            count=_ints(col("count")),
        )
    rows = service.alarms.journal.history(
        site=site.id,
        source=sensor.id,
        types=MARKER_TYPES,
        since_ms=start_ms,
        until_ms=end_ms,
        limit=1000,
        newest_first=False,
    )
    tz = site.timezone
    return SensorHistoryPublic(
        site=site.id,
        sensor=sensor.id,
        unit=sensor.unit,
        start_ms=start_ms,
        end_ms=end_ms,
        start=local_iso(start_ms, tz),
        end=local_iso(end_ms, tz),
        resolution="raw" if raw else "1m",
        points=len(ts),
        truncated=len(ts) >= limit,
        series=columns,
        limits=LimitsPublic.from_limits(sensor.limits),
        alarms=[_marker(h, tz) for h in rows if h.key[1] == "sensor"],
        states=list(sensor.states) if sensor.states else None,
    )


# ---- tailings warning levels


@router.get("/sites/{site_id}/warning-levels", response_model=WarningLevelsPublic)
def warning_levels(service: ServiceDep, principal: PrincipalDep, site_id: SiteIdPath) -> WarningLevelsPublic:
    """Retrieve a tailings pond's colours now: the pond, each monitored item and point, and its alarm."""
    site = _site(service, site_id, principal)
    warnings = service.alarms.engine.pond_warnings
    snapshot = warnings.snapshot(site.id) if warnings is not None else None
    if snapshot is None:
        raise HTTPException(404, detail=f"site {site.id} has no warning levels (registry warning_levels)")
    alarm = next(
        (a for a in service.alarms.book.current(site=site.id) if a.kind is ConditionKind.WARNING_LEVEL),
        None,
    )
    if alarm is not None:
        snapshot.update(alarm_id=alarm.alarm_id, state=alarm.state.value, message=alarm.message)
    return WarningLevelsPublic(**snapshot)


# ---- forecast


@router.get("/sites/{site_id}/sensors/{sensor_id}/forecast", response_model=ForecastPublic)
def sensor_forecast(
    service: ServiceDep, principal: PrincipalDep, site_id: SiteIdPath, sensor_id: SensorIdPath
) -> ForecastPublic:
    """Retrieve the sensor's active early warning (forecast limit crossing or failure), if any."""
    site = _site(service, site_id, principal)
    sensor = _sensor(site, sensor_id)
    warning = next(
        (
            a
            for a in service.alarms.book.current(site=site.id, source=sensor.id, states=set(AlarmState))
            if a.scope == "sensor" and a.kind is ConditionKind.EARLY_WARNING and a.active
        ),
        None,
    )
    tz = site.timezone

    def iso(ms: int | None) -> str | None:
        return None if ms is None else local_iso(ms, tz)

    outlook = service.alarms.forecast_outlook(site.id, sensor.id) or {}
    now_view = {
        "current_probability": outlook.get("probability"),
        "threshold": outlook.get("threshold"),
        "learned": outlook.get("learned"),
        "learned_at": iso(outlook.get("learned_at_ms")),
        "normal_lo": outlook.get("normal_lo"),
        "normal_hi": outlook.get("normal_hi"),
    }
    if warning is None:
        return ForecastPublic(active=False, forecast_enabled=sensor.forecast, **now_view)
    evidence = dict(warning.forecast or {})
    return ForecastPublic(
        **now_view,
        probability=evidence.get("probability"),
        horizon_s=evidence.get("horizon_s"),
        model=evidence.get("model"),
        trend_per_h=evidence.get("trend_per_h"),
        active=True,
        forecast_enabled=sensor.forecast,
        alarm_id=warning.alarm_id,
        state=warning.state.value,
        level=warning.level,
        priority=priority_name(int(warning.priority)),
        message=warning.message,
        value=warning.value,
        limit=warning.limit,
        eta_ms=warning.eta_ms,
        eta_low_ms=warning.eta_low_ms,
        eta_high_ms=warning.eta_high_ms,
        eta=iso(warning.eta_ms),
        eta_low=iso(warning.eta_low_ms),
        eta_high=iso(warning.eta_high_ms),
        raised_ms=warning.raised_ms,
        updated_ms=warning.updated_ms,
    )


# ---- exposure compliance


@router.get("/sites/{site_id}/sensors/{sensor_id}/compliance", response_model=CompliancePublic)
def sensor_compliance(
    service: ServiceDep,
    principal: PrincipalDep,
    site_id: SiteIdPath,
    sensor_id: SensorIdPath,
    days: int = Query(7, ge=1, le=400, description="local days back, today included"),
) -> CompliancePublic:
    """Retrieve the daily compliance of an exposure sensor (`<id>.TWA` or `<id>.STEL`) with its limit."""
    site = _site(service, site_id, principal)
    sensor = _sensor(site, sensor_id)
    if sensor.made_by is None or sensor.limits.h is None:
        raise HTTPException(404, detail=f"{sensor.id!r} is not an exposure sensor (<detector>.TWA or .STEL)")
    zone = ZoneInfo(site.timezone)
    end_ms = _now_ms()
    first = datetime.fromtimestamp(end_ms / 1000, zone).date() - timedelta(days=days - 1)
    start_ms = int(datetime(first.year, first.month, first.day, tzinfo=zone).timestamp() * 1000)
    try:
        found = service.read_history(site.id, [sensor.id], start_ms, end_ms + 1, "1m", 400 * 1440)
    except StoreRejected as e:
        raise HTTPException(502, detail=f"the reading store refused the query: {e}") from None
    except StorageError as e:
        raise HTTPException(503, detail=f"compliance unavailable, reading store unreachable: {e}") from None
    series = next((s for s in found if s.sensor == sensor.id), None)
    per_day = (
        daily_compliance(series.ts_ms, series.values["max"], sensor.limits.h, site.timezone)
        if series is not None and "max" in series.values
        else []
    )
    return CompliancePublic(
        site=site.id,
        sensor=sensor.id,
        detector=sensor.made_by,
        unit=sensor.unit,
        limit=sensor.limits.h,
        timezone=site.timezone,
        start_ms=start_ms,
        end_ms=end_ms,
        days=[
            ComplianceDayPublic(
                day=d.day.isoformat(), highest=d.highest, compliant=d.compliant, minutes=d.points
            )
            for d in per_day
        ],
    )
