"""RobotWebhook against httpx.MockTransport: bodies, mentions, DingTalk signing, error mapping, secrecy."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.parse

import httpx
import pytest

from alerts.notify.channels.gateway import GatewayUnavailable, MessageRejected
from alerts.notify.channels.webhook import (
    DINGTALK_BODY_LIMIT_BYTES,
    WECOM_CONTENT_LIMIT_BYTES,
    RobotWebhook,
    truncate_utf8,
)

WECOM_KEY = "693a91f6-7a0c-4bc4-97a0-0ec2sifa5aaa"
WECOM_URL = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}"
DING_TOKEN = "f3e1c0ffee0123456789abcdef0123456789abcdef0123456789abcdef012345"
DING_URL = f"https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN}"
DING_SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
OFFICER = "+8613800138001"
ALARM = "【告警】储罐区一号罐液位高高报警 18.6 m"


class Robot:
    """A MockTransport handler that records requests and answers with a configurable response."""

    def __init__(self, status: int = 200, answer: object = None, raw: bytes | None = None):
        self.requests: list[httpx.Request] = []
        self.status = status
        self.answer = {"errcode": 0, "errmsg": "ok"} if answer is None else answer
        self.raw = raw

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.raw is not None:
            return httpx.Response(self.status, content=self.raw)
        return httpx.Response(self.status, json=self.answer)

    @property
    def body(self) -> dict:
        return json.loads(self.requests[-1].content)


def gateway(robot, flavor="wecom", url=WECOM_URL, **kw) -> RobotWebhook:
    return RobotWebhook(url, flavor=flavor, client=httpx.Client(transport=httpx.MockTransport(robot)), **kw)


def test_wecom_text_with_mobile_mention():
    robot = Robot()
    result = gateway(robot).send(OFFICER, ALARM, key="sms-7")
    req = robot.requests[0]
    assert req.method == "POST" and str(req.url) == WECOM_URL
    assert req.headers["content-type"].startswith("application/json")
    assert robot.body == {
        "msgtype": "text",
        "text": {"content": ALARM, "mentioned_mobile_list": ["13800138001"]},
    }
    assert result.key == "sms-7" and (result.parts, result.data_coding) == (1, 0)
    assert len(result.message_ids) == 1 and len(result.message_ids[0]) == 32  # our uuid4 hex


def test_wecom_without_mentions():
    robot = Robot()
    gateway(robot, mention_phones=False).send(OFFICER, ALARM, key="k")
    assert robot.body == {"msgtype": "text", "text": {"content": ALARM}}


def test_dingtalk_text_at_mobiles_unsigned():
    robot = Robot()
    gateway(robot, "dingtalk", DING_URL).send("+86 138-0013-8001", ALARM, key="k")
    assert str(robot.requests[0].url) == DING_URL  # no timestamp/sign without a secret
    assert robot.body == {
        "msgtype": "text",
        "text": {"content": ALARM},
        "at": {"atMobiles": ["13800138001"], "isAtAll": False},
    }


def test_dingtalk_signature_matches_documented_formula():
    robot = Robot()
    before = int(time.time() * 1000)
    gateway(robot, "dingtalk", DING_URL, secret=DING_SECRET).send(OFFICER, ALARM, key="k")
    after = int(time.time() * 1000)
    url = robot.requests[0].url
    assert url.params["access_token"] == DING_TOKEN
    timestamp = url.params["timestamp"]
    assert before <= int(timestamp) <= after
    # timestamp + "\n" + secret, HmacSHA256 keyed with the secret, base64, then urlencode (UTF-8)
    string_to_sign = f"{timestamp}\n{DING_SECRET}".encode()
    expected = base64.b64encode(hmac.new(DING_SECRET.encode(), string_to_sign, hashlib.sha256).digest())
    assert url.params["sign"] == expected.decode()
    raw_query = url.query.decode()
    assert f"&sign={urllib.parse.quote_plus(expected)}" in raw_query  # encoded once on the wire


@pytest.mark.parametrize(
    ("flavor", "errcode", "errmsg", "exc"),
    [
        ("wecom", 45009, "api freq out of limit", GatewayUnavailable),
        ("wecom", -1, "system busy", GatewayUnavailable),
        ("wecom", 93000, "invalid webhook url, hint: [1755605200056773468916791]", MessageRejected),
        ("wecom", 40058, "text.content exceed max length 2048", MessageRejected),
        ("dingtalk", 130101, "send too fast, exceed 20 times per minute", GatewayUnavailable),
        ("dingtalk", 410100, "send too fast", GatewayUnavailable),
        ("dingtalk", -1, "系统繁忙", GatewayUnavailable),
        ("dingtalk", 310000, "keywords not in content", MessageRejected),
        ("dingtalk", 310000, "sign not match", MessageRejected),
        ("dingtalk", 400102, "robot 已停用", MessageRejected),
    ],
)
def test_errcode_mapping(flavor, errcode, errmsg, exc):
    url = WECOM_URL if flavor == "wecom" else DING_URL
    robot = Robot(answer={"errcode": errcode, "errmsg": errmsg})
    with pytest.raises(exc) as info:
        gateway(robot, flavor, url).send(OFFICER, ALARM, key="k")
    assert str(errcode) in str(info.value) and errmsg in str(info.value)


@pytest.mark.parametrize(
    ("status", "exc"),
    [(500, GatewayUnavailable), (502, GatewayUnavailable), (429, GatewayUnavailable), (404, MessageRejected)],
)
def test_http_status_mapping(status, exc):
    with pytest.raises(exc, match=f"HTTP {status}"):
        gateway(Robot(status=status, answer={"errcode": 0})).send(OFFICER, ALARM, key="k")


@pytest.mark.parametrize("raw", [b"<html>502 Bad Gateway</html>", b"", b"[1, 2]", b'{"errmsg": "ok"}'])
def test_answer_that_is_not_the_robots_json_is_retryable(raw):
    with pytest.raises(GatewayUnavailable, match="without errcode"):
        gateway(Robot(raw=raw)).send(OFFICER, ALARM, key="k")


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError])
def test_transport_error_is_retryable(error):
    def fail(request):
        raise error(f"failed posting to {request.url}", request=request)

    gw = RobotWebhook(WECOM_URL, flavor="wecom", client=httpx.Client(transport=httpx.MockTransport(fail)))
    with pytest.raises(GatewayUnavailable, match="unreachable") as info:
        gw.send(OFFICER, ALARM, key="k")
    assert WECOM_KEY not in str(info.value) and "key=***" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 100, 2048])
def test_truncate_utf8_keeps_characters_whole(limit):
    text = "液位a高高😀报警" * 300
    cut = truncate_utf8(text, limit)
    raw = cut.encode()
    assert len(raw) <= limit
    assert raw.decode() == cut  # valid UTF-8
    if limit >= 3:
        assert cut.endswith("…") and text.startswith(cut[:-1])


def test_truncate_utf8_leaves_short_text_alone():
    assert truncate_utf8(ALARM, len(ALARM.encode())) == ALARM


def test_wecom_long_text_is_cut_to_2048_bytes():
    robot = Robot()
    gateway(robot).send(OFFICER, "罐区液位高高报警。" * 400, key="k")
    content = robot.body["text"]["content"]
    assert len(content.encode()) <= WECOM_CONTENT_LIMIT_BYTES
    assert len(content.encode()) > WECOM_CONTENT_LIMIT_BYTES - 4 and content.endswith("…")


def test_dingtalk_long_text_fits_the_body_limit_even_with_escapes():
    robot = Robot()
    text = '液位"高高"\n' * 5000  # quotes and newlines grow when JSON-escaped
    gateway(robot, "dingtalk", DING_URL).send(OFFICER, text, key="k")
    sent = robot.requests[0].content
    assert len(sent) <= DINGTALK_BODY_LIMIT_BYTES
    assert len(sent) > DINGTALK_BODY_LIMIT_BYTES * 0.9  # cut near the limit, not far below it
    content = json.loads(sent)["text"]["content"]
    assert content.endswith("…") and text.startswith(content[:-1])


def test_secrets_stay_out_of_errors_and_logs(caplog):
    # per logger: other tests run hazmon.cli, which leaves the "alerts" logger at WARNING
    caplog.set_level(logging.DEBUG, logger="alerts.notify.channels.webhook")
    caplog.set_level(logging.DEBUG, logger="httpx")
    # a robot that echoes the URL and the secret in its errmsg
    echo = {"errcode": 310000, "errmsg": f"sign not match {DING_URL}&sign=abc {DING_SECRET}"}
    gw = gateway(Robot(answer=echo), "dingtalk", DING_URL, secret=DING_SECRET)
    with pytest.raises(MessageRejected) as info:
        gw.send(OFFICER, ALARM, key="k")
    message = str(info.value)
    assert DING_TOKEN not in message and DING_SECRET not in message and "sign=abc" not in message
    assert "access_token=***" in message

    wecom_echo = {"errcode": 93000, "errmsg": f"invalid webhook url {WECOM_URL}"}
    with pytest.raises(MessageRejected) as info:
        gateway(Robot(answer=wecom_echo)).send(OFFICER, ALARM, key="k")
    assert WECOM_KEY not in str(info.value)

    gateway(Robot()).send(OFFICER, ALARM, key="sms-9")
    gw_ok = gateway(Robot(), "dingtalk", DING_URL, secret=DING_SECRET)
    gw_ok.send(OFFICER, ALARM, key="sms-10")
    assert "sms-9" in caplog.text and "sms-10" in caplog.text  # logs were captured at all
    assert "HTTP Request: POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***" in caplog.text
    for secret in (WECOM_KEY, DING_TOKEN, DING_SECRET):
        assert secret not in caplog.text


def test_constructor_refuses_bad_flavor_and_wecom_secret():
    with pytest.raises(ValueError, match="flavor"):
        RobotWebhook(WECOM_URL, flavor="feishu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="secret"):
        RobotWebhook(WECOM_URL, flavor="wecom", secret="SECxyz")


def test_close_keeps_a_client_it_does_not_own():
    client = httpx.Client(transport=httpx.MockTransport(Robot()))
    RobotWebhook(WECOM_URL, flavor="wecom", client=client).close()
    assert not client.is_closed
    own = RobotWebhook(WECOM_URL, flavor="wecom")
    own.close()
    assert own._client.is_closed
