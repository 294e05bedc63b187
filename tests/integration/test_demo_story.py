"""The demo's week of history in a real InfluxDB, read back through hazmon's API; and `hazmon demo` itself."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from hazmon.devservers import free_port
from ingest.influx import InfluxClient
from sensors.registry import load_registry
from simulators.backfill import backfill
from simulators.signals import FleetModel
from tests.support.service import HazmonProcess

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
SITE = "farm-01"


def write_registry(path):
    """A tank (forecast: its behaviour is learned from the week) and a gas detector at 1 s."""
    site = {
        "id": SITE,
        "name": "演示储罐区",
        "kind": "chemical",
        "grade": 2,
        "sensors": [
            {"id": "LT-1", "name": "储罐液位", "kind": "level", "unit": "m", "range": [0, 16],
             "interval_s": 60, "limits": {"l": 1.2, "h": 14.2, "hh": 14.8}, "forecast": True, "device": "gw"},
            {"id": "GT-1", "name": "可燃气体", "kind": "gas_lel", "unit": "%LEL", "range": [0, 100],
             "interval_s": 10, "limits": {"h": 25, "hh": 50}, "device": "gw"},
        ],
    }  # fmt: skip
    path.write_text(yaml.safe_dump({"sites": [site]}, allow_unicode=True), encoding="utf-8")
    return path


def test_a_backfilled_week_is_the_trend_the_api_shows_and_a_rerun_writes_nothing(tmp_path, mosquitto, influx):
    registry_path = write_registry(tmp_path / "registry.yaml")
    registry = load_registry(registry_path)
    client = InfluxClient(influx.url)
    client.ensure_schema()
    end = int(time.time() * 1000)
    start = end - 7 * DAY_MS
    first = backfill(client, FleetModel(registry.measured(), seed=5), start, end, seed=5)
    assert first.readings == 7 * 86400 // 60 + 7 * 86400 // 10  # every reading of both sensors
    assert first.rollup_points - 2 * 7 * 1440 in (0, 1, 2)  # one per sensor and minute (a partial one)
    again = backfill(client, FleetModel(registry.measured(), seed=5), start, end, seed=5)
    assert (again.readings, again.resumed_sensors) == (0, 2)  # idempotent: nothing written twice
    assert client.count_points() == first.readings
    client.close()

    svc = HazmonProcess(tmp_path / "hazmon", registry_path, mosquitto.url, influx.url)
    svc.start()
    try:
        now = int(time.time() * 1000)
        r = svc.get(f"/api/v1/sites/{SITE}/sensors/LT-1/history?start={now - 7 * DAY_MS}&end={now}")
        assert r.status_code == 200, r.text
        week = r.json()
        assert week["resolution"] == "1m"
        t = np.array(week["series"]["t_ms"])
        assert (
            len(t) >= 7 * 1440 - 2 and t[0] - (now - 7 * DAY_MS) < 120_000
        )  # the whole week, minute by minute
        assert week["series"]["count"][0] == 1 and not week["alarms"]  # no alarm in the quiet history
        mean = np.array(week["series"]["mean"])
        assert mean.min() > 1.2 and mean.max() < 14.2 and mean.max() - mean.min() > 2  # a tank that moves
        r = svc.get(f"/api/v1/sites/{SITE}/sensors/GT-1/history?start={now - 3_600_000}&end={now}")
        raw = r.json()
        assert raw["resolution"] == "raw" and 350 <= raw["points"] <= 361  # the last hour at 10 s
        # the engine learned the tank's behaviour from the week at start, and raised nothing from it
        fc = svc.get(f"/api/v1/sites/{SITE}/sensors/LT-1/forecast").json()
        deadline = time.monotonic() + 20
        while fc["learned"] != "mature" and time.monotonic() < deadline:
            time.sleep(0.5)
            fc = svc.get(f"/api/v1/sites/{SITE}/sensors/LT-1/forecast").json()
        assert fc["learned"] == "mature" and fc["normal_lo"] is not None
        assert svc.get("/api/v1/alarms?active_only=true").json()["count"] == 0
    finally:
        svc.stop()


def test_hazmon_demo_shows_an_active_alarm_soon_and_stops_cleanly(tmp_path):
    """`hazmon demo` with one day of history: the first chapter's alarm is active within the minute or so."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hazmon.cli", "demo", "--data-dir", str(tmp_path / "demo"),
         "--http-port", str(port), "--history-days", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    t0 = time.monotonic()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("first active alarm") or time.monotonic() - t0 > 150:
                break
        text = "".join(lines)
        assert re.search(r"backfill done: [\d,]+ readings", text), text[-3000:]
        assert "1-day trend of jianghai-tf-01/T101-LT answers" in text, text[-3000:]
        m = re.search(r"first active alarm (\d+) s after .*: A\d+ jianghai-tf-01 tf-gw-02 STALE", text)
        assert m, text[-3000:]
        assert int(m.group(1)) < 120
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rest, _ = proc.communicate()
    assert proc.returncode == 0 and "hazmon demo stopped" in rest, rest[-2000:]
