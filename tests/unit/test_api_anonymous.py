"""Walk the OpenAPI document: every operation refuses an anonymous caller with a 401 JSON answer."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.unit.conftest import make_registry
from tests.unit.test_api_alarms import StubService, make_auth

#: the only operations open to anyone, and why
OPEN = {("post", "/api/v1/auth/login")}  # how one stops being anonymous


@pytest.fixture
def app_and_ops(tmp_path):
    auth, _ = make_auth(tmp_path)
    app = create_app(lambda: StubService(make_registry(), alarms=None), auth)
    ops = [
        (method, path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]
    yield app, ops
    auth.close()


def test_the_walk_covers_the_whole_api(app_and_ops):
    _, ops = app_and_ops
    paths = {p for _, p in ops}
    assert {
        "/healthz",
        "/metrics",
        "/api/v1/alarms",
        "/api/v1/alarms/{alarm_id}/ack",
        "/api/v1/users",
    } <= paths
    assert len(ops) >= 25


def test_every_operation_refuses_anonymous_callers(app_and_ops):
    app, ops = app_and_ops
    client = TestClient(app)  # no lifespan: the service is never started, nothing is reached anyway
    refused = []
    for method, path in ops:
        if (method, path) in OPEN:
            continue
        url = re.sub(r"\{[^}]+\}", "x1", path)
        r = client.request(method, url, json={})
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.json()["error"] == "unauthenticated" and r.headers["www-authenticate"].startswith("Bearer")
        refused.append((method, path))
    assert len(refused) == len(ops) - len(OPEN)


def test_a_forged_or_revoked_token_is_refused_like_none(app_and_ops):
    app, _ = app_and_ops
    client = TestClient(app)
    for token in ("hzm_forged", "", "Basic abc"):
        r = client.get("/api/v1/alarms", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
