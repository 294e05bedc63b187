"""FastAPI application: health, metrics, ingest views, alarms and sites (more routers join later)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from alerts.engine.lifecycle import AlarmError, InvalidCommand, InvalidTransition, UnknownAlarm
from api import console_app
from api.auth import router as auth_router
from api.auth.store import AuthStore
from api.routers import (
    alarm_history,
    alarms,
    discrete,
    disposals,
    health,
    ingest,
    names,
    register,
    risk,
    site_mimic,
    sites,
    sms,
    stream,
)
from api.routers import forward as forward_routes
from api.routers import reports as report_routes  # issue 13 item 6
from api.security_headers import SecurityHeaders
from api.service_port import ServicePort

#: domain errors -> HTTP status, the one place where they are mapped
ERROR_STATUS: dict[type[AlarmError], int] = {UnknownAlarm: 404, InvalidTransition: 409, InvalidCommand: 422}


async def _alarm_error(request: Request, exc: Exception) -> JSONResponse:
    status = next((code for cls, code in ERROR_STATUS.items() if isinstance(exc, cls)), 400)
    return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=status)


def create_app(service_factory: Callable[[], ServicePort], auth: AuthStore) -> FastAPI:
    """Build the app; the service is created and started in the lifespan, stopped on shutdown.

    Every route but login, `/livez` and Kannel's token-checked callbacks needs a user (api/auth).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = service_factory()
        app.state.service = service
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="hazmon",
        version="0.1.0",
        lifespan=lifespan,
        description="Monitoring of major hazard sources (重大危险源).",
    )
    auth_router.install(app, auth)
    app.include_router(health.router)
    app.include_router(ingest.router)
    app.include_router(alarms.router)
    app.include_router(alarm_history.router)
    app.include_router(sms.router)
    app.include_router(sites.router)
    app.include_router(site_mimic.router)
    app.include_router(names.router)
    app.include_router(discrete.router)
    app.include_router(register.router)
    app.include_router(risk.router)
    app.include_router(disposals.router)
    app.include_router(report_routes.router)
    app.include_router(stream.router)
    app.include_router(forward_routes.router)
    app.include_router(sms.callbacks)
    app.add_exception_handler(AlarmError, _alarm_error)
    console_app.install(app)
    app.add_middleware(SecurityHeaders)
    return app
