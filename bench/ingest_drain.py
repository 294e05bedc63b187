"""`make bench-ingest`, second part: a broker backlog drained, and a fixed offered rate (issue 15 item 1).

Backlog drain: hazmon is started once so that its persistent session (clean_start=False, QoS 1,
ingest/collector.py) exists at the broker, then stopped; the fleet publishes `--backlog` readings
(50 per message, an hour old) into that session's queue; hazmon is started again and the drain rate
is the backlog over the time from its MQTT connection until InfluxDB holds every reading. Baseline:
the same readings written to InfluxDB from one client as 10 000-point line-protocol bodies, one
after the other, in the same run (the store's own bulk rate, the ceiling hazmon can approach).

Fixed offered rate: a paced publisher (its own process) offers `--rate` readings/s for `--seconds`,
each message stamped with its send time as its `ts`. One sensor of every 10th site is a marker: the
bench polls InfluxDB every `--poll-s` for markers not yet seen, and a marker's publish-to-stored
latency is the end of the poll that first returned it minus its send time. Baseline: a point
written straight to InfluxDB every 0.5 s and found by the same poller (the store's write plus the
measurement's own delay, under the same load).

Both verify per series: every (site, sensor) must hold as many points as were published to it, at
the published timestamps; `lost` and `doubled` count the differences. The last line is JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import _cpu_seconds, hazmon_cmd  # noqa: E402
from bench.service_user import viewer_token  # noqa: E402
from hazmon.devservers import InfluxServer, MosquittoServer, ensure_installed, free_port  # noqa: E402
from ingest.influx import InfluxClient  # noqa: E402
from ingest.mqtt_url import parse_mqtt_url  # noqa: E402
from sensors.registry import load_registry, registry_to_json  # noqa: E402
from simulators.fleet import PahoPublisher  # noqa: E402
from simulators.generate import generate_registry  # noqa: E402
from simulators.stream import Simulation  # noqa: E402

BULK_POINTS = 10_000  # points per baseline write body, as hazmon's HAZMON_WRITE_BATCH_POINTS
MARKER_EVERY = 10  # every 10th site carries a marker sensor
MARKER_SENSOR = "S0001"


def log(msg: str) -> None:
    print(f"[bench-ingest-drain] {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def compare_counts(expected: dict[tuple[str, str], int], stored: dict[tuple[str, str], int]) -> dict:
    """Per series, readings published vs points stored: lost (missing) and doubled (extra) points."""
    lost = doubled = 0
    for key in expected.keys() | stored.keys():
        diff = stored.get(key, 0) - expected.get(key, 0)
        if diff > 0:
            doubled += diff
        else:
            lost -= diff
    return {"lost": lost, "doubled": doubled}


def payload_counts(payloads: list[tuple[str, bytes]]) -> Counter:
    """Readings per (site, sensor) in readings payloads (topic, bytes)."""
    counts: Counter = Counter()
    for topic, payload in payloads:
        site = topic.split("/")[2]
        counts.update((site, item["sensor"]) for item in orjson.loads(payload)["readings"])
    return counts


# ---- InfluxDB side


def stored_counts(client: InfluxClient, start_ms: int, end_ms: int) -> tuple[dict, int]:
    """Points per (site, sensor) in [start, end] (every kind tag together), and their total."""
    data = client.query(
        f'SELECT count("value") FROM "raw"."readings" WHERE time >= {start_ms}ms AND time <= {end_ms}ms '
        'GROUP BY "site", "sensor"'
    )
    out: dict[tuple[str, str], int] = {}
    for result in data.get("results", []):
        for s in result.get("series", []):
            out[(s["tags"]["site"], s["tags"]["sensor"])] = int(s["values"][0][1])
    return out, sum(out.values())


def tick_counts(client: InfluxClient, start_ms: int, end_ms: int) -> dict[int, int]:
    """Points per 1 s bucket in [start, end]: the backlog's readings sit on whole seconds only."""
    data = client.query(
        f'SELECT count("value") FROM "raw"."readings" WHERE time >= {start_ms}ms AND time <= {end_ms}ms '
        "GROUP BY time(1s) fill(none)"
    )
    out: dict[int, int] = {}
    for result in data.get("results", []):
        for s in result.get("series", []):
            for t, c in s["values"]:
                out[int(t)] = int(c)
    return out


def bulk_baseline(influx_url: str, payloads: list[tuple[str, bytes]], kinds: dict) -> dict:
    """Write the backlog's readings straight to InfluxDB (database `bulk`), 10 000 points a body."""
    lines = []
    for topic, payload in payloads:
        site = topic.split("/")[2]
        doc = orjson.loads(payload)
        ts = doc["ts"]
        for item in doc["readings"]:
            s = item["sensor"]
            lines.append(f"readings,kind={kinds[site, s]},sensor={s},site={site} value={item['v']!r} {ts}")
    bodies = ["\n".join(lines[i : i + BULK_POINTS]).encode() for i in range(0, len(lines), BULK_POINTS)]
    http = httpx.Client(base_url=influx_url, timeout=120)
    http.post("/query", params={"q": 'CREATE DATABASE "bulk"'})
    t0 = time.monotonic()
    for body in bodies:
        r = http.post("/write", params={"db": "bulk", "precision": "ms"}, content=body)
        r.raise_for_status()
    elapsed = time.monotonic() - t0
    http.close()
    return {"points": len(lines), "elapsed_s": elapsed, "readings_per_s": len(lines) / elapsed}


# ---- hazmon as a process


class Hazmon:
    """`hazmon run` against the private servers; stats and health through its API."""

    def __init__(self, work: Path, registry: Path, mqtt: MosquittoServer, influx: InfluxServer):
        self.work = work
        self.port = free_port()
        self.env = dict(
            os.environ,
            HAZMON_REGISTRY=str(registry),
            HAZMON_MQTT_URL=mqtt.url,
            HAZMON_INFLUX_URL=influx.url,
            HAZMON_INFLUX_DB="hazmon",
            HAZMON_DATA_DIR=str(work / "hazmon"),
            HAZMON_HTTP_PORT=str(self.port),
        )
        self.headers = {"Authorization": f"Bearer {viewer_token(self.env, ROOT)}"}
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, tag: str) -> float:
        """Start and wait until its MQTT session is connected; the monotonic time it was."""
        log_file = open(self.work / f"hazmon-{tag}.log", "wb")  # noqa: SIM115 - held for the child's lifetime
        self.proc = subprocess.Popen(
            hazmon_cmd("run"), env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log_file
        )
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                health = httpx.get(self.base + "/healthz", headers=self.headers, timeout=1).json()
                if health.get("mqtt_connected"):
                    return time.monotonic()
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"hazmon did not connect; see {self.work}/hazmon-{tag}.log")
            time.sleep(0.02)

    def stats(self) -> dict:
        return httpx.get(self.base + "/api/v1/ingest/stats", headers=self.headers, timeout=5).json()

    def cpu_s(self) -> float:
        return _cpu_seconds(self.proc.pid) if self.proc else 0.0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


# ---- backlog drain


def make_backlog(registry_path: Path, readings: int, start_s: float) -> list[tuple[str, bytes]]:
    """The fleet's readings messages tick by tick from start_s, until `readings` are reached."""
    sim = Simulation(load_registry(registry_path), start_s=start_s)
    out: list[tuple[str, bytes]] = []
    total, k = 0, 0
    while total < readings:
        for m in sim.tick(sim.tick_time(k)):
            if m.readings and total < readings:
                out.append((m.topic, m.payload))
                total += m.readings
        k += 1
    return out


def publish_all(mqtt_url: str, payloads: list[tuple[str, bytes]]) -> float:
    """Publish QoS 1 with a persistent session; wait for every PUBACK; the seconds it took."""
    pub = PahoPublisher(parse_mqtt_url(mqtt_url), "bench-drain-pub")
    pub.connect()
    t0 = time.monotonic()
    for topic, payload in payloads:
        pub.publish(topic, payload)
    unacked = pub.flush(120)
    elapsed = time.monotonic() - t0
    pub.close()
    if unacked:
        raise RuntimeError(f"{unacked} backlog messages were not acknowledged by the broker")
    return elapsed


def wait_written(hazmon: Hazmon, target: int, stall_s: float = 30.0) -> tuple[float | None, dict]:
    """Poll hazmon's counters until `target` more points are written; (monotonic time, stats)."""
    last_change, last = time.monotonic(), -1
    first_written = None
    while True:
        stats = hazmon.stats()
        written = stats["points_written"]
        if written and first_written is None:
            first_written = time.monotonic()
        if written >= target and stats["pending_points"] == 0:
            return time.monotonic(), {**stats, "first_written": first_written}
        if written != last:
            last_change, last = time.monotonic(), written
        elif time.monotonic() - last_change > stall_s:
            log(f"hazmon stalled at {written} of {target} points")
            return None, {**stats, "first_written": first_written}
        time.sleep(0.05)


def run_drain(args, work, registry, mqtt, influx, hazmon) -> dict:
    start_s = math.floor(time.time()) - 3600  # an hour old: well within HAZMON_MAX_LATENESS_S
    payloads = make_backlog(registry, args.backlog, start_s)
    expected = payload_counts(payloads)
    published = sum(expected.values())
    ticks = sorted({orjson.loads(p)["ts"] for _, p in payloads})
    reg = load_registry(registry)
    kinds = {(s.site, s.id): s.kind for s in reg.sensors()}
    bulk = bulk_baseline(influx.url, payloads, kinds)
    log(f"baseline: one client bulk-writes {bulk['readings_per_s']:,.0f} readings/s to InfluxDB")

    hazmon.start("session")  # creates the persistent session at the broker
    hazmon.stop()
    pub_s = publish_all(mqtt.url, payloads)
    n_messages = len(payloads)
    log(f"queued {published:,} readings in {n_messages:,} messages at the broker in {pub_s:.1f} s")
    del payloads

    cpu0 = {"mosquitto": _cpu_seconds(mqtt.proc.pid), "influxd": _cpu_seconds(influx.proc.pid)}
    t_spawn = time.monotonic()
    t_connected = hazmon.start("drain")
    t_done, stats = wait_written(hazmon, published)
    cpu = {
        "hazmon": round(hazmon.cpu_s(), 1),  # its start-up included
        "mosquitto": round(_cpu_seconds(mqtt.proc.pid) - cpu0["mosquitto"], 1),
        "influxd": round(_cpu_seconds(influx.proc.pid) - cpu0["influxd"], 1),
    }
    client = InfluxClient(influx.url, "hazmon", timeout_s=300)
    stored, total = stored_counts(client, ticks[0], ticks[-1])
    grid = tick_counts(client, ticks[0], ticks[-1])
    client.close()
    check = compare_counts(expected, stored)
    tick_set = set(ticks)
    off_grid = sum(c for t, c in grid.items() if t not in tick_set)
    drain_s = (t_done - t_connected) if t_done else None
    figures = {
        "published": published,
        "messages": n_messages,
        "stored": total,
        **check,
        "off_grid": off_grid,
        "drain_s": round(drain_s, 2) if drain_s else None,
        "readings_per_s": round(published / drain_s) if drain_s else None,
        "start_to_connected_s": round(t_connected - t_spawn, 2),
        "connected_to_first_write_s": round(stats["first_written"] - t_connected, 2)
        if stats["first_written"]
        else None,
        "bulk_baseline_readings_per_s": round(bulk["readings_per_s"]),
        "ratio_to_bulk": round(published / drain_s / bulk["readings_per_s"], 2) if drain_s else None,
        "publish_s": round(pub_s, 1),
        "cpu_s": cpu,
        "rejected": stats["readings_rejected"],
        "spooled": stats["points_spooled"],
    }
    return figures


# ---- fixed offered rate


def publisher_main(argv: list[str]) -> int:
    """Child process: offer `rate` readings/s for `seconds`, each message stamped with its send time.

    Prints `M site sensor ts_ms` for each marker reading as it is sent, then one line
    `S {summary}` with the readings per (site, sensor)."""
    mqtt_url, registry_path, rate, seconds = argv[0], Path(argv[1]), float(argv[2]), float(argv[3])
    sim = Simulation(load_registry(registry_path), start_s=math.floor(time.time()))
    markers = {sim.layout.readings_topics[d] for d in range(0, sim.n_devices, MARKER_EVERY)}
    pub = PahoPublisher(parse_mqtt_url(mqtt_url), "bench-rate-pub")
    pub.connect()
    counts: Counter = Counter()
    last_ts: dict[str, int] = {}
    out = sys.stdout
    readings = messages = 0
    t0 = time.monotonic()
    k = 0
    late_max = 0.0
    while time.monotonic() - t0 < seconds:
        for m in sim.tick(sim.tick_time(k)):
            if not m.readings:
                continue
            due = t0 + readings / rate  # pace by readings, message by message
            ahead = due - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            else:
                late_max = max(late_max, -ahead)
            if time.monotonic() - t0 >= seconds:
                break
            doc = orjson.loads(m.payload)
            ts = max(int(time.time() * 1000), last_ts.get(m.topic, 0) + 1)  # one point per ms per series
            last_ts[m.topic] = doc["ts"] = ts
            site = m.topic.split("/")[2]
            if m.topic in markers:
                out.write(f"M {site} {doc['readings'][0]['sensor']} {ts}\n")
                out.flush()
            pub.publish(m.topic, orjson.dumps(doc))
            counts.update((site, item["sensor"]) for item in doc["readings"])
            readings += m.readings
            messages += 1
        k += 1
    elapsed = time.monotonic() - t0
    unacked = pub.flush(60)
    pub.close()
    summary = {
        "readings": readings,
        "messages": messages,
        "elapsed_s": elapsed,
        "readings_per_s": readings / elapsed,
        "unacked": unacked,
        "max_behind_schedule_s": round(late_max, 3),
        "counts": [[s, n, c] for (s, n), c in counts.items()],
    }
    out.write("S " + json.dumps(summary) + "\n")
    out.flush()
    return 0


class MarkerPoller:
    """Finds marker readings in InfluxDB as they land; latency = end of the finding poll - send time."""

    def __init__(self, influx_url: str, poll_s: float):
        self.http = httpx.Client(base_url=influx_url, timeout=30)
        self.poll_s = poll_s
        self.pending: dict[tuple[str, str, int], float] = {}  # (site, sensor, ts) -> send time (s)
        self.latencies: list[float] = []
        self.floor: list[float] = []  # the direct-write baseline
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sites: set[str] = set()

    def add(self, site: str, sensor: str, ts_ms: int) -> None:
        with self.lock:
            self.pending[(site, sensor, ts_ms)] = ts_ms / 1000
            self.sites.add(site)

    def _query(self, q: str) -> list:
        r = self.http.get("/query", params={"db": "hazmon", "q": q, "epoch": "ms"})
        r.raise_for_status()
        rows = []
        for result in r.json().get("results", []):
            for s in result.get("series", []):
                tags = s.get("tags", {})
                rows += [(tags.get("site"), t) for t, *_ in s["values"]]
        return rows

    def run(self) -> None:
        next_floor = 0.0
        floor_pending: dict[int, float] = {}
        while not self.stop.is_set():
            t_poll = time.monotonic()
            if time.time() >= next_floor:  # the baseline: a point written by us, found by the same poll
                ts = int(time.time() * 1000)
                self.http.post(
                    "/write", params={"db": "hazmon", "precision": "ms"}, content=f"bench_floor value=1 {ts}"
                )
                floor_pending[ts] = ts / 1000
                next_floor = time.time() + 0.5
            with self.lock:
                pending = dict(self.pending)
                sites = sorted(self.sites)
            if pending:
                since = min(ts for _, _, ts in pending)
                where = " OR ".join(f"\"site\" = '{s}'" for s in sites)
                rows = self._query(
                    f'SELECT "value" FROM "raw"."readings" WHERE "sensor" = \'{MARKER_SENSOR}\' '
                    f'AND ({where}) AND time >= {since}ms GROUP BY "site"'
                )
                now = time.time()
                with self.lock:
                    for site, t in rows:
                        sent = self.pending.pop((site, MARKER_SENSOR, int(t)), None)
                        if sent is not None:
                            self.latencies.append(now - sent)
            if floor_pending:
                rows = self._query(f'SELECT "value" FROM "bench_floor" WHERE time >= {min(floor_pending)}ms')
                now = time.time()
                for _, t in rows:
                    sent = floor_pending.pop(int(t), None)
                    if sent is not None:
                        self.floor.append(now - sent)
            self.stop.wait(max(0.0, self.poll_s - (time.monotonic() - t_poll)))


def run_rate(args, work, registry, mqtt, influx, hazmon) -> dict:
    poller = MarkerPoller(influx.url, args.poll_s)
    poll_thread = threading.Thread(target=poller.run, daemon=True)
    poll_thread.start()
    written0 = hazmon.stats()["points_written"]
    cpu0 = {
        "hazmon": hazmon.cpu_s(),
        "mosquitto": _cpu_seconds(mqtt.proc.pid),
        "influxd": _cpu_seconds(influx.proc.pid),
    }
    start_ms = int(time.time() * 1000)
    child = subprocess.Popen(
        [sys.executable, __file__, "--publisher", mqtt.url, str(registry), str(args.rate), str(args.seconds)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    summary = None
    for line in child.stdout:  # type: ignore[union-attr]
        if line.startswith("M "):
            _, site, sensor, ts = line.split()
            poller.add(site, sensor, int(ts))
        elif line.startswith("S "):
            summary = json.loads(line[2:])
    child.wait()
    if summary is None:
        raise RuntimeError("the rate publisher gave no summary")
    child_end = time.monotonic()
    end_ms = int(time.time() * 1000)
    expected = {(s, n): c for s, n, c in summary["counts"]}
    t_done, stats = wait_written(hazmon, written0 + summary["readings"])
    deadline = time.monotonic() + 30  # the last markers
    while poller.pending and time.monotonic() < deadline:
        time.sleep(0.1)
    poller.stop.set()
    poll_thread.join(10)
    cpu = {
        "hazmon": round(hazmon.cpu_s() - cpu0["hazmon"], 1),
        "mosquitto": round(_cpu_seconds(mqtt.proc.pid) - cpu0["mosquitto"], 1),
        "influxd": round(_cpu_seconds(influx.proc.pid) - cpu0["influxd"], 1),
    }
    client = InfluxClient(influx.url, "hazmon", timeout_s=300)
    stored, total = stored_counts(client, start_ms, end_ms)
    client.close()
    check = compare_counts(expected, stored)
    lat = poller.latencies
    floor = poller.floor

    def ms(v: float | None) -> int | None:
        return None if v is None else round(v * 1000)

    return {
        "offered_readings_per_s": args.rate,
        "achieved_readings_per_s": round(summary["readings_per_s"]),
        "seconds": round(summary["elapsed_s"], 1),
        "published": summary["readings"],
        "stored": total,
        **check,
        "markers": len(lat) + len(poller.pending),
        "markers_never_seen": len(poller.pending),
        "p50_ms": ms(percentile(lat, 50)),
        "p99_ms": ms(percentile(lat, 99)),
        "max_ms": ms(max(lat) if lat else None),
        "floor_p50_ms": ms(percentile(floor, 50)),
        "floor_p99_ms": ms(percentile(floor, 99)),
        "poll_s": args.poll_s,
        "publisher_max_behind_s": summary["max_behind_schedule_s"],
        "catch_up_s": round(t_done - child_end, 2) if t_done else None,  # after the last publish
        "cpu_s": cpu,
        "rejected": stats["readings_rejected"],
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--publisher":
        return publisher_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=1200, help="generated sites (one gateway each)")
    parser.add_argument("--sensors", type=int, default=50, help="sensors per site = readings per message")
    parser.add_argument("--backlog", type=int, default=3_000_000, help="readings queued while hazmon is down")
    parser.add_argument("--rate", type=int, default=25_000, help="offered readings per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds the rate is offered")
    parser.add_argument("--poll-s", type=float, default=0.1, help="marker poll interval")
    parser.add_argument("--skip", choices=("drain", "rate"), help="leave one measurement out")
    args = parser.parse_args()

    ensure_installed()
    work = Path(tempfile.mkdtemp(prefix="hazmon-bench-drain-"))
    registry = work / "fleet.json"
    registry.write_bytes(
        registry_to_json(generate_registry(args.sites, args.sensors, sensors_per_device=args.sensors))
    )
    mqtt = MosquittoServer(work / "mosquitto")
    influx = InfluxServer(work / "influxdb")
    mqtt.start()
    influx.start()
    hazmon = Hazmon(work, registry, mqtt, influx)
    figures: dict = {"load_avg_1m": os.getloadavg()[0]}
    log(f"fleet: {args.sites} sites x {args.sensors} sensors; data in {work}")
    try:
        if args.skip != "drain":
            figures["drain"] = drain = run_drain(args, work, registry, mqtt, influx, hazmon)
            log(
                f"drain: {drain['published']:,} readings in {drain['drain_s']} s = "
                f"{drain['readings_per_s'] or 0:,} readings/s ({drain['ratio_to_bulk']} x one client's "
                f"bulk write, {drain['bulk_baseline_readings_per_s']:,}/s); lost {drain['lost']}, "
                f"doubled {drain['doubled']}"
            )
        else:
            hazmon.start("rate")
        if args.skip != "rate":
            figures["rate"] = rate = run_rate(args, work, registry, mqtt, influx, hazmon)
            log(
                f"rate: offered {rate['offered_readings_per_s']:,}/s, achieved "
                f"{rate['achieved_readings_per_s']:,}/s for {rate['seconds']} s; publish-to-stored p50 "
                f"{rate['p50_ms']} ms, p99 {rate['p99_ms']} ms, max {rate['max_ms']} ms (floor p50 "
                f"{rate['floor_p50_ms']} ms, p99 {rate['floor_p99_ms']} ms); lost {rate['lost']}, "
                f"doubled {rate['doubled']}"
            )
    finally:
        hazmon.stop()
        influx.stop()
        mqtt.stop()
    figures["load_avg_1m_end"] = os.getloadavg()[0]
    print(json.dumps(figures), flush=True)
    bad = [p for p in ("drain", "rate") if p in figures and (figures[p]["lost"] or figures[p]["doubled"])]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
