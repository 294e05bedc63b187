"""Ingest guards against a real Mosquitto and InfluxDB (issue 11): a retained reading is stored once,
when it is published, and never again when the broker replays its copy at a reconnect; and stored
history is not rewritten silently."""

from __future__ import annotations

import time

import orjson
import pytest
import yaml

from tests.support.publisher import TestPublisher
from tests.support.registries import write_registry
from tests.support.service import HazmonProcess

pytestmark = pytest.mark.integration


def test_a_retained_reading_is_stored_once_not_again_at_every_reconnect(
    tmp_path, mosquitto, influx, influx_client
):
    registry = write_registry(tmp_path / "registry.yaml", n_sites=1, sensors_per_site=3)
    service = HazmonProcess(tmp_path / "hazmon", registry, mosquitto.url, influx.url)
    service.start()
    pub = TestPublisher(mosquitto.port, f"test-pub-{tmp_path.name}")
    try:
        # no `ts`: a gateway that leaves the time to the receiver; retain=1 by mistake
        body = orjson.dumps({"readings": [{"sensor": "LT-000", "v": 1.5}, {"sensor": "LT-001", "v": 2.5}]})
        pub.publish("hazmon/v1/site-00/gw-01/readings", body, retain=True)
        pub.wait_all_acked()
        deadline = time.monotonic() + 20
        while influx_client.count_points() < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert influx_client.count_points() == 2  # the live publish is a reading like any other
        for restart in range(2):  # each reconnect subscribes again, and the broker replays its copy
            service.stop()
            time.sleep(1.1)  # a replay stamped at receipt would land on a new millisecond
            service.start()
            rejected = service.wait_healthy(lambda h: True) and service.get("/api/v1/ingest/stats").json()
            deadline = time.monotonic() + 10
            while rejected["rejected_by_reason"].get("retained", 0) < 1 and time.monotonic() < deadline:
                time.sleep(0.2)
                rejected = service.get("/api/v1/ingest/stats").json()
            assert rejected["rejected_by_reason"] == {"retained": 1}, (restart, rejected)
        time.sleep(1.0)
        assert influx_client.count_points() == 2
    finally:
        pub.publish("hazmon/v1/site-00/gw-01/readings", b"", retain=True)  # clear the broker's copy
        pub.close()
        service.stop()


def test_stored_history_is_not_rewritten_silently_even_after_a_restart(
    tmp_path, mosquitto, influx, influx_client
):
    """Issue 11: a second publish at a stored timestamp replaced the value in InfluxDB, silently.
    Now a sensor without a registered device keeps its value (reject `rewrite`), before and after a
    restart of hazmon (then the store is asked), and its own device's correction of a device-bound
    sensor is accepted; every change is in the audit trail."""
    path = write_registry(tmp_path / "registry.yaml", n_sites=1, sensors_per_site=3)
    doc = yaml.safe_load(path.read_text())
    del doc["sites"][0]["sensors"][1]["device"]  # LT-001: any gateway of the site may publish it
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    service = HazmonProcess(tmp_path / "hazmon", path, mosquitto.url, influx.url)
    service.start()
    pub = TestPublisher(mosquitto.port, f"test-pub-{tmp_path.name}")
    t0 = int(time.time() * 1000) - 60_000

    def stored() -> dict[str, list[float]]:
        series = influx_client.read("site-00", ["LT-000", "LT-001"], t0 - 1, t0 + 1)
        return {s.sensor: s.values["value"].tolist() for s in series}

    def wait_for(predicate, what: str) -> dict:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            stats = service.get("/api/v1/ingest/stats").json()
            if predicate(stats):
                return stats
            time.sleep(0.2)
        raise AssertionError(f"{what}: {stats}")

    try:
        pub.publish_readings("site-00", "gw-01", t0, {"LT-000": 10.0, "LT-001": 20.0})
        wait_for(lambda s: s["points_written"] >= 2, "first readings stored")
        pub.publish_readings("site-00", "gw-02", t0, {"LT-001": 99.0})  # another gateway of the site
        pub.publish_readings("site-00", "gw-01", t0, {"LT-000": 11.0})  # the sensor's own gateway
        wait_for(
            lambda s: s["rejected_by_reason"].get("rewrite") == 1 and s["history_rewrites"] == 1, "changes"
        )
        service.stop()
        service.start()  # a new process remembers nothing: the old timestamp is checked in InfluxDB
        pub.publish_readings("site-00", "gw-01", t0, {"LT-001": 77.0})
        wait_for(lambda s: s["rejected_by_reason"].get("rewrite") == 1, "refused after the restart")
        pub.wait_all_acked()
        time.sleep(1.0)
        assert stored() == {"LT-000": [11.0], "LT-001": [20.0]}
        audit = [
            (r["user"], r["outcome"], r["source"])
            for r in service.get("/api/v1/audit").json()["data"]
            if r["action"] == "history_rewrite"
        ]
        assert audit == [
            ("device:gw-01", "refused", "LT-001"),
            ("device:gw-01", "ok", "LT-000"),
            ("device:gw-02", "refused", "LT-001"),
        ]
    finally:
        pub.close()
        service.stop()
