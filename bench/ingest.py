"""`make bench-ingest`: simulator -> Mosquitto -> hazmon -> InfluxDB, against a tutorial bridge.

Both pipelines run in this one invocation against the same private Mosquitto and InfluxDB
(separate databases), so the ratio is meaningful on a noisy machine. The last line printed is
JSON: readings_per_s, lost, baseline_readings_per_s, ratio, msgs_per_s, readings_per_msg.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.service_user import viewer_token  # noqa: E402
from hazmon.devservers import InfluxServer, MosquittoServer, ensure_installed, free_port  # noqa: E402
from ingest.influx import InfluxClient  # noqa: E402
from sensors.registry import registry_to_json  # noqa: E402
from simulators.generate import generate_registry  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench-ingest] {msg}", file=sys.stderr, flush=True)


def hazmon_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hazmon.cli", "--log-level", "WARNING", *args]


def simulate(mqtt_url: str, registry: Path, client_id: str, *extra: str) -> dict:
    """Run the simulator to completion; its summary plus the CPU seconds it used."""
    proc = subprocess.Popen(
        hazmon_cmd(
            "simulate",
            "--registry",
            str(registry),
            "--mqtt-url",
            mqtt_url,
            "--client-id",
            client_id,
            "--quiet",
            "--json-summary",
            *extra,
        ),
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    cpu = 0.0
    while proc.poll() is None:
        with contextlib.suppress(OSError, IndexError):  # it may exit between poll() and the read
            cpu = _cpu_seconds(proc.pid)
        time.sleep(0.2)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise RuntimeError(f"simulator failed with {proc.returncode}")
    return {**json.loads(out.strip().splitlines()[-1]), "cpu_s": cpu}


def run_baseline(
    work: Path, mqtt: MosquittoServer, influx: InfluxServer, registry: Path, messages: int, run_s: float
) -> dict:
    """The tutorial bridge drains a backlog for run_s seconds; its own write rate is the baseline."""
    bridge = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "tutorial_bridge.py"),
            str(mqtt.port),
            influx.url,
            "tutorial",
            str(run_s),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    time.sleep(1.0)  # let it subscribe before the backlog is published
    simulate(mqtt.url, registry, "bench-baseline-pub", "--count", str(messages), "--speed", "max")
    out, _ = bridge.communicate(timeout=run_s + 60)
    return json.loads(out.strip().splitlines()[-1])


def run_hazmon(
    work: Path, mqtt: MosquittoServer, influx: InfluxServer, registry: Path, duration_s: float, rate: int
) -> dict:
    port = free_port()
    env = dict(
        os.environ,
        HAZMON_REGISTRY=str(registry),
        HAZMON_MQTT_URL=mqtt.url,
        HAZMON_INFLUX_URL=influx.url,
        HAZMON_INFLUX_DB="hazmon",
        HAZMON_DATA_DIR=str(work / "hazmon"),
        HAZMON_HTTP_PORT=str(port),
    )
    headers = {"Authorization": f"Bearer {viewer_token(env, ROOT)}"}
    service_log = open(work / "hazmon.log", "wb")  # noqa: SIM115 - held for the child's lifetime
    service = subprocess.Popen(
        hazmon_cmd("run"),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=service_log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if (
                    httpx.get(base + "/healthz", headers=headers, timeout=1).json().get("influx_up")
                    is not None
                ):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("hazmon did not start; see " + str(work / "hazmon.log"))
            time.sleep(0.1)
        cpu0 = {
            name: _cpu_seconds(pid)
            for name, pid in (
                ("hazmon", service.pid),
                ("mosquitto", mqtt.proc.pid),
                ("influxd", influx.proc.pid),
            )
        }
        t0 = time.monotonic()
        summary = simulate(
            mqtt.url,
            registry,
            "bench-fleet",
            "--duration",
            f"{duration_s}s",
            "--rate",
            str(rate),
            "--speed",
            "max",
        )
        published = summary["readings"]
        log(
            f"simulator published {published} readings in {summary['messages']} messages "
            f"over {time.monotonic() - t0:.1f} s"
        )
        # Wait until hazmon has written everything (or stalls for 30 s).
        last_change, last_written = time.monotonic(), -1
        while True:
            stats = httpx.get(base + "/api/v1/ingest/stats", headers=headers, timeout=5).json()
            written = stats["points_written"]
            if written >= published and stats["pending_points"] == 0:
                break
            if written != last_written:
                last_change, last_written = time.monotonic(), written
            elif time.monotonic() - last_change > 30:
                log(f"hazmon stalled at {written} of {published} points")
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        cpu = {
            name: round(_cpu_seconds(pid) - cpu0[name], 1)
            for name, pid in (
                ("hazmon", service.pid),
                ("mosquitto", mqtt.proc.pid),
                ("influxd", influx.proc.pid),
            )
        }
        cpu["simulator"] = round(summary["cpu_s"], 1)
        return {
            "published": published,
            "messages": summary["messages"],
            "elapsed_s": elapsed,
            "stats": stats,
            "cpu_s": cpu,
        }
    finally:
        service.terminate()
        service.wait(30)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=1200, help="generated sites (one gateway each)")
    parser.add_argument("--sensors", type=int, default=50, help="sensors per site = readings per message")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds the fleet publishes")
    parser.add_argument("--rate", type=int, default=1300, help="target messages per second")
    parser.add_argument("--baseline-s", type=float, default=15.0, help="seconds the tutorial bridge runs")
    args = parser.parse_args()

    ensure_installed()
    work = Path(tempfile.mkdtemp(prefix="hazmon-bench-"))
    registry = work / "fleet.json"  # JSON is YAML too, and loads ~50x faster at this size
    registry.write_bytes(
        registry_to_json(generate_registry(args.sites, args.sensors, sensors_per_device=args.sensors))
    )
    mqtt = MosquittoServer(work / "mosquitto")
    influx = InfluxServer(work / "influxdb")
    mqtt.start()
    influx.start()
    try:
        log(f"fleet: {args.sites} sites x {args.sensors} sensors; data in {work}")
        baseline = run_baseline(
            work, mqtt, influx, registry, messages=int(args.baseline_s * 100), run_s=args.baseline_s
        )
        log(f"baseline (tutorial bridge): {baseline['readings_per_s']:.0f} readings/s")
        result = run_hazmon(work, mqtt, influx, registry, args.duration, args.rate)
        client = InfluxClient(influx.url, "hazmon", timeout_s=120)
        stored = client.count_points()
        client.close()
    finally:
        influx.stop()
        mqtt.stop()
    published = result["published"]
    rate = published / result["elapsed_s"]
    figures = {
        "readings_per_s": round(rate),
        "lost": published - stored,
        "published": published,
        "stored": stored,
        "baseline_readings_per_s": round(baseline["readings_per_s"], 1),
        "ratio": round(rate / baseline["readings_per_s"], 1) if baseline["readings_per_s"] else None,
        "msgs_per_s": round(result["messages"] / result["elapsed_s"]),
        "readings_per_msg": round(published / result["messages"], 1),
        "elapsed_s": round(result["elapsed_s"], 2),
        "cpu_s": result["cpu_s"],
        "hazmon_cpu_s_per_100k_readings": round(result["cpu_s"]["hazmon"] / published * 1e5, 3),
        "rejected": result["stats"]["readings_rejected"],
        "spooled": result["stats"]["points_spooled"],
    }
    print(json.dumps(figures), flush=True)
    return 0 if figures["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
