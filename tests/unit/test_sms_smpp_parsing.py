"""SMPP adapter without a socket: receipt parsing, MO decoding and joining, key references."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from alerts.notify.channels.encoding import encode_sms
from alerts.notify.channels.gateway import CallbackListener, DeliveryStatus
from alerts.notify.channels.smpp import SmppSmsGateway, key_reference, parse_receipt_text, receipt_from_pdu


def _pdu(**kw):
    base = dict(
        short_message=b"",
        data_coding=0,
        esm_class=0,
        source_addr=b"8613800138000",
        destination_addr=b"HAZMON",
        receipted_message_id=None,
        message_state=None,
        message_payload=None,
    )
    return SimpleNamespace(**{**base, **kw})


def test_receipt_text_fields():
    f = parse_receipt_text(
        "id:0A1B sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 stat:UNDELIV err:034 text:危险"
    )
    assert (f["id"], f["stat"], f["err"], f["submit date"], f["text"]) == (
        "0A1B",
        "UNDELIV",
        "034",
        "2611231200",
        "危险",
    )


def test_receipt_prefers_tlv_id_and_maps_stat():
    r = receipt_from_pdu(
        _pdu(
            esm_class=4, short_message=b"id:X stat:DELIVRD err:000 text:", receipted_message_id=b"000003E8\0"
        )
    )
    assert (r.message_id, r.status) == ("000003E8", DeliveryStatus.DELIVERED)
    r = receipt_from_pdu(_pdu(esm_class=4, short_message=b"id:77 sub:001 stat:REJECTD err:001"))
    assert (r.message_id, r.status) == ("77", DeliveryStatus.FAILED)
    assert (
        receipt_from_pdu(_pdu(esm_class=4, receipted_message_id="9", message_state=2)).status
        is DeliveryStatus.DELIVERED
    )


def test_deliver_sm_routes_receipts_and_joins_concatenated_mo():
    gw = SmppSmsGateway("127.0.0.1", 1, "u", "p")
    receipts, mos = [], []
    gw.set_listener(CallbackListener(lambda m, s, r: receipts.append(m), lambda f, t, a: mos.append((f, t))))
    gw._on_deliver_sm(_pdu(esm_class=4, short_message=b"id:5 stat:DELIVRD err:000 text:"))
    assert receipts == ["5"]
    text = "确认 A000123 " + "现场已处置" * 20
    enc = encode_sms(text, reference=42)
    assert len(enc.parts) == 2
    for part in reversed(enc.parts):  # out of order on purpose
        assert gw._on_deliver_sm(_pdu(esm_class=0x40, data_coding=8, short_message=part.short_message)) == 0
    gw._on_deliver_sm(_pdu(short_message=b"1 A000123"))
    assert mos == [("8613800138000", text), ("8613800138000", "1 A000123")]


def test_key_reference_is_stable_per_key():
    assert key_reference("A1/138/1") == key_reference("A1/138/1")
    ref, umr = key_reference("A1/138/2")
    assert 0 <= ref <= 0xFF and 0 <= umr <= 0xFFFF


def test_fake_gateway_records_and_fails_on_demand():
    from alerts.notify.channels.gateway import GatewayUnavailable
    from tests.support.fake_sms import FakeSmsGateway

    gw = FakeSmsGateway()
    res = gw.send("+86138", "危" * 71, key="k1")
    assert (res.parts, len(res.message_ids), gw.sent["+86138"]) == (2, 2, [("k1", "危" * 71)])
    gw.fail_with = GatewayUnavailable("down")
    with pytest.raises(GatewayUnavailable) as e:
        gw.send("+86138", "x", key="k2")
    assert e.value.retryable
