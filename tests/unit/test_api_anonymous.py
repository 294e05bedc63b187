"""Walk the OpenAPI document: every operation refuses an anonymous caller with a 401 JSON answer."""

from __future__ import annotations

import re

import pytest

from tests.support.api_rig import api_rig
from tests.unit.conftest import make_registry

#: the only operations open to anyone, and why
OPEN = {("post", "/api/v1/auth/login")}  # how one stops being anonymous


@pytest.fixture
def app_and_ops(tmp_path):
    with api_rig(tmp_path, make_registry()) as rig, rig.client(user=None) as client:
        ops = [
            (method, path)
            for path, item in client.app.openapi()["paths"].items()
            for method in item
            if method in ("get", "post", "put", "patch", "delete")
        ]
        yield client, ops


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
    client, ops = app_and_ops
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
    client, _ = app_and_ops
    for token in ("hzm_forged", "", "Basic abc"):
        r = client.get("/api/v1/alarms", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
