"""The sites REST API over the service bootstrap() builds, its reading store in memory
(tests/support/api_rig.py): answers, scopes, 4xx, and 503/502 when the store is down or refuses."""

from __future__ import annotations

import time

import numpy as np
import pytest

from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from ingest.store import StoreRejected, StoreUnavailable
from sensors.model import Limits, Location, Registry, Sensor, Site
from tests.support.api_rig import api_rig
from tests.unit.conftest import make_registry

T0 = 1_795_392_000_000


def change(site, sensor, kind, active, t, prio=Priority.MEDIUM, **kw):
    return ConditionChange(site, sensor, kind, active, t, prio, kw.pop("level", kind.name), **kw)


@pytest.fixture
def rig(tmp_path):
    """Site-0 with a place, latest values, an HH alarm and an early warning; the store holds S0's readings."""
    base = make_registry()
    site0 = Site(
        id="site-0",
        name="站0",
        kind="chemical",
        grade=2,
        sensors=base.sites[0].sensors,
        location=Location(31.2, 121.5),
        city="上海市",
        district="金山区",
    )
    registry = Registry((site0, base.sites[1]))
    with api_rig(tmp_path, registry) as api:
        engine, book, store = api.service.alarms.engine, api.service.alarms.book, api.store
        now = time.time_ns() // 1_000_000
        engine.last_x[0], engine.last_t[0] = 12.5, now - 2_000  # site-0 S0
        engine.last_x[1], engine.last_t[1] = np.nan, now - 1_000  # site-0 S1: heard, not a number
        book.on_changes(
            [
                change(
                    "site-0", "S0", ConditionKind.HH, True, now - 5_000, Priority.HIGH, value=18.5, limit=18.0
                ),
                change(
                    "site-0",
                    "S2",
                    ConditionKind.EARLY_WARNING,
                    True,
                    now - 4_000,
                    Priority.MEDIUM,
                    level="H",
                    value=15.0,
                    limit=16.5,
                    eta_ms=now + 3_600_000,
                    eta_low_ms=now + 3_000_000,
                    eta_high_ms=now + 4_000_000,
                    message="预计1小时后超高限",
                ),
            ],
            now,
        )
        # S0 within the last hour: a good 1.0, a bad reading the database holds no value for, and a
        # minute later 2.0
        m0 = ((now - 3_600_000) // 60_000 + 1) * 60_000
        store.put("site-0", "S0", [m0 + 1_000, m0 + 2_000, m0 + 61_000], [1.0, np.nan, 2.0], [0, 2, 0])
        with api.client() as c:
            yield c, book, store, now


def test_sites_list_with_colour_counts_and_age(rig):
    client, _, _, _ = rig
    body = client.get("/api/v1/sites").json()
    assert body["count"] == 2
    s0, s1 = body["data"]
    assert s0["id"] == "site-0" and s0["location"] == {"lat": 31.2, "lon": 121.5}
    assert s0["city"] == "上海市" and s0["district"] == "金山区" and s0["grade"] == 2
    assert s0["sensor_count"] == 5 and s1["sensor_count"] == 6
    assert s0["alarm_counts"]["unack"] == 2 and s0["alarm_counts"]["ack"] == 0
    assert s0["worst_priority"] == "high" and s0["risk_colour"] == "orange"
    assert 0 <= s0["data_age_s"] < 60
    assert s1["risk_colour"] == "blue" and s1["worst_priority"] is None and s1["data_age_s"] is None
    assert s1["location"] is None


def test_sites_filter_by_city_and_district(rig):
    client, _, _, _ = rig
    assert [s["id"] for s in client.get("/api/v1/sites", params={"city": "上海市"}).json()["data"]] == [
        "site-0"
    ]
    assert client.get("/api/v1/sites", params={"district": "别处"}).json()["count"] == 0


def test_site_detail_has_sensors_latest_values_and_alarms(rig):
    client, _, _, now = rig
    body = client.get("/api/v1/sites/site-0").json()
    assert body["risk_colour"] == "orange" and len(body["sensors"]) == 5
    by_id = {s["id"]: s for s in body["sensors"]}
    s0 = by_id["S0"]
    assert s0["value"] == 12.5 and s0["time_ms"] == now - 2_000 and s0["time"].endswith("+08:00")
    assert s0["limits"] == {"ll": None, "l": None, "h": 16.5, "hh": 18.0}
    assert [(a["kind"], a["state"], a["priority"]) for a in s0["alarms"]] == [("HH", "UNACK", "high")]
    assert by_id["S1"]["value"] is None and by_id["S1"]["time_ms"] == now - 1_000  # NaN reading
    assert by_id["S3"]["value"] is None and by_id["S3"]["time"] is None and by_id["S3"]["data_age_s"] is None


def test_unknown_site_and_sensor_are_404(rig):
    client, _, _, _ = rig
    assert client.get("/api/v1/sites/nowhere").status_code == 404
    r = client.get("/api/v1/sites/site-0/sensors/ONLY-B/history")  # exists on site-1 only
    assert r.status_code == 404 and "ONLY-B" in r.json()["detail"]
    assert client.get("/api/v1/sites/nowhere/sensors/S0/forecast").status_code == 404


def test_history_raw_for_short_ranges_with_limits_and_markers(rig):
    client, _, influx, now = rig
    r = client.get(
        "/api/v1/sites/site-0/sensors/S0/history",
        params={"start": str(now - 3_600_000), "end": str(now + 1)},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resolution"] == "raw" and influx.calls[-1].resolution == "raw"
    assert body["series"]["value"] == [1.0, None, 2.0] and body["series"]["quality"] == [0, 2, 0]
    assert body["series"]["mean"] is None and body["points"] == 3 and body["truncated"] is False
    assert body["limits"]["hh"] == 18.0
    assert [(m["type"], m["kind"], m["level"], m["priority"]) for m in body["alarms"]] == [
        ("AlarmRaised", "HH", "HH", "high")
    ]


def test_history_defaults_to_a_day_of_one_minute_rollups(rig):
    client, _, influx, _ = rig
    body = client.get("/api/v1/sites/site-0/sensors/S0/history").json()
    assert body["resolution"] == "1m" and body["end_ms"] - body["start_ms"] == 86_400_000
    assert influx.calls[-1].resolution == "1m"
    assert body["series"]["min"] == [1.0, 2.0] and body["series"]["count"] == [1, 1]
    assert body["series"]["value"] is None


def test_history_takes_iso_times_with_offsets(rig):
    client, _, influx, _ = rig
    r = client.get(
        "/api/v1/sites/site-0/sensors/S0/history",
        params={"start": "2026-11-20T08:00:00+08:00", "end": "2026-11-20T02:00:00Z"},
    )
    assert r.status_code == 200 and r.json()["resolution"] == "raw"
    assert (influx.calls[-1].start_ms, influx.calls[-1].end_ms) == (
        1_795_132_800_000,
        1_795_140_000_000,
    )  # 00:00Z to 02:00Z
    # "+" sent unencoded arrives as a blank; still understood
    r = client.get(
        "/api/v1/sites/site-0/sensors/S0/history?start=2026-11-20T08:00:00+08:00&end=1795140000000"
    )
    assert r.status_code == 200 and r.json()["start_ms"] == 1_795_132_800_000


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"start": "yesterday"}, "not ISO 8601"),
        ({"start": "2026-11-20T08:00:00"}, "offset"),
        ({"start": "2000", "end": "1000"}, "before end"),
        ({"start": "0", "end": str(401 * 86_400_000)}, "400 days"),
        ({"start": "99999999999999999"}, "not ISO 8601"),
        ({"end": "5000000000000"}, "out of range"),
    ],
)
@pytest.mark.deep
def test_bad_history_times_are_422_with_a_message(rig, params, needle):
    client, _, _, _ = rig
    r = client.get("/api/v1/sites/site-0/sensors/S0/history", params=params)
    assert r.status_code == 422 and needle in r.json()["detail"], r.text


def test_history_when_influxdb_is_down_is_503_and_refusal_502(rig):
    client, _, influx, _ = rig
    influx.fail = StoreUnavailable("InfluxDB unreachable: ConnectError")
    r = client.get("/api/v1/sites/site-0/sensors/S0/history")
    assert r.status_code == 503 and "unreachable" in r.json()["detail"]
    influx.fail = StoreRejected(400, "bad query")
    assert client.get("/api/v1/sites/site-0/sensors/S0/history").status_code == 502


def test_forecast_active_from_the_early_warning_and_inactive_elsewhere(rig):
    client, _, _, now = rig
    body = client.get("/api/v1/sites/site-0/sensors/S2/forecast").json()
    assert body["active"] is True and body["level"] == "H" and body["limit"] == 16.5
    assert body["eta_ms"] == now + 3_600_000 and body["eta_low_ms"] == now + 3_000_000
    assert body["eta_high_ms"] == now + 4_000_000 and body["eta"].endswith("+08:00")
    assert body["message"] == "预计1小时后超高限"
    quiet = client.get("/api/v1/sites/site-0/sensors/S0/forecast").json()
    assert quiet["active"] is False and quiet["eta_ms"] is None and quiet["forecast_enabled"] is False


@pytest.mark.deep
def test_sites_list_is_fast_for_two_thousand_sites(tmp_path, capsys):
    sites = []
    for i in range(2_000):
        sid = f"site-{i:04d}"
        sensors = tuple(
            Sensor(f"S{j}", sid, "s", "level", "m", (0.0, 20.0), 10.0, Limits(h=16.0)) for j in range(50)
        )
        sites.append(Site(sid, f"站{i}", "chemical", 3, sensors, city="c", district=f"d{i % 10}"))
    registry = Registry(tuple(sites))
    with api_rig(tmp_path, registry) as api, api.client() as client:
        api.service.alarms.engine.last_t[:] = T0
        api.service.alarms.book.on_changes(
            [
                change(f"site-{i:04d}", "S0", ConditionKind.H, True, T0, Priority.MEDIUM)
                for i in range(0, 2_000, 2)
            ],
            T0,
        )
        client.get("/api/v1/sites")  # the slot map is built on first use
        t0 = time.perf_counter()
        body = client.get("/api/v1/sites").json()
        took = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\nGET /sites, 2000 sites / 100000 sensors / 1000 alarms: {took * 1000:.0f} ms")  # noqa: T201
    assert body["count"] == 2_000
    assert sum(s["risk_colour"] == "yellow" for s in body["data"]) == 1_000


def test_a_scoped_user_sees_only_their_sites_and_the_rest_is_404(rig):
    client, _, _, _ = rig
    li = {"Authorization": f"Bearer {client.tokens['li']}"}  # operator of site-0 only
    body = client.get("/api/v1/sites", headers=li).json()
    assert [s["id"] for s in body["data"]] == ["site-0"]
    assert client.get("/api/v1/sites/site-1", headers=li).status_code == 404
    assert client.get("/api/v1/sites/site-1/sensors/S0/history", headers=li).status_code == 404
    assert client.get("/api/v1/sites/site-1/sensors/S0/forecast", headers=li).status_code == 404
    assert client.get("/api/v1/sites/site-0", headers=li).status_code == 200
