"""Fill the forward outbox from its sources: the journal's history (lifecycle events), its audit
(disposals) and the reading store (1-minute summaries of the chosen sensors).

Each source has a position in the outbox (ForwardStore positions); a pass reads what lies beyond it,
builds the records (alerts/forward/records.py) and writes them with the new position in one
transaction, so a crash between reading and writing repeats the pass and nothing is lost or
doubled. Positions start at the end of the journal and at the current minute the first time the
forwarder runs: enabling it does not push the whole history upward.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from alerts.book.sqlite_journal import AlarmJournal
from alerts.engine.lifecycle import DEFAULT_TZ
from alerts.forward.records import (
    DISPOSE_ACTION,
    LIFECYCLE_KINDS,
    disposal_record,
    event_record,
    summary_record,
)
from alerts.forward.store import ForwardStore
from alerts.forward.summaries import MINUTE_MS, due_minutes, minute_floor, minute_stats
from ingest.store import ReadingStore, StorageError

logger = logging.getLogger(__name__)

HISTORY = "history"  # position: the journal's history seq read up to
AUDIT = "audit"  # position: the journal's audit seq read up to
SUMMARIES = "summaries"  # position: the start (ms) of the next minute to summarise
BATCH = 500


@dataclass(frozen=True, slots=True)
class SummarySensor:
    """A sensor whose closed minutes go upward (HAZMON_FORWARD_SENSORS)."""

    site: str
    sensor: str
    unit: str


class ForwardCollector:
    """Turns journal rows and stored readings into outbox records; call `collect` on one thread."""

    def __init__(
        self,
        outbox: ForwardStore,
        journal: AlarmJournal,
        *,
        readings: ReadingStore | None = None,
        sensors: Sequence[SummarySensor] = (),
        store_current: Callable[[], bool] = lambda: True,
        site_tz: Callable[[str], str] = lambda _site: DEFAULT_TZ,
        summary_delay_ms: int = 30_000,
        catchup_min: int = 60,
        clock: Callable[[], int],
    ):
        self.outbox = outbox
        self.journal = journal
        self.readings = readings
        self.sensors = tuple(sensors)
        self._store_current = store_current
        self._site_tz = site_tz
        self.summary_delay_ms = summary_delay_ms
        self.catchup_min = catchup_min
        self._clock = clock
        # opened now, before the book journals anything (as the MQTT event outbox's cursor)
        self._history = outbox.open_position(HISTORY, journal.last_seq())
        self._audit = outbox.open_position(AUDIT, journal.last_audit_seq())
        self._summaries = outbox.open_position(SUMMARIES, minute_floor(clock())) if self.sensors else None
        self._started_ms = clock()
        self.records = 0  # records added to the outbox by this process
        self.summary_minutes = 0
        self.skipped_minutes = 0  # minutes older than the catch-up window, never summarised
        self.summaries_waiting = ""  # why summaries wait now ("" when they do not)

    @property
    def summary_position(self) -> int | None:
        """The next minute to summarise (ms), or None without summary sensors."""
        return self._summaries

    def collect(self) -> int:
        """One pass over every source; returns how many records were added."""
        return self.collect_events() + self.collect_disposals() + self.collect_summaries()

    def collect_events(self) -> int:
        added = 0
        while True:
            rows = self.journal.history_after(self._history, tuple(LIFECYCLE_KINDS), limit=BATCH)
            if not rows:
                return added
            records = [r for r in (event_record(e, self._site_tz(e.key[0])) for e in rows) if r is not None]
            added += self.outbox.append(records, {HISTORY: rows[-1].seq}, self._clock())
            self._history = rows[-1].seq
            self.records += len(records)

    def collect_disposals(self) -> int:
        added = 0
        while True:
            rows = self.journal.audit_after(self._audit, DISPOSE_ACTION, limit=BATCH)
            if not rows:
                return added
            records = []
            for a in rows:
                site = a.key[0] if a.key else ""
                r = disposal_record(a, self.journal.disposal(a.alarm_id), self._site_tz(site))
                if r is not None:
                    records.append(r)
            assert rows[-1].seq is not None
            added += self.outbox.append(records, {AUDIT: rows[-1].seq}, self._clock())
            self._audit = rows[-1].seq
            self.records += len(records)

    def collect_summaries(self) -> int:
        """Summarise the due minutes, once the store holds what ingest accepted (else wait)."""
        if self._summaries is None or self.readings is None:
            return 0
        now = self._clock()
        # readings a broker held while hazmon was down arrive first after a start: give them time
        if now - self._started_ms < self.summary_delay_ms:
            self.summaries_waiting = "starting"
            return 0
        due = due_minutes(self._summaries, now, self.summary_delay_ms, self.catchup_min)
        if not due.minutes:
            self.summaries_waiting = ""
            return 0
        if not self._store_current():
            self.summaries_waiting = "store behind (InfluxDB down or spooling)"
            return 0
        start, end = due.minutes[0], due.minutes[-1] + MINUTE_MS
        by_site: dict[str, list[SummarySensor]] = {}
        for s in self.sensors:
            by_site.setdefault(s.site, []).append(s)
        records = []
        try:
            for site, sensors in by_site.items():
                series = {
                    x.sensor: x
                    for x in self.readings.read(
                        site, [s.sensor for s in sensors], start, end, resolution="raw"
                    )
                }
                tz = self._site_tz(site)
                for s in sensors:
                    x = series.get(s.sensor)
                    for minute in due.minutes:
                        if x is None:
                            stats = minute_stats([], [], [], minute)
                        else:
                            stats = minute_stats(x.ts_ms, x.values["value"], x.values["quality"], minute)
                        records.append(summary_record(site, s.sensor, s.unit, minute, stats, tz))
        except StorageError as e:
            self.summaries_waiting = f"store unavailable: {e}"
            logger.warning("forward: cannot read readings for summaries now (%s); retrying", e)
            return 0
        position = due.next_position
        assert position is not None
        added = self.outbox.append(records, {SUMMARIES: position}, now)
        if due.skipped:
            self.skipped_minutes += due.skipped
            logger.warning(
                "forward: %d minutes older than the catch-up window (%d min) were not summarised",
                due.skipped,
                self.catchup_min,
            )
        self._summaries = position
        self.summary_minutes += len(due.minutes)
        self.records += len(records)
        self.summaries_waiting = ""
        return added
