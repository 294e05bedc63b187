"""From the alarm book to the officers' phones: escalation -> durable outbox -> gateway, and back.

The service's clock (APScheduler) calls `tick`, which
1. lists, for every open alarm, the notifications its escalation chain wants by now
   (alerts/notify/escalation.py) and stores the new ones in the outbox (idempotency keys make repeats
   harmless), cancelling what still waits for alarms acknowledged, cleared or shelved since;
2. lets the outbox merge what waits per phone (quiet merging, rate limit) and send what is due,
   retrying an unreachable gateway with backoff; messages left in doubt by a crash are settled;
3. hands alarm messages the SMS gateway cannot deliver down the fallback tiers.

The notifier holds an ordered list of channels (alerts/notify/channels/gateway.py `NamedChannel`).
The first, the primary, is the SMS gateway: texts go out through the outbox, exactly once. Each
later one is a fallback tier (1, 2, ...) that gets the alarm messages the one before it could not
deliver (refused, or not delivered `failover_after_ms` after it was made or first tried), once per
tier; the outbox records each tier's post (`SmsOutbox.failover_due`).

The primary's callbacks come back here: delivery receipts go to the outbox, SMS replies to the
acknowledger, and the acknowledger's answer goes out through the outbox like any other text. The
fallback tiers get no listener: they report nothing back, and a receipt of theirs, carrying the
message's key, would be taken for the primary's.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime

from alerts.book.book import AlarmBook
from alerts.engine.lifecycle import Alarm, AlarmState
from alerts.notify.channels.gateway import (
    CallbackListener,
    Channel,
    DeliveryReceipt,
    DeliveryStatus,
    GatewayUnavailable,
    NamedChannel,
    SmsError,
)
from alerts.notify.escalation import DutyLookup, Routing, due_notifications, is_open, next_due_ms
from alerts.notify.sms_ack import SmsAcknowledger, Status
from alerts.notify.sms_outbox import SmsOutbox, message_key, tier_prefix
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
    """Owns the notification side of the service: one `tick` at a time (APScheduler max_instances=1)."""

    def __init__(
        self,
        book: AlarmBook,
        outbox: SmsOutbox,
        routing: Routing,
        duty: DutyLookup,
        describe: Describe,
        channels: Sequence[NamedChannel],
        *,
        failover_after_ms: int = 120_000,
        fallback_retry_ms: int = 30_000,
        acknowledger: SmsAcknowledger | None = None,
        fault_point: FaultPoint = _no_fault,
        clock: Callable[[], int] = _now_ms,
        roster_error: str | None = None,
        kannel: object | None = None,
    ):
        if not channels:
            raise ValueError("the notifier needs at least one channel: the SMS gateway")
        self.book, self.outbox, self.routing, self.duty = book, outbox, routing, duty
        self.describe = describe
        self.channels = tuple(channels)  # [0] the SMS gateway, then fallback tiers 1, 2, ...
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
        # the Kannel adapter among the channels, whose HTTP callbacks the API routes here (if any);
        # the composition root finds it in its channel list (hazmon/bootstrap.py Channels.kannel)
        self.kannel = kannel
        self._next_check: dict[str, int] = {}  # alarm id -> when its chain next needs a look
        self._lock = threading.Lock()  # one tick at a time, whoever calls it
        self.gateway.set_listener(CallbackListener(on_receipt=self.on_receipt, on_mo=self.on_mo))

    @property
    def gateway(self) -> Channel:
        """The primary channel: the SMS gateway the outbox sends through."""
        return self.channels[0].channel

    @property
    def gateway_name(self) -> str:
        return self.channels[0].name

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
        """Post what the tier before could not deliver to each fallback tier in turn, once each."""
        for tier, named in enumerate(self.channels[1:], start=1):
            due = self.outbox.failover_due(tier, named.name, now_ms, self.failover_after_ms)
            for mid, phone, text in due:
                self._post(tier, named, mid, phone, text, now_ms)

    def _post(self, tier: int, named: NamedChannel, mid: int, phone: str, text: str, now_ms: int) -> None:
        counter = tier_prefix(tier)  # fallback_posted for tier 1, fallback2_posted for tier 2, ...
        try:
            named.channel.send(phone, text, message_key(mid))
        except GatewayUnavailable as e:
            self.outbox.record_post(mid, tier, False, now_ms, str(e), retry_ms=self.fallback_retry_ms)
            self.counters[f"{counter}_retry"] += 1
            return
        except SmsError as e:
            self.outbox.record_post(mid, tier, False, now_ms, str(e))
            self.counters[f"{counter}_failed"] += 1
            logger.error("%s (tier %d) refused sms-%d: %s", named.name, tier, mid, e)
            return
        self.outbox.record_post(mid, tier, True, now_ms)
        self.counters[f"{counter}_posted"] += 1
        logger.warning("sms-%d undelivered by the tier before: posted to %s (tier %d)", mid, named.name, tier)

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
            "fallback": self.channels[1].name if len(self.channels) > 1 else None,
            "roster_error": self.roster_error,
            "backlog": backlog,
            "unsent": backlog.get("ready", 0) + backlog.get("sending", 0),
            "oldest_unsent_age_s": None if oldest is None else round((self.clock() - oldest) / 1000, 1),
            "counters": dict(self.counters),
            "channels": [{"name": c.name, "tier": tier} for tier, c in enumerate(self.channels)],
        }

    def start(self) -> None:
        """Start channels that keep a session (SMPP binds in the background)."""
        for named in self.channels:
            named.channel.start()

    def close(self) -> None:
        for named in self.channels:
            named.channel.close()
        self.outbox.close()
