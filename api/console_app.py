"""The control-room console: build-free static files (api/console/) served at /console/.

The files are public and carry no data: every figure on the screen comes from the authenticated
API, called by the browser with the session cookie (and the CSRF header on writes). `/` redirects
to the console so an operator can type just the host name.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

CONSOLE_DIR = Path(__file__).with_name("console")


def install(app: FastAPI) -> None:
    """Mount the console at /console/ and redirect / (and /console) to it; nothing in OpenAPI."""

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    @app.get("/console", include_in_schema=False)
    def console_no_slash() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
