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

from alerts.book.sqlite_journal import AlarmJournal
from alerts.notify.sms_outbox import SmsOutbox
from alerts.reports.collect import REPORT_TYPES, collect_report
from alerts.reports.model import ReportScope, summary
from alerts.reports.periods import day_period
from alerts.reports.renderers import RENDERERS
from tests.support.report_day import CITY, DISTRICT, MIN, dispose_most, make_day, make_sites, make_texts


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
