"""A real hazmon (with real Mosquitto and InfluxDB) driven through Debian's Chromium by Playwright.

One service serves every test of the module (starting the three servers takes seconds); the tests
use separate users and sensors so their order does not matter. Playwright is pointed at
/usr/bin/chromium (no `playwright install`, see /work/shared/COMPONENTS.md §3).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import yaml

from hazmon.devservers import InfluxServer, MosquittoServer, ensure_installed
from sensors.model import Registry
from sensors.registry import load_registry
from simulators.incidents import parse_incident
from simulators.stream import Simulation
from tests.support.events import MonotonicMs
from tests.support.publisher import TestPublisher
from tests.support.service import HazmonProcess
from tests.support.simfeed import SimFeed

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"  # Debian package `chromium`
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",  # the alarm tone plays without a click
]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"

GAS_SITE, OTHER_SITE, TANK_SITE, POND_SITE = "jm-01", "fs-01", "jm-02", "sg-tsf-01"
SIS_SITE = "sg-chem-01"
LATENCY_SITE = "jm-03"  # untouched by the other tests: the raise-to-screen latency is timed on it
CITY, OTHER_CITY, POND_CITY = "江门市", "佛山市", "韶关市"
ADMIN_PASSWORD = "pw-tester-0123456789"


def password(username: str) -> str:
    return f"pw-{username}-0123456789"  # what HazmonProcess.create_user sets


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    # a control room in China: the chart's time axis in the sites' time zone, like the alarm list
    return {**browser_context_args, "timezone_id": "Asia/Shanghai", "locale": "zh-CN"}


def _gas(j: int) -> dict:
    return {
        "id": f"GT-{101 + j}",
        "name": f"{101 + j}号可燃气体探测器",
        "kind": "gas_lel",
        "unit": "%LEL",
        "range": [0, 100],
        "interval_s": 2,
        "limits": {"h": 20, "hh": 40},
        "deadband": 10,
        "device": "gds-01",
    }


def write_registry(path: Path) -> Path:
    """Two chemical sites in two cities: the operators of one must never see the other."""
    sites = [
        {"id": GAS_SITE, "name": "江门液化气罐区", "kind": "chemical", "grade": 2, "city": CITY,
         "district": "江海区", "sensors": [_gas(j) for j in range(3)]},
        {"id": TANK_SITE, "name": "江门储罐区", "kind": "chemical", "grade": 3, "city": CITY,
         "district": "蓬江区", "sensors": [{
             "id": "LT-201", "name": "1号储罐液位", "kind": "level", "unit": "%", "range": [0, 100],
             "interval_s": 60, "limits": {"h": 80, "hh": 90}, "deadband": 1, "forecast": True,
             "device": "gds-01"}]},
        {"id": LATENCY_SITE, "name": "新会油库", "kind": "chemical", "grade": 3, "city": CITY,
         "district": "新会区", "sensors": [{
             "id": "LT-301", "name": "1号油罐液位", "kind": "level", "unit": "%", "range": [0, 100],
             "interval_s": 3600, "limits": {"h": 80, "hh": 90}, "deadband": 1, "device": "gds-01"}]},
        {"id": OTHER_SITE, "name": "佛山溶剂仓库", "kind": "chemical", "grade": 3, "city": OTHER_CITY,
         "district": "南海区", "sensors": [_gas(0)]},
        {"id": POND_SITE, "name": "仁化尾矿库", "kind": "tailings", "grade": 3, "city": POND_CITY,
         "district": "仁化县",
         "warning_items": [
             {"id": "phreatic-A", "name": "浸润线A断面", "points": ["PZ-A1", "PZ-A2", "PZ-A3"]}],
         "sensors": [{"id": "PL-01", "name": "库水位", "kind": "pond_level", "unit": "m", "range": [230, 250],
                      "interval_s": 300, "device": "gds-01",
                      "warning_levels": {"blue": 244.2, "yellow": 244.5, "orange": 245.0, "red": 247.3}}]
                    + [{"id": f"PZ-A{k}", "name": f"浸润线A{k}埋深", "kind": "phreatic_depth", "unit": "m",
                        "range": [0, 30], "interval_s": 600, "device": "gds-01",
                        "warning_levels": {"blue": 7.0, "yellow": 6.0, "orange": 5.28, "red": 4.8}}
                       for k in (1, 2, 3)]},
        {"id": SIS_SITE, "name": "韶关化工厂", "kind": "chemical", "grade": 3, "city": POND_CITY,
         "district": "曲江区",
         "hazard_sources": [{"id": "lpg", "name": "液化石油气罐区", "kind": "storage", "exposed_people": 120,
                             "substances": [{"name": "液化石油气", "q": 1000}]}],
         "sensors": [{"id": "SIS-301", "name": "3号反应釜联锁", "kind": "interlock", "interval_s": 60,
                      "device": "gds-01", "state_alarms": {"bypassed": {"after_s": 28800}}},
                     # reports slowly, so it is not stale before the leak test feeds it
                     {**_gas(0), "id": "GT-301", "name": "301号可燃气体探测器", "interval_s": 3600}]},
    ]  # fmt: skip
    for site in sites:
        site["names_en"] = {
            k: v for k, v in NAMES_EN.items() if k in yaml.safe_dump(site, allow_unicode=True)
        }
    path.write_text(yaml.safe_dump({"sites": sites}, allow_unicode=True), encoding="utf-8")
    return path


# the English of the plant's names (registry `names_en`): English mode shows no Chinese
NAMES_EN = {
    "江门液化气罐区": "Jiangmen LPG tank farm",
    "江门储罐区": "Jiangmen tank farm",
    "新会油库": "Xinhui oil depot",
    "佛山溶剂仓库": "Foshan solvent warehouse",
    "仁化尾矿库": "Renhua tailings pond",
    "韶关化工厂": "Shaoguan chemical plant",
    "江门市": "Jiangmen",
    "佛山市": "Foshan",
    "韶关市": "Shaoguan",
    "江海区": "Jianghai",
    "蓬江区": "Pengjiang",
    "新会区": "Xinhui",
    "南海区": "Nanhai",
    "仁化县": "Renhua",
    "曲江区": "Qujiang",
    "1号储罐液位": "Tank 1 level",
    "1号油罐液位": "Oil tank 1 level",
    "库水位": "Pond level",
    "3号反应釜联锁": "Reactor 3 interlock",
    "301号可燃气体探测器": "Gas detector 301",
    "浸润线A断面": "Phreatic section A",
    **{f"{101 + j}号可燃气体探测器": f"Gas detector {101 + j}" for j in range(3)},
    **{f"浸润线A{k}埋深": f"Phreatic depth A{k}" for k in (1, 2, 3)},
}


class Plant:
    """The running service, a field gateway publishing to it and the users of the tests."""

    def __init__(self, svc: HazmonProcess, pub: TestPublisher, registry: Registry):
        self.svc = svc
        self.pub = pub
        self.registry = registry
        self.clock = MonotonicMs()

    @property
    def url(self) -> str:
        return self.svc.base_url

    def publish(self, site: str, values: dict[str, float], ts_ms: int | None = None) -> None:
        self.pub.publish_readings(site, "gds-01", self.clock() if ts_ms is None else ts_ms, values)

    def ramp(self, site: str, sensor: str, top: float = 50.0, steps: int = 12) -> None:
        """Gas rising in small steps (no spike) to `top`, stamped over the last seconds."""
        now = self.clock()
        for k in range(steps + 1):
            self.publish(site, {sensor: round(top * k / steps, 2)}, now - (steps - k) * 200)
        self.pub.wait_all_acked()

    def leak(self, site: str, sensor: str, level: float) -> SimFeed:
        """The simulator's gas-leak incident at `sensor` (only that site), published live; stop() it."""
        # only that detector: the other tests drive the site's other sensors by hand
        (the_site,) = [s for s in self.registry.sites if s.id == site]
        # at a detector's real pace (2 s), even one the registry lets report slowly
        detector = tuple(
            dataclasses.replace(x, interval_s=min(x.interval_s, 2.0))
            for x in the_site.sensors
            if x.id == sensor
        )
        only_site = Registry((dataclasses.replace(the_site, sensors=detector),))
        incident = parse_incident(f"leak:{site}/{sensor}@+10s")
        sim = Simulation(only_site, start_s=time.time(), seed=7, incidents=[incident])
        return SimFeed(sim, self.pub, speed=60.0, watch=(sensor, level)).start()

    def alarms(self, site: str) -> list[dict]:
        return self.svc.get(f"/api/v1/alarms?site={site}").json()["data"]


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    ensure_installed()
    root = tmp_path_factory.mktemp("console")
    mosquitto = MosquittoServer(root / "mosquitto")
    influx = InfluxServer(root / "influxdb")
    mosquitto.start()
    influx.start()
    registry_path = write_registry(root / "registry.yaml")
    # a disposal is due 3 s after a high raise here, so a test sees one go overdue
    svc = HazmonProcess(
        root / "hazmon", registry_path, mosquitto.url, influx.url, HAZMON_DISPOSAL_DUE_MIN="0.05"
    )
    svc.create_user("op-jm", "operator", "--city", CITY)
    svc.create_user("op-fs", "operator", "--city", OTHER_CITY)
    svc.create_user("op-jm2", "operator", "--city", CITY)
    svc.create_user("op-sg", "operator", "--city", POND_CITY)
    svc.create_user("reg-sg", "viewer", "--city", POND_CITY)  # the city's regulator
    pub = None
    try:
        svc.start()
        pub = TestPublisher(mosquitto.port, f"gw-console-{root.name}")
        yield Plant(svc, pub, load_registry(registry_path))
    finally:
        if pub is not None:
            pub.close()
        svc.stop()
        influx.stop()
        mosquitto.stop()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
