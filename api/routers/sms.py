"""Kannel's callbacks (delivery receipts and mobile-originated SMS) as a router the service mounts.

Not in create_app yet: the notifier that owns the gateway is wired in a later change of issue 4.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from alerts.sms.kannel import CallbackRefused, KannelSmsGateway, parse_query

logger = logging.getLogger(__name__)


def kannel_router(gateway: KannelSmsGateway, prefix: str = "/sms/kannel") -> APIRouter:
    """GET {prefix}/dlr (the dlr-url) and GET {prefix}/mo (the sms-service get-url)."""
    router = APIRouter(prefix=prefix, tags=["sms"])

    def _handle(kind: str, request: Request) -> PlainTextResponse:
        query = parse_query(request.url.query)
        try:
            if kind == "dlr":
                gateway.handle_dlr(query)
            else:
                gateway.handle_mo(query)
        except CallbackRefused as e:
            logger.warning("kannel %s callback refused: %s", kind, e)
            return PlainTextResponse(str(e), status_code=400)
        # an empty body: with max-messages = 0 Kannel sends no reply SMS anyway
        return PlainTextResponse("")

    @router.get("/dlr")
    def dlr(request: Request) -> PlainTextResponse:
        return _handle("dlr", request)

    @router.get("/mo")
    def mo(request: Request) -> PlainTextResponse:
        return _handle("mo", request)

    return router
