"""The daily report of a district (issue 13 item 6): 200 generated sites with a realistic day in a
real alarm journal and SMS outbox (limit alarms and their returns, early warnings half of which
come true, gateway outages, disposals in time, late and missing, audit rows, texts sent, delivered,
failed and waiting), then the district's daily report computed and rendered as CSV, XLSX and PDF,
against reading the same rows from the stores in the same run (the ratio is what computing and
rendering add). Target: all three formats under 10 s."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project first

from alerts.book.book import AlarmBook
from alerts.book.sqlite_journal import AlarmJournal
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from alerts.notify.channels.gateway import DeliveryReceipt, DeliveryStatus, MessageRejected, SendResult
from alerts.notify.escalation import Notification
from alerts.notify.sms_outbox import SmsOutbox
from alerts.notify.sms_render import Rendered
from alerts.reports.collect import REPORT_TYPES, collect_report
from alerts.reports.model import ReportScope, summary
from alerts.reports.periods import day_period
from alerts.reports.renderers import RENDERERS
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sites", type=int, default=200)
    ap.add_argument("--alarms-per-site", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    rng = random.Random(7)
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="bench-report-", dir=shm if shm.is_dir() else None))
    try:
        journal = AlarmJournal(folder / "alarms.sqlite", disposal_due_min=30)
        outbox = SmsOutbox(folder / "sms.sqlite")
        sites = make_sites(args.sites)
        period = day_period(date(2026, 12, 3))
        t0 = time.perf_counter()
        n_changes = make_day(journal, sites, period.start_ms, args.alarms_per_site, rng)
        n_disposed = dispose_most(journal, period.start_ms, rng)
        n_texts = make_texts(outbox, journal, period.start_ms, rng)
        made_s = time.perf_counter() - t0
        scope = ReportScope("district", DISTRICT, CITY)
        as_of = period.end_ms + 5 * MIN
        ids = [s.id for s in sites]

        def read_rows() -> None:
            journal.history(since_ms=period.start_ms - 86_400_000, until_ms=as_of, types=REPORT_TYPES,
                            limit=10**7, newest_first=False)  # fmt: skip
            journal.disposals(sites=ids, since_ms=period.start_ms, limit=10**7)
            journal.audit_log(since_ms=period.start_ms, until_ms=period.end_ms, limit=10**7)
            outbox.messages(sites=ids, since_ms=period.start_ms, until_ms=period.end_ms, limit=10**7)

        def best(fn) -> tuple[float, object]:
            times, out = [], None
            for _ in range(args.repeats):
                t = time.perf_counter()
                out = fn()
                times.append(time.perf_counter() - t)
            return min(times), out

        baseline_s, _ = best(read_rows)
        compute_s, report = best(lambda: collect_report(scope, period, sites, journal, outbox, as_of))
        render_s: dict[str, float] = {}
        sizes: dict[str, int] = {}
        for fmt, render in RENDERERS.items():
            render_s[fmt], data = best(lambda render=render: render(report))
            sizes[fmt] = len(data)  # type: ignore[arg-type]
        total_s = compute_s + sum(render_s.values())
        one = ReportScope("site", sites[0].id)

        def site_report() -> None:  # what the schedule does per site and period
            r = collect_report(one, period, sites, journal, outbox, as_of)
            for render in RENDERERS.values():
                render(r)

        site_s, _ = best(site_report)
        k = summary(report)  # type: ignore[arg-type]
        result = {
            "sites": args.sites,
            "history_rows": n_changes,
            "raises": k["raises"],
            "early_warnings": k["early_warnings"],
            "outages": k["outages"],
            "disposals_asked": k["disposals_asked"],
            "disposed": n_disposed,
            "sms_messages": k["sms_messages"],
            "texts_queued": n_texts,
            "compute_s": round(compute_s, 3),
            **{f"{fmt}_s": round(s, 3) for fmt, s in render_s.items()},
            "total_s": round(total_s, 3),
            "target_s": 10.0,
            "baseline_read_s": round(baseline_s, 3),
            "ratio": round(total_s / baseline_s, 1),
            "bytes": sizes,
            "site_report_s": round(site_s, 3),
            "setup_s": round(made_s, 1),
        }
        print(
            f"[bench-report] daily report of a {args.sites}-site district ({k['raises']} raises, "
            f"{k['disposals_asked']} disposals, {k['sms_messages']} texts): computed in {compute_s:.3f} s, "
            + ", ".join(f"{fmt} {s:.3f} s" for fmt, s in render_s.items())
            + f"; {total_s:.2f} s in all, {total_s / baseline_s:.1f}x reading its rows ({baseline_s:.3f} s);"
            f" one site's daily report in all three formats {site_s:.2f} s"
        )
        print(json.dumps(result))
        journal.close()
        outbox.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
