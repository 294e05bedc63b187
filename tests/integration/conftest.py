"""Real Mosquitto and InfluxDB per test, on free loopback ports with data in tmp_path."""

from __future__ import annotations

import pytest

from hazmon.devservers import InfluxServer, MosquittoServer, ensure_installed
from ingest.influx import InfluxClient
from tests.support.sms import Rig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session", autouse=True)
def _servers_installed() -> None:
    ensure_installed()


@pytest.fixture
def mosquitto(tmp_path):
    server = MosquittoServer(tmp_path / "mosquitto")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influx(tmp_path):
    server = InfluxServer(tmp_path / "influxdb")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influx_client(influx):
    client = InfluxClient(influx.url, "hazmon")
    yield client
    client.close()


@pytest.fixture
def rig_factory(tmp_path, mosquitto, influx):
    """Build SMS rigs (hazmon + Kannel, tests/support/sms.py); all are stopped after the test."""
    made: list[Rig] = []

    def make(steps, **kw) -> Rig:
        rig = Rig(tmp_path, mosquitto, influx, steps, **kw)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()
