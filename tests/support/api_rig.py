"""The API as the unit tests see it: the app of api/main.py over a service built by the composition
root, `hazmon.bootstrap.bootstrap()`, with in-memory fakes in place of the servers.

- The service comes from `bootstrap(settings, registry, store=MemoryStore(...), clock=...)`: the
  real journal, book, engine, early warnings, pipeline and counters, the reading store in memory.
  It is not started: no thread runs and nothing is connected (the integration tests run the app's
  lifespan against real Mosquitto and InfluxDB). The rig puts it on `app.state.service`, where the
  lifespan would.
- One app serves every test of a worker: FastAPI builds a route's validators on its first request,
  which costs more than most API tests, so the app is made once and each test puts its own service
  and auth store on `app.state`.
- The auth store is a copy of one made per worker, with three users and their API tokens, so a test
  does not spend three password hashes before it starts.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.auth.login_gate import LoginGate
from api.auth.model import Scope
from api.auth.store import AuthStore
from api.main import create_app
from hazmon.bootstrap import Channels, Service, bootstrap
from hazmon.config import Settings
from sensors.index import SensorIndex
from sensors.model import Registry
from tests.support.auth_copies import AuthUser, auth_store_copy
from tests.support.memory_store import MemoryStore


def password_of(name: str) -> str:
    return f"pw-{name}-0123456789"


#: the rig's users: an all-sites admin, an operator of site-0 only, an all-sites viewer
USERS = tuple(
    AuthUser(name, password_of(name), role, scope)
    for name, role, scope in (
        ("zhang", "admin", Scope.everything()),
        ("li", "operator", Scope.of_sites(["site-0"])),
        ("wang", "viewer", Scope.everything()),
    )
)


def make_auth(folder: Path) -> tuple[AuthStore, dict[str, str]]:
    """A fresh auth store in ``folder`` with the rig's users; returns it and their token secrets."""
    return auth_store_copy(folder, USERS, tokens=True)


@functools.cache
def _settings_template() -> Settings:
    return Settings(data_dir=Path(tempfile.gettempdir()) / "unused", rosters=None, sms_gateway="none")


def rig_settings(data_dir: Path, **overrides: object) -> Settings:
    """The service's settings for a test: SMS off, no roster file, the data in ``data_dir``."""
    return _settings_template().model_copy(update={"data_dir": data_dir, **overrides})


@asynccontextmanager
async def _state_only(app: FastAPI) -> AsyncIterator[None]:
    """The rig's lifespan: the service on app.state is the test's, and it is not started."""
    yield


@functools.cache
def shared_app() -> FastAPI:
    """The app of api/main.py, made once; `serve` puts a test's service and auth store on it."""
    app = create_app(_no_factory, None)  # each test's auth store is put on app.state
    app.router.lifespan_context = _state_only
    return app


def _no_factory() -> Service:
    raise AssertionError("the rig sets app.state.service itself")


@dataclass
class ApiRig:
    """A bootstrapped service, its in-memory store, an auth store with tokens, and the app over them."""

    service: Service
    store: MemoryStore
    auth: AuthStore
    tokens: dict[str, str]
    app: FastAPI

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    @contextmanager
    def client(self, user: str | None = "zhang", **kw: object) -> Iterator[TestClient]:
        """A client of the app, as ``user`` (None: anonymous)."""
        self.app.state.service = self.service
        self.app.state.auth = self.auth
        self.app.state.login_gate.close()
        self.app.state.login_gate = LoginGate(refusal_delay_s=0)  # the test's own per-address login budget
        headers = self.headers(user) if user else {}
        with TestClient(self.app, headers=headers, **kw) as client:
            client.tokens = self.tokens
            yield client

    def close(self) -> None:
        """Close what bootstrap() opened (the service was never started, so stop() is not for it)."""
        alarms = self.service.alarms
        if self.service.reports is not None:
            self.service.reports.stop()
        if alarms.notifier is not None:
            alarms.notifier.close()
        if alarms.rosters is not None:
            alarms.rosters.close()
        alarms.journal.close()
        self.store.close()
        self.auth.close()


@contextmanager
def api_rig(
    tmp_path: Path,
    registry: Registry,
    *,
    clock: Callable[[], int] | None = None,
    channels: Channels | None = None,
    **settings: object,
) -> Iterator[ApiRig]:
    """Build the service with bootstrap() and in-memory fakes; closed when the block ends.

    SMS is off unless `channels` are given (e.g. a FakeSmsGateway): then the notifier, its outbox
    and the roster store are the real ones, in tmp_path."""
    store = MemoryStore(SensorIndex.build(registry))
    service = bootstrap(
        rig_settings(tmp_path / "var", **settings), registry, store=store, clock=clock, channels=channels
    )
    if service.reports is not None:
        # on the worker thread, as the tests' swapped RENDERERS expect: the service's child process
        # (a fresh interpreter importing the renderers) costs seconds per rig on a slow machine, and
        # test_reports proves it renders the same report
        service.reports.render_in_process = False
    auth, tokens = make_auth(tmp_path / "auth")
    rig = ApiRig(service, store, auth, tokens, shared_app())
    try:
        yield rig
    finally:
        rig.close()
