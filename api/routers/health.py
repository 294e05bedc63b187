"""Liveness/readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse

from api.auth.deps import current_principal
from api.deps import ServiceDep

router = APIRouter(tags=["health"])
# the details need a user (or a machine token, e.g. Prometheus' bearer_token); /livez does not
protected = [Depends(current_principal)]


@router.get("/livez", include_in_schema=False)
def livez(service: ServiceDep) -> JSONResponse:
    """Liveness for probes (Docker, load balancers): {"status": "ok" or "down"}, nothing about the plant."""
    alarms = service.alarms
    # cheap on purpose (probes call it often): two flags, no journal or outbox reads
    running = alarms.pipeline.alive and (alarms.outbox_runner is None or alarms.outbox_runner.alive)
    ok = service.stats.mqtt_connected and running
    return JSONResponse({"status": "ok" if ok else "down"}, status_code=200 if ok else 503)


@router.get("/healthz", dependencies=protected)
def healthz(service: ServiceDep) -> JSONResponse:
    """Report whether the broker and InfluxDB are reachable, how much is spooled, and the alarm pipeline."""
    snap = service.stats.snapshot()
    alarms = service.alarms.health()
    # without the alarm thread nothing is being watched: as bad as a lost broker
    ok = snap["mqtt_connected"] and alarms["running"]
    body = {
        "status": "ok"
        if ok and snap["influx_up"] and snap["spool_error"] is None
        else ("degraded" if ok else "down"),
        "mqtt_connected": snap["mqtt_connected"],
        "influx_up": snap["influx_up"],
        "spool_bytes": snap["spool_bytes"],
        "spool_segments": snap["spool_segments"],
        # the spool cannot take readings (full, or its disk refusing): they wait unacknowledged at the broker
        "spool_error": snap["spool_error"],
        "pending_points": snap["pending_points"],
        # a backlog is being drained (broker queue after a restart, gateways forwarding stored data)
        "catching_up": service.stats.catching_up(),
        "newest_reading_age_s": round(snap["newest_age_ms"] / 1000, 1),
        "sites": len(service.registry.sites),
        "sensors": len(service.index),
        "alarms": alarms,
    }
    # Degraded (InfluxDB away, spooling, or readings held for a spool that cannot take them) is still
    # serving: only a lost broker is a 503.
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", response_class=PlainTextResponse, dependencies=protected)
def metrics(service: ServiceDep) -> PlainTextResponse:
    """Prometheus text exposition of the ingest and alarm counters."""
    body = service.stats.render_prometheus() + service.alarms.render_prometheus()
    return PlainTextResponse(body, media_type="text/plain; version=0.0.4")
