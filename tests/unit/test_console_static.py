"""The console's static files are served without a login (they carry no data); / leads to them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.api_rig import api_rig
from tests.unit.conftest import make_registry


@pytest.fixture
def anonymous(tmp_path) -> Iterator[TestClient]:
    with api_rig(tmp_path, make_registry()) as rig, rig.client(user=None) as client:
        yield client


def test_root_redirects_to_the_console(anonymous):
    r = anonymous.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/console/"


def test_the_console_and_its_vendored_echarts_are_public(anonymous):
    client = anonymous
    page = client.get("/console/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'src="vendor/echarts.min.js"' in page.text and "cdn" not in page.text.lower()
    for path in ("app.js", "i18n.js", "style.css", "vendor/echarts.min.js", "vendor/LICENSE-echarts"):
        assert client.get(f"/console/{path}").status_code == 200, path


def test_the_console_is_not_part_of_the_api_document(anonymous):
    paths = anonymous.get("/openapi.json")
    assert paths.status_code == 200
    assert not any(p == "/" or p.startswith("/console") for p in paths.json()["paths"])
