"""A generated district with a realistic day in a real alarm journal and SMS outbox: what
`make bench-report` times and what the 200-site report test serves from a real hazmon."""

from __future__ import annotations

import random
from typing import Any

from alerts.book.book import AlarmBook
from alerts.book.sqlite_journal import AlarmJournal
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from alerts.notify.channels.gateway import DeliveryReceipt, DeliveryStatus, MessageRejected, SendResult
from alerts.notify.escalation import Notification
from alerts.notify.sms_outbox import SmsOutbox
from alerts.notify.sms_render import Rendered
from sensors.model import Site

MIN = 60_000
K = ConditionKind
DISTRICT, CITY = "江海区", "江门市"


def make_sites(n: int) -> list[Site]:
    return [
        Site(f"jh-{i:03d}", f"江海区化工企业{i:03d}", "chemical", 1 + i % 4, (), district=DISTRICT, city=CITY)
        for i in range(n)
    ]


def make_day(
    journal: AlarmJournal, sites: list[Site], start_ms: int, per_site: int, rng: random.Random
) -> int:
    """Journal a day of conditions for every site (one transaction per minute of event time, as the
    engine's ticks batch them); returns how many changes."""
    changes: list[ConditionChange] = []

    def episode(site: str, source: str, kind, prio, t: int, minutes: float, scope: str = "sensor") -> None:
        level = "STALE" if kind is K.STALE else kind.name
        changes.append(ConditionChange(site, source, kind, True, t, prio, level, scope=scope))
        changes.append(
            ConditionChange(site, source, kind, False, t + int(minutes * MIN), prio, level, scope=scope)
        )

    for s in sites:
        for _ in range(per_site):
            t = start_ms + rng.randrange(0, 24 * 60 - 60) * MIN + rng.randrange(60_000)
            kind = rng.choice((K.H, K.H, K.H, K.HH, K.L))
            prio = {K.HH: Priority.HIGH, K.L: Priority.MEDIUM}.get(kind, Priority.MEDIUM)
            if rng.random() < 0.05:
                prio = Priority.CRITICAL
            episode(s.id, f"S{rng.randrange(12)}", kind, prio, t, rng.uniform(1, 40))
        for w in range(2):  # two early warnings a site, one of which comes true
            t = start_ms + rng.randrange(60, 20 * 60) * MIN
            ew = ConditionChange(s.id, f"LT-{w}", K.EARLY_WARNING, True, t, Priority.MEDIUM, "HH")
            changes.append(ew)
            if w == 0:
                episode(s.id, f"LT-{w}", K.HH, Priority.HIGH, t + 30 * MIN, 20)
            changes.append(
                ConditionChange(s.id, f"LT-{w}", K.EARLY_WARNING, False, t + 45 * MIN, Priority.MEDIUM, "HH")
            )
        if rng.random() < 0.25:  # a gateway silent for a while
            t = start_ms + rng.randrange(0, 22 * 60) * MIN
            episode(s.id, "gw-01", K.STALE, Priority.HIGH, t, rng.uniform(5, 90), scope="device")
    book = AlarmBook(journal, clock=lambda: start_ms)
    changes.sort(key=lambda c: c.time_ms)
    batch: list[ConditionChange] = []
    for c in changes:
        if batch and c.time_ms // MIN != batch[0].time_ms // MIN:
            book.on_changes(batch, batch[-1].time_ms)
            batch = []
        batch.append(c)
    book.on_changes(batch, batch[-1].time_ms)
    return len(changes)


def dispose_most(journal: AlarmJournal, start_ms: int, rng: random.Random) -> int:
    """Dispose 80 % of what was asked: most in time, some late; the rest stay overdue."""
    done = 0
    for d in journal.disposals(since_ms=start_ms, limit=10**7):
        if rng.random() < 0.8:
            took = rng.uniform(3, 25) if rng.random() < 0.8 else rng.uniform(35, 120)
            journal.dispose(
                d.alarm_id, "op", "process", "调整工艺参数", "值班长", "", d.raised_ms + int(took * MIN)
            )
            done += 1
    return done


class Gateway:
    """Takes 97 % of texts, refuses the rest."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def send(self, to: str, text: str, key: str) -> SendResult:
        if self.rng.random() < 0.03:
            raise MessageRejected("invalid destination")
        return SendResult(key, (f"gw-{key}",), 1, 8)


def make_texts(outbox: SmsOutbox, journal: AlarmJournal, start_ms: int, rng: random.Random) -> int:
    """A text for every high or critical raise, to the site's operator; most sent and delivered."""
    raises = journal.history(
        since_ms=start_ms,
        until_ms=start_ms + 86_400_000,
        types=["AlarmRaised"],
        limit=10**7,
        newest_first=False,
    )
    items = [
        (
            Notification(f"{h.alarm_id}/0/0/op-{h.key[0]}", h.alarm_id, h.key[0], 0, 0, "operator",
                         f"op-{h.key[0]}", f"+86138{abs(hash(h.key[0])) % 10**8:08d}", h.time_ms),
            Rendered(h.key[0], f"{h.key[2]} 报警", f"{h.key[2]} alarm", Priority.HIGH, h.time_ms),
        )
        for h in raises
        if h.details.get("priority") in ("high", "critical")
    ]  # fmt: skip
    for k in range(0, len(items), 500):
        chunk = items[k : k + 500]
        now = chunk[-1][0].due_ms
        outbox.enqueue(chunk, now)
        outbox.plan(now)
    gateway = Gateway(rng)
    outbox.send_due(gateway, start_ms + 86_400_000 - 10 * MIN)  # leaves the last texts of the day waiting
    for m in outbox.messages(state="sent", limit=10**7):
        if rng.random() < 0.9:
            outbox.on_receipt(DeliveryReceipt("", DeliveryStatus.DELIVERED, "DELIVRD", f"sms-{m['id']}"), 0)
    return len(items)


def registry_doc(sites: list[Site]) -> dict[str, Any]:
    """The registry of the generated sites (one level sensor each), for `hazmon run`."""
    sensor = {"id": "S0", "name": "液位", "kind": "level", "unit": "m", "range": [0, 20], "interval_s": 60}
    return {
        "sites": [
            {"id": s.id, "name": s.name, "kind": s.kind, "grade": s.grade, "city": s.city,
             "district": s.district, "sensors": [sensor]}
            for s in sites
        ]
    }  # fmt: skip
