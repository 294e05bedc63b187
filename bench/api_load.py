"""`make bench-api`: the alarm list and site overview under load, 2 000 sites and 100 000 sensors.

One invocation: private Mosquitto and InfluxDB, `hazmon run` on a generated fleet, one round of
readings for every sensor and a few thousand alarms, then a *second process* (this script with
--client) hammers the API with concurrent authenticated clients. Each endpoint's latency is
reported with p50/p95/p99 and as a ratio of its p95 to the p95 of `/livez` (a trivial endpoint)
measured in the same run under the same load, so the figure means something on a noisy machine.
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.service_user import viewer_token  # noqa: E402
from hazmon.devservers import InfluxServer, MosquittoServer, ensure_installed, free_port  # noqa: E402
from sensors.registry import registry_to_json  # noqa: E402
from simulators.generate import generate_registry  # noqa: E402

ENDPOINTS = {
    "alarms": "/api/v1/alarms?limit=500",
    "sites": "/api/v1/sites",
    "livez": "/livez",
}


def log(msg: str) -> None:
    print(f"[bench-api] {msg}", file=sys.stderr, flush=True)


def client_main(
    base: str, token: str, seconds: float, threads: int, out: multiprocessing.Queue, pause_s: float = 0.0
) -> None:
    """The load: `threads` clients cycling through ENDPOINTS for `seconds`, each waiting `pause_s`
    between its requests (0: back to back); latencies per endpoint."""
    lat: dict[str, list[float]] = {k: [] for k in ENDPOINTS}
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(i: int) -> None:
        names = list(ENDPOINTS)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            k = i
            while time.monotonic() < stop_at:
                name = names[k % len(names)]
                k += 1
                t0 = time.perf_counter()
                r = c.get(ENDPOINTS[name])
                dt = time.perf_counter() - t0
                with lock:
                    if r.status_code == 200:
                        lat[name].append(dt)
                    else:
                        errors[0] += 1
                if pause_s:
                    time.sleep(pause_s)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put({"latencies": lat, "errors": errors[0]})


def publish_fleet(port: int, registry, alarm_every: int) -> int:
    """One reading for every sensor (one message per device); every alarm_every-th sensor above HH."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-api-field", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    now = time.time_ns() // 1_000_000
    n_alarm = 0
    infos = []
    for site in registry.sites:
        by_device: dict[str, list[dict]] = {}
        for j, s in enumerate(site.sensors):
            lo, hi = s.range
            value = lo + 0.4 * (hi - lo)
            if j % alarm_every == 0 and s.limits.hh is not None and s.limits.hh < hi:
                value = (s.limits.hh + hi) / 2
                n_alarm += 1
            by_device.setdefault(s.device or "gw", []).append({"sensor": s.id, "v": round(value, 3)})
        for device, readings in by_device.items():
            body = orjson.dumps({"ts": now, "readings": readings})
            infos.append(c.publish(f"hazmon/v1/{site.id}/{device}/readings", body, qos=1))
    for info in infos:
        info.wait_for_publish(30)
    c.loop_stop()
    c.disconnect()
    return n_alarm


def percentiles(xs: list[float]) -> dict:
    a = np.asarray(xs) * 1000
    p50, p95, p99 = np.percentile(a, [50, 95, 99]) if a.size else (np.nan,) * 3
    return {
        "n": int(a.size),
        "p50_ms": round(float(p50), 1),
        "p95_ms": round(float(p95), 1),
        "p99_ms": round(float(p99), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sites", type=int, default=2000)
    ap.add_argument("--sensors-per-site", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--alarm-every", type=int, default=20, help="every N-th sensor of a site goes above HH")
    args = ap.parse_args()
    ensure_installed()
    with tempfile.TemporaryDirectory(prefix="hazmon-bench-api-") as tmp:
        root = Path(tmp)
        registry = generate_registry(args.sites, args.sensors_per_site, seed=1, interval_s=60.0)
        reg_path = root / "registry.json"
        reg_path.write_bytes(registry_to_json(registry))
        mq, ix = MosquittoServer(root / "mq"), InfluxServer(root / "ix")
        mq.start()
        ix.start()
        port = free_port()
        env = dict(
            os.environ, HAZMON_REGISTRY=str(reg_path), HAZMON_MQTT_URL=mq.url, HAZMON_INFLUX_URL=ix.url,
            HAZMON_DATA_DIR=str(root / "hz"), HAZMON_HTTP_PORT=str(port), HAZMON_HTTP_HOST="127.0.0.1",
            HAZMON_EVENTS_MQTT="false",
        )  # fmt: skip
        cli = [sys.executable, "-m", "hazmon.cli", "--log-level", "WARNING"]
        token = viewer_token(env, root)
        hz = subprocess.Popen([*cli, "run"], env=env, cwd=root, stderr=open(root / "hazmon.log", "wb"))  # noqa: SIM115
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(base + "/livez", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or hz.poll() is not None:
                    raise SystemExit(f"hazmon did not come up; see {root / 'hazmon.log'}")
                time.sleep(0.2)
            sensors = sum(len(s.sensors) for s in registry.sites)
            log(f"hazmon up: {len(registry.sites)} sites, {sensors} sensors; publishing one round")
            n_alarm = publish_fleet(mq.port, registry, args.alarm_every)
            h = {"Authorization": f"Bearer {token}"}
            while True:
                listed = httpx.get(base + "/api/v1/alarms?limit=5000", headers=h, timeout=30).json()["count"]
                if listed >= n_alarm * 0.95 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            log(f"{listed} alarms on the list ({n_alarm} sensors sent above HH); load for {args.seconds:g} s")
            q: multiprocessing.Queue = multiprocessing.Queue()
            proc = multiprocessing.Process(
                target=client_main, args=(base, token, args.seconds, args.threads, q)
            )
            proc.start()
            result = q.get(timeout=args.seconds + 120)
            proc.join()
        finally:
            hz.terminate()
            hz.wait(30)
            ix.stop()
            mq.stop()
    stats = {name: percentiles(v) for name, v in result["latencies"].items()}
    base_p95 = stats["livez"]["p95_ms"]
    for name in ("alarms", "sites"):
        stats[name]["p95_vs_livez"] = round(stats[name]["p95_ms"] / base_p95, 1) if base_p95 else None
    total = sum(s["n"] for s in stats.values())
    summary = {
        "n_sites": len(registry.sites), "n_sensors": sensors, "alarms_listed": listed,
        "threads": args.threads,
        "requests_per_s": round(total / args.seconds, 1), "errors": result["errors"], **stats,
    }  # fmt: skip
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
