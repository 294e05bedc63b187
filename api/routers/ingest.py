"""Ingest views: counters, the latest rejected readings and field device status."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from api.auth.deps import PrincipalDep, current_principal
from api.deps import ServiceDep, sees_site
from ingest.payloads import split_topic

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"], dependencies=[Depends(current_principal)])


@router.get("/stats")
def ingest_stats(service: ServiceDep) -> dict:
    """Retrieve ingest counters (received, accepted, rejected by reason, written, spooled)."""
    return service.stats.snapshot()


@router.get("/rejects")
def ingest_rejects(
    service: ServiceDep, principal: PrincipalDep, limit: int = Query(100, ge=1, le=1000)
) -> dict:
    """Retrieve the latest rejected messages and items, newest first, with the reason."""
    data = [
        {
            "received_ms": r.received_ms,
            "topic": r.topic,
            "reason": r.reason,
            "detail": r.detail,
            "sample": r.sample,
        }
        for r in service.stats.latest_rejects(limit)
        if sees_site(principal, service, (split_topic(r.topic) or (None,))[0])
    ]
    return {"data": data, "count": len(data)}


@router.get("/devices")
def devices(service: ServiceDep, principal: PrincipalDep) -> dict:
    """Retrieve field devices with their announced status (last will) and last message time."""
    data = [
        {
            "site": d.site,
            "device": d.device,
            "status": d.status,
            "status_since_ms": d.status_since_ms,
            "last_message_ms": d.last_message_ms,
            "messages": d.messages,
        }
        for d in service.devices.snapshot()
        if sees_site(principal, service, d.site)
    ]
    # messages of devices not listed: beyond the bounds of the device map (ingest/devices.py)
    return {"data": data, "count": len(data), "untracked": service.devices.untracked}
