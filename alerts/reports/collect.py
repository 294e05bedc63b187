"""Reads what a report needs from the stores: the journal (history, disposals, audit) and the SMS
outbox, then hands it to the pure model (alerts/reports/model.py).

`eemua_between` is also what GET /api/v1/alarm-metrics and the service's EEMUA snapshot use, so
the report's EEMUA figures and the API's come from one read and one computation.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from alerts.book.sqlite_journal import AlarmJournal
from alerts.metrics import DAY_MS, EemuaReport, eemua_report
from alerts.reports.model import Report, ReportScope, build_report, sites_in
from alerts.reports.periods import Period
from sensors.model import Site

METRIC_TYPES = ("AlarmRaised", "AlarmReturnedToNormal", "AlarmSuppressed")  # what eemua_report reads
REPORT_TYPES = (*METRIC_TYPES, "AlarmCleared")  # plus what ends an early warning
MAX_ROWS = 10_000_000


class MessageSource(Protocol):
    """What a report reads of the SMS outbox (alerts.notify.sms_outbox.SmsOutbox fits)."""

    def messages(
        self,
        phone: str | None = None,
        state: str | None = None,
        limit: int = 10_000,
        newest_first: bool = False,
        message_id: int | None = None,
        sites: Collection[str] | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[dict]: ...


def eemua_between(
    journal: AlarmJournal, start_ms: int, end_ms: int, sites: Collection[str] | None = None
) -> EemuaReport:
    """EEMUA 191 figures over [start_ms, end_ms), of `sites` (None: every site); rows a day older
    feed standing alarms and floods."""
    rows = journal.history(
        since_ms=start_ms - DAY_MS, until_ms=end_ms, types=METRIC_TYPES, limit=MAX_ROWS, newest_first=False
    )
    if sites is not None:
        ids = set(sites)
        rows = [r for r in rows if r.key[0] in ids]
    return eemua_report(rows, start_ms, end_ms)


def collect_report(
    scope: ReportScope,
    period: Period,
    registry_sites: Sequence[Site],
    journal: AlarmJournal,
    outbox: MessageSource | None,
    as_of_ms: int,
) -> Report:
    """The report of `scope` over `period` as of `as_of_ms` (at or after the period's end)."""
    sites = sites_in(scope, registry_sites)
    ids = [s.id for s in sites]
    start, end = period.start_ms, period.end_ms
    history = journal.history(
        since_ms=start - DAY_MS,
        until_ms=max(as_of_ms, end),
        types=REPORT_TYPES,
        limit=MAX_ROWS,
        newest_first=False,
    )
    disposals = [d for d in journal.disposals(sites=ids, since_ms=start, limit=MAX_ROWS) if d.raised_ms < end]
    audit = journal.audit_log(since_ms=start, until_ms=end, limit=MAX_ROWS, newest_first=False)
    sms = None if outbox is None else outbox.messages(sites=ids, since_ms=start, until_ms=end, limit=MAX_ROWS)
    return build_report(scope, sites, period, as_of_ms, history, disposals, audit, sms)
