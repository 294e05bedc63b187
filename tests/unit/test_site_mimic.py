"""The site page's mimic (issue 14 item 5): sparklines as equal-bin means, and the site's devices."""

from __future__ import annotations

import numpy as np

from api.routers.site_mimic import binned_means
from tests.support.api_rig import api_rig
from tests.unit.conftest import make_registry


def test_sparkline_bins_average_what_fell_in_them_and_leave_empty_bins_empty():
    t = np.array([0, 10, 20, 30, 55, 99, 120], dtype=np.int64)
    v = np.array([1.0, 3.0, np.nan, 5.0, 7.0, 9.0, 100.0])
    # four bins of 25 ms over [0, 100): {1, 3}, {5}, {7}, {9}; NaN and t = 120 left out
    assert binned_means(t, v, 0, 100, 4) == [2.0, 5.0, 7.0, 9.0]
    assert binned_means(t[:2], v[:2], 0, 100, 4) == [2.0, None, None, None]


def test_a_sites_devices_are_listed_with_their_status_within_scope(tmp_path):
    with api_rig(tmp_path, make_registry()) as rig, rig.client() as c:
        declared = sorted({s.device for s in rig.service.registry.sites[0].sensors if s.device})
        rig.service.devices.set_status("site-0", "gw-1", "offline", 1_795_392_000_000)  # its last will
        body = c.get("/api/v1/sites/site-0/devices").json()
        assert [d["device"] for d in body["data"]] == sorted({*declared, "gw-1"})
        (gw,) = [d for d in body["data"] if d["device"] == "gw-1"]
        assert (gw["status"], gw["status_since_ms"], gw["sensors"]) == ("offline", 1_795_392_000_000, [])
        assert c.get("/api/v1/sites/nope/devices").status_code == 404


def test_a_sites_english_names_are_read_and_checked(tmp_path):
    from sensors.registry import parse_registry_text

    doc = """
sites:
  - id: a
    name: 江门罐区
    kind: chemical
    grade: 2
    names_en: {江门罐区: Jiangmen tank farm, 江门市: Jiangmen}
    sensors: [{id: GT-1, name: 1号探测器, kind: gas_lel, unit: "%LEL", range: [0, 100], interval_s: 5}]
  - id: b
    name: 坏
    kind: chemical
    grade: 2
    names_en: {坏: ""}
    sensors: [{id: GT-1, name: 1号探测器, kind: gas_lel, unit: "%LEL", range: [0, 100], interval_s: 5}]
"""
    sites, issues = parse_registry_text(doc)
    assert [s.id for s in sites] == ["a"] and dict(sites[0].names_en)["江门市"] == "Jiangmen"
    assert [(i.site, i.key) for i in issues] == [("b", "names_en")]


def test_the_english_names_of_sites_outside_the_callers_scope_are_not_served(tmp_path):
    import dataclasses

    from sensors.model import Registry

    reg = make_registry()
    named = tuple(dataclasses.replace(s, names_en=((s.name, f"Site {i}"),)) for i, s in enumerate(reg.sites))
    with api_rig(tmp_path, Registry(named)) as rig, rig.client() as c:
        everything = c.get("/api/v1/names").json()["names"]
        assert everything == {s.name: f"Site {i}" for i, s in enumerate(reg.sites)}
        li = c.get("/api/v1/names", headers={"Authorization": f"Bearer {c.tokens['li']}"}).json()["names"]
        assert li == {reg.sites[0].name: "Site 0"}
