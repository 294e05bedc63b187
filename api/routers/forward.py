"""Upward forwarding's state (alerts/forward/, docs/contracts.md §8): backlog, last success and error."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from api.auth.deps import PrincipalDep, current_principal
from api.deps import ServiceDep

router = APIRouter(prefix="/api/v1", tags=["forward"], dependencies=[Depends(current_principal)])


@router.get("/forward/status")
def forward_status(service: ServiceDep, principal: PrincipalDep) -> dict:
    """Retrieve the forwarder's outbox, summaries and each transport's backlog, last success and error."""
    # the forwarder carries every site's records: its state is for those who see every site
    if principal.user.scope.kind != "all":
        raise HTTPException(403, "the forwarder carries every site: its state needs an all-sites scope")
    forwarder = service.alarms.forwarder
    if forwarder is None:
        raise HTTPException(404, "forwarding is off: no HAZMON_FORWARD_HTTP_URL or HAZMON_FORWARD_MQTT_URL")
    return forwarder.status()
