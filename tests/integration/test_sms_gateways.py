"""SMS gateway adapters against real gateways: Kannel 1.4.5 + fakesmsc, and the smpp34 SMSC simulator."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time

import pytest
from fastapi import FastAPI

from alerts.notify.channels.encoding import DCS_UCS2, concat_info, reassemble
from alerts.notify.channels.gateway import (
    CallbackListener,
    DeliveryStatus,
    GatewayUnavailable,
    MessageRejected,
)
from alerts.notify.channels.kannel import KannelSmsGateway
from alerts.notify.channels.smpp import SmppSmsGateway
from api.routers.sms import kannel_router
from hazmon.devservers import free_port
from tests.support.smsservers import KannelServer, SmppSimulator, ensure_kannel_installed
from tests.support.web import Uvicorn

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
    gateway = KannelSmsGateway(
        server.sendsms_url,
        server.username,
        server.password,
        callback_base=base,
        callback_token=TOKEN,
        sender=server.sender,
    )
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


# ---- SMPP 3.4: smpplib transceiver against the smpp34 SMSC simulator (a child process)


@pytest.fixture
def smpp_stack(tmp_path):
    """(SmppSimulator, SmppSmsGateway bound to it, Recorder)."""
    sim = SmppSimulator(tmp_path / "smsc")
    sim.start()
    rec = Recorder()
    gateway = SmppSmsGateway(
        "127.0.0.1",
        sim.port,
        "hazmon",
        "secret",
        source_addr="HAZMON",
        enquire_link_s=0.5,
        reconnect_delay_s=0.2,
        bind_wait_s=0.5,
    )
    gateway.set_listener(rec.listener)
    gateway.start()
    assert gateway.wait_bound(5)
    sim.next_event("bound")
    try:
        yield sim, gateway, rec
    finally:
        gateway.close()
        sim.stop()


def test_smpp_chinese_alarm_is_two_udh_parts_submitted_once_with_receipts(smpp_stack):
    sim, gateway, rec = smpp_stack
    result = gateway.send(OFFICER, ALARM_ZH, key="A000123/13800138000/1")
    assert (result.parts, result.data_coding, len(result.message_ids)) == (2, DCS_UCS2, 2)
    subs = [sim.next_event("submit") for _ in range(2)]
    assert [(s["dcs"], s["esm"], s["dst"], s["src"], s["reg"]) for s in subs] == [
        (0x08, 0x40, OFFICER.lstrip("+"), "HAZMON", 1)
    ] * 2
    sms = [bytes.fromhex(s["sm"]) for s in subs]
    assert [concat_info(m[:6])[1:] for m in sms] == [(2, 1), (2, 2)]
    assert reassemble(sms, DCS_UCS2) == ALARM_ZH
    assert [s["id"] for s in subs] == list(result.message_ids)
    # user_message_reference (TLV 0x0204) carries a hash of the key, the same on every part
    assert subs[0]["tlvs"]["0x0204"] == subs[1]["tlvs"]["0x0204"]
    receipts = [rec.receipts.get(timeout=5) for _ in range(2)]
    assert sorted(r.message_id for r in receipts) == sorted(result.message_ids)
    assert {r.status for r in receipts} == {DeliveryStatus.DELIVERED}
    assert "stat:DELIVRD" in receipts[0].raw
    with pytest.raises(TimeoutError):
        sim.next_event("submit", timeout_s=0.5)  # exactly once


def test_smpp_mo_replies_reach_on_mo(smpp_stack):
    sim, _gateway, rec = smpp_stack
    sim.send_mo(OFFICER, "HAZMON", "1 A000123")
    sim.send_mo(OFFICER, "HAZMON", "确认 A000123")
    got = [rec.mos.get(timeout=5) for _ in range(2)]
    assert sorted(text for _, text, _ in got) == ["1 A000123", "确认 A000123"]
    assert {frm for frm, _, _ in got} == {OFFICER}
    assert [sim.next_event("mo_sent")["statuses"] for _ in range(2)] == [[0], [0]]


def test_smpp_refused_destination_is_rejected_and_session_stays_usable(smpp_stack):
    _sim, gateway, _rec = smpp_stack
    with pytest.raises(MessageRejected) as e:
        gateway.send("0001234", "test", key="bad")
    assert not e.value.retryable and "0xb" in str(e.value)
    assert gateway.send(OFFICER, "test", key="good").message_ids
    assert gateway.binds == 1


def test_smpp_keeps_an_idle_session_with_enquire_link(smpp_stack):
    _sim, gateway, _rec = smpp_stack
    time.sleep(2.0)  # 4 enquire_link intervals
    assert gateway.bound and gateway.binds == 1
    assert gateway.send(OFFICER, "still here", key="idle").parts == 1


def test_smpp_unbind_from_the_smsc_is_answered_and_the_session_bound_again(smpp_stack):
    sim, gateway, _rec = smpp_stack
    sim.unbind_all()
    ev = sim.next_event("unbind_sent")
    assert ev["ok"], ev  # our unbind_resp reached the SMSC
    deadline = time.monotonic() + 5
    while gateway.binds < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gateway.binds == 2 and gateway.wait_bound(5)
    assert gateway.send(OFFICER, "after rebind", key="rebind").parts == 1


def test_smpp_concurrent_sends_get_their_own_ids(smpp_stack):
    sim, gateway, _rec = smpp_stack
    results, errors = [], []

    def worker(n):
        try:
            for i in range(5):
                results.append(gateway.send(OFFICER, f"告警 {n}-{i}", key=f"k{n}-{i}"))
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors
    ids = [r.message_ids[0] for r in results]
    assert len(ids) == 40 and len(set(ids)) == 40
    subs = [sim.next_event("submit") for _ in range(40)]
    texts = {s["id"]: bytes.fromhex(s["sm"]).decode("utf-16-be") for s in subs}
    assert {texts[r.message_ids[0]] for r in results} == {f"告警 {n}-{i}" for n in range(8) for i in range(5)}
    by_key = {r.key: texts[r.message_ids[0]] for r in results}
    assert by_key["k3-4"] == "告警 3-4"


def test_smpp_down_raises_unavailable_and_rebinds_after_restart(smpp_stack):
    sim, gateway, rec = smpp_stack
    sim.stop()
    deadline = time.monotonic() + 5
    while gateway.bound and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(GatewayUnavailable) as e:
        gateway.send(OFFICER, "危险品泄漏警报：3号仓库", key="A000125/1")
    assert e.value.retryable
    sim.start()
    assert gateway.wait_bound(5) and gateway.binds == 2
    result = gateway.send(OFFICER, "危险品泄漏警报：3号仓库", key="A000125/1")
    assert bytes.fromhex(sim.next_event("submit")["sm"]).decode("utf-16-be") == "危险品泄漏警报：3号仓库"
    assert rec.receipts.get(timeout=5).message_id == result.message_ids[0]


class SilentSmsc:
    """A TCP peer that answers bind_transceiver and then nothing: a hung SMSC."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.binds = 0
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            try:
                length, command_id, _status, seq = struct.unpack(">IIII", conn.recv(16))
                conn.recv(length - 16)
                if command_id != 0x00000009:  # bind_transceiver
                    continue
                body = b"SILENT\0"
                conn.sendall(struct.pack(">IIII", 16 + len(body), 0x80000009, 0, seq) + body)
                self.binds += 1
            except (OSError, struct.error):
                continue

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def test_smpp_hung_smsc_times_out_as_unavailable_and_dead_link_is_rebound():
    smsc = SilentSmsc()
    gateway = SmppSmsGateway(
        "127.0.0.1",
        smsc.port,
        "hazmon",
        "secret",
        enquire_link_s=0.3,
        response_timeout_s=0.5,
        reconnect_delay_s=0.1,
    )
    try:
        gateway.start()
        assert gateway.wait_bound(5)
        t0 = time.monotonic()
        with pytest.raises(GatewayUnavailable, match="no submit_sm_resp"):
            gateway.send(OFFICER, "test", key="hung")
        assert time.monotonic() - t0 < 1.5
        # no enquire_link_resp for 2 intervals: the session is dropped and bound again
        deadline = time.monotonic() + 5
        while smsc.binds < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert smsc.binds >= 2
    finally:
        gateway.close()
        smsc.close()
