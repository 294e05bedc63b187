"""SIGKILL the service with alarms standing: after a restart nothing is raised twice, lost or left unsent.

A field thread keeps publishing every sensor (wall-clock timestamps, a little noise) the whole
time, before the kill, while hazmon is down, and after the restart, so the conditions stay active
and the restarted engine sees them again at once.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from hazmon.devservers import free_port
from tests.support.events import EventSubscriber, MonotonicMs, wait_for
from tests.support.publisher import TestPublisher
from tests.support.registries import write_alarm_registry
from tests.support.service import HazmonProcess

pytestmark = pytest.mark.integration

SITE = "crash-01"
IN_ALARM = ["LT-000", "LT-001", "LT-002", "LT-003"]  # above H (80)
QUIET = ["LT-004", "LT-005"]


class Field:
    """Publishes every sensor's level every `every_s` with the wall clock, until stopped."""

    def __init__(self, pub: TestPublisher, every_s: float = 0.2):
        self.pub = pub
        self.every_s = every_s
        self.level = {**dict.fromkeys(IN_ALARM, 85.0), **dict.fromkeys(QUIET, 50.0)}
        self._rng = np.random.default_rng(5)
        self._clock = MonotonicMs()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            noise = self._rng.uniform(-0.2, 0.2, len(self.level)).tolist()
            values = {s: round(v + e, 2) for (s, v), e in zip(self.level.items(), noise, strict=True)}
            self.pub.publish_readings(SITE, "gw-01", self._clock(), values)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def rig(tmp_path, mosquitto, influx):
    registry = write_alarm_registry(tmp_path / "registry.yaml", SITE, n_sensors=len(IN_ALARM) + len(QUIET))
    svc = HazmonProcess(tmp_path / "hazmon", registry, mosquitto.url, influx.url)
    sub = EventSubscriber(mosquitto.port, f"scada-{tmp_path.name}")
    pub = TestPublisher(mosquitto.port, f"gw-{tmp_path.name}")
    field = Field(pub)
    yield svc, sub, field
    field.stop()
    pub.close()
    sub.close()
    svc.stop()


def alarm_states(svc: HazmonProcess) -> dict[str, tuple[str, str, str]]:
    """alarm_id -> (sensor, kind, state) of every alarm point that is not NORMAL."""
    data = svc.get(f"/api/v1/alarms?site={SITE}").json()["data"]
    return {a["alarm_id"]: (a["source"], a["kind"], a["state"]) for a in data}


def raises_in_journal(svc: HazmonProcess, alarm_ids) -> int:
    n = 0
    for aid in alarm_ids:
        n += sum(e["type"] == "AlarmRaised" for e in svc.get(f"/api/v1/alarms/{aid}/history").json()["data"])
    return n


def wait_raised(svc: HazmonProcess) -> dict[str, tuple[str, str, str]]:
    return wait_for(lambda: alarm_states(svc), lambda a: len(a) == len(IN_ALARM), timeout_s=20)


def test_sigkill_and_restart_keep_every_alarm_and_raise_nothing_again(rig):
    svc, sub, field = rig
    svc.start()
    raised = wait_raised(svc)
    by_sensor = {sensor: aid for aid, (sensor, _, _) in raised.items()}
    ack = {"comment": "现场确认"}
    assert svc.post(f"/api/v1/alarms/{by_sensor['LT-001']}/ack", ack).status_code == 200
    shelve = {"reason": "仪表检修", "minutes": 30}
    assert svc.post(f"/api/v1/alarms/{by_sensor['LT-002']}/shelve", shelve).status_code == 200
    before = alarm_states(svc)
    assert sorted(s for _, _, s in before.values()) == ["ACK", "SHELVED", "UNACK", "UNACK"]
    # every raise went out and its acknowledgement is on disk before the kill
    sub.wait_for(lambda evs: len(evs) == len(IN_ALARM))
    svc.wait_healthy(lambda h: h["alarms"]["events_backlog"] == 0 and h["alarms"]["events_cursor"] >= 4)
    published_before = len(sub.snapshot())

    svc.kill()
    time.sleep(0.5)  # readings keep coming while hazmon is down; the broker holds them
    svc.start()
    time.sleep(4.0)  # the restarted engine sees the standing conditions again in these readings

    assert alarm_states(svc) == before  # same alarms, same numbers, same states
    assert len(sub.snapshot()) == published_before  # no event went out again
    assert raises_in_journal(svc, before) == len(IN_ALARM)  # and none was journaled again
    health = svc.wait_healthy(lambda h: h["alarms"]["running"])
    assert health["alarms"]["active_conditions"] == len(IN_ALARM) and health["alarms"]["errors"] == 0

    # the restarted service carries on: numbers continue, operator steps work on the old alarms
    assert svc.post(f"/api/v1/alarms/{by_sensor['LT-000']}/ack", {}).json()["state"] == "ACK"
    field.level["LT-004"] = 85.0
    new = sub.wait_for(lambda evs: len(evs) > published_before)[published_before].event
    assert (new["sensor"], new["type"], new["alarm_id"]) == ("LT-004", "alarm", "A000005")
    field.level["LT-003"] = 50.0
    rtn = sub.wait_for(lambda evs: len(evs) > published_before + 1)[published_before + 1].event
    assert (rtn["sensor"], rtn["type"], rtn["alarm_id"]) == (
        "LT-003",
        "return_to_normal",
        by_sensor["LT-003"],
    )


def test_events_committed_but_never_published_go_out_after_a_restart(rig, mosquitto):
    svc, sub, _field = rig
    # the first run's event broker is unreachable: its events are journaled, never acknowledged
    svc.env["HAZMON_EVENTS_MQTT_URL"] = f"mqtt://127.0.0.1:{free_port()}"
    svc.start()
    raised = wait_raised(svc)
    health = svc.wait_healthy(lambda h: h["alarms"]["events_backlog"] == len(IN_ALARM))
    assert not health["alarms"]["events_connected"] and health["alarms"]["events_cursor"] == 0
    svc.kill()

    svc.env.pop("HAZMON_EVENTS_MQTT_URL")  # the events broker is back (the readings broker)
    svc.start()
    got = sub.wait_for(lambda evs: len(evs) >= len(IN_ALARM))
    time.sleep(1.0)  # a doubled event would arrive now
    got = sub.snapshot()
    assert sorted(e.event["alarm_id"] for e in got) == sorted(raised)  # each once, the original numbers
    assert {e.event["type"] for e in got} == {"alarm"}
    svc.wait_healthy(lambda h: h["alarms"]["events_backlog"] == 0)
    assert alarm_states(svc) == raised
