"""The console's static files are served without a login (they carry no data); / leads to them."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app
from tests.unit.conftest import make_registry
from tests.unit.test_api_alarms import StubService, make_auth


def _client(tmp_path) -> TestClient:
    auth, _ = make_auth(tmp_path)
    return TestClient(create_app(lambda: StubService(make_registry(), alarms=None), auth))


def test_root_redirects_to_the_console(tmp_path):
    r = _client(tmp_path).get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/console/"


def test_the_console_and_its_vendored_echarts_are_public(tmp_path):
    client = _client(tmp_path)
    page = client.get("/console/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'src="vendor/echarts.min.js"' in page.text and "cdn" not in page.text.lower()
    for path in ("app.js", "i18n.js", "style.css", "vendor/echarts.min.js", "vendor/LICENSE-echarts"):
        assert client.get(f"/console/{path}").status_code == 200, path


def test_the_console_is_not_part_of_the_api_document(tmp_path):
    paths = _client(tmp_path).get("/openapi.json")
    assert paths.status_code == 200
    assert not any(p == "/" or p.startswith("/console") for p in paths.json()["paths"])
