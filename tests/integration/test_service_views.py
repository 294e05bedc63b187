"""The running service over real MQTT: rejects, device status, metrics, and the simulator's fleet."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from ingest.influx import InfluxClient
from tests.support.publisher import TestPublisher
from tests.support.registries import write_registry
from tests.support.service import HazmonProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def service(tmp_path, mosquitto, influx):
    registry = write_registry(tmp_path / "registry.yaml", n_sites=2, sensors_per_site=3)
    svc = HazmonProcess(tmp_path / "hazmon", registry, mosquitto.url, influx.url)
    svc.start()
    yield svc
    svc.stop()


def wait_for(fetch, predicate, timeout_s: float = 15):
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if predicate(value):
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met; last value: {value}")


def test_bad_payloads_are_visible_through_the_api_and_metrics(service, mosquitto):
    pub = TestPublisher(mosquitto.port, "views-pub")
    now = int(time.time() * 1000)
    pub.publish(
        "hazmon/v1/site-00/gw-01/readings",
        b'{"ts": %d, "readings": [{"sensor": "LT-000", "v": 1.5},'
        b' {"sensor": "LT-001", "v": "oops"}, {"sensor": "LT-999", "v": 2}]}' % now,
    )
    pub.publish("hazmon/v1/site-00/gw-01/readings", b"\xff\xfe not json")
    pub.publish("hazmon/v1/site-01/gw-01/status", b"maybe")
    pub.wait_all_acked()
    rejects = wait_for(lambda: service.get("/api/v1/ingest/rejects").json(), lambda r: r["count"] >= 4)
    reasons = {r["reason"] for r in rejects["data"]}
    assert reasons == {"bad_value", "unknown_sensor", "invalid_utf8", "bad_status"}
    assert all(r["topic"].startswith("hazmon/v1/") and r["detail"] for r in rejects["data"])
    metrics = service.get("/metrics").text
    assert 'hazmon_readings_rejected_total{reason="bad_value"} 1' in metrics
    assert "hazmon_readings_accepted_total 1" in metrics
    assert "hazmon_write_latency_seconds_count" in metrics
    pub.close()


def test_device_status_from_last_will_is_tracked(service, mosquitto):
    pub = TestPublisher(mosquitto.port, "views-status")
    pub.publish("hazmon/v1/site-00/gw-01/status", b"online", retain=True)
    pub.publish("hazmon/v1/site-01/gw-01/status", b"offline", retain=True)
    pub.wait_all_acked()
    devices = wait_for(lambda: service.get("/api/v1/ingest/devices").json(), lambda d: d["count"] == 2)
    assert {(d["site"], d["status"]) for d in devices["data"]} == {
        ("site-00", "online"),
        ("site-01", "offline"),
    }
    pub.close()


def test_health_reports_both_servers(service):
    health = service.wait_healthy(lambda h: h["influx_up"] is not None)
    assert health["mqtt_connected"] and health["sites"] == 2 and health["sensors"] == 6


def test_simulated_example_fleet_flows_into_influxdb(tmp_path, mosquitto, influx):
    svc = HazmonProcess(tmp_path / "hazmon-examples", tmp_path / "unused", mosquitto.url, influx.url)
    svc.env.pop("HAZMON_REGISTRY")  # the default: the example registry
    svc.start()
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "hazmon.cli",
                "simulate",
                "--mqtt-url",
                mosquitto.url,
                "--speed",
                "max",
                "--duration",
                "2m",
                "--quiet",
                "--json-summary",
                "--client-id",
                "sim-examples",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        client = InfluxClient(influx.url)
        wait_for(
            lambda: svc.get("/api/v1/ingest/stats").json()["readings_accepted"],
            lambda n: n >= summary["readings"],
            timeout_s=30,
        )
        stats = svc.get("/api/v1/ingest/stats").json()
        assert stats["readings_accepted"] == summary["readings"] > 0
        # the examples' computed sensors (rolling rainfall, a GNSS velocity, a TWA and a STEL) are stored too
        assert stats["readings_computed"] > 0
        want = summary["readings"] + stats["readings_computed"]
        stored = wait_for(client.count_points, lambda n: n >= want, timeout_s=30)
        assert stored == want
        assert stats["readings_rejected"] == 0
    finally:
        svc.stop()
