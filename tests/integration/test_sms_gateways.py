"""SMS gateway adapters against real gateways: Kannel 1.4.5 + fakesmsc, and the smpp34 SMSC simulator."""

from __future__ import annotations

import queue
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI

from alerts.sms.encoding import DCS_UCS2, concat_info, reassemble
from alerts.sms.gateway import (
    CallbackListener,
    DeliveryStatus,
    GatewayUnavailable,
    MessageRejected,
)
from alerts.sms.kannel import KannelSmsGateway
from api.routers.sms import kannel_router
from hazmon.devservers import free_port
from hazmon.smsservers import KannelServer, ensure_kannel_installed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

OFFICER = "+8613800138000"
TOKEN = "cb-token-0123456789"
# 120 Chinese characters: 2 UCS-2 parts (67 + 53)
ALARM_ZH = (
    "【重大危险源告警】江海化工储罐区一号罐液位高高报警，当前液位十八点六米，超过高高限十八米，"
    "可燃气体探测器同时报警，浓度百分之二十五爆炸下限。请值班人员立即到现场核实，"
    "启动应急预案并疏散无关人员。回复确认加告警编号。现场负责人：王工（请复核）"
)


class Recorder:
    """A listener that queues what the gateway reports."""

    def __init__(self):
        self.receipts: queue.Queue = queue.Queue()
        self.mos: queue.Queue = queue.Queue()
        self.listener = CallbackListener(
            on_receipt=lambda mid, status, r: self.receipts.put(r),
            on_mo=lambda frm, text, at: self.mos.put((frm, text, at)),
        )


class Uvicorn:
    """uvicorn serving one app in a thread on a free loopback port."""

    def __init__(self, app: FastAPI):
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture(scope="module", autouse=True)
def _kannel_installed():
    ensure_kannel_installed()


@pytest.fixture
def kannel_stack(tmp_path):
    """(KannelServer, KannelSmsGateway, Recorder) with the gateway's callbacks served by uvicorn."""
    rec = Recorder()
    app = FastAPI()
    port = free_port()
    base = f"http://127.0.0.1:{port}/sms/kannel"
    server = KannelServer(tmp_path / "kannel", mo_url=f"{base}/mo?t={TOKEN}")
    gateway = KannelSmsGateway(server.sendsms_url, server.username, server.password,
                               callback_base=base, callback_token=TOKEN, sender=server.sender)
    gateway.set_listener(rec.listener)
    app.include_router(kannel_router(gateway))
    web = Uvicorn(app)
    web.port = port
    web.server.config.port = port
    with web:
        server.start()
        try:
            yield server, gateway, rec
        finally:
            gateway.close()
            server.stop()


def _mt_parts(server: KannelServer, n: int, timeout_s: float = 5.0) -> list:
    return [server.mt.get(timeout=timeout_s) for _ in range(n)]


def test_kannel_chinese_alarm_arrives_once_in_two_parts_and_receipts_come_back(kannel_stack):
    server, gateway, rec = kannel_stack
    t0 = time.monotonic()
    result = gateway.send(OFFICER, ALARM_ZH, key="A000123/13800138000/1")
    assert (result.parts, result.data_coding) == (2, DCS_UCS2)
    assert len(ALARM_ZH) == 120 and len(result.message_ids) == 1

    parts = _mt_parts(server, 2)
    # fakesmsc logs "<sender> <receiver> udh <udh> data <UCS-2 bytes>", all url-encoded
    assert all(p.type == "udh" and p.receiver == OFFICER for p in parts)
    infos = [concat_info(p.udh) for p in parts]
    assert [i[1:] for i in infos] == [(2, 1), (2, 2)] and infos[0][0] == infos[1][0]
    assert [len(p.payload) for p in parts] == [134, 106]  # 67 + 53 UCS-2 characters
    assert reassemble([p.udh + p.payload for p in parts], DCS_UCS2) == ALARM_ZH

    # one receipt per DLR type for the whole message (Kannel joins the parts), with our key
    got = {rec.receipts.get(timeout=5).status for _ in range(2)}
    assert got == {DeliveryStatus.ACCEPTED, DeliveryStatus.DELIVERED}
    # exactly once: nothing more reaches the SMSC (fakesmsc reports MT up to ~1 s late)
    time.sleep(1.5)
    assert server.mt.empty()
    assert rec.receipts.empty()
    assert time.monotonic() - t0 < 10


def test_kannel_receipt_carries_message_id_and_key(kannel_stack):
    server, gateway, rec = kannel_stack
    result = gateway.send(OFFICER, "ALARM T-101 level HH", key="A000124/13800138000/1")
    assert result.data_coding == 0 and result.parts == 1
    mt = server.mt.get(timeout=5)
    assert (mt.type, mt.text) == ("text", "ALARM T-101 level HH")
    r = rec.receipts.get(timeout=5)
    assert r.message_id == result.message_ids[0]
    assert r.key == "A000124/13800138000/1"


def test_kannel_mo_replies_reach_on_mo_as_utf8(kannel_stack):
    server, _gateway, rec = kannel_stack
    server.send_mo(OFFICER, "1 A000123")
    server.send_mo(OFFICER, "确认 A000123")
    got = [rec.mos.get(timeout=5) for _ in range(2)]
    assert [(frm, text) for frm, text, _ in got] == [(OFFICER, "1 A000123"), (OFFICER, "确认 A000123")]
    assert all(at.tzinfo is not None for _, _, at in got)


def test_kannel_wrong_credentials_are_rejected_not_retried(kannel_stack):
    server, _gateway, _rec = kannel_stack
    bad = KannelSmsGateway(server.sendsms_url, server.username, "wrong-password")
    with pytest.raises(MessageRejected) as e:
        bad.send(OFFICER, "test", key="k")
    assert not e.value.retryable
    bad.close()


def test_kannel_down_raises_unavailable_and_works_after_restart(kannel_stack):
    server, gateway, rec = kannel_stack
    server.stop()
    with pytest.raises(GatewayUnavailable) as e:
        gateway.send(OFFICER, "危险品泄漏警报：3号仓库", key="A000125/1")
    assert e.value.retryable
    server.start()
    result = gateway.send(OFFICER, "危险品泄漏警报：3号仓库", key="A000125/1")
    mt = server.mt.get(timeout=5)
    assert (mt.type, mt.text) == ("ucs-2", "危险品泄漏警报：3号仓库")
    assert rec.receipts.get(timeout=5).message_id == result.message_ids[0]
