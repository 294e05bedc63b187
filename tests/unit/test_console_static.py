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


def test_every_answer_forbids_framing_sniffing_and_inline_script(anonymous):
    for path in ("/console/", "/console/app.js", "/api/v1/alarms", "/livez"):
        headers = anonymous.get(path).headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp, path
        assert "unsafe-eval" not in csp and "script-src 'self' 'unsafe-inline'" not in csp
        assert "media-src 'self' data:" in csp  # the console's alarm tones are WAV data URIs
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff", path


def test_the_console_page_has_no_inline_script_for_the_policy_to_block(anonymous):
    page = anonymous.get("/console/").text
    scripts = page.split("<script")[1:]
    assert scripts and all(' src="' in tag.split(">", 1)[0] for tag in scripts)
    assert " on" not in page.replace("\n", " ").split("<body", 1)[1].split(">", 1)[0]  # no onload= etc.
