"""Jurisdiction levels (issue 13 item 4): province and park scopes beside city and district, and the
aggregates a regulator reads per area, only of the sites in scope."""

from __future__ import annotations

import time

import pytest

from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from api.auth.errors import InvalidUserData
from api.auth.model import Scope
from sensors.model import Registry, Site
from tests.support.api_rig import api_rig
from tests.unit.conftest import make_registry


def sites() -> Registry:
    s = make_registry(n_sites=4).sites
    places = [
        ("广东省", "江门市", "江海区", "江门化工集中区", 1),
        ("广东省", "江门市", "蓬江区", None, 2),
        ("广东省", "佛山市", "南海区", "江门化工集中区", 3),
        ("湖南省", "郴州市", "苏仙区", None, 2),
    ]
    return Registry(
        tuple(
            Site(site.id, site.name, "chemical", grade, site.sensors, province=p, city=c, district=d, park=k)
            for site, (p, c, d, k, grade) in zip(s, places, strict=True)
        )
    )


def test_province_park_city_and_district_scopes_cover_what_they_name():
    reg = sites()
    covered = {
        "广东省": Scope.jurisdiction(None, province="广东省"),
        "广东省江门市": Scope.jurisdiction("江门市", province="广东省"),
        "江门市江海区": Scope.jurisdiction("江门市", "江海区"),
        "park": Scope.of_park("江门化工集中区"),
    }
    got = {k: [s.id for s in reg.sites if scope.covers(s)] for k, scope in covered.items()}
    assert got == {
        "广东省": ["site-0", "site-1", "site-2"],
        "广东省江门市": ["site-0", "site-1"],
        "江门市江海区": ["site-0"],
        "park": ["site-0", "site-2"],
    }
    for scope in covered.values():
        assert Scope.from_dict(scope.to_dict()) == scope
    assert Scope.jurisdiction(None, province="广东省").describe() == "广东省 (whole province)"


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("jurisdiction", {}),
        ("jurisdiction", {"district": "江海区", "province": "广东省"}),
        ("park", {}),
        ("park", {"park": "x", "city": "江门市"}),
        ("all", {"province": "广东省"}),
    ],
)
def test_malformed_scopes_are_refused(kind, fields):
    with pytest.raises(InvalidUserData):
        Scope(kind, **fields)


def test_the_api_aggregates_per_area_within_the_callers_scope_and_filters_sites_by_province_and_park(
    tmp_path,
):
    with api_rig(tmp_path, sites()) as api:
        now = time.time_ns() // 1_000_000
        api.service.alarms.book.on_changes(
            [ConditionChange("site-0", "S0", ConditionKind.HH, True, now - 60_000, Priority.CRITICAL, "HH")],
            now,
        )
        with api.client() as client:  # all sites
            by_city = {a["name"]: a for a in client.get("/api/v1/jurisdictions?level=city").json()["data"]}
            assert set(by_city) == {"江门市", "佛山市", "郴州市"}
            jm = by_city["江门市"]
            assert (jm["sites"], jm["by_grade"], jm["unacknowledged"]) == (2, {"1": 1, "2": 1}, 1)
            # site-0, grade 1 with a critical alarm in progress: 15 + 1.5 x 20 = 45 (orange by the
            # score), red by the override for a critical alarm still in alarm; site-1 quiet, blue
            assert jm["by_colour"] == {"red": 1, "blue": 1}
            parks = client.get("/api/v1/jurisdictions?level=park").json()["data"]
            assert [(p["name"], p["sites"]) for p in parks] == [("江门化工集中区", 2)]
            districts = client.get("/api/v1/jurisdictions?level=district").json()["data"]
            assert {(d["city"], d["name"]) for d in districts} >= {("江门市", "江海区"), ("佛山市", "南海区")}
            assert client.get("/api/v1/sites?province=湖南省").json()["count"] == 1
            assert client.get("/api/v1/sites?park=江门化工集中区").json()["count"] == 2
        with api.client("li") as li:  # the operator of site-0 only
            (only,) = li.get("/api/v1/jurisdictions?level=province").json()["data"]
            assert (only["name"], only["sites"]) == ("广东省", 1)
