"""Changes of stored readings (ingest/history_check.py) into the alarm audit trail, where the
control room and the regulator already read who did what (`GET /api/v1/audit`)."""

from __future__ import annotations

from collections.abc import Callable

from alerts.book.journal_port import AlarmJournalPort
from alerts.book.records import AuditEntry
from ingest.history_check import HistoryChange

ACTION = "history_rewrite"


class HistoryAudit:
    """`on_changes` of the history check: one audit row per reported change."""

    def __init__(self, journal: AlarmJournalPort, clock: Callable[[], int]):
        self.journal = journal
        self.clock = clock

    def __call__(self, changes: list[HistoryChange]) -> None:
        now = self.clock()
        with self.journal.transaction() as tx:  # one commit for the batch's changes
            for c in changes:
                tx.add_audit(_entry(c, now))


def _entry(c: HistoryChange, now: int) -> AuditEntry:
    more = f" (and {c.more} more changes in the same batch)" if c.more else ""
    return AuditEntry(
        now,
        f"device:{c.device}",
        ACTION,
        "ok" if c.accepted else "refused",
        key=(c.site, "sensor", c.sensor, "history"),
        reason=f"value at ts {c.ts_ms} was {c.stored!r}, written {c.new!r}{more}",
        error="" if c.accepted else "the sensor has no registered device: its history cannot be changed",
        details={"ts_ms": c.ts_ms, "stored": c.stored, "new": c.new, "more": c.more},
    )
