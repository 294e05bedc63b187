"""Simulator messages, schedule, generated fleets, the publish loop and the CLI: fast, no servers."""

from __future__ import annotations

import argparse
import math
import re
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest

from sensors.model import Limits, Location, Registry, Sensor, Site
from sensors.registry import load_registry, registry_to_json
from simulators import cli
from simulators.fleet import RunOptions, run_fleet
from simulators.generate import generate_registry, registry_to_yaml
from simulators.payloads import MAX_ITEMS_PER_MESSAGE, build_readings_payload
from simulators.schedule import DueSchedule
from simulators.stream import Simulation

TOPIC_RE = re.compile(r"^hazmon/v1/[a-z0-9][a-z0-9_-]{0,63}/[a-z0-9][a-z0-9_-]{0,63}/(readings|status)$")
T0 = 1_795_392_000.0  # 2026-11-23T00:00:00Z


class FakePublisher:
    """Records what the fleet loop publishes; every message is acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bool]] = []
        self.outstanding = 0

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.sent.append((topic, payload, retain))

    def flush(self, timeout_s: float) -> int:
        return 0


def small_fleet(**kw: object) -> Registry:
    return generate_registry(3, 12, seed=1, sensors_per_device=5, **kw)  # type: ignore[arg-type]


# ---- payloads and schedule


def test_device_payload_matches_the_contract() -> None:
    registry = small_fleet()
    sim = Simulation(registry, start_s=T0)
    messages = sim.tick(T0)
    devices = {(s.site, s.id): s.device for s in registry.sensors()}
    assert len(messages) == sim.n_devices  # first tick: every sensor is due, one message per device
    for m in messages:
        assert TOPIC_RE.match(m.topic) and m.topic.endswith("/readings") and not m.retain
        _, _, site, device, _ = m.topic.split("/")
        doc = orjson.loads(m.payload)
        assert set(doc) == {"ts", "readings"}
        assert isinstance(doc["ts"], int) and doc["ts"] == int(T0 * 1000)
        assert len(doc["readings"]) == m.readings
        for item in doc["readings"]:
            assert set(item) == {"sensor", "v"}
            assert isinstance(item["v"], float) and math.isfinite(item["v"])
            assert devices[(site, item["sensor"])] == device  # the sensor belongs to that site and device


def test_build_readings_payload() -> None:
    payload = build_readings_payload(1795392000123, ["T101-LT", "GT-201"], [12.31, 0.0])
    assert orjson.loads(payload) == {
        "ts": 1795392000123,
        "readings": [{"sensor": "T101-LT", "v": 12.31}, {"sensor": "GT-201", "v": 0.0}],
    }


def test_schedule_honours_each_interval() -> None:
    schedule = DueSchedule(np.array([1.0, 2.0, 5.0, 10.0, 1.5, 60.0]))
    counts = sum(schedule.due(T0 + k).astype(int) for k in range(60))
    assert counts.tolist() == [60, 30, 12, 6, 40, 1]


def test_simulation_reports_each_sensor_at_its_own_interval() -> None:
    sensors = tuple(
        Sensor(
            id=f"S{i}",
            site="s1",
            name=f"传感器{i}",
            kind="pressure",
            unit="kPa",
            range=(0.0, 10.0),
            interval_s=interval,
            limits=Limits(h=8.0),
            device="gw-1",
        )
        for i, interval in enumerate((1.0, 5.0, 10.0))
    )
    registry = Registry(
        sites=(
            Site(
                id="s1", name="站", kind="chemical", grade=2, sensors=sensors, location=Location(22.0, 113.0)
            ),
        )
    )
    sim = Simulation(registry, start_s=T0)
    assert sim.tick_s == 1.0
    seen: Counter[str] = Counter()
    messages = 0
    for k in range(60):
        for m in sim.tick(sim.tick_time(k)):
            messages += 1
            seen.update(item["sensor"] for item in orjson.loads(m.payload)["readings"])
    assert messages == 60  # one message per tick from the one device
    assert seen == {"S0": 60, "S1": 12, "S2": 6}


def test_big_devices_are_split_under_the_item_limit() -> None:
    registry = generate_registry(1, MAX_ITEMS_PER_MESSAGE + 500, sensors_per_device=10_000)
    messages = Simulation(registry, start_s=T0).tick(T0)
    assert [m.readings for m in messages] == [MAX_ITEMS_PER_MESSAGE, 500]
    assert all(len(m.payload) < 256 * 1024 for m in messages)


def test_same_seed_same_messages() -> None:
    def payloads(seed: int) -> list[bytes]:
        sim = Simulation(small_fleet(), start_s=T0, seed=seed)
        return [m.payload for k in range(30) for m in sim.tick(sim.tick_time(k))]

    assert payloads(5) == payloads(5)
    assert payloads(5) != payloads(6)


# ---- generated fleets


def test_generated_registry_shape() -> None:
    registry = generate_registry(5, 120, seed=2, sensors_per_device=50)
    assert [s.id for s in registry.sites] == ["gen-0001", "gen-0002", "gen-0003", "gen-0004", "gen-0005"]
    assert {s.kind for s in registry.sites} == {"chemical", "tailings"}
    for site in registry.sites:
        assert [s.id for s in site.sensors] == [f"S{i:04d}" for i in range(1, 121)]
        per_device = Counter(s.device for s in site.sensors)
        assert None not in per_device and max(per_device.values()) <= 50 and len(per_device) == 3
    kinds = {s.kind for s in registry.sensors()}
    assert {
        "level",
        "gas_lel",
        "gas_toxic",
        "oxygen",
        "pressure",
        "pond_level",
        "rainfall",
        "displacement",
        "dry_beach",
        "phreatic_depth",
    } <= kinds
    groups = Counter((s.site, s.group) for s in registry.sensors() if s.group)
    assert set(groups.values()) == {3}  # 2oo3 combustible gas groups


def test_generated_registry_round_trips_through_load_registry(tmp_path: Path) -> None:
    registry = generate_registry(6, 25, seed=4, sensors_per_device=7, interval_s=2.5)
    path = tmp_path / "generated.yaml"
    path.write_text(registry_to_yaml(registry, header="generated for a test"), encoding="utf-8")
    assert load_registry(path).sites == registry.sites


def test_registry_yaml_keeps_awkward_values(tmp_path: Path) -> None:
    sensor = Sensor(
        id="X.1",
        site="odd-site",
        name='名字 "引号" : # colon',
        kind="gas_toxic",
        unit="ppm",
        range=(0.0, 1e-3),
        interval_s=0.5,
        limits=Limits(h=1e-4, hh=2e-4),
        deadband=1e-05,
        on_delay_s=3.0,
        off_delay_s=7.0,
        forecast=True,
        group="g-1",
        device=None,
        roc_per_min=5e-5,
        roc_window_s=120.0,
        stale_after_s=45.0,
    )
    site = Site(
        id="odd-site",
        name="yes",
        kind="tailings",
        grade=5,
        sensors=(sensor,),
        timezone="Asia/Urumqi",
        location=Location(-0.5, 179.25),
        roster="r",
        district="区",
        city="市",
    )
    path = tmp_path / "odd.yaml"
    path.write_text(registry_to_yaml(Registry(sites=(site,))), encoding="utf-8")
    assert load_registry(path).sites == (site,)
    as_json = tmp_path / "odd.json"
    as_json.write_bytes(registry_to_json(Registry(sites=(site,))))
    assert load_registry(as_json).sites == (site,)


# ---- the publish loop (a fake publisher: no broker)


def test_run_fleet_publishes_statuses_readings_and_a_summary() -> None:
    sim = Simulation(small_fleet(), start_s=math.floor(time.time()) - 3600)
    pub = FakePublisher()
    summary = run_fleet(sim, pub, RunOptions(speed=math.inf, duration_s=20), threading.Event())
    statuses = [(t, p) for t, p, retain in pub.sent if t.endswith("/status")]
    assert all(retain for t, _, retain in pub.sent if t.endswith("/status"))
    assert [p for _, p in statuses] == [b"online"] * sim.n_devices + [b"offline"] * sim.n_devices
    readings = [orjson.loads(p) for t, p, _ in pub.sent if t.endswith("/readings")]
    assert summary["messages"] == len(readings) == 20 * sim.n_devices  # 1 s interval, 20 ticks
    assert summary["readings"] == sum(len(d["readings"]) for d in readings) == 20 * 36
    assert summary["first_ts_ms"] == readings[0]["ts"] == sim.start_s * 1000
    assert summary["last_ts_ms"] == readings[-1]["ts"] == (sim.start_s + 19) * 1000
    assert summary["stopped_by"] == "duration" and summary["unacked"] == 0
    assert sum(d["messages"] for d in summary["per_device"].values()) == summary["messages"]
    assert set(summary["per_device"]) == {f"{s}/{d}" for s, d in sim.layout.devices}


def test_run_fleet_stops_at_count() -> None:
    sim = Simulation(small_fleet(), start_s=math.floor(time.time()) - 3600)
    summary = run_fleet(sim, FakePublisher(), RunOptions(speed=math.inf, count=25), threading.Event())
    assert summary["messages"] == 25 and summary["stopped_by"] == "count"


@pytest.mark.deep
def test_run_fleet_never_runs_ahead_of_the_wall_clock() -> None:
    start = time.time() - 2.4  # ticks at -2.4, -1.4, -0.4 s run at once; the one at +0.6 s must wait
    sim = Simulation(small_fleet(), start_s=start)
    t0 = time.monotonic()
    summary = run_fleet(sim, FakePublisher(), RunOptions(speed=math.inf, duration_s=4), threading.Event())
    assert summary["last_ts_ms"] == round((start + 3) * 1000)
    assert time.monotonic() - t0 > 0.4
    assert summary["last_ts_ms"] <= time.time() * 1000


@pytest.mark.deep
def test_run_fleet_honours_speed_and_rate() -> None:
    sim = Simulation(small_fleet(), start_s=math.floor(time.time()) - 3600)
    t0 = time.monotonic()
    run_fleet(sim, FakePublisher(), RunOptions(speed=10.0, duration_s=5), threading.Event())
    assert 0.35 < time.monotonic() - t0 < 2.0  # ticks at 0..4 s of simulated time, 10x real time
    sim = Simulation(small_fleet(), start_s=math.floor(time.time()) - 3600)
    summary = run_fleet(
        sim, FakePublisher(), RunOptions(speed=math.inf, count=60, rate=200.0), threading.Event()
    )
    assert summary["elapsed_s"] > 0.25


def test_run_fleet_stops_on_the_stop_event_and_still_says_offline() -> None:
    sim = Simulation(small_fleet(), start_s=math.floor(time.time()))
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    pub = FakePublisher()
    summary = run_fleet(sim, pub, RunOptions(speed=1.0), stop)
    assert summary["stopped_by"] == "signal"
    assert pub.sent[-1] == (sim.layout.status_topics[-1], b"offline", True)


# ---- CLI


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hazmon simulate")
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_options_parse() -> None:
    args = parse(
        "--speed",
        "max",
        "--backfill",
        "2h",
        "--duration",
        "1d",
        "--count",
        "10",
        "--rate",
        "2000",
        "--generate",
        "10",
        "50",
        "--incident",
        "leak:gen-0001/S0004@+60s~10m",
        "--incident",
        "outage:gen-0002/gw-001@+5m",
        "--json-summary",
        "--quiet",
        "--seed",
        "3",
    )
    assert math.isinf(args.speed) and args.backfill == 7200 and args.duration == 86400
    assert args.count == 10 and args.rate == 2000 and args.generate == [10, 50] and args.seed == 3
    assert [str(i) for i in args.incident] == [
        "leak:gen-0001/S0004@+1m00s~10m00s",
        "outage:gen-0002/gw-001@+5m00s",
    ]
    defaults = parse()
    assert defaults.speed == 1.0 and defaults.registry is None and defaults.incident == []


@pytest.mark.parametrize(
    "argv", [["--speed", "0"], ["--incident", "leak"], ["--duration", "soon"], ["--generate", "0", "5"]]
)
def test_cli_rejects_bad_options(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parse(*argv)
    assert e.value.code == 2


def test_cli_writes_a_generated_registry_and_exits(tmp_path: Path) -> None:
    out = tmp_path / "fleet.yaml"
    assert cli.run(parse("--generate", "2", "30", "--write-registry", str(out), "--quiet")) == 0
    assert load_registry(out).sites == generate_registry(2, 30).sites


def test_cli_reports_bad_registries_and_incidents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse("--registry", str(tmp_path / "missing.yaml"), "--quiet")) == 2
    assert "file not found" in capsys.readouterr().err
    assert (
        cli.run(
            parse(
                "--generate",
                "1",
                "5",
                "--incident",
                "leak:gen-0001/S0001",
                "--quiet",
                "--mqtt-url",
                "mqtt://127.0.0.1:9",
            )
        )
        == 2
    )
    assert "leak applies to gas_lel" in capsys.readouterr().err


def test_default_backfill() -> None:
    assert cli.default_backfill_s(1.0, None) == 0
    assert cli.default_backfill_s(61.0, None) == 60 * 3600  # one wall-clock hour at 61x
    assert cli.default_backfill_s(60.0, 86400) == pytest.approx(86400 * 59 / 60)  # ends at about now
    assert cli.default_backfill_s(math.inf, 7200) == 7200
    assert cli.default_backfill_s(1e6, None) == 30 * 86400
