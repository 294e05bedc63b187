"""Request dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response

from api.auth.model import Principal, can_see
from api.service_port import ServicePort


def get_service(request: Request) -> ServicePort:
    return request.app.state.service


ServiceDep = Annotated[ServicePort, Depends(get_service)]


_site_maps: dict[int, tuple[object, dict]] = {}


def site_map(service: ServicePort) -> dict:
    """Site id -> Site, built once per registry (routes look sites up per alarm: no linear scans)."""
    registry = service.registry
    hit = _site_maps.get(id(registry))
    if hit is None or hit[0] is not registry:
        _site_maps.clear()  # one service per process
        hit = (registry, {s.id: s for s in registry.sites})
        _site_maps[id(registry)] = hit
    return hit[1]


def json_response(model) -> Response:
    """A pydantic model as JSON, serialised by pydantic-core directly.

    For the big lists (alarms, sites) under load: FastAPI would validate the returned model against
    the response_model again and encode it in Python, several times the cost of building it.
    The route keeps its response_model for the OpenAPI document.
    """
    return Response(model.model_dump_json().encode(), media_type="application/json")


def sees_site(principal: Principal, service: ServicePort, site_id: str | None) -> bool:
    """Whether the caller's scope covers this site: an all-sites user sees everything (even a site
    the registry no longer has); anyone else only the registry's sites their scope names."""
    if principal.user.scope.kind == "all":
        return True
    site = site_map(service).get(site_id) if site_id is not None else None
    return site is not None and can_see(principal.user, site)
