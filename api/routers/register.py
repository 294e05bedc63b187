"""The hazard-source register (issue 13): each site's computed grade (GB 18218-2018, R = α Σ β q/Q)
or class (tailings, from the dam), beside the grade the registry declares, with every line of the
computation (sensors/hazard_register.py). Computed once per registry: it does not change while
hazmon runs. Sites outside the caller's scope are left out (the list) or 404 (one site)."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Depends, Query

from api.auth.deps import PrincipalDep, current_principal
from api.auth.model import can_see
from api.deps import ServiceDep
from api.routers.sites import SiteIdPath, _site, site_slots
from api.service_port import ServicePort
from sensors.hazard_register import site_register

router = APIRouter(prefix="/api/v1", tags=["register"], dependencies=[Depends(current_principal)])

_lock = threading.Lock()
_views: dict[int, tuple[dict, dict[str, dict[str, Any]]]] = {}  # id(site map) -> (map, views)


def _register(service: ServicePort) -> dict[str, dict[str, Any]]:
    """Every site's view, computed once per registry (the site map is built once per registry)."""
    sites = site_slots(service)[1]
    with _lock:
        hit = _views.get(id(sites))
        if hit is None or hit[0] is not sites:
            _views.clear()  # one service per process
            hit = _views[id(sites)] = (sites, {sid: site_register(site) for sid, site in sites.items()})
        return hit[1]


@router.get("/register")
def list_register(
    service: ServiceDep,
    principal: PrincipalDep,
    mismatched: bool = Query(False, description="only the sites whose declared grade differs"),
) -> dict:
    """List the register of the sites in scope: computed and declared grade or class, and the units."""
    sites = site_slots(service)[1]
    views = _register(service)
    data = [
        views[sid]
        for sid, site in sites.items()
        if can_see(principal.user, site) and (not mismatched or not views[sid]["agrees"])
    ]
    return {"data": data, "count": len(data)}


@router.get("/sites/{site_id}/register")
def site_register_view(service: ServiceDep, principal: PrincipalDep, site_id: SiteIdPath) -> dict:
    """Retrieve one site's register: its units, S, α, R and grade, every line of the computation."""
    site = _site(service, site_id, principal)
    return _register(service)[site.id]
