"""Readings published through real Mosquitto land in real InfluxDB exactly once, through faults.

Each test publishes a known set of unique (sensor, timestamp) readings, injects one fault by
really stopping or killing a process mid-stream, and then counts the points in InfluxDB.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from ingest.influx import InfluxClient
from tests.support.publisher import TestPublisher
from tests.support.registries import write_registry
from tests.support.service import HazmonProcess
from tests.support.small_fs import small_tmpfs

pytestmark = pytest.mark.integration

SITES = [f"site-{i:02d}" for i in range(3)]
SENSORS = [f"LT-{j:03d}" for j in range(20)]


def stream(pub: TestPublisher, rounds: int, pace_s: float, faults: dict[int, Callable[[], None]]) -> int:
    """Publish `rounds` messages per site, calling faults[r] before round r; return readings sent."""
    rng = random.Random(7)
    base_ts = int(time.time() * 1000) - 10 * 60 * 1000
    sent = 0
    for r in range(rounds):
        if r in faults:
            faults[r]()
        t0 = time.monotonic()
        for site in SITES:
            pub.publish_readings(
                site, "gw-01", base_ts + r * 10, {s: round(rng.uniform(0, 90), 3) for s in SENSORS}
            )
            sent += len(SENSORS)
        time.sleep(max(0.0, pace_s - (time.monotonic() - t0)))
    return sent


def wait_for_count(client: InfluxClient, expected: int, timeout_s: float = 90) -> int:
    deadline = time.monotonic() + timeout_s
    count = -1
    while time.monotonic() < deadline:
        try:
            count = client.count_points()
        except Exception:
            count = -1
        if count >= expected:
            time.sleep(1.5)  # anything doubled or late would show up now
            return client.count_points()
        time.sleep(0.5)
    return count


@pytest.fixture
def setup(tmp_path, mosquitto, influx, influx_client):
    registry = write_registry(tmp_path / "registry.yaml", n_sites=len(SITES), sensors_per_site=len(SENSORS))
    service = HazmonProcess(tmp_path / "hazmon", registry, mosquitto.url, influx.url)
    service.start()
    pub = TestPublisher(mosquitto.port, f"test-pub-{tmp_path.name}")
    yield service, pub
    pub.close()
    service.stop()


def test_every_published_reading_is_stored_exactly_once(setup, influx_client):
    service, pub = setup
    sent = stream(pub, rounds=200, pace_s=0.01, faults={})
    pub.wait_all_acked()
    assert wait_for_count(influx_client, sent) == sent
    stats = service.get("/api/v1/ingest/stats").json()
    assert stats["readings_rejected"] == 0
    assert stats["points_spooled"] == 0


def test_broker_killed_and_restarted_mid_stream_loses_nothing(setup, mosquitto, influx_client):
    _service, pub = setup

    def crash_broker() -> None:
        mosquitto.kill()
        time.sleep(1.0)
        mosquitto.start()

    sent = stream(pub, rounds=300, pace_s=0.02, faults={120: crash_broker})
    pub.wait_all_acked(timeout_s=60)
    assert wait_for_count(influx_client, sent) == sent


def test_influxdb_down_for_30s_spools_and_replays_in_full(setup, influx, influx_client):
    service, pub = setup
    observed: dict = {}

    def stop_influx() -> None:
        influx.stop()

    def during_outage() -> None:
        observed.update(
            service.wait_healthy(lambda h: h["spool_bytes"] > 0 and not h["influx_up"], timeout_s=20)
        )

    def start_influx() -> None:
        influx.start()

    # 0.1 s per round: InfluxDB is away from round 50 to round 360, i.e. at least 31 s.
    t = {}
    faults = {
        50: lambda: (stop_influx(), t.setdefault("down", time.monotonic())),
        80: during_outage,
        360: lambda: (t.setdefault("up", time.monotonic()), start_influx()),
    }
    sent = stream(pub, rounds=420, pace_s=0.1, faults=faults)
    pub.wait_all_acked()
    assert t["up"] - t["down"] >= 30
    assert observed["status"] == "degraded"
    assert wait_for_count(influx_client, sent) == sent
    health = service.wait_healthy(lambda h: h["spool_bytes"] == 0)
    assert health["influx_up"]
    stats = service.get("/api/v1/ingest/stats").json()
    assert stats["points_replayed"] > 0 and stats["points_spooled"] == stats["points_replayed"]


def test_hazmon_killed_mid_stream_loses_nothing_after_restart(setup, influx_client):
    service, pub = setup

    def crash_hazmon() -> None:
        service.kill()
        time.sleep(1.0)
        service.start()

    sent = stream(pub, rounds=300, pace_s=0.02, faults={100: crash_hazmon})
    pub.wait_all_acked()
    assert wait_for_count(influx_client, sent) == sent


def test_hazmon_killed_while_spooling_replays_the_spool_after_restart(setup, influx, influx_client):
    service, pub = setup

    def stop_influx_then_crash() -> None:
        influx.stop()

    def crash_with_full_spool() -> None:
        service.wait_healthy(lambda h: h["spool_bytes"] > 0)
        service.kill()
        service.start()
        influx.start()

    sent = stream(
        pub, rounds=200, pace_s=0.02, faults={40: stop_influx_then_crash, 120: crash_with_full_spool}
    )
    pub.wait_all_acked()
    assert wait_for_count(influx_client, sent) == sent


def test_a_spool_on_a_full_disk_holds_readings_unacknowledged_and_loses_none(
    tmp_path, mosquitto, influx, influx_client
):
    """InfluxDB down and the spool on a 256 KiB filesystem: the disk fills (ENOSPC, not the spool's
    own limit), hazmon stops acknowledging and says so in /healthz; the broker keeps the rest, and
    once InfluxDB is back every published reading is stored and no partial segment is left."""
    registry = write_registry(tmp_path / "registry.yaml", n_sites=len(SITES), sensors_per_site=len(SENSORS))
    workdir = tmp_path / "hazmon"
    with small_tmpfs(workdir / "data" / "spool", size_kib=256) as spool_dir:
        service = HazmonProcess(workdir, registry, mosquitto.url, influx.url)
        service.start()
        pub = TestPublisher(mosquitto.port, f"test-pub-{tmp_path.name}")
        try:
            influx.stop()
            sent = stream(pub, rounds=200, pace_s=0.02, faults={})  # 12 000 readings, about 1 MB encoded
            pub.wait_all_acked()
            held = service.wait_healthy(lambda h: h["spool_error"] is not None, timeout_s=60)
            assert "No space left" in held["spool_error"] and held["status"] == "degraded"
            assert service.get("/api/v1/ingest/stats").json()["spool_refusals"] > 0
            influx.start()
            assert wait_for_count(influx_client, sent, timeout_s=120) == sent
            health = service.wait_healthy(lambda h: h["spool_error"] is None and h["spool_bytes"] == 0)
            assert health["influx_up"]
            assert not list(spool_dir.glob("*.tmp"))
        finally:
            pub.close()
            service.stop()
