"""Group-chat robot adapter: alarm texts to a WeCom (企业微信) or DingTalk (钉钉) group robot.

An adapter of the channel port (gateway.py `Channel`), used as a fallback tier behind SMS: the
notifier posts to it what the tier before could not deliver and records each post in the outbox.
The robot's URL decides the group; `to` (the officer's phone) only becomes an @-mention, so the
officer's phone rings even in a muted group.

Wire formats (robot documentation: WeCom "消息推送/群机器人" developer.work.weixin.qq.com path/91770,
DingTalk "自定义机器人接入" open.dingtalk.com custom-robot-access):
- WeCom: POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<key>
  {"msgtype": "text", "text": {"content": ..., "mentioned_mobile_list": ["13800138001"]}};
  text.content at most 2048 bytes UTF-8; 20 messages a minute per robot.
- DingTalk: POST https://oapi.dingtalk.com/robot/send?access_token=<token>[&timestamp=..&sign=..]
  {"msgtype": "text", "text": {"content": ...}, "at": {"atMobiles": ["13800138001"], "isAtAll": false}};
  the body at most 20000 bytes (errcode 460101 "message too long, exceed 20000 bytes"); 20 messages a
  minute per robot, then throttled for 10 minutes. Signing (加签): timestamp = now in ms (within an
  hour of DingTalk's clock), sign = urlencode(base64(HmacSHA256(key=secret, msg=f"{timestamp}\\n{secret}"))).
  We pass the base64 text as a query parameter and httpx percent-encodes it exactly like quote_plus.

Both answer HTTP 200 {"errcode": 0, "errmsg": "ok"}. Neither returns a message id nor a delivery
receipt: SendResult carries a fresh uuid4 hex (an audit handle, as in the Kannel adapter), and no
receipt ever follows, so a post a crash left `posting` is offered again and may show twice in the group.

Errors: transport errors, timeouts, HTTP 5xx/429, a body that is not the robot's JSON, and the
errcodes in RETRYABLE_ERRCODES (busy, throttled) -> GatewayUnavailable; HTTP 4xx and every other
non-zero errcode (bad key 93000, security check failed 310000, ...) -> MessageRejected with errmsg.

The URL is a credential (WeCom `key=`, DingTalk `access_token=`), as is the DingTalk secret: neither is
logged nor put into an exception message (the outbox stores str(error) in its database). httpx
itself logs each request URL at INFO: importing this module puts a redacting filter on the "httpx"
logger (process-wide, so it also hides `key=`/`access_token=`/`sign=` of other clients' URLs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from typing import Any, Literal

import httpx

from alerts.notify.channels.gateway import Channel, GatewayUnavailable, MessageRejected, SendResult

logger = logging.getLogger(__name__)

Flavor = Literal["wecom", "dingtalk"]

# Non-zero errcodes that mean "busy or throttling, not this message's fault": retry later.
RETRYABLE_ERRCODES: dict[str, frozenset[int]] = {
    # -1 system busy; 45009 api freq out of limit; 45033 api concurrent out of limit (global code, unverified)
    "wecom": frozenset({-1, 45009, 45033}),
    # -1 system busy; 130101 send too fast, exceed 20 times per minute; 410100 throttled (发送速度太快而限流);
    # 90030 webhook over limit (call quota used up: the message is fine, a later try may pass)
    "dingtalk": frozenset({-1, 130101, 410100, 90030}),
}
WECOM_CONTENT_LIMIT_BYTES = 2048  # text.content, UTF-8
DINGTALK_BODY_LIMIT_BYTES = 20000  # the whole JSON body
ELLIPSIS = "…"

_CN_MOBILE_RE = re.compile(r"(?:\+86|0086|86)?(1\d{10})")
_SECRET_PARAM_RE = re.compile(
    r"(?<![A-Za-z0-9_])((?:key|access_token|sign|password|t)=)[^&\s\"'<>]+", re.IGNORECASE
)


class RedactWebhookSecrets(logging.Filter):
    """Scrubs `key=`, `access_token=`, `sign=`, `password=` and `t=` values from log records.

    Installed on the "httpx" logger at import: httpx logs every request's full URL at INFO (with
    Kannel's sendsms password too); the CLI adds it to uvicorn's access log, where Kannel's
    callbacks show their token `t=`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_PARAM_RE.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _install_httpx_filter() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, RedactWebhookSecrets) for f in httpx_logger.filters):
        httpx_logger.addFilter(RedactWebhookSecrets())


_install_httpx_filter()


def truncate_utf8(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8 on a character boundary, "…" marking a cut."""
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    budget = max_bytes - len(ELLIPSIS.encode())
    if budget < 0:
        return raw[:max_bytes].decode(errors="ignore")
    # a prefix of valid UTF-8 can only end in a partial character, which "ignore" drops
    return raw[:budget].decode(errors="ignore") + ELLIPSIS


def mention_number(phone: str) -> str:
    """The number a robot matches against members' profiles: a Chinese mobile without +86."""
    compact = re.sub(r"[\s-]", "", phone)
    m = _CN_MOBILE_RE.fullmatch(compact)
    return m.group(1) if m else compact


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签 signature, base64 text (the caller URL-encodes it once)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class RobotWebhook(Channel):
    """Posts each text to one WeCom or DingTalk group robot, @-mentioning the recipient's phone."""

    def __init__(
        self,
        url: str,
        *,
        flavor: Flavor,
        secret: str | None = None,
        mention_phones: bool = True,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
    ):
        if flavor not in RETRYABLE_ERRCODES:
            raise ValueError(f"flavor must be 'wecom' or 'dingtalk', not {flavor!r}")
        if secret is not None and flavor != "dingtalk":
            raise ValueError("only DingTalk robots sign requests with a secret")
        self.flavor: Flavor = flavor
        self._url = httpx.URL(url)
        self._secret = secret
        self.mention_phones = mention_phones
        self._client = client or httpx.Client(timeout=timeout_s)
        self._own_client = client is None
        # every credential value, to scrub from texts that might echo them
        params = self._url.params.multi_items()
        self._secrets = [v for k, v in params if len(v) >= 6 and k.lower() != "timestamp"]
        if secret:
            self._secrets.append(secret)
        self.where = f"{self._url.scheme}://{self._url.host}{self._url.path}"  # safe to log

    def redact(self, s: str) -> str:
        """`s` without the webhook key, access token, signature or secret."""
        s = _SECRET_PARAM_RE.sub(r"\1***", s)
        for value in self._secrets:
            s = s.replace(value, "***")
        return s

    def body(self, to: str, text: str) -> bytes:
        """The JSON body for `text`, cut to the robot's size limit, mentioning `to` if asked."""
        mentions = [mention_number(to)] if self.mention_phones and to.strip() else []
        if self.flavor == "wecom":
            content = truncate_utf8(text, WECOM_CONTENT_LIMIT_BYTES)
            inner: dict[str, Any] = {"content": content}
            if mentions:
                inner["mentioned_mobile_list"] = mentions
            return _dumps({"msgtype": "text", "text": inner})
        doc: dict[str, Any] = {"msgtype": "text", "text": {"content": ""}}
        if mentions:
            doc["at"] = {"atMobiles": mentions, "isAtAll": False}
        budget = DINGTALK_BODY_LIMIT_BYTES - len(_dumps(doc))
        while True:  # JSON escapes (\n, \") make the content longer in the body than in UTF-8
            doc["text"]["content"] = truncate_utf8(text, budget)
            out = _dumps(doc)
            excess = len(out) - DINGTALK_BODY_LIMIT_BYTES
            if excess <= 0:
                return out
            budget -= excess

    def request_url(self) -> httpx.URL:
        """The URL to post to; a signed DingTalk robot needs a fresh timestamp and sign each time."""
        if self.flavor != "dingtalk" or not self._secret:
            return self._url
        ts = int(time.time() * 1000)
        return self._url.copy_merge_params({"timestamp": str(ts), "sign": dingtalk_sign(self._secret, ts)})

    def send(self, to: str, text: str, key: str) -> SendResult:
        """Post one text to the robot; the result's id is our uuid, the robots return none."""
        robot = f"{self.flavor} robot"
        try:
            resp = self._client.post(
                self.request_url(),
                content=self.body(to, text),
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
        except httpx.TransportError as e:
            # `from None`: the chained httpx error could carry the URL into a logged traceback
            raise GatewayUnavailable(self.redact(f"{robot} unreachable: {type(e).__name__}: {e}")) from None
        answer = self.redact(resp.text.strip()[:300])
        if resp.status_code >= 500 or resp.status_code == 429:
            raise GatewayUnavailable(f"{robot} HTTP {resp.status_code}: {answer}")
        if resp.status_code >= 400:
            raise MessageRejected(f"{robot} HTTP {resp.status_code}: {answer}")
        try:
            data = resp.json()
            errcode = int(data["errcode"])
        except (ValueError, TypeError, KeyError):
            raise GatewayUnavailable(
                f"{robot} answered HTTP {resp.status_code} without errcode: {answer}"
            ) from None
        if errcode != 0:
            errmsg = self.redact(str(data.get("errmsg", "")))
            exc = GatewayUnavailable if errcode in RETRYABLE_ERRCODES[self.flavor] else MessageRejected
            raise exc(f"{robot} errcode {errcode}: {errmsg}")
        message_id = uuid.uuid4().hex
        logger.info("robot %s %s to %s via %s: ok id=%s", self.flavor, key, to, self.where, message_id)
        return SendResult(key, (message_id,), 1, 0)

    def close(self) -> None:
        if self._own_client:
            self._client.close()


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
