"""The channel port: every way hazmon sends an alarm text is a `Channel`.

A channel takes one text for one person with an idempotency key (`send(to, text, key)` ->
`SendResult`), may report back through a listener (`set_listener`: delivery receipts and replies;
only SMS gateways do), may keep a session (`start`, e.g. an SMPP bind) and releases it on `close`.
`NamedChannel` pairs an adapter with the name it is shown by (/api/v1/sms/status, logs, the outbox's
`channel_posts`); the notifier holds an ordered list of them: the first is the primary (SMS through
the outbox), each later one a fallback tier for what the one before it could not deliver.

Adapters, beside this module: kannel.py (Kannel HTTP sendsms) and smpp.py (SMPP 3.4 transceiver),
the SMS gateways; webhook.py (WeCom and DingTalk group robots). `SmsGateway` is the same port under
the name the SMS side (outbox, fault injection, fakes) uses.

Error hierarchy (what the outbox and the fallback tiers do with each):
    SmsError
    ├── GatewayUnavailable  the channel could not be reached or did not answer: retry later, with
    │                       the same idempotency key (it may or may not have taken the message)
    └── MessageRejected     the channel refused this message (bad number, bad credentials, too long):
                            retrying the same message will not help
"""

from __future__ import annotations

import abc
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

logger = logging.getLogger(__name__)


class SmsError(Exception):
    """A message could not be handed to the SMS gateway."""

    retryable = False


class GatewayUnavailable(SmsError):
    """The gateway is down or did not answer in time; retrying later can help."""

    retryable = True


class MessageRejected(SmsError):
    """The gateway refused the message; retrying the same message will not help."""

    retryable = False


class DeliveryStatus(enum.StrEnum):
    """Where a message stands, normalised across gateways."""

    ACCEPTED = "accepted"  # the SMSC took it (Kannel DLR 8 / SMPP ENROUTE, ACCEPTD)
    DELIVERED = "delivered"  # the handset got it (Kannel DLR 1 / SMPP DELIVRD)
    FAILED = "failed"  # final failure (Kannel DLR 2 or 16 / SMPP UNDELIV, REJECTD, EXPIRED, DELETED)
    BUFFERED = "buffered"  # queued at the SMSC (Kannel DLR 4)
    UNKNOWN = "unknown"

    @property
    def final(self) -> bool:
        return self in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the gateway said when it took a message."""

    key: str  # our idempotency key (alarm, recipient, escalation step)
    message_ids: tuple[str, ...]  # gateway message id per part (or one id for the whole message)
    parts: int  # SMS parts the text needs
    data_coding: int  # 0x00 GSM-7, 0x08 UCS-2


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """A delivery report for one message id of a SendResult."""

    message_id: str
    status: DeliveryStatus
    raw: str = ""  # the gateway's own status text, kept for the audit trail
    key: str | None = None  # our key, where the gateway echoes it (Kannel dlr-url)


@dataclass(frozen=True, slots=True)
class MobileOriginated:
    """An SMS from a phone to us, e.g. an officer's reply "1 A000123" or "确认 A000123"."""

    from_number: str
    text: str
    received_at: datetime
    to_number: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class SmsListener(abc.ABC):
    """Receives what the gateway reports back. Called from the adapter's thread: return quickly."""

    @abc.abstractmethod
    def on_receipt(self, message_id: str, status: DeliveryStatus, receipt: DeliveryReceipt) -> None: ...

    @abc.abstractmethod
    def on_mo(self, from_number: str, text: str, received_at: datetime) -> None: ...


class CallbackListener(SmsListener):
    """An SmsListener from two plain callables (either may be None)."""

    def __init__(
        self,
        on_receipt: Callable[[str, DeliveryStatus, DeliveryReceipt], None] | None = None,
        on_mo: Callable[[str, str, datetime], None] | None = None,
    ):
        self._on_receipt = on_receipt
        self._on_mo = on_mo

    def on_receipt(self, message_id: str, status: DeliveryStatus, receipt: DeliveryReceipt) -> None:
        if self._on_receipt:
            self._on_receipt(message_id, status, receipt)

    def on_mo(self, from_number: str, text: str, received_at: datetime) -> None:
        if self._on_mo:
            self._on_mo(from_number, text, received_at)


def notify_receipt(listener: SmsListener | None, receipt: DeliveryReceipt) -> None:
    """Call listener.on_receipt; a failing listener is logged, never raised into the gateway loop."""
    if listener is None:
        return
    try:
        listener.on_receipt(receipt.message_id, receipt.status, receipt)
    except Exception:
        logger.exception("sms receipt listener failed for %s", receipt.message_id)


def notify_mo(listener: SmsListener | None, mo: MobileOriginated) -> None:
    """Call listener.on_mo; a failing listener is logged, never raised into the gateway loop."""
    if listener is None:
        return
    try:
        listener.on_mo(mo.from_number, mo.text, mo.received_at)
    except Exception:
        logger.exception("sms MO listener failed for a message from %s", mo.from_number)


class Channel(abc.ABC):
    """Sends alarm texts. `key` is the idempotency key; an adapter passes it on where it can."""

    listener: SmsListener | None = None

    def set_listener(self, listener: SmsListener | None) -> None:
        self.listener = listener

    @abc.abstractmethod
    def send(self, to: str, text: str, key: str) -> SendResult:
        """Hand one text to the channel; raise GatewayUnavailable or MessageRejected on failure."""

    def start(self) -> None:  # noqa: B027 - optional for adapters without a session
        """Open a session that must live in the background (SMPP binds); a no-op by default."""

    def close(self) -> None:  # noqa: B027 - optional for adapters without a connection
        """Release connections and threads."""


#: the port's name where the channel is an SMS gateway (Kannel, SMPP): one port, not a second one
SmsGateway = Channel


@dataclass(frozen=True, slots=True)
class NamedChannel:
    """A channel and the name it is shown by ("kannel", "wecom robot"); the notifier's list holds these."""

    name: str
    channel: Channel
