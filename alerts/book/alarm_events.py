"""What happens on every batch of alarm events the book journals: counters, floods, the event outbox.

It is the book's listener, and it exists before the book does, so the composition root wires the
book to it at construction (no callback patched in afterwards). The flood state is EEMUA 191's:
more than 10 alarms raised in 10 minutes on one console (a site).
"""

from __future__ import annotations

import logging
import threading

from alerts.book.outbox import OutboxRunner
from alerts.engine.lifecycle import AlarmRaised
from alerts.metrics import FloodDetector, FloodEnded, FloodEvent, FloodStarted
from alerts.stats import AlarmStats
from sensors.readings import now_ms as _now_ms

logger = logging.getLogger(__name__)


class AlarmEventWatch:
    """Counts the book's events, follows floods per site and wakes the event outbox."""

    def __init__(self, stats: AlarmStats, outbox_runner: OutboxRunner | None = None):
        self.stats = stats
        self.outbox_runner = outbox_runner
        self.floods = FloodDetector()  # live, per site (the site's console)
        self.floods_total = 0
        self._flood_since: dict[str, int] = {}  # site -> flood start (event time, ms)
        self._lock = threading.Lock()

    def __call__(self, events) -> None:
        """The book's on_events: called after each batch of events is journalled."""
        self.stats.count_events(events)
        raises = [(ev.key[0], ev.time_ms) for ev in events if isinstance(ev, AlarmRaised)]
        if raises:
            with self._lock:
                for site, t in raises:
                    self._on_flood(self.floods.add(site, t))
        if self.outbox_runner is not None:
            self.outbox_runner.wake()

    def check_floods(self, now_ms: int | None = None) -> None:
        """End floods on the clock too, when no alarm comes."""
        with self._lock:
            self._on_flood(self.floods.advance(_now_ms() if now_ms is None else now_ms))

    def current_floods(self) -> list[tuple[str, int, int]]:
        """Sites in flood now: (site, since ms, raises in the last 10 minutes)."""
        with self._lock:
            return [
                (site, since, self.floods.count(site)) for site, since in sorted(self._flood_since.items())
            ]

    def sites_in_flood(self) -> int:
        with self._lock:
            return len(self._flood_since)

    def _on_flood(self, changes: list[FloodEvent]) -> None:
        for f in changes:
            site = str(f.console)
            if isinstance(f, FloodStarted):
                self._flood_since[site] = f.time_ms
                self.floods_total += 1
                logger.warning("alarm flood on %s: %d alarms within 10 minutes", site, f.count)
            elif isinstance(f, FloodEnded):
                self._flood_since.pop(site, None)
                logger.warning(
                    "alarm flood on %s ended after %.0f min", site, (f.time_ms - f.started_ms) / 60e3
                )
