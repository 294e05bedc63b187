"""Computed sensors against a real `hazmon run`, Mosquitto and InfluxDB (issue 12, part 1): a tailings
pond's freeboard (安全超高 = crest - pond level) is derived from each pond-level reading, stored in
InfluxDB like a measured reading, alarmed on its own limits and shown by the API like any sensor."""

from __future__ import annotations

import time

import orjson
import pytest
import yaml

from tests.support.publisher import TestPublisher
from tests.support.service import HazmonProcess

pytestmark = pytest.mark.integration

SITE = "pond-01"
CREST = 86.5


def write_pond_registry(path):
    level = {"id": "PL-01", "name": "库水位", "kind": "level", "unit": "m", "range": [0, 100]}
    level.update({"interval_s": 60, "device": "rtu-1"})
    freeboard = {
        "id": "FB-01", "name": "安全超高", "kind": "level", "unit": "m", "range": [-10, 20], "interval_s": 60,
        "limits": {"ll": 0.7, "l": 1.0},
        "compute": {"expr": "crest - pond", "inputs": {"pond": "PL-01"}, "constants": {"crest": CREST}},
    }  # fmt: skip
    site = {"id": SITE, "name": "测试尾矿库", "kind": "tailings", "grade": 3, "sensors": [level, freeboard]}
    path.write_text(yaml.safe_dump({"sites": [site]}, allow_unicode=True))
    return path


def test_a_freeboard_is_derived_stored_alarmed_and_shown_and_cannot_be_published(
    tmp_path, mosquitto, influx, influx_client
):
    service = HazmonProcess(
        tmp_path / "hazmon", write_pond_registry(tmp_path / "registry.yaml"), mosquitto.url, influx.url
    )
    service.start()
    pub = TestPublisher(mosquitto.port, f"test-pub-{tmp_path.name}")
    t0 = int(time.time() * 1000) - 10 * 60_000
    try:
        levels = [84.0, 85.0, 85.7, 86.0]  # freeboard 2.5, 1.5, 0.8 (below L), 0.5 (below LL)
        for i, level in enumerate(levels):
            pub.publish_readings(SITE, "rtu-1", t0 + i * 60_000, {"PL-01": level})
        pub.publish(
            f"hazmon/v1/{SITE}/rtu-1/readings", orjson.dumps({"readings": [{"sensor": "FB-01", "v": 9.0}]})
        )
        pub.wait_all_acked()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (series,) = influx_client.read(SITE, ["FB-01"], t0 - 1, t0 + 10 * 60_000) or [None]
            if series is not None and len(series.ts_ms) == len(levels):
                break
            time.sleep(0.3)
        assert series.ts_ms.tolist() == [t0 + i * 60_000 for i in range(len(levels))]
        assert series.values["value"].tolist() == pytest.approx([CREST - v for v in levels])
        stats = service.get("/api/v1/ingest/stats").json()
        assert stats["readings_computed"] == len(levels)
        assert stats["rejected_by_reason"] == {"computed": 1}  # a gateway cannot publish a freeboard
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            sensors = {s["id"]: s for s in service.get(f"/api/v1/sites/{SITE}").json()["sensors"]}
            if {a["kind"] for a in sensors["FB-01"]["alarms"]} >= {"L", "LL"}:
                break
            time.sleep(0.3)
        assert {a["kind"] for a in sensors["FB-01"]["alarms"]} >= {"L", "LL"}
        assert sensors["FB-01"]["value"] == pytest.approx(CREST - levels[-1])
    finally:
        pub.close()
        service.stop()


def test_a_restarted_hazmon_seeds_a_rainfall_window_from_influxdb_and_calls_it_good(
    tmp_path, mosquitto, influx, influx_client
):
    """Rainfall over 1 h (`sum_over`, issue 12): an hour of readings taken by one hazmon, then a
    restart; the first live reading's 1 h sum holds the stored hour and is good, not a falsely low
    uncertain one."""
    gauge = {"id": "RG-01", "name": "雨量计", "kind": "rainfall", "unit": "mm", "range": [0, 50]}
    gauge.update({"interval_s": 60, "device": "rtu-1"})
    hourly = {
        "id": "RG-01.1h", "name": "1小时降雨量", "kind": "rainfall", "unit": "mm", "range": [0, 500],
        "interval_s": 60, "compute": {"expr": "sum_over(rain, 3600)", "inputs": {"rain": "RG-01"}},
    }  # fmt: skip
    site = {"id": "rain-01", "name": "测试尾矿库", "kind": "tailings", "grade": 3, "sensors": [gauge, hourly]}
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump({"sites": [site]}, allow_unicode=True))
    now = int(time.time() * 1000)
    past = [now - m * 60_000 for m in range(62, 0, -1)]

    service = HazmonProcess(tmp_path / "hazmon", registry, mosquitto.url, influx.url)

    def run_and_publish(name: str, times: list[int]) -> None:
        service.start()
        pub = TestPublisher(mosquitto.port, f"test-pub-{name}-{tmp_path.name}")
        try:
            for t in times:
                pub.publish_readings("rain-01", "rtu-1", t, {"RG-01": 0.5})
            pub.wait_all_acked()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                got = influx_client.read("rain-01", ["RG-01.1h"], times[-1], times[-1] + 1)
                if got:
                    break
                time.sleep(0.3)
        finally:
            pub.close()
            service.stop()

    run_and_publish("first", past)
    run_and_publish("again", [now])
    (series,) = influx_client.read("rain-01", ["RG-01.1h"], now, now + 1)
    assert series.values["value"].tolist() == [pytest.approx(0.5 * 60)]
    assert series.values["quality"].tolist() == [0]
