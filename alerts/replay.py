"""Replay recorded readings through the engine on event time (the core of `hazmon backtest`).

Loading turns the CSV (docs/contracts.md §4: `time,site,sensor,value[,quality]`, rows in any order)
into one sorted ReadingBatch; replay feeds it to the same AlarmEngine the service runs, in
event-time chunks, with the time-driven checks (stale data, delays) run at each chunk's end.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alerts.engine.alarm_engine import AlarmEngine
from alerts.engine.conditions import ConditionChange
from sensors.computed import ComputedSensors
from sensors.index import SensorIndex
from sensors.readings import QUALITY_CODES, ReadingBatch, parse_timestamp_ms


@dataclass(slots=True)
class LoadReport:
    rows: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def reject(self, reason: str, line: int, detail: str) -> None:
        self.rejected[reason] += 1
        if len(self.examples) < 10:
            self.examples.append(f"line {line}: {reason}: {detail}")


def load_readings_csv(path: str | Path, index: SensorIndex) -> tuple[ReadingBatch, LoadReport]:
    """Read a readings CSV into a batch sorted by time; bad rows are counted, not fatal."""
    report = LoadReport()
    slots: list[int] = []
    times: list[int] = []
    values: list[float] = []
    quality: list[int] = []
    time_cache: dict[str, int | None] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        missing = {"time", "site", "sensor", "value"} - set(header)
        if missing:
            raise ValueError(
                f"{path}: header must have time,site,sensor,value[,quality]; missing {sorted(missing)}"
            )
        col = {name: header.index(name) for name in header}
        qcol = col.get("quality")
        for line, row in enumerate(reader, start=2):
            report.rows += 1
            try:
                t_text, site, sensor, v_text = (
                    row[col["time"]],
                    row[col["site"]],
                    row[col["sensor"]],
                    row[col["value"]],
                )
            except IndexError:
                report.reject("bad_row", line, "too few columns")
                continue
            slot = index.by_site.get(site, {}).get(sensor)
            if slot is None:
                report.reject("unknown_sensor", line, f"{site}/{sensor}")
                continue
            t = time_cache.get(t_text)
            if t is None and t_text not in time_cache:
                t = parse_timestamp_ms(
                    int(t_text) if t_text.strip().lstrip("-").isdigit() else t_text.strip()
                )
                time_cache[t_text] = t
            if t is None:
                report.reject("bad_timestamp", line, t_text)
                continue
            try:
                v = float(v_text)
            except ValueError:
                report.reject("bad_value", line, v_text)
                continue
            if not math.isfinite(v):
                report.reject("bad_value", line, v_text)
                continue
            q = (
                QUALITY_CODES.get(row[qcol].strip() or None, -1)
                if qcol is not None and qcol < len(row)
                else 0
            )
            if q < 0:
                report.reject("bad_quality", line, row[qcol])
                continue
            slots.append(slot)
            times.append(t)
            values.append(v)
            quality.append(q)
    order = np.argsort(np.asarray(times, dtype=np.int64), kind="stable")
    batch = ReadingBatch(
        np.asarray(slots, np.int32)[order],
        np.asarray(times, np.int64)[order],
        np.asarray(values, np.float64)[order],
        np.asarray(quality, np.int8)[order],
    )
    report.accepted = len(batch)
    return batch, report


def with_computed(batch: ReadingBatch, computed: ComputedSensors, chunk_ms: int = 60_000) -> ReadingBatch:
    """The time-sorted batch with the readings of its computed sensors derived as the live ingest
    derives them (sensors/computed.py), chunk by chunk of event time, merged in time order. Readings
    of computed sensors in the input are dropped: hazmon derives them, as it refuses them live."""
    if not computed or len(batch) == 0:
        return batch
    batch = batch.take(np.flatnonzero(~computed.is_computed[batch.slot]))
    if len(batch) == 0:
        return batch
    _, edges = _chunks(batch.ts_ms, chunk_ms)
    parts, lo = [batch], 0
    for hi in edges.tolist():
        if hi > lo:
            parts.append(computed.derive(batch.take(slice(lo, hi))))
        lo = hi
    merged = ReadingBatch.concat(parts)
    return merged.take(np.argsort(merged.ts_ms, kind="stable"))


def replay(
    engine: AlarmEngine,
    batch: ReadingBatch,
    on_changes: Callable[[list[ConditionChange], int], None],
    chunk_ms: int = 60_000,
    tail_ms: int = 0,
    progress: Callable[[int, int], None] | None = None,
    on_clock: Callable[[int], None] | None = None,
) -> int:
    """Feed a time-sorted batch through the engine in event-time chunks; return readings replayed.

    After each chunk the clock-driven checks run at the chunk's end time, as the live service's
    scheduler does, so stale data, expiring delays and lapsing forecasts are found on event time.
    `tail_ms` extends the clock past the last reading (to see data stop, e.g. a final outage).
    `on_clock(now_ms)` runs before each clock tick (the scheduler's other jobs, e.g. learning).
    """
    n = len(batch)
    if n == 0:
        return 0
    start, edges = _chunks(batch.ts_ms, chunk_ms)
    lo = 0
    for k, hi in enumerate(edges.tolist()):
        now = start + (k + 1) * chunk_ms
        if hi > lo:
            on_changes(engine.process(batch.take(slice(lo, hi))), now)
        if on_clock is not None:
            on_clock(now)
        on_changes(_clock_tick(engine, now), now)
        if progress is not None:
            progress(hi, n)
        lo = hi
    end = start + len(edges) * chunk_ms
    for now in range(end + chunk_ms, end + tail_ms + 1, chunk_ms):
        if on_clock is not None:  # the scheduler's other jobs go on while the data is silent
            on_clock(now)
        on_changes(_clock_tick(engine, now), now)
    return n


def _chunks(t: np.ndarray, chunk_ms: int) -> tuple[int, np.ndarray]:
    """The first chunk's start (a multiple of chunk_ms) and each chunk's end index in sorted `t`."""
    start = int(t[0]) - int(t[0]) % chunk_ms
    ends = np.arange(start + chunk_ms, int(t[-1]) + chunk_ms + 1, chunk_ms)
    return start, np.searchsorted(t, ends, side="left")


def _clock_tick(engine: AlarmEngine, now_ms: int) -> list[ConditionChange]:
    """The live scheduler's clock-driven jobs at `now_ms`: stale data, expiring delays, forecast refresh."""
    changes = engine.advance(now_ms) + engine.refresh_forecasts(now_ms)
    changes.sort(key=lambda c: c.time_ms)
    return changes
