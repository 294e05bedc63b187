"""The English of the registry's names (sites, places, sensors, items, states: each site's
`names_en`), for the console's English mode; only the names of the sites in the caller's scope."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query

from api.auth.deps import PrincipalDep, current_principal
from api.auth.model import can_see
from api.deps import ServiceDep, site_map

router = APIRouter(prefix="/api/v1", tags=["sites"], dependencies=[Depends(current_principal)])


@router.get("/names")
def names(service: ServiceDep, principal: PrincipalDep, lang: Literal["en"] = Query("en")) -> dict:
    """{name: English} over the sites in scope (a later site's entry wins for a name they share)."""
    out: dict[str, str] = {}
    for site in site_map(service).values():
        if can_see(principal.user, site):
            out.update(site.names_en)
    return {"lang": lang, "names": out, "count": len(out)}
