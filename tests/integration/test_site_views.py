"""The sites API of a running hazmon over real MQTT and InfluxDB: colours, values, history, forecast."""

from __future__ import annotations

import time

import numpy as np
import pytest
import yaml

from hazmon.devservers import free_port
from tests.support.events import MonotonicMs, wait_for
from tests.support.publisher import TestPublisher
from tests.support.service import HazmonProcess

pytestmark = pytest.mark.integration

CHEM, DAM = "chem-01", "dam-01"


def write_site_registry(path):
    """A chemical site with a gas detector (critical kind) and a tank, and a quiet tailings pond.

    Long reporting intervals, so no sensor goes stale while the test runs.
    """
    chem = {
        "id": CHEM,
        "name": "化工测试站",
        "kind": "chemical",
        "grade": 2,
        "city": "上海市",
        "district": "金山区",
        "location": {"lat": 30.72, "lon": 121.34},
        "sensors": [
            {
                "id": "GT-101",
                "name": "可燃气体探测器",
                "kind": "gas_lel",
                "unit": "%LEL",
                "range": [0, 100],
                "interval_s": 60,
                "limits": {"h": 25, "hh": 50},
                "deadband": 1,
                "device": "gw-01",
            },
            {
                "id": "LT-201",
                "name": "储罐液位",
                "kind": "level",
                "unit": "m",
                "range": [0, 16],
                "interval_s": 60,
                "limits": {"h": 14.2, "hh": 14.8},
                "device": "gw-01",
            },
        ],
    }
    dam = {
        "id": DAM,
        "name": "尾矿库测试",
        "kind": "tailings",
        "grade": 3,
        "city": "马鞍山市",
        "sensors": [
            {
                "id": "PL-01",
                "name": "库水位",
                "kind": "pond_level",
                "unit": "m",
                "range": [0, 50],
                "interval_s": 600,
                "device": "gw-01",
            }
        ],
    }
    path.write_text(yaml.safe_dump({"sites": [chem, dam]}, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def rig(tmp_path, mosquitto, influx):
    registry = write_site_registry(tmp_path / "registry.yaml")
    svc = HazmonProcess(tmp_path / "hazmon", registry, mosquitto.url, influx.url)
    svc.start()
    pub = TestPublisher(mosquitto.port, f"gw-{tmp_path.name}")
    yield svc, pub
    pub.close()
    svc.stop()


def sites_by_id(svc) -> dict[str, dict]:
    r = svc.get("/api/v1/sites")
    assert r.status_code == 200, r.text
    return {s["id"]: s for s in r.json()["data"]}


def test_sites_colours_latest_values_history_and_forecast(rig):
    svc, pub = rig
    clock = MonotonicMs()
    rng = np.random.default_rng(3)
    t_first = clock()

    sites = sites_by_id(svc)
    assert sites[CHEM]["risk_colour"] == "blue" and sites[CHEM]["data_age_s"] is None
    assert sites[CHEM]["location"] == {"lat": 30.72, "lon": 121.34} and sites[CHEM]["sensor_count"] == 2
    assert sites[DAM]["kind"] == "tailings" and sites[DAM]["location"] is None

    def publish(gas: float, level: float = 5.0) -> None:
        noise = rng.uniform(-0.2, 0.2, 2).tolist()
        pub.publish_readings(
            CHEM,
            "gw-01",
            clock(),
            {"GT-101": round(gas + noise[0], 2), "LT-201": round(level + noise[1] / 10, 3)},
        )
        time.sleep(0.05)

    for _ in range(6):
        publish(10.0)
    pub.wait_all_acked()
    detail = wait_for(
        lambda: svc.get(f"/api/v1/sites/{CHEM}").json(),
        lambda d: d["sensors"][0]["value"] is not None and d["sensors"][1]["value"] is not None,
    )
    gas, tank = detail["sensors"]
    assert gas["id"] == "GT-101" and abs(gas["value"] - 10.0) <= 0.3
    assert abs(tank["value"] - 5.0) <= 0.05 and tank["limits"] == {
        "ll": None,
        "l": None,
        "h": 14.2,
        "hh": 14.8,
    }
    assert gas["time"].endswith("+08:00") and gas["time_ms"] >= t_first and gas["alarms"] == []
    assert detail["risk_colour"] == "blue" and detail["data_age_s"] is not None

    # the gas climbs in steps under 5 % of the range (a process change, not a spike): H, then HH
    for v in range(14, 31, 4):  # 14 .. 30: over H (25), a HIGH alarm for a gas detector
        publish(float(v))
    pub.wait_all_acked()
    wait_for(lambda: sites_by_id(svc)[CHEM], lambda s: s["risk_colour"] == "orange")
    for v in range(34, 59, 4):  # .. 58: over HH (50), CRITICAL
        publish(float(v))
    pub.wait_all_acked()
    chem = wait_for(lambda: sites_by_id(svc)[CHEM], lambda s: s["risk_colour"] == "red")
    assert chem["worst_priority"] == "critical" and chem["alarm_counts"]["unack"] == 2
    assert sites_by_id(svc)[DAM]["risk_colour"] == "blue"
    gas = svc.get(f"/api/v1/sites/{CHEM}").json()["sensors"][0]
    assert {(a["kind"], a["state"]) for a in gas["alarms"]} == {("H", "UNACK"), ("HH", "UNACK")}

    # history: raw points once the writer flushed them, with limits and the raise markers
    n_sent = 6 + 5 + 7
    path = f"/api/v1/sites/{CHEM}/sensors/GT-101/history?start={t_first - 1000}&end={clock() + 1000}"
    hist = wait_for(lambda: svc.get(path).json(), lambda h: h.get("points", 0) >= n_sent, timeout_s=30)
    assert hist["resolution"] == "raw" and hist["limits"]["hh"] == 50
    assert hist["series"]["t_ms"] == sorted(hist["series"]["t_ms"]) and max(hist["series"]["value"]) > 50
    assert {(m["type"], m["kind"]) for m in hist["alarms"]} >= {("AlarmRaised", "H"), ("AlarmRaised", "HH")}
    day = svc.get(f"/api/v1/sites/{CHEM}/sensors/GT-101/history").json()
    assert day["resolution"] == "1m" and day["end_ms"] - day["start_ms"] == 86_400_000

    # a quiet tank has no forecast
    assert svc.get(f"/api/v1/sites/{CHEM}/sensors/LT-201/forecast").json()["active"] is False


def test_unknown_ids_are_404_and_bad_times_422(rig):
    svc, _ = rig
    assert svc.get("/api/v1/sites/nowhere").status_code == 404
    assert svc.get(f"/api/v1/sites/{CHEM}/sensors/NOPE/history").status_code == 404
    assert (
        svc.get(f"/api/v1/sites/{DAM}/sensors/GT-101/forecast").status_code == 404
    )  # sensor of another site
    r = svc.get(f"/api/v1/sites/{CHEM}/sensors/GT-101/history?start=last-tuesday")
    assert r.status_code == 422 and "start" in r.json()["detail"]
    r = svc.get(f"/api/v1/sites/{CHEM}/sensors/GT-101/history?start=2026-01-01T00:00:00")
    assert r.status_code == 422 and "offset" in r.json()["detail"]
    assert [s["id"] for s in svc.get("/api/v1/sites?city=马鞍山市").json()["data"]] == [DAM]


def test_history_is_503_when_influxdb_is_unreachable(tmp_path, mosquitto):
    registry = write_site_registry(tmp_path / "registry.yaml")
    nothing_there = f"http://127.0.0.1:{free_port()}"
    svc = HazmonProcess(tmp_path / "hazmon", registry, mosquitto.url, nothing_there)
    svc.start()
    try:
        r = svc.get(f"/api/v1/sites/{CHEM}/sensors/GT-101/history")
        assert r.status_code == 503 and "unreachable" in r.json()["detail"], r.text
        assert svc.get("/api/v1/sites").status_code == 200  # the rest does not need InfluxDB
    finally:
        svc.stop()
