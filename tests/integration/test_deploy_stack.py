"""The compose stack without Docker: hazmon and the simulator run with the environment
docker-compose.yml gives them, interpolated from the .env deploy/make-secrets.sh wrote, against
the shipped broker config and an InfluxDB with authentication set up as the image does. Only the
host names and ports (mosquitto:1883, influxdb:8086) and the image's /app/ paths are replaced."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from ingest.influx import InfluxClient
from tests.support.mqtt_probe import Probe
from tests.support.service import HazmonProcess
from tests.support.shipped_stack import (
    EVENTS_READER_USER,
    REPO,
    InfluxWithAuth,
    ShippedMosquitto,
    compose_environment,
    init_like_the_image,
    make_secrets,
    open_to_broker,
    world_traversable_dir,
)

pytestmark = pytest.mark.integration

SITES = {"chenzhou-tsf-01", "dayawan-srs-01", "gaolan-lpg-01", "jianghai-tf-01", "renhua-tsf-01"}


@pytest.fixture
def stack(tmp_path):
    root = world_traversable_dir("hazmon-stack-")
    secrets = make_secrets(root / "repo")
    open_to_broker(secrets.passwd.parent, root)
    broker = ShippedMosquitto(root / "broker", secrets)
    influx = InfluxWithAuth(tmp_path / "influxdb")
    try:
        broker.start()
        influx.start()
        init_like_the_image(influx, secrets.env["INFLUX_ADMIN_PASSWORD"], secrets.env["INFLUX_USER_PASSWORD"])
        yield secrets, broker, influx
    finally:
        influx.stop()
        broker.stop()
        shutil.rmtree(root)


def on_this_machine(env: dict[str, str], broker, influx) -> dict[str, str]:
    places = {
        "@mosquitto:1883": f"@127.0.0.1:{broker.port}",
        "http://influxdb:8086": influx.url,
        "/app/": f"{REPO}/",
    }
    out = {}
    for key, value in env.items():
        for container, here in places.items():
            value = value.replace(container, here)
        out[key] = value
    return out


def test_hazmon_and_the_simulator_run_on_the_generated_credentials(stack, tmp_path):
    secrets, broker, influx = stack
    env = on_this_machine(compose_environment("hazmon", secrets.env), broker, influx)
    for own in ("HAZMON_DATA_DIR", "HAZMON_HTTP_HOST", "HAZMON_HTTP_PORT"):  # HazmonProcess sets these
        env.pop(own)
    where = [env.pop(k) for k in ("HAZMON_REGISTRY", "HAZMON_MQTT_URL", "HAZMON_INFLUX_URL")]
    hazmon = HazmonProcess(tmp_path / "hazmon", *where, **env)
    reader = Probe(broker.port, "reader", EVENTS_READER_USER, secrets.env["MQTT_EVENTS_READER_PASSWORD"])
    assert reader.connect()[0] == 0
    reader.subscribe("hazmon/v1/+/events")
    hazmon.start()  # waits until its ingest session is connected
    try:
        log = tmp_path / "hazmon" / "hazmon-1.log"
        deadline = time.monotonic() + 30
        while "InfluxDB schema ready" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)  # as its non-admin user, on the policies deploy/influxdb/init made
        simulator = on_this_machine(compose_environment("simulator", secrets.env), broker, influx)
        command = [sys.executable, "-m", "simulators", "--registry", f"{REPO}/sensors/examples",
                   "--speed", "max", "--duration", "30m", "--quiet",
                   "--incident", "overfill:jianghai-tf-01/T101-LT"]  # fmt: skip
        done = subprocess.run(command, env=simulator, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        admin = InfluxClient(influx.url, "hazmon", "admin", secrets.env["INFLUX_ADMIN_PASSWORD"])
        deadline = time.monotonic() + 60
        stored: dict[str, int] = {}
        while time.monotonic() < deadline and set(stored) != SITES:
            stored = {s: n for s in SITES if (n := admin.count_points(site=s))}
            time.sleep(0.5)
        admin.close()
        events = reader.wait_for(1, timeout_s=60)
        health = hazmon.wait_healthy(lambda h: h.get("influx_up"))
    finally:
        hazmon.stop()
        reader.close()
    text = log.read_text()
    print(  # noqa: T201 - figures for the closing note
        f"\ncompose stack: points stored per site {stored}; {len(events)} event(s) read by the events user"
    )
    assert set(stored) == SITES  # the simulator's user published for every site, hazmon stored it
    assert events and events[0][0].endswith("/events")  # hazmon's events user published, a reader read
    assert health["mqtt_connected"] and health["alarms"]["events_connected"]
    assert "InfluxDB schema ready" in text and "schema not ready" not in text
    assert "refused the connection" not in text
