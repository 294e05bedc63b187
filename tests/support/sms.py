"""The SMS side of service tests: a site, its roster and routing as files, and the phones' inbox."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from alerts.engine.conditions import EVENT_TYPE, Priority
from alerts.notify.channels.encoding import DCS_UCS2, concat_info, reassemble
from tests.support.events import MonotonicMs
from tests.support.publisher import TestPublisher
from tests.support.service import HazmonProcess
from tests.support.smsservers import KannelServer

SITE = "sms-01"
OPERATOR, LEAD, PRINCIPAL = "+8613800139001", "+8613800139002", "+8613800139003"
STRANGER = "+8613900000009"
TOKEN = "cb-token-sms-service"


def write_site(path: Path, n_sensors: int = 3, sensor_keys: dict | None = None) -> Path:
    """Gas detectors with only an HH limit (40 %LEL, critical), so one excursion is one alarm.

    `sensor_keys` adds registry keys to every detector (e.g. a short `stuck_after_s`).
    """
    sensors = [
        {
            "id": f"GT-{101 + j}",
            "name": f"{101 + j}号可燃气体探测器",
            "kind": "gas_lel",
            "unit": "%LEL",
            "range": [0, 100],
            "interval_s": 2,
            "limits": {"hh": 40},
            "deadband": 10,  # a leak plume wavers by several %LEL: one excursion, one alarm
            "device": "gds-01",
            **(sensor_keys or {}),
        }
        for j in range(n_sensors)
    ]
    site = {
        "id": SITE, "name": "短信测试罐区", "kind": "chemical", "grade": 2, "roster": "sms-duty",
        "sensors": sensors,
    }  # fmt: skip
    path.write_text(yaml.safe_dump({"sites": [site]}, allow_unicode=True), encoding="utf-8")
    return path


def write_roster(path: Path) -> Path:
    """One person per role, on duty around the clock (shift changes are tested at unit level)."""
    always = {"shifts": {"all": "00:00-00:00"}, "anchor": "2026-11-02"}
    doc = {
        "rosters": [
            {
                "id": "sms-duty",
                "name": "短信测试罐区 值班表",
                "people": [
                    {"id": "op", "name": "值班员甲", "phone": OPERATOR, "roles": ["operator"]},
                    {"id": "lead", "name": "技术员乙", "phone": LEAD, "roles": ["technical_lead"]},
                    {"id": "boss", "name": "负责人丙", "phone": PRINCIPAL, "roles": ["principal"]},
                ],
                "rotas": {
                    "operator": {**always, "cycle": ["op"]},
                    "technical_lead": {**always, "cycle": ["lead"]},
                    "principal": {**always, "cycle": ["boss"]},
                },
            }
        ]
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def write_routing(
    path: Path, steps: list[tuple[str, float]], priorities: tuple[str, ...] = ("critical",)
) -> Path:
    """Alarms of `priorities` escalate along `steps` (role, minutes); every other kind sends nothing."""
    chains: dict[str, object] = {
        f"{t}/{p.name.lower()}": "none" for t in sorted(set(EVENT_TYPE.values())) for p in Priority
    }
    for priority in priorities:
        chains[f"alarm/{priority}"] = {"steps": [{"role": r, "after_min": m} for r, m in steps]}
    path.write_text(yaml.safe_dump({"chains": chains}), encoding="utf-8")
    return path


def sms_env(
    kannel: KannelServer, workdir: Path, steps: list[tuple[str, float]], **extra: str
) -> dict[str, str]:
    """HAZMON_* settings for a service that texts through `kannel`."""
    return {
        "HAZMON_SMS_GATEWAY": "kannel",
        "HAZMON_KANNEL_SENDSMS_URL": kannel.sendsms_url,
        "HAZMON_KANNEL_USERNAME": kannel.username,
        "HAZMON_KANNEL_PASSWORD": kannel.password,
        "HAZMON_SMS_CALLBACK_TOKEN": TOKEN,
        "HAZMON_ROSTERS": str(write_roster(workdir / "rosters.yaml")),
        "HAZMON_ROUTING": str(write_routing(workdir / "routing.yaml", steps)),
        "HAZMON_SMS_MERGE_WINDOW_S": "2",
        "HAZMON_SMS_URGENT_WAIT_S": "1",
        "HAZMON_SMS_IN_DOUBT_GRACE_S": "15",
        **extra,
    }


def mo_url(http_port: int) -> str:
    return f"http://127.0.0.1:{http_port}/sms/kannel/mo?t={TOKEN}"


@dataclass(frozen=True)
class Received:
    phone: str
    text: str
    at: float  # time.time() when fakesmsc logged the last part


class Inbox:
    """Every complete message the fake SMSC received, parts joined (fakesmsc logs each part)."""

    def __init__(self, kannel: KannelServer):
        self.kannel = kannel
        self.messages: list[Received] = []
        self._parts: dict[tuple[str, int], dict[int, bytes]] = {}
        self._lock = threading.Lock()

    def _drain(self) -> None:
        while True:
            try:
                m = self.kannel.mt.get_nowait()
            except queue.Empty:
                return
            phone = "+" + m.receiver.lstrip("+")
            info = concat_info(m.udh) if m.udh else None
            if info is None:
                self.messages.append(Received(phone, m.text, time.time()))
                continue
            ref, total, seq = info
            parts = self._parts.setdefault((phone, ref), {})
            parts[seq] = m.udh + m.payload
            if len(parts) == total:
                del self._parts[(phone, ref)]
                text = reassemble([parts[i] for i in sorted(parts)], DCS_UCS2)
                self.messages.append(Received(phone, text, time.time()))

    def to(self, phone: str) -> list[Received]:
        with self._lock:
            self._drain()
            return [m for m in self.messages if m.phone == phone]

    def all(self) -> list[Received]:
        with self._lock:
            self._drain()
            return list(self.messages)

    def wait(self, phone: str, n: int, timeout_s: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.to(phone)
            if len(got) >= n:
                return got
            time.sleep(0.1)
        raise AssertionError(f"{phone} got {len(self.to(phone))} messages, expected {n}: {self.all()}")


def ramp(pub: TestPublisher, clock: MonotonicMs, sensors: list[str], top: float = 50.0) -> None:
    """Gas rising in small steps (no spike) to `top`, stamped over the last seconds."""
    steps = [round(top * k / 25, 2) for k in range(26)]
    now = clock()
    for k, v in enumerate(steps):
        pub.publish_readings(SITE, "gds-01", now - (len(steps) - k) * 200, dict.fromkeys(sensors, v))
    pub.wait_all_acked()


class Rig:
    """hazmon + Kannel wired to each other, with a publisher and the phones' inbox."""

    def __init__(
        self,
        tmp_path,
        mosquitto,
        influx,
        steps,
        n_sensors: int = 3,
        sensor_keys: dict | None = None,
        **env: str,
    ):
        self.registry = write_site(tmp_path / "registry.yaml", n_sensors, sensor_keys)
        self.svc = HazmonProcess(tmp_path / "hazmon", self.registry, mosquitto.url, influx.url)
        self.kannel = KannelServer(tmp_path / "kannel", mo_url(self.svc.http_port))
        self.kannel.start()
        self.svc.env.update(sms_env(self.kannel, tmp_path, steps, **env))
        self.inbox = Inbox(self.kannel)
        self.pub = TestPublisher(mosquitto.port, f"gw-{tmp_path.name}")
        self.clock = MonotonicMs()

    def close(self) -> None:
        self.pub.close()
        self.svc.stop()
        self.kannel.stop()

    def ramp(self, sensors: list[str]) -> None:
        ramp(self.pub, self.clock, sensors)

    def alarms(self) -> list[dict]:
        return self.svc.get(f"/api/v1/alarms?site={SITE}&limit=5000").json()["data"]

    def sms_status(self) -> dict:
        return self.svc.get("/api/v1/sms/status").json()
