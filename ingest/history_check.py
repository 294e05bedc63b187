"""History is not rewritten silently (issue 11): each decoded batch is screened for readings that
would replace a different value already held at their sensor's timestamp.

The guard (ingest/history_guard.py) answers from memory for everything written since start; the
reading store is asked only about timestamps the guard no longer remembers (a store-and-forward
replay, a redelivery after a restart), one query per site and batch. A change is:

- accepted from a sensor with a registered `device`: only that gateway can publish the sensor's
  readings (`wrong_device`), so this is its own store-and-forward replay correcting a value;
- refused (`rewrite`, counted and listed with the rejects) for a sensor without one: any gateway
  of the site may publish it, and none may change what another wrote.

Both are reported to `on_changes` (the alarm audit trail, wired in hazmon/bootstrap.py). While the
store cannot answer for everything accepted (InfluxDB down, the spool not yet replayed, a backlog
in the writer) the unknown readings are let through and counted as `history_unverified`: holding
them would stall ingest for as long as the outage lasts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ingest.history_guard import HistoryGuard, Screening, settle_repeats
from ingest.payloads import DecodeResult, PayloadDecoder, RawMessage, Reject, RejectReason, split_topic
from ingest.stats import IngestStats
from ingest.store import ReadingStore
from sensors.index import SensorIndex
from sensors.readings import ReadingBatch

logger = logging.getLogger(__name__)

LOOKUP_LIMIT = 200_000  # points per sensor and query; beyond it, the rest stay unverified
LOOKUP_BUDGET_S = 0.05
"""Time a batch may spend asking the store (one query per site): after a restart the broker
redelivers what was not acknowledged, every site at once; past the budget the remaining sites'
readings are let through unverified (counted) rather than slowing the drain to the queries' pace."""
MAX_REPORTED = 100  # changes reported to the audit per batch; the counters count them all


@dataclass(frozen=True, slots=True)
class HistoryChange:
    """One reading that would replace another value at its timestamp, and what was decided."""

    site: str
    sensor: str
    ts_ms: int
    stored: float
    new: float
    device: str  # the topic's device
    accepted: bool  # the sensor's own registered device: its replay; else refused
    more: int = 0  # changes of the same batch not reported one by one (after MAX_REPORTED)


class HistoryCheck:
    """Between decoding and the writer: screens, asks the store, decides, reports, remembers."""

    def __init__(
        self,
        index: SensorIndex,
        decoder: PayloadDecoder,
        store: ReadingStore,
        stats: IngestStats,
        guard: HistoryGuard,
        store_current: Callable[[], bool],
        on_changes: Callable[[list[HistoryChange]], None] | None = None,
        lookup_budget_s: float = LOOKUP_BUDGET_S,
    ):
        self.index = index
        self.decoder = decoder
        self.store = store
        self.stats = stats
        self.guard = guard
        self.store_current = store_current
        self.on_changes = on_changes
        self.lookup_budget_s = lookup_budget_s
        self._registered = np.array([bool(s.device) for s in index.sensors], dtype=bool)
        self._last_warning = 0.0

    def apply(self, result: DecodeResult, messages: list[RawMessage]) -> None:
        """Drop refused changes from ``result`` (counting them), report every change, and remember
        what is accepted. ``messages`` are those given to the decoder, for the devices' names."""
        batch = result.batch
        if len(batch) == 0:
            return
        screening = self.guard.screen(batch)
        if screening.unknown.any() and self.store_current():
            self._ask_store(result, screening)
        settle_repeats(batch.slot, batch.ts_ms, screening)
        unverified = int(np.count_nonzero(screening.unknown))
        if unverified:
            self.stats.add(history_unverified=unverified)
        changes = np.flatnonzero(screening.changes)
        if changes.size:
            own = self._registered[batch.slot[changes]]
            self.stats.add(history_rewrites=int(np.count_nonzero(own)))
            self._report(result, messages, screening, changes, own)
            refused = changes[~own]
            if refused.size:
                self._refuse(result, messages, screening, refused)
        self.guard.remember(result.batch)

    # ---- the store, for timestamps the guard does not remember

    def _ask_store(self, result: DecodeResult, screening: Screening) -> None:
        batch = result.batch
        rows = np.flatnonzero(screening.unknown)
        sites = self.index.site_of_slot[batch.slot[rows]]
        deadline = time.monotonic() + self.lookup_budget_s
        for asked, site_pos in enumerate(np.unique(sites)):
            if asked and time.monotonic() > deadline:
                return  # the first site is always asked: a slow start (a cold process) must not skip it
            site_rows = rows[sites == site_pos]
            try:
                self._ask_store_for_site(self.index.site_ids[site_pos], batch, site_rows, screening)
            except Exception as e:  # the store down or refusing: these stay unverified
                self._warn(f"history check: the store did not answer ({e}); readings let through unverified")
                return

    def _ask_store_for_site(
        self, site: str, batch: ReadingBatch, rows: np.ndarray, screening: Screening
    ) -> None:
        slots, ts = batch.slot[rows], batch.ts_ms[rows]
        names = sorted({self.index.sensors[s].id for s in np.unique(slots)})
        series = self.store.read(site, names, int(ts.min()), int(ts.max()) + 1, limit=LOOKUP_LIMIT)
        found = np.zeros(rows.shape[0], dtype=bool)
        stored = np.full(rows.shape[0], np.nan)
        answered = np.ones(rows.shape[0], dtype=bool)
        by_sensor = self.index.by_site[site]
        for s in series:
            slot = by_sensor.get(s.sensor)
            if slot is None or s.ts_ms.shape[0] == 0:
                continue
            mine = np.flatnonzero(slots == slot)
            at = np.minimum(np.searchsorted(s.ts_ms, ts[mine]), s.ts_ms.shape[0] - 1)
            hit = s.ts_ms[at] == ts[mine]
            found[mine[hit]] = True
            stored[mine[hit]] = s.values["value"][at[hit]]
            if s.ts_ms.shape[0] >= LOOKUP_LIMIT:  # truncated: later timestamps were not read
                answered[mine[~hit & (ts[mine] > s.ts_ms[-1])]] = False
        screening.resolve(rows[answered], found[answered], stored[answered])

    # ---- decisions

    def _report(
        self,
        result: DecodeResult,
        messages: list[RawMessage],
        screening: Screening,
        changes: np.ndarray,
        own: np.ndarray,
    ) -> None:
        if self.on_changes is None:
            return
        batch = result.batch
        reported = [
            HistoryChange(
                site=self.index.sensors[int(batch.slot[i])].site,
                sensor=self.index.sensors[int(batch.slot[i])].id,
                ts_ms=int(batch.ts_ms[i]),
                stored=float(screening.held_value[i]),
                new=float(batch.value[i]),
                device=self._device(messages, result, int(i)),
                accepted=bool(accepted),
            )
            for i, accepted in zip(changes[:MAX_REPORTED], own[:MAX_REPORTED], strict=True)
        ]
        if changes.size > MAX_REPORTED:
            last = reported[-1]
            reported[-1] = replace(last, more=int(changes.size - MAX_REPORTED))
        try:
            self.on_changes(reported)
        except Exception:
            logger.exception("history changes could not be reported to the audit")

    def _refuse(
        self, result: DecodeResult, messages: list[RawMessage], screening: Screening, refused: np.ndarray
    ) -> None:
        batch = result.batch
        examples = [
            Reject(
                messages[int(result.row_message[i])].received_ms,
                messages[int(result.row_message[i])].topic,
                RejectReason.rewrite.name,
                f"sensor {self.index.sensors[int(batch.slot[i])].id!r}: ts {int(batch.ts_ms[i])}"
                f" already holds {float(screening.held_value[i])!r}, not {float(batch.value[i])!r};"
                " a sensor without a registered device cannot have its history changed",
                "",
            )
            for i in refused[-self.decoder.keep_rejects :]
        ]
        self.decoder.count(result, RejectReason.rewrite, int(refused.size), examples)
        keep = np.ones(len(batch), dtype=bool)
        keep[refused] = False
        result.batch = batch.take(keep)
        result.row_message = result.row_message[keep]

    @staticmethod
    def _device(messages: list[RawMessage], result: DecodeResult, row: int) -> str:
        parts = split_topic(messages[int(result.row_message[row])].topic)
        return parts[1] if parts else ""

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            logger.warning(message)
