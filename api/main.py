"""FastAPI application: health, metrics and the ingest views (more routers join in later issues)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.routers import health, ingest
from hazmon.bootstrap import Service


def create_app(service_factory: Callable[[], Service]) -> FastAPI:
    """Build the app; the service is created and started in the lifespan, stopped on shutdown."""

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
    app.include_router(health.router)
    app.include_router(ingest.router)
    return app
