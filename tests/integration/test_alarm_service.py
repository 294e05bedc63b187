"""The alarm engine in the running service: readings over real MQTT in, journal and events topic out.

Timestamps: readings carry the wall clock (the time they are published), as a live field does.
The simulated incidents run their physics on a compressed clock, but every message is stamped
with the wall-clock time it is sent: with simulated timestamps behind or ahead of the wall clock,
the service's stale-data checks (which run on the wall clock) would judge the wrong thing.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml

from sensors.registry import load_registry
from simulators.incidents import parse_incident
from simulators.stream import Simulation
from tests.support.events import EventSubscriber, MonotonicMs, wait_for
from tests.support.publisher import TestPublisher
from tests.support.registries import write_alarm_registry
from tests.support.service import HazmonProcess

pytestmark = pytest.mark.integration

SITE = "alarm-01"
N_SENSORS = 100


@pytest.fixture
def rig(tmp_path, mosquitto, influx):
    registry = write_alarm_registry(tmp_path / "registry.yaml", SITE, N_SENSORS)
    svc = HazmonProcess(tmp_path / "hazmon", registry, mosquitto.url, influx.url)
    svc.start()
    sub = EventSubscriber(mosquitto.port, f"scada-{tmp_path.name}")
    pub = TestPublisher(mosquitto.port, f"gw-{tmp_path.name}")
    yield svc, sub, pub
    pub.close()
    sub.close()
    svc.stop()


def test_publish_to_event_latency_over_200_raises_and_clears(rig, capsys):
    svc, sub, pub = rig
    clock = MonotonicMs()
    rng = np.random.default_rng(11)
    # levels sit just below H (80) and step just over it and back: steps smaller than 5 % of the
    # range, so the engine sees a process change, not a spike; noise, so no gauge looks stuck
    level = dict.fromkeys((f"LT-{j:03d}" for j in range(N_SENSORS)), 78.0)

    def publish() -> None:
        noise = rng.uniform(-0.2, 0.2, len(level)).tolist()
        values = {s: round(v + e, 2) for (s, v), e in zip(level.items(), noise, strict=True)}
        pub.publish_readings(SITE, "gw-01", clock(), values)

    for _ in range(5):
        publish()
    sent: dict[tuple[str, str], float] = {}  # (sensor, event type) -> when the crossing reading went out
    for value, event_type in ((82.0, "alarm"), (78.0, "return_to_normal")):
        for sensor in level:
            level[sensor] = value
            sent[(sensor, event_type)] = time.monotonic()
            publish()
            time.sleep(0.01)
    sub.wait_for(lambda evs: len(evs) >= len(sent), timeout_s=30)
    time.sleep(1.0)  # a doubled event would arrive now
    got = sub.snapshot()

    assert sorted((e.event["sensor"], e.event["type"]) for e in got) == sorted(sent)  # each exactly once
    assert all(e.topic == f"hazmon/v1/{SITE}/events" and not e.retained for e in got)
    assert {e.event["level"] for e in got} == {"H"}
    latency = np.array([e.received_s - sent[(e.event["sensor"], e.event["type"])] for e in got])
    p50, p99 = np.percentile(latency, [50, 99])
    with capsys.disabled():
        print(  # noqa: T201 - the latency figures are part of the test report
            f"\n[alarm latency] publish -> event over {len(latency)} raises/clears:"
            f" p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {latency.max() * 1000:.1f} ms"
        )
    assert p99 < 2.0

    # the journal agrees: every alarm returned to normal unacknowledged, numbered A000001...
    alarms = svc.get(f"/api/v1/alarms?site={SITE}&limit=1000").json()
    assert alarms["count"] == N_SENSORS
    assert {a["state"] for a in alarms["data"]} == {"RTN_UNACK"}
    assert {a["alarm_id"] for a in alarms["data"]} == {e.event["alarm_id"] for e in got}
    health = svc.wait_healthy(lambda h: h["alarms"]["events_backlog"] == 0)
    assert health["alarms"]["dropped_readings"] == 0 and health["alarms"]["errors"] == 0
    metrics = svc.get("/metrics").text
    assert 'hazmon_alarm_events_total{type="AlarmRaised"} 100' in metrics
    assert "hazmon_alarm_events_acked_total 200" in metrics


# ---- simulated incidents


SIM_SITE = "sim-01"
SPEED = 60.0  # simulated seconds per wall second for the physics


def write_sim_registry(path: Path) -> Path:
    """A gas detector and two tanks: enough for a leak, an overfill and a gauge stuck during a fill."""
    tank = {
        "kind": "level",
        "unit": "m",
        "range": [0, 16.0],
        "interval_s": 5,
        "limits": {"ll": 0.8, "l": 1.2, "h": 14.2, "hh": 14.8},
        "deadband": 0.1,
        "device": "tf-gw-01",
        # readings carry wall-clock stamps while the physics runs SPEED times faster: the gauge's
        # 700 simulated frozen seconds are about 12 s of stamps, so the flat-line minimum is scaled
        # the same way (300 s / SPEED)
        "stuck_after_s": 5,
    }
    sensors = [
        {
            "id": "GT-101",
            "name": "罐区可燃气体探测器",
            "kind": "gas_lel",
            "unit": "%LEL",
            "range": [0, 100],
            "interval_s": 2,
            "limits": {"h": 20, "hh": 40},
            "deadband": 1,
            "device": "gds-01",
        },
        {"id": "T101-LT", "name": "T101储罐液位", **tank},
        {"id": "T102-LT", "name": "T102储罐液位", **tank},
    ]
    site_doc = {"id": SIM_SITE, "name": "模拟罐区", "kind": "chemical", "grade": 2, "sensors": sensors}
    path.write_text(yaml.safe_dump({"sites": [site_doc]}, allow_unicode=True), encoding="utf-8")
    return path


def run_simulation(sim: Simulation, pub: TestPublisher, sim_seconds: float) -> None:
    """Run the simulator's physics SPEED times faster than real time; stamp each message with now."""
    clock = MonotonicMs()
    wall0 = time.monotonic()
    k = 0
    while (t_sim := sim.tick_time(k)) <= sim.start_s + sim_seconds:
        time.sleep(max(0.0, wall0 + (t_sim - sim.start_s) / SPEED - time.monotonic()))
        for msg in sim.tick(t_sim):
            if msg.readings:
                body = orjson.loads(msg.payload)
                body["ts"] = clock()
                pub.publish(msg.topic, orjson.dumps(body))
            else:
                pub.publish(msg.topic, msg.payload, retain=msg.retain)
        k += 1


def test_simulated_leak_overfill_and_stuck_gauge_raise_the_expected_events(tmp_path, mosquitto, influx):
    registry_path = write_sim_registry(tmp_path / "registry.yaml")
    svc = HazmonProcess(tmp_path / "hazmon", registry_path, mosquitto.url, influx.url)
    svc.start()
    sub = EventSubscriber(mosquitto.port, f"scada-{tmp_path.name}")
    pub = TestPublisher(mosquitto.port, f"sim-{tmp_path.name}")
    try:
        incidents = [
            parse_incident(f"leak:{SIM_SITE}/GT-101@+60s"),
            parse_incident(f"overfill:{SIM_SITE}/T101-LT"),
            parse_incident(f"overfill:{SIM_SITE}/T102-LT"),
            parse_incident(f"stuck:{SIM_SITE}/T102-LT@+300s"),  # frozen mid-fill (Buncefield 2005)
        ]
        sim = Simulation(load_registry(registry_path), start_s=time.time(), seed=3, incidents=incidents)
        run_simulation(sim, pub, sim_seconds=1000)
        pub.wait_all_acked()

        def seen(evs):
            return {(e.event["sensor"], e.event["type"], e.event["level"]) for e in evs}

        expected = {
            ("GT-101", "alarm", "H"),
            ("GT-101", "alarm", "HH"),
            ("T101-LT", "alarm", "H"),
            ("T101-LT", "alarm", "HH"),
            ("T102-LT", "fault", "stuck"),
        }
        got = sub.wait_for(lambda evs: expected <= seen(evs), timeout_s=15)
        # the stuck gauge never showed the rise, and no instrument other than it reported a fault
        assert not any(e.event["sensor"] == "T102-LT" and e.event["type"] == "alarm" for e in got)
        assert {e.event["sensor"] for e in got if e.event["type"] == "fault"} == {"T102-LT"}
        gas_hh = next(e.event for e in got if e.event["sensor"] == "GT-101" and e.event["level"] == "HH")
        assert gas_hh["priority"] == "critical" and gas_hh["value"] >= gas_hh["limit"] == 40

        # the same alarms are in the journal, each with its history
        alarms = wait_for(
            lambda: svc.get(f"/api/v1/alarms?site={SIM_SITE}").json(),
            lambda a: (
                {(x["source"], x["level"]) for x in a["data"]}
                >= {("GT-101", "H"), ("GT-101", "HH"), ("T101-LT", "HH"), ("T102-LT", "stuck")}
            ),
        )
        for a in alarms["data"]:
            history = svc.get(f"/api/v1/alarms/{a['alarm_id']}/history").json()
            assert history["data"][0]["type"] == "AlarmRaised"
            assert history["data"][0]["event"]["alarm_id"] == a["alarm_id"]
    finally:
        pub.close()
        sub.close()
        svc.stop()
