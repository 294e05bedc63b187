"""The service learns each forecast sensor's behaviour from InfluxDB's history, and keeps it.

Real InfluxDB and Mosquitto, and `hazmon run` as a process. Four days of a tank temperature's
1-minute rollup (a daily cycle and mean-reverting weather) are written to InfluxDB before hazmon
starts; hazmon must learn them within its first learning run, show the learned normal range through
the forecast API, keep the fit in `behaviour.npz`, and after a SIGKILL start with it at once.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.support.service import HazmonProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SITE = "learn-01"
SENSORS = ("TT-101", "TT-102")
DAYS = 4


def write_site(path: Path) -> Path:
    sensors = [
        {
            "id": s, "name": f"{s} 储罐温度", "kind": "temperature", "unit": "°C", "range": [-20, 100],
            "interval_s": 60, "limits": {"l": 5, "h": 60}, "forecast": True, "device": "gw-01",
        }
        for s in SENSORS
    ]  # fmt: skip
    site = {"id": SITE, "name": "学习测试罐区", "kind": "chemical", "grade": 3, "sensors": sensors}
    path.write_text(yaml.safe_dump({"sites": [site]}, allow_unicode=True), encoding="utf-8")
    return path


def write_history(client, now_ms: int) -> None:
    """DAYS of 1-minute rollup points per sensor, as the continuous query would have written them."""
    rng = np.random.default_rng(7)
    minutes = DAYS * 1440
    t = now_ms - (minutes - np.arange(minutes)) * 60_000
    t -= t % 60_000
    for k, sensor in enumerate(SENSORS):
        weather = np.cumsum(rng.normal(0, 0.05, minutes)) * 0.2
        mean = 25 + 4 * k + 6 * np.sin(2 * math.pi * (t / 86_400_000)) + weather - weather.mean()
        lines = [
            f"readings_1m,site={SITE},sensor={sensor},kind=temperature "
            f"min={m - 0.2:.3f},mean={m:.3f},max={m + 0.2:.3f},count=1i {ts}"
            for ts, m in zip(t.tolist(), mean.tolist(), strict=True)
        ]
        client.write_lines("\n".join(lines).encode(), rp="year")


def learning(svc: HazmonProcess, predicate, timeout_s: float = 60) -> dict:
    return svc.wait_healthy(lambda h: predicate((h.get("alarms") or {}).get("learning") or {}), timeout_s)


def test_the_service_learns_from_influx_keeps_the_fit_and_restarts_with_it(
    tmp_path, mosquitto, influx, influx_client
):
    influx_client.ensure_schema()
    write_history(influx_client, int(time.time() * 1000))
    svc = HazmonProcess(
        tmp_path / "hazmon", write_site(tmp_path / "registry.yaml"), mosquitto.url, influx.url
    )
    try:
        svc.start()
        h = learning(svc, lambda le: le.get("fitted") == len(SENSORS))
        assert h["alarms"]["learning"]["mature"] == len(SENSORS)  # four days cover a 24 h horizon's need
        store = tmp_path / "hazmon" / "data" / "behaviour.npz"
        deadline = time.monotonic() + 10
        while not store.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.exists()
        fc = svc.get(f"/api/v1/sites/{SITE}/sensors/{SENSORS[0]}/forecast").json()
        assert fc["active"] is False and fc["learned"] == "mature"
        # the normal range at this hour holds the day's cycle around 25 °C, well inside L 5 .. H 60
        assert 5 < fc["normal_lo"] < fc["normal_hi"] < 60
        assert fc["normal_hi"] - fc["normal_lo"] < 20
        svc.kill()
        svc.start()
        log = (svc.workdir / f"hazmon-{svc.starts}.log").read_text()
        assert f"learned behaviour of {len(SENSORS)} forecast sensors loaded" in log
        restarted = svc.get(f"/api/v1/sites/{SITE}/sensors/{SENSORS[1]}/forecast").json()
        assert restarted["learned"] == "mature"  # from the file, before any learning run
    finally:
        svc.stop()
