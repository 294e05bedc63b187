"""Kannel adapter without Kannel: callback parsing, token check, error mapping (httpx MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from alerts.notify.channels.gateway import (
    CallbackListener,
    DeliveryStatus,
    GatewayUnavailable,
    MessageRejected,
)
from alerts.notify.channels.kannel import CallbackRefused, KannelSmsGateway, parse_dlr, parse_mo, parse_query


def _gateway(handler, **kw) -> KannelSmsGateway:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return KannelSmsGateway("http://kannel/cgi-bin/sendsms", "u", "p", client=client, **kw)


def test_send_uses_coding_2_for_chinese_and_puts_key_in_dlr_url():
    seen = {}

    def handler(req: httpx.Request) -> httpx.Response:
        seen.update(dict(req.url.params))
        return httpx.Response(202, text="0: Accepted for delivery")

    gw = _gateway(handler, callback_base="http://hazmon/sms/kannel", callback_token="tok-12345678")
    res = gw.send("+8613800138000", "危险品泄漏", key="A1/138/1")
    assert (seen["coding"], seen["charset"], seen["text"]) == ("2", "UTF-8", "危险品泄漏")
    assert seen["dlr-mask"] == "31"
    dlr = seen["dlr-url"]
    assert dlr.startswith("http://hazmon/sms/kannel/dlr?k=") and "%" not in dlr.split("&type=")[0]
    # what Kannel would call back, with its escapes filled in
    query = parse_query(dlr.split("?", 1)[1].replace("%d", "1").replace("%A", "").replace("%T", "0"))
    assert gw.handle_dlr(query).key == "A1/138/1"
    assert query["id"] == res.message_ids[0]
    assert gw.send("+86138", "plain ascii", key="k").data_coding == 0
    assert seen["coding"] == "0"


@pytest.mark.parametrize(
    ("status", "exc"),
    [(403, MessageRejected), (400, MessageRejected), (503, GatewayUnavailable), (500, GatewayUnavailable)],
)
def test_http_errors_map_to_retryable_or_not(status, exc):
    gw = _gateway(lambda req: httpx.Response(status, text="nope"))
    with pytest.raises(exc):
        gw.send("+86138", "x", key="k")


def test_connection_refused_is_unavailable():
    def handler(req):
        raise httpx.ConnectError("refused")

    with pytest.raises(GatewayUnavailable):
        _gateway(handler).send("+86138", "x", key="k")


def test_too_many_parts_rejected_before_sending():
    gw = _gateway(lambda req: pytest.fail("must not be sent"), max_parts=2)
    with pytest.raises(MessageRejected):
        gw.send("+86138", "危" * 200, key="k")


def test_dlr_types_map_to_statuses():
    assert parse_dlr({"id": "m", "type": "1"}).status is DeliveryStatus.DELIVERED
    assert parse_dlr({"id": "m", "type": "16"}).status is DeliveryStatus.FAILED
    assert parse_dlr({"id": "m", "type": "8", "status": "ACK/"}).raw == "type=8 ACK/"
    with pytest.raises(CallbackRefused):
        parse_dlr({"type": "1"})


def test_mo_query_utf8_and_raw_ucs2():
    q = parse_query("from=%2B8613800138000&to=10690000&text=%E7%A1%AE%E8%AE%A4+A000123&coding=0")
    assert parse_mo(q).text == "确认 A000123"
    raw = "from=1&text=%78%6E%8B%A4&coding=2&charset=UTF-16BE"  # 确认 in UTF-16BE (mo-recode off)
    assert parse_query(raw)["text"] == "确认"


def test_token_is_checked_and_listener_errors_do_not_escape():
    gw = _gateway(lambda req: httpx.Response(202), callback_token="tok-12345678")

    def boom(*a):
        raise RuntimeError("listener bug")

    gw.set_listener(CallbackListener(on_mo=boom))
    with pytest.raises(CallbackRefused):
        gw.handle_mo({"from": "1", "text": "x"})
    assert gw.handle_mo({"from": "1", "text": "x", "t": "tok-12345678"}).text == "x"
    with pytest.raises(ValueError):
        KannelSmsGateway("http://k", "u", "p", callback_token="bad token%")


@pytest.mark.parametrize("forged", ["令牌-12345678", "tok-1234567\udcff", "", "tok-12345678 "])
def test_a_forged_token_of_any_characters_is_refused_not_a_crash(forged: str):
    gw = _gateway(lambda req: httpx.Response(202), callback_token="tok-12345678")
    with pytest.raises(CallbackRefused):
        gw.handle_mo({"from": "1", "text": "x", "t": forged})
