"""Kannel adapter: MT through smsbox's HTTP sendsms, DLR and MO back through HTTP callbacks.

Sending (Kannel 1.4.5, proven in COMPONENTS.md §1 and tests/integration/test_sms_gateways.py):
`GET /cgi-bin/sendsms?...&text=<UTF-8>&charset=UTF-8&coding=2` for any text that GSM-7 cannot carry
(without coding=2 Kannel silently turns Chinese into "?"), coding=0 otherwise. Kannel splits a long
text itself (sendsms-user `concatenation = true`, `max-messages` >= our part count): it adds the
05 00 03 ref total seq UDH, and it reports ONE delivery receipt per message and DLR type, not one per
part, so the outbox tracks one id per message. Sending our own parts with `udh=` would mean binary
text per part and one DLR stream per part for nothing. alerts/notify/channels/encoding.py is still used to
pick the coding and to refuse a text longer than `max_parts` before Kannel sees it.

Kannel's sendsms answer carries no message id, so the id is ours: `<uuid>` put into the
`dlr-url` together with the idempotency key (base64url, so Kannel's %-escapes cannot touch it).

Callbacks (the service mounts api/routers/sms.py, or calls these functions from any HTTP server):
- DLR: `dlr-url` = `<callback_base>/dlr?k=<key>&id=<id>&type=%d&status=%A&ts=%T` (+ `&t=<token>`);
  Kannel DLR types: 1 delivered, 2 failed, 4 buffered, 8 SMSC accepted, 16 SMSC rejected.
- MO: an sms-service `get-url` = `<callback_base>/mo?from=%p&to=%P&text=%a&...` with smsbox
  `mo-recode = true`, so UCS-2 replies arrive as UTF-8 (tests/support/smsservers.py writes that config).

Errors: connection refused / timeout / 5xx / 503 queue full -> GatewayUnavailable; 4xx (bad
credentials 403, missing or bad parameters 400) -> MessageRejected.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import urllib.parse
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx

from alerts.notify.channels.encoding import DCS_UCS2, encode_sms
from alerts.notify.channels.gateway import (
    DeliveryReceipt,
    DeliveryStatus,
    GatewayUnavailable,
    MessageRejected,
    MobileOriginated,
    SendResult,
    SmsGateway,
    notify_mo,
    notify_receipt,
)

logger = logging.getLogger(__name__)

# Kannel DLR type bits (doc/userguide "dlr-mask")
KANNEL_DLR_STATUS = {
    1: DeliveryStatus.DELIVERED,
    2: DeliveryStatus.FAILED,
    4: DeliveryStatus.BUFFERED,
    8: DeliveryStatus.ACCEPTED,
    16: DeliveryStatus.FAILED,
}
DLR_MASK_ALL = 31
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{8,}")


class CallbackRefused(ValueError):
    """A callback request is malformed or lacks the shared token."""


def _b64(s: str) -> str:
    return base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")


def _unb64(s: str) -> str:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)).decode()


class KannelSmsGateway(SmsGateway):
    """Sends through Kannel's sendsms HTTP interface; `handle_dlr`/`handle_mo` take its callbacks."""

    def __init__(
        self,
        sendsms_url: str,
        username: str,
        password: str,
        *,
        callback_base: str | None = None,
        callback_token: str | None = None,
        sender: str | None = None,
        smsc: str | None = None,
        max_parts: int = 10,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
    ):
        self.sendsms_url = sendsms_url
        self.username = username
        self._password = password
        self.callback_base = callback_base.rstrip("/") if callback_base else None
        if callback_token is not None and not _TOKEN_RE.fullmatch(callback_token):
            # it travels inside the dlr-url, where Kannel would take a %-escape for one of its own
            raise ValueError("callback_token must be 8+ characters of A-Z a-z 0-9 _ -")
        self._token = callback_token
        self.sender = sender
        self.smsc = smsc
        self.max_parts = max_parts
        self._client = client or httpx.Client(timeout=timeout_s)
        self._own_client = client is None

    # ---- MT

    def dlr_url(self, key: str, message_id: str) -> str:
        assert self.callback_base is not None
        url = f"{self.callback_base}/dlr?k={_b64(key)}&id={message_id}&type=%d&status=%A&ts=%T"
        if self._token:
            url += f"&t={self._token}"
        return url

    def send(self, to: str, text: str, key: str) -> SendResult:
        """Submit one text to Kannel; the result holds our message id for the DLR callbacks."""
        enc = encode_sms(text)
        if len(enc.parts) > self.max_parts:
            raise MessageRejected(f"text needs {len(enc.parts)} SMS parts, at most {self.max_parts} allowed")
        message_id = uuid.uuid4().hex
        params = {
            "username": self.username,
            "password": self._password,
            "to": to,
            "text": text,
            "charset": "UTF-8",
            "coding": "2" if enc.data_coding == DCS_UCS2 else "0",
        }
        if self.sender:
            params["from"] = self.sender
        if self.smsc:
            params["smsc"] = self.smsc
        if self.callback_base:
            params["dlr-mask"] = str(DLR_MASK_ALL)
            params["dlr-url"] = self.dlr_url(key, message_id)
        try:
            resp = self._client.get(self.sendsms_url, params=params)
        except httpx.TransportError as e:
            raise GatewayUnavailable(f"kannel sendsms unreachable: {e!r}") from e
        body = resp.text.strip()
        if resp.status_code >= 500 or resp.status_code == 429:
            raise GatewayUnavailable(f"kannel sendsms {resp.status_code}: {body}")
        if resp.status_code >= 400:
            raise MessageRejected(f"kannel sendsms {resp.status_code}: {body}")
        # 202 "0: Accepted for delivery", or "3: Queued for later delivery" while the SMSC is down
        logger.info("sms %s to %s via kannel: %s parts=%d id=%s", key, to, body, len(enc.parts), message_id)
        return SendResult(key, (message_id,), len(enc.parts), enc.data_coding)

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    # ---- callbacks

    def _check_token(self, query: Mapping[str, str]) -> None:
        # as bytes: compare_digest refuses non-ASCII str with a TypeError (a 500 for a forged token)
        given = query.get("t", "").encode("utf-8", "surrogateescape")
        if self._token and not hmac.compare_digest(given, self._token.encode()):
            raise CallbackRefused("bad or missing callback token")

    def handle_dlr(self, query: Mapping[str, str]) -> DeliveryReceipt:
        """Turn a DLR callback's query into a DeliveryReceipt and tell the listener."""
        self._check_token(query)
        receipt = parse_dlr(query)
        notify_receipt(self.listener, receipt)
        return receipt

    def handle_mo(self, query: Mapping[str, str], now: datetime | None = None) -> MobileOriginated:
        """Turn an MO get-url callback's query into a MobileOriginated and tell the listener."""
        self._check_token(query)
        mo = parse_mo(query, now)
        notify_mo(self.listener, mo)
        return mo


def parse_dlr(query: Mapping[str, str]) -> DeliveryReceipt:
    """Parse `id, k, type, status` of a Kannel DLR callback."""
    message_id = query.get("id", "")
    if not message_id:
        raise CallbackRefused("DLR without id")
    try:
        dlr_type = int(query.get("type", ""))
    except ValueError:
        raise CallbackRefused(f"DLR with bad type {query.get('type')!r}") from None
    key = None
    if query.get("k"):
        try:
            key = _unb64(query["k"])
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise CallbackRefused("DLR with a bad key") from None
    status = KANNEL_DLR_STATUS.get(dlr_type, DeliveryStatus.UNKNOWN)
    raw = f"type={dlr_type} {query.get('status', '')}".strip()
    return DeliveryReceipt(message_id, status, raw=raw, key=key)


def parse_mo(query: Mapping[str, str], now: datetime | None = None) -> MobileOriginated:
    """Parse `from, to, text` of an MO get-url callback (text is UTF-8 thanks to mo-recode)."""
    sender = query.get("from", "")
    if not sender:
        raise CallbackRefused("MO without a sender")
    extra = {k: v for k, v in query.items() if k in ("smsc", "ts", "coding", "charset")}
    received_at = now or datetime.now(UTC)
    text, to = query.get("text", ""), query.get("to", "")
    return MobileOriginated(sender, text, received_at, to_number=to, extra=extra)


_UTF16_CHARSETS = ("UTF-16BE", "UTF-16", "UCS-2", "UCS-2BE")


def parse_query(raw_query: str) -> dict[str, str]:
    """A callback's raw query string as a dict (last value wins), each value decoded as UTF-8.

    With smsbox `mo-recode = true` every MO text is UTF-8. Without it a UCS-2 MO arrives as raw
    UTF-16BE bytes with `coding=2&charset=UTF-16BE`; that text is decoded as such here.
    """
    raw = {
        k: v.encode("latin-1")
        for k, v in urllib.parse.parse_qsl(raw_query, keep_blank_values=True, encoding="latin-1")
    }
    out = {k: v.decode("utf-8", errors="replace") for k, v in raw.items()}
    if "text" in raw and out.get("coding") == "2" and out.get("charset", "").upper() in _UTF16_CHARSETS:
        out["text"] = raw["text"].decode("utf-16-be", errors="replace")
    return out
