"""SMPP 3.4 adapter (smpplib): a transceiver session with a reader thread, keep-alive and reconnect.

- `send` encodes the text with alerts/notify/channels/encoding.py (GSM-7 or UCS-2, concatenation UDH with
  esm_class 0x40), submits every part pipelined and waits for each submit_sm_resp; the result
  holds one SMSC message id per part.
- The idempotency key cannot travel whole in SMPP: it is logged with the message ids, the 16-bit
  `user_message_reference` TLV carries a hash of it, and so does the 8-bit concatenation
  reference, so a resend of the same key reuses the same reference (a handset that still holds
  parts of the first try joins them with the resent parts instead of showing two messages).
- One thread reads PDUs: submit_sm_resp wakes the sender, deliver_sm is either a delivery receipt
  (esm_class bit 0x04: "id:... stat:DELIVRD ...", or the receipted_message_id / message_state
  TLVs) or an MO (GSM-7 / Latin-1 / UCS-2, concatenated MO parts joined by their UDH).
  smpplib's read_once sends enquire_link whenever the socket is quiet for `enquire_link_s`; a link
  that stays silent for twice that is closed and bound again, as is a broken connection.
- All writes go through one lock (smpplib's Client is not thread-safe: the reader answers
  deliver_sm and sends enquire_link while `send` writes submit_sm).

Errors: not bound, connection lost, no submit_sm_resp in time, or a "try later" status
(throttled 0x58, queue full 0x14, system error 0x08) -> GatewayUnavailable; any other error
status (bad destination 0x0B, ...) -> MessageRejected. If a later part of a multi-part message is
refused after earlier parts were accepted, the message is reported refused as a whole.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import smpplib.client
import smpplib.consts as c
import smpplib.exceptions
import smpplib.smpp

from alerts.notify.channels.encoding import (
    DCS_UCS2,
    ESM_UDHI,
    concat_info,
    decode_payload,
    encode_sms,
    split_udh,
)
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

RETRYABLE_STATUS = {0x58, 0x14, 0x08, 0x45}  # throttled, queue full, system error, submit failed
_LINK_ERRORS = (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError)
ESM_RECEIPT = 0x04  # esm_class message type "SMSC delivery receipt"
MAX_PENDING_MO = 256  # incomplete concatenated MO messages kept for joining

# receipt `stat:` values (SMPP 3.4 Appendix B) and message_state TLV values (§5.3.2.35)
RECEIPT_STAT = {
    "DELIVRD": DeliveryStatus.DELIVERED,
    "ACCEPTD": DeliveryStatus.ACCEPTED,
    "ENROUTE": DeliveryStatus.ACCEPTED,
    "UNDELIV": DeliveryStatus.FAILED,
    "REJECTD": DeliveryStatus.FAILED,
    "EXPIRED": DeliveryStatus.FAILED,
    "DELETED": DeliveryStatus.FAILED,
    "UNKNOWN": DeliveryStatus.UNKNOWN,
}
MESSAGE_STATE = {
    1: DeliveryStatus.ACCEPTED,
    2: DeliveryStatus.DELIVERED,
    3: DeliveryStatus.FAILED,
    4: DeliveryStatus.FAILED,
    5: DeliveryStatus.FAILED,
    6: DeliveryStatus.ACCEPTED,
    7: DeliveryStatus.UNKNOWN,
    8: DeliveryStatus.FAILED,
}
_RECEIPT_FIELD = re.compile(r"(\w+(?: date)?):(\S*)")


def _s(v) -> str:
    if v is None:
        return ""
    return v.decode("latin-1").rstrip("\0") if isinstance(v, bytes) else str(v)


def parse_receipt_text(text: str) -> dict[str, str]:
    """Fields of an SMPP 3.4 Appendix B receipt: id, sub, dlvrd, submit date, done date, stat, err, text."""
    head, _, tail = text.partition("text:")
    fields = {k.lower(): v for k, v in _RECEIPT_FIELD.findall(head)}
    if _:
        fields["text"] = tail
    return fields


def key_reference(key: str) -> tuple[int, int]:
    """(8-bit concatenation reference, 16-bit user_message_reference) derived from the key."""
    h = zlib.crc32(key.encode())
    return h & 0xFF, (h >> 8) & 0xFFFF


class _LockedSequence(smpplib.client.SimpleSequenceGenerator):
    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()

    def next_sequence(self):
        with self._lock:
            return super().next_sequence()


class _LockedClient(smpplib.client.Client):
    """smpplib Client whose writes are serialised (reader thread and senders share the socket)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, sequence_generator=_LockedSequence(), **kw)
        self.write_lock = threading.Lock()
        self.last_rx = time.monotonic()  # when the last PDU arrived
        self.last_pdu = None

    def send_pdu(self, p):
        with self.write_lock:
            return super().send_pdu(p)

    def read_pdu(self):
        pdu = super().read_pdu()
        self.last_rx, self.last_pdu = time.monotonic(), pdu
        return pdu


@dataclass
class _Waiter:
    event: threading.Event = field(default_factory=threading.Event)
    message_id: str | None = None
    status: int | None = None
    error: str | None = None


class SmppSmsGateway(SmsGateway):
    """An SMPP 3.4 transceiver: `start()` binds and keeps the session, `send()` is thread-safe."""

    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        *,
        source_addr: str = "HAZMON",
        source_addr_ton: int = c.SMPP_TON_ALNUM,
        source_addr_npi: int = c.SMPP_NPI_UNK,
        system_type: str = "",
        request_receipts: bool = True,
        enquire_link_s: float = 30.0,
        response_timeout_s: float = 5.0,
        reconnect_delay_s: float = 1.0,
        bind_wait_s: float = 2.0,
    ):
        self.host, self.port = host, port
        self.system_id, self._password, self.system_type = system_id, password, system_type
        self.source_addr = source_addr
        self.source_addr_ton, self.source_addr_npi = source_addr_ton, source_addr_npi
        self.request_receipts = request_receipts
        self.enquire_link_s = enquire_link_s
        self.response_timeout_s = response_timeout_s
        self.reconnect_delay_s = reconnect_delay_s
        self.bind_wait_s = bind_wait_s
        self._client: _LockedClient | None = None
        self._bound = threading.Event()
        self._stop = threading.Event()
        self._send_lock = threading.Lock()  # one message's parts go out together
        self._waiters: dict[int, _Waiter] = {}
        self._waiters_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._mo_parts: dict[tuple[str, int], dict[int, bytes]] = {}
        self.binds = 0  # successful binds, for tests and /metrics

    # ---- lifecycle

    def start(self) -> None:
        """Start the reader thread, which binds and re-binds as needed."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="smpp-reader", daemon=True)
        self._thread.start()

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    def wait_bound(self, timeout_s: float) -> bool:
        return self._bound.wait(timeout_s)

    def close(self) -> None:
        """Unbind (smpp34 often answers with a close instead of unbind_resp) and stop the thread."""
        self._stop.set()
        client = self._client
        if client is not None and self._bound.is_set():
            with contextlib.suppress(*_LINK_ERRORS):
                client.send_pdu(smpplib.smpp.make_pdu("unbind", client=client))
            time.sleep(0.05)
        self._drop_connection("closed")
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _connect(self) -> _LockedClient:
        client = _LockedClient(
            self.host, self.port, timeout=self.response_timeout_s, allow_unknown_opt_params=True
        )
        client.set_message_received_handler(self._on_deliver_sm)
        client.set_message_sent_handler(self._on_submit_resp)
        client.set_error_pdu_handler(self._on_error_pdu)
        try:
            client.connect()
            client.bind_transceiver(
                system_id=self.system_id, password=self._password, system_type=self.system_type
            )
        except BaseException:
            with contextlib.suppress(Exception):
                client.disconnect()
            raise
        client._socket.settimeout(self.enquire_link_s)  # read_once sends enquire_link on each timeout
        return client

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._client = self._connect()
            except _LINK_ERRORS as e:
                logger.warning("smpp bind to %s:%s failed: %r", self.host, self.port, e)
                self._stop.wait(self.reconnect_delay_s)
                continue
            self.binds += 1
            self._bound.set()
            logger.info("smpp bound to %s:%s as %s (transceiver)", self.host, self.port, self.system_id)
            client = self._client
            try:
                while not self._stop.is_set():
                    client.last_pdu = None
                    # a PDU, or after enquire_link_s of silence an enquire_link is sent
                    client.read_once(auto_send_enquire_link=True)
                    pdu = client.last_pdu
                    if pdu is not None and pdu.command == "unbind":
                        # smpplib only logs an SMSC's unbind: answer it, then bind again
                        resp = smpplib.smpp.make_pdu("unbind_resp", client=client)
                        resp.sequence = pdu.sequence
                        client.send_pdu(resp)
                        raise smpplib.exceptions.ConnectionError("unbound by the SMSC")
                    if time.monotonic() - client.last_rx > 2 * self.enquire_link_s:
                        raise smpplib.exceptions.ConnectionError("no answer to enquire_link")
            except _LINK_ERRORS as e:
                if not self._stop.is_set():
                    logger.warning("smpp connection to %s:%s lost: %r", self.host, self.port, e)
            except Exception:
                logger.exception("smpp reader failed")
            self._drop_connection("connection lost")
            self._stop.wait(self.reconnect_delay_s)

    def _drop_connection(self, why: str) -> None:
        self._bound.clear()
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            except Exception:  # best effort on a dead socket
                logger.debug("smpp disconnect failed", exc_info=True)
        with self._waiters_lock:
            waiters, self._waiters = self._waiters, {}
        for w in waiters.values():
            w.error = why
            w.event.set()

    # ---- MT

    def send(self, to: str, text: str, key: str) -> SendResult:
        """Submit the encoded parts of `text` to `to`; one SMSC message id per part."""
        ref, umr = key_reference(key)
        enc = encode_sms(text, reference=ref)
        if not self._bound.wait(self.bind_wait_s):
            raise GatewayUnavailable(f"smpp not bound to {self.host}:{self.port}")
        client = self._client
        if client is None:
            raise GatewayUnavailable("smpp connection lost")
        waiters: list[_Waiter] = []
        with self._send_lock:
            for part in enc.parts:
                pdu = smpplib.smpp.make_pdu(
                    "submit_sm",
                    client=client,
                    source_addr_ton=self.source_addr_ton,
                    source_addr_npi=self.source_addr_npi,
                    source_addr=self.source_addr,
                    dest_addr_ton=c.SMPP_TON_INTL if to.startswith("+") else c.SMPP_TON_UNK,
                    dest_addr_npi=c.SMPP_NPI_ISDN,
                    destination_addr=to.lstrip("+"),
                    esm_class=enc.esm_class,
                    data_coding=enc.data_coding,
                    registered_delivery=1 if self.request_receipts else 0,
                    short_message=part.short_message,
                    user_message_reference=umr,
                )
                w = _Waiter()
                with self._waiters_lock:
                    self._waiters[pdu.sequence] = w
                waiters.append(w)
                try:
                    client.send_pdu(pdu)
                except (smpplib.exceptions.ConnectionError, OSError) as e:
                    raise GatewayUnavailable(f"smpp send failed: {e!r}") from e
        ids = []
        deadline = time.monotonic() + self.response_timeout_s
        for w in waiters:
            if not w.event.wait(max(0.0, deadline - time.monotonic())):
                with self._waiters_lock:  # a late response then finds no waiter and is logged
                    for seq in [s for s, x in self._waiters.items() if x in waiters]:
                        del self._waiters[seq]
                raise GatewayUnavailable(f"no submit_sm_resp within {self.response_timeout_s} s")
            if w.error:
                raise GatewayUnavailable(f"smpp: {w.error} before submit_sm_resp")
            if w.status:
                desc = c.DESCRIPTIONS.get(w.status, "unknown status")
                if w.status in RETRYABLE_STATUS:
                    raise GatewayUnavailable(f"smpp submit_sm status {w.status:#x} {desc}")
                raise MessageRejected(f"smpp submit_sm status {w.status:#x} {desc}")
            ids.append(w.message_id or "")
        logger.info("sms %s to %s via smpp: parts=%d ids=%s", key, to, len(ids), ",".join(ids))
        return SendResult(key, tuple(ids), len(enc.parts), enc.data_coding)

    def _resolve(self, pdu, status: int) -> None:
        with self._waiters_lock:
            w = self._waiters.pop(pdu.sequence, None)
        if w is None:
            logger.warning("smpp %s for unknown sequence %s", pdu.command, pdu.sequence)
            return
        w.status = status
        w.message_id = _s(getattr(pdu, "message_id", None))
        w.event.set()

    def _on_submit_resp(self, pdu, **_kw) -> None:
        self._resolve(pdu, int(pdu.status or 0))

    def _on_error_pdu(self, pdu) -> None:
        # smpplib calls this for any PDU with a non-zero status (its default raises, which would
        # end our reader), then the sent handler for a submit_sm_resp, which resolves the waiter
        if pdu.command != "submit_sm_resp":
            logger.warning("smpp %s with status %s", pdu.command, pdu.status)

    # ---- receipts and MO

    def _on_deliver_sm(self, pdu, **_kw):
        try:
            if (pdu.esm_class or 0) & 0x3C == ESM_RECEIPT:
                notify_receipt(self.listener, receipt_from_pdu(pdu))
            else:
                mo = self._mo_from_pdu(pdu)
                if mo is not None:
                    notify_mo(self.listener, mo)
        except Exception:
            logger.exception("smpp deliver_sm could not be handled")
        return c.SMPP_ESME_ROK

    def _mo_from_pdu(self, pdu) -> MobileOriginated | None:
        sm = pdu.short_message or b""
        if not sm and getattr(pdu, "message_payload", None):
            sm = pdu.message_payload
        dcs = int(pdu.data_coding or 0)
        udh, payload = split_udh(sm, bool((pdu.esm_class or 0) & ESM_UDHI))
        sender = _s(pdu.source_addr)
        info = concat_info(udh) if udh else None
        if info is not None and info[1] > 1:
            ref, total, seq = info
            if (sender, ref) not in self._mo_parts and len(self._mo_parts) >= MAX_PENDING_MO:
                # parts whose siblings never came: forget the oldest message
                self._mo_parts.pop(next(iter(self._mo_parts)))
            parts = self._mo_parts.setdefault((sender, ref), {})
            parts[seq] = payload
            if len(parts) < total:
                return None
            del self._mo_parts[(sender, ref)]
            payload = b"".join(parts[i] for i in sorted(parts))
        if dcs == DCS_UCS2:
            text = payload.decode("utf-16-be", errors="replace")
        else:
            text = decode_payload(payload, dcs)
        return MobileOriginated(
            sender,
            text,
            datetime.now(UTC),
            to_number=_s(pdu.destination_addr),
            extra={"data_coding": str(dcs)},
        )


def receipt_from_pdu(pdu) -> DeliveryReceipt:
    """A DeliveryReceipt from a receipt deliver_sm: TLVs first, the Appendix B text as fallback."""
    text = (pdu.short_message or b"").decode("latin-1")
    fields = parse_receipt_text(text)
    message_id = _s(getattr(pdu, "receipted_message_id", None)) or fields.get("id", "")
    state = getattr(pdu, "message_state", None)
    if "stat" in fields:
        status = RECEIPT_STAT.get(fields["stat"].upper(), DeliveryStatus.UNKNOWN)
    elif state is not None:
        status = MESSAGE_STATE.get(int(state), DeliveryStatus.UNKNOWN)
    else:
        status = DeliveryStatus.UNKNOWN
    return DeliveryReceipt(message_id, status, raw=text.strip())
