"""SMS: Kannel's callbacks (delivery receipts, officers' replies), the outbox, and who is on duty.

The callbacks are GET {prefix}/dlr (our dlr-url) and GET {prefix}/mo (Kannel's sms-service
get-url); both need the shared callback token, since a reply acknowledges an alarm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse

from alerts.notify.channels.kannel import CallbackRefused, KannelSmsGateway, parse_query
from alerts.notify.notifier import Notifier
from alerts.notify.roster import Role, Roster, find_duty, regulator_rosters
from api.auth.deps import PrincipalDep, check_site, current_principal, require
from api.auth.model import Action, Principal, visible_sites
from api.deps import ServiceDep, site_map
from api.service_port import ServicePort

logger = logging.getLogger(__name__)

GatewayFor = Callable[[Request], KannelSmsGateway | None]


def kannel_router(gateway: KannelSmsGateway | GatewayFor, prefix: str = "/sms/kannel") -> APIRouter:
    """The two callbacks, for one gateway or for whichever `gateway(request)` returns (None: 404)."""
    router = APIRouter(prefix=prefix, tags=["sms"])
    gateway_for: GatewayFor = gateway if callable(gateway) else (lambda _r: gateway)  # type: ignore[assignment]

    def _handle(kind: str, request: Request) -> PlainTextResponse:
        gw = gateway_for(request)
        if gw is None:
            return PlainTextResponse("no Kannel gateway configured", status_code=404)
        query = parse_query(request.url.query)
        try:
            if kind == "dlr":
                gw.handle_dlr(query)
            else:
                gw.handle_mo(query)
        except CallbackRefused as e:
            logger.warning("kannel %s callback refused: %s", kind, e)
            return PlainTextResponse(str(e), status_code=400)
        # an empty body: with max-messages = 0 Kannel sends no reply SMS anyway
        return PlainTextResponse("")

    @router.get("/dlr", include_in_schema=False)
    def dlr(request: Request) -> PlainTextResponse:
        return _handle("dlr", request)

    @router.get("/mo", include_in_schema=False)
    def mo(request: Request) -> PlainTextResponse:
        return _handle("mo", request)

    return router


def _service_kannel(request: Request) -> KannelSmsGateway | None:
    notifier = request.app.state.service.alarms.notifier
    return notifier.kannel if notifier is not None else None


callbacks = kannel_router(_service_kannel)
router = APIRouter(prefix="/api/v1", tags=["sms"], dependencies=[Depends(current_principal)])
# phone numbers and who is on duty: for those who answer for the rosters
roster_readers = [Depends(require(Action.EDIT_ROSTER))]


def _notifier(service: ServicePort) -> Notifier:
    if service.alarms.notifier is None:
        raise HTTPException(404, "SMS is off: no gateway configured (HAZMON_SMS_GATEWAY)")
    return service.alarms.notifier


@router.get("/sms/status")
def sms_status(service: ServiceDep) -> dict:
    """The SMS gateway's state and the outbox backlog (what waits, what failed, since when)."""
    return _notifier(service).health()


def _scoped_sites(service: ServicePort, principal: Principal) -> list | None:
    """The sites a reader may see; None for an all-sites scope (nothing to filter)."""
    if principal.user.scope.kind == "all":
        return None
    return visible_sites(principal.user, service.registry.sites)


@router.get("/sms/messages", dependencies=roster_readers)
def sms_messages(
    service: ServiceDep,
    principal: PrincipalDep,
    phone: str | None = Query(None, max_length=32, pattern=r"^\+?[0-9]{3,20}$"),
    state: str | None = Query(None, pattern=r"^(ready|sending|sent|delivered|failed)$"),
    limit: int = Query(200, ge=1, le=5000),
) -> dict:
    """Messages sent or waiting, newest first, with their receipts and errors; a scoped reader sees
    only alarm texts about their own sites (no other city's texts or phone numbers)."""
    sites = _scoped_sites(service, principal)
    rows = _notifier(service).outbox.messages(
        phone=phone,
        state=state,
        limit=limit,
        newest_first=True,
        sites=None if sites is None else [s.id for s in sites],
    )
    return {"data": rows, "count": len(rows)}


def _answers_for(roster: Roster, sites: list) -> bool:
    """Whether the roster answers for one of `sites`: its own roster, or its district's or city's."""
    return any(
        site.roster == roster.id or regulator_rosters([roster], site.city, site.district) for site in sites
    )


@router.get("/rosters", dependencies=roster_readers)
def list_rosters(service: ServiceDep, principal: PrincipalDep) -> dict:
    """The stored duty rosters: id, name, time zone, jurisdiction and people count; a scoped reader
    sees the rosters that answer for their sites."""
    store = service.alarms.rosters
    if store is None:
        return {"data": [], "count": 0}
    sites = _scoped_sites(service, principal)
    rosters = [r for r in store.load_all().values() if sites is None or _answers_for(r, sites)]
    data = [
        {
            "id": r.id,
            "name": r.name,
            "timezone": r.timezone,
            "jurisdiction": None
            if r.jurisdiction is None
            else {"city": r.jurisdiction.city, "district": r.jurisdiction.district},
            "people": len(r.people),
        }
        for r in rosters
    ]
    return {"data": data, "count": len(data)}


@router.get("/sites/{site_id}/on-duty", dependencies=roster_readers)
def on_duty_now(
    service: ServiceDep,
    principal: PrincipalDep,
    site_id: str,
    at: Annotated[datetime | None, Query(description="ISO 8601 with an offset; default now")] = None,
) -> dict:
    """Who answers for the site in each role at `at`, and from which roster."""
    site = site_map(service).get(site_id)
    check_site(principal, site)
    when = at or datetime.now(UTC)
    if when.tzinfo is None:
        raise HTTPException(422, "`at` needs a UTC offset, e.g. 2026-11-23T08:00:00+08:00")
    rosters = service.alarms.rosters.load_all() if service.alarms.rosters is not None else {}
    out = {}
    for role in Role:
        found = find_duty(site, rosters, role, when)
        out[role.value] = (
            None
            if found is None
            else {
                "roster": found[0].id,
                "people": [{"id": p.id, "name": p.name, "phone": p.phone} for p in found[1]],
            }
        )
    return {"site": site_id, "at": when.isoformat(), "roles": out}
