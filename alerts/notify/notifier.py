"""From the alarm book to the officers' phones: escalation -> durable outbox -> gateway, and back.

The service's clock (APScheduler) calls `tick`, which
1. lists, for every open alarm, the notifications its escalation chain wants by now
   (alerts/notify/escalation.py) and stores the new ones in the outbox (idempotency keys make repeats
   harmless), cancelling what still waits for alarms acknowledged, cleared or shelved since;
2. lets the outbox merge what waits per phone (quiet merging, rate limit) and send what is due,
   retrying an unreachable gateway with backoff; messages left in doubt by a crash are settled;
3. hands alarm messages SMS cannot deliver to the second channel (a group-chat robot).

The gateway's callbacks come back here: delivery receipts go to the outbox, SMS replies to the
acknowledger, and the acknowledger's answer goes out through the outbox like any other text.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from alerts.book.book import AlarmBook
from alerts.engine.lifecycle import Alarm, AlarmState
from alerts.notify.channels.gateway import (
    CallbackListener,
    DeliveryReceipt,
    DeliveryStatus,
    GatewayUnavailable,
    SmsError,
    SmsGateway,
)
from alerts.notify.escalation import DutyLookup, Routing, due_notifications, is_open, next_due_ms
from alerts.notify.sms_ack import SmsAcknowledger, Status
from alerts.notify.sms_outbox import SmsOutbox, message_key
from alerts.notify.sms_render import Rendered
from sensors.readings import now_ms as _now_ms

logger = logging.getLogger(__name__)

#: re-read an alarm's chain at least this often, so a roster edit or a new shift is seen
RECHECK_MS = 60_000
Describe = Callable[[Alarm, str], Rendered]
FaultPoint = Callable[[str], None]


def _no_fault(_: str) -> None:
    return None


class Notifier:
    """Owns the SMS side of the service: one `tick` at a time (APScheduler max_instances=1)."""

    def __init__(
        self,
        book: AlarmBook,
        outbox: SmsOutbox,
        routing: Routing,
        duty: DutyLookup,
        describe: Describe,
        gateway: SmsGateway,
        *,
        gateway_name: str = "sms",
        fallback: SmsGateway | None = None,
        fallback_name: str = "",
        failover_after_ms: int = 120_000,
        fallback_retry_ms: int = 30_000,
        acknowledger: SmsAcknowledger | None = None,
        fault_point: FaultPoint = _no_fault,
        clock: Callable[[], int] = _now_ms,
        roster_error: str | None = None,
        kannel: object | None = None,
    ):
        self.book, self.outbox, self.routing, self.duty = book, outbox, routing, duty
        self.describe = describe
        self.gateway, self.gateway_name = gateway, gateway_name
        self.fallback, self.fallback_name = fallback, fallback_name
        self.failover_after_ms = failover_after_ms
        self.fallback_retry_ms = fallback_retry_ms
        self.acknowledger = acknowledger
        self.fault_point = fault_point
        self.clock = clock
        self.counters: Counter[str] = Counter()
        self.last_gateway_error: str | None = None
        self.last_gateway_error_ms: int | None = None
        self.gateway_ok: bool | None = None  # None until the first send
        self.roster_error = roster_error  # the last roster import's mistake, for /healthz
        self.kannel = kannel  # the Kannel adapter whose HTTP callbacks the API routes here (if any)
        self._next_check: dict[str, int] = {}  # alarm id -> when its chain next needs a look
        self._lock = threading.Lock()  # one tick at a time, whoever calls it
        gateway.set_listener(CallbackListener(on_receipt=self.on_receipt, on_mo=self.on_mo))

    # ---- the clock

    def tick(self, now_ms: int | None = None) -> None:
        """One round: escalate, merge, send, fail over. Never raises (the scheduler keeps going)."""
        now = self.clock() if now_ms is None else now_ms
        with self._lock:
            for step in (self.escalate, self.deliver, self.fail_over):
                try:
                    step(now)
                except Exception:
                    self.counters["errors"] += 1
                    logger.exception("notifier %s failed", step.__name__)

    def escalate(self, now_ms: int) -> int:
        """Store the notifications due by now; cancel those of alarms no longer open. Returns new ones."""
        listed = self._unacked_alarms()
        open_alarms = [a for a in listed if is_open(a)]
        open_ids = {a.alarm_id for a in open_alarms}
        items = []
        for alarm in open_alarms:
            if now_ms < self._next_check.get(alarm.alarm_id, 0):
                continue
            chain = self.routing.chain_for(alarm)
            nxt = next_due_ms(alarm, chain, now_ms) if chain is not None else None
            self._next_check[alarm.alarm_id] = min(nxt or now_ms + RECHECK_MS, now_ms + RECHECK_MS)
            if chain is None:
                continue
            due = due_notifications(alarm, chain, now_ms, self.duty)
            items += [(n, self.describe(alarm, n.language)) for n in due]
        for gone in set(self._next_check) - open_ids:
            del self._next_check[gone]
        new = self.outbox.enqueue(items, now_ms) if items else 0
        cancelled = self.outbox.cancel_except({a.alarm_id for a in listed})
        if new or cancelled:
            self.counters["notifications_queued"] += new
            self.counters["notifications_cancelled"] += cancelled
            logger.info("sms: %d notifications queued, %d cancelled", new, cancelled)
            self.fault_point("sms_after_enqueue")
        return new

    def _unacked_alarms(self) -> list[Alarm]:
        """Alarms whose queued texts still go out: unacknowledged and shown, active or not.

        A clearance stops the chain (no new step, no reminder) but not a text already due: a gas
        alarm that cleared within the merge window still happened, and still needs an ack.
        Acknowledging, shelving, suppressing or taking it out of service cancels what waits.
        """
        states = {AlarmState.UNACK, AlarmState.RTN_UNACK}
        return [a for a in self.book.current(states=states) if not a.hidden]

    def cancel_closed(self) -> int:
        """Cancel what waits for alarms acknowledged or hidden (cheap; called right after an SMS ack)."""
        n = self.outbox.cancel_except({a.alarm_id for a in self._unacked_alarms()})
        self.counters["notifications_cancelled"] += n
        return n

    def deliver(self, now_ms: int) -> None:
        """Settle crash leftovers, merge what waits into messages, send what is due."""
        for mid in self.outbox.resolve_in_doubt(now_ms):
            self.counters["resent_in_doubt"] += 1
            logger.warning("sms-%d was in doubt after a crash and had no receipt: sending again", mid)
        if self.outbox.plan(now_ms):
            self.fault_point("sms_after_plan")
        for mid, outcome in self.outbox.send_due(self.gateway, now_ms):
            self.counters[f"send_{outcome}"] += 1
            if outcome == "sent":
                self.gateway_ok = True
            else:
                self._note_gateway_error(mid, now_ms)

    def _note_gateway_error(self, mid: int, now_ms: int) -> None:
        row = next(iter(self.outbox.messages(message_id=mid)), None)
        error = row["error"] if row else "unknown"
        if self.gateway_ok is not False:
            logger.error("sms gateway %s failing: %s", self.gateway_name, error)
        self.gateway_ok = False
        self.last_gateway_error, self.last_gateway_error_ms = error, now_ms

    def fail_over(self, now_ms: int) -> None:
        """Post what SMS could not deliver to the second channel, once each."""
        if self.fallback is None:
            return
        for mid, phone, text in self.outbox.failover_due(now_ms, self.failover_after_ms):
            try:
                self.fallback.send(phone, text, message_key(mid))
            except GatewayUnavailable as e:
                self.outbox.record_fallback(mid, False, now_ms, str(e), retry_ms=self.fallback_retry_ms)
                self.counters["fallback_retry"] += 1
                continue
            except SmsError as e:
                self.outbox.record_fallback(mid, False, now_ms, str(e))
                self.counters["fallback_failed"] += 1
                logger.error("%s refused sms-%d: %s", self.fallback_name, mid, e)
                continue
            self.outbox.record_fallback(mid, True, now_ms)
            self.counters["fallback_posted"] += 1
            logger.warning("sms-%d not delivered by SMS: posted to %s", mid, self.fallback_name)

    # ---- the gateway's callbacks (its own thread, or an HTTP request's)

    def on_receipt(self, message_id: str, status: DeliveryStatus, receipt: DeliveryReceipt) -> None:
        matched = self.outbox.on_receipt(receipt, self.clock())
        self.counters["receipts" if matched else "receipts_unmatched"] += 1

    def on_mo(self, from_number: str, text: str, received_at: datetime) -> None:
        """An SMS reply: acknowledge, then answer the sender (strangers get no answer)."""
        if self.acknowledger is None:
            self.counters["replies_ignored"] += 1
            return
        outcome = self.acknowledger.on_mo(from_number, text, received_at)
        self.counters[f"replies_{outcome.status.value}"] += 1
        if outcome.person is not None and outcome.reply_text:
            self.outbox.enqueue_text(outcome.phone, outcome.reply_text, self.clock())
        if outcome.status in (Status.OK, Status.PARTIAL):
            self.cancel_closed()  # what still waits for the acknowledged alarms is not sent

    # ---- reads

    def health(self) -> dict:
        backlog = self.outbox.backlog()
        oldest = self.outbox.oldest_unsent_ms()
        return {
            "gateway": self.gateway_name,
            "gateway_ok": self.gateway_ok,
            "last_gateway_error": self.last_gateway_error,
            "last_gateway_error_ms": self.last_gateway_error_ms,
            "fallback": self.fallback_name or None,
            "roster_error": self.roster_error,
            "backlog": backlog,
            "unsent": backlog.get("ready", 0) + backlog.get("sending", 0),
            "oldest_unsent_age_s": None if oldest is None else round((self.clock() - oldest) / 1000, 1),
            "counters": dict(self.counters),
        }

    def start(self) -> None:
        """Start gateways that keep a session (SMPP binds in the background)."""
        for g in (self.gateway, self.fallback):
            start = getattr(g, "start", None)
            if start is not None:
                start()

    def close(self) -> None:
        for g in (self.gateway, self.fallback):
            if g is not None:
                g.close()
        self.outbox.close()
