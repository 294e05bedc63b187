"""Ingest guards against a real Mosquitto and InfluxDB (issue 11): a retained reading is stored once,
when it is published, and never again when the broker replays its copy at a reconnect."""

from __future__ import annotations

import time

import orjson
import pytest

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
