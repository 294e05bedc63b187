"""The SMS gateway down for two minutes under a running service: texts wait, show, and arrive once.

Real processes throughout (tests/support/sms.py Rig): hazmon, Kannel with fakesmsc, and a WeCom
robot emulator as the second channel, which takes over for texts SMS has not sent in 30 s.
"""

from __future__ import annotations

import time

import pytest

from tests.support.events import wait_for
from tests.support.sms import LEAD, OPERATOR
from tests.support.smsservers import ensure_kannel_installed
from tests.support.web import FakeWecomRobot, Uvicorn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


@pytest.fixture(scope="module", autouse=True)
def _kannel_installed():
    ensure_kannel_installed()


def test_gateway_down_two_minutes_messages_wait_show_as_backlog_and_arrive_once(rig_factory, capsys):
    robot = FakeWecomRobot()
    with Uvicorn(robot.app) as web:
        _gateway_down_two_minutes(rig_factory, robot, web.port, capsys)


def _gateway_down_two_minutes(rig_factory, robot: FakeWecomRobot, robot_port: int, capsys) -> None:
    # the second channel takes over for the officers after 30 s, once per text
    rig = rig_factory(
        [("operator", 0), ("technical_lead", 0.25)],
        HAZMON_WEBHOOK_URL=f"http://127.0.0.1:{robot_port}/cgi-bin/webhook/send?key=robot-key",
        HAZMON_WEBHOOK_FAILOVER_AFTER_S="30",
    )
    rig.svc.start()
    rig.kannel.stop_smsbox()  # sendsms refuses connections
    down_at = time.monotonic()
    rig.ramp(["GT-101"])
    status = wait_for(rig.sms_status, lambda s: s["gateway_ok"] is False and s["unsent"] >= 1, timeout_s=20)
    assert status["last_gateway_error"]
    health = rig.svc.get("/healthz").json()["alarms"]["sms"]
    assert health["unsent"] >= 1
    assert "hazmon_sms_gateway_up 0" in rig.svc.get("/metrics").text
    time.sleep(max(0.0, down_at + 120 - time.monotonic()))
    backlog = rig.sms_status()
    assert backlog["unsent"] == 2 and backlog["oldest_unsent_age_s"] >= 100  # both steps wait
    assert rig.inbox.all() == []
    posted = robot.contents()
    assert len(posted) == 2 and all("A000001" in text for text in posted)  # each text once, in the group
    assert backlog["backlog"].get("fallback_posted") == 2
    rig.kannel.start_smsbox()
    up_at = time.monotonic()
    rig.inbox.wait(OPERATOR, 1, timeout_s=90)
    rig.inbox.wait(LEAD, 1, timeout_s=90)
    caught_up = time.monotonic() - up_at
    rig.svc.wait_healthy(lambda h: h["alarms"]["sms"]["unsent"] == 0)
    time.sleep(3)
    assert len(rig.inbox.to(OPERATOR)) == 1 and len(rig.inbox.to(LEAD)) == 1
    with capsys.disabled():
        print(  # noqa: T201
            f"\n[sms outage] gateway down {up_at - down_at:.0f} s, backlog {backlog['unsent']} messages"
            f" (oldest {backlog['oldest_unsent_age_s']:.0f} s);"
            f" all delivered once {caught_up:.1f} s after it returned; group robot got {len(posted)} posts"
        )
