"""RobotWebhook against a real HTTP server emulating the WeCom group robot (uvicorn + FastAPI)."""

from __future__ import annotations

import pytest

from alerts.notify.channels.gateway import GatewayUnavailable
from alerts.notify.channels.webhook import RobotWebhook
from hazmon.devservers import free_port
from tests.support.web import FakeWecomRobot, Uvicorn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

KEY = "0b1e2c3d-4e5f-6789-abcd-ef0123456789"
ALARM = "【重大危险源告警】尾矿库坝体位移速率超限，请立即核实。"


@pytest.fixture
def wecom():
    robot = FakeWecomRobot()
    with Uvicorn(robot.app) as web:
        gateway = RobotWebhook(
            f"http://127.0.0.1:{web.port}/cgi-bin/webhook/send?key={KEY}", flavor="wecom", timeout_s=5.0
        )
        try:
            yield robot, gateway
        finally:
            gateway.close()


def test_wecom_round_trip_and_throttling_is_retryable(wecom):
    robot, gateway = wecom
    result = gateway.send("+8613800138001", ALARM, key="sms-1")
    assert result.key == "sms-1" and len(result.message_ids) == 1
    assert robot.posts == [
        (KEY, {"msgtype": "text", "text": {"content": ALARM, "mentioned_mobile_list": ["13800138001"]}})
    ]

    robot.errcode = 45009
    with pytest.raises(GatewayUnavailable, match="45009") as info:
        gateway.send("+8613800138001", ALARM, key="sms-2")
    assert info.value.retryable and KEY not in str(info.value)
    assert len(robot.posts) == 2

    robot.errcode = 0
    assert gateway.send("+8613800138001", ALARM, key="sms-2").key == "sms-2"
    assert len(robot.posts) == 3


def test_wecom_robot_gone_is_retryable():
    gateway = RobotWebhook(f"http://127.0.0.1:{free_port()}/cgi-bin/webhook/send?key={KEY}", flavor="wecom")
    try:
        with pytest.raises(GatewayUnavailable, match="unreachable") as info:
            gateway.send("+8613800138001", ALARM, key="sms-3")
        assert KEY not in str(info.value)
    finally:
        gateway.close()
