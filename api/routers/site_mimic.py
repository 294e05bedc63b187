"""The site page as a control-room mimic (issue 14 item 5): every sensor's recent course as a
sparkline, in one store query for the whole site, and the site's field devices with their online
state. Sparklines are means in equal bins (numpy), so a 2 s detector and a 10 min piezometer each
give at most `points` values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query

from api.auth.deps import PrincipalDep, current_principal
from api.deps import ServiceDep
from api.routers.sites import SiteIdPath, _site
from ingest.store import StorageError, StoreRejected
from sensors.readings import now_ms as _now_ms

router = APIRouter(prefix="/api/v1", tags=["sites"], dependencies=[Depends(current_principal)])

MAX_POINTS_READ = 20_000  # raw points per sensor at most (a 1 s sensor over 5 h)


def binned_means(
    t_ms: np.ndarray, v: np.ndarray, start_ms: int, end_ms: int, points: int
) -> list[float | None]:
    """Means of `v` in `points` equal bins over [start, end); None for an empty bin."""
    ok = np.isfinite(v) & (t_ms >= start_ms) & (t_ms < end_ms)
    t, x = t_ms[ok], v[ok]
    bins = ((t - start_ms) * points // max(end_ms - start_ms, 1)).astype(np.int64)
    sums = np.bincount(bins, weights=x, minlength=points)[:points]
    counts = np.bincount(bins, minlength=points)[:points]
    means = np.divide(sums, counts, out=np.full(points, np.nan), where=counts > 0)
    return [None if not math.isfinite(m) else round(float(m), 6) for m in means]


@router.get("/sites/{site_id}/sparklines")
def sparklines(
    service: ServiceDep,
    principal: PrincipalDep,
    site_id: SiteIdPath,
    minutes: int = Query(60, ge=5, le=300),
    points: int = Query(60, ge=10, le=240),
) -> dict[str, Any]:
    """Every sensor's means over the last `minutes` in `points` bins (a discrete signal: its state)."""
    site = _site(service, site_id, principal)
    end_ms = _now_ms()
    start_ms = end_ms - minutes * 60_000
    ids = [s.id for s in site.sensors]
    try:
        found = service.read_history(site.id, ids, start_ms, end_ms, "raw", MAX_POINTS_READ)
    except StoreRejected as e:
        raise HTTPException(502, detail=f"the reading store refused the query: {e}") from None
    except StorageError as e:
        raise HTTPException(503, detail=f"sparklines unavailable, reading store unreachable: {e}") from None
    data = {
        s.sensor: binned_means(
            s.ts_ms, np.asarray(s.values.get("value", np.zeros(0)), dtype=float), start_ms, end_ms, points
        )
        for s in found
    }
    return {"site": site.id, "start_ms": start_ms, "end_ms": end_ms, "points": points, "data": data}


@router.get("/sites/{site_id}/devices")
def site_devices(service: ServiceDep, principal: PrincipalDep, site_id: SiteIdPath) -> dict[str, Any]:
    """The site's field devices: the last will's status (online / offline), since when, last message."""
    site = _site(service, site_id, principal)
    declared = sorted({s.device for s in site.sensors if s.device})
    heard = {d.device: d for d in service.devices.snapshot() if d.site == site.id}
    now = _now_ms()
    data = []
    for name in sorted(set(declared) | set(heard)):
        d = heard.get(name)
        last = (d.last_message_ms or None) if d is not None else None
        data.append(
            {
                "device": name,
                "status": d.status if d is not None else "unknown",  # online | offline | unknown
                "status_since_ms": (d.status_since_ms or None) if d is not None else None,
                "last_message_ms": last,
                "silent_s": None if last is None else round(max(now - last, 0) / 1000, 1),
                "sensors": [s.id for s in site.sensors if s.device == name],
            }
        )
    return {"site": site.id, "data": data, "count": len(data)}
