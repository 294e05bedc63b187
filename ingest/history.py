"""Recorded readings from the reading store as time-ordered batches: the history `hazmon tune` replays.

Read window by window (1 h of raw data, 1 day of the 1-minute rollup) and at most SENSORS_PER_QUERY
sensors per query, so a month of 1-s data never sits in memory whole (InfluxDB's JSON answer is
parsed into Python objects first: a window of 20 sensors at 1 Hz is 72 000 points) and every query
string stays short. A series that fills a query's LIMIT is read on from its last point.

Raw readings are `raw.readings` field `value` (and `quality`); the fallback for data too dense to
replay is the rollup `year.readings_1m` field `mean`: a minute's mean hides what happens inside the
minute (chattering, sub-minute delays), so it tells standing alarms and slow excursions only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from ingest.store import ReadingStore, Series
from sensors.index import SensorIndex
from sensors.readings import ReadingBatch

RAW_WINDOW_MS = 3_600_000
ROLLUP_WINDOW_MS = 86_400_000
SENSORS_PER_QUERY = 20
PAGE_POINTS = 100_000  # LIMIT per series and query


def read_history(
    store: ReadingStore,
    index: SensorIndex,
    start_ms: int,
    end_ms: int,
    *,
    rollup: bool = False,
    window_ms: int | None = None,
) -> Iterator[ReadingBatch]:
    """Yield the readings of every sensor of `index` in [start_ms, end_ms), one time-sorted batch per window.

    Windows are aligned on multiples of their length (whole minutes), so the replay's minute clock
    never sees a minute split between two batches.
    """
    window = window_ms or (ROLLUP_WINDOW_MS if rollup else RAW_WINDOW_MS)
    edges = [start_ms, *range((start_ms // window + 1) * window, end_ms, window), end_ms]
    for lo, hi in itertools.pairwise(edges):
        parts = [
            _to_batch(index, series, rollup)
            for site, sensors in index.by_site.items()
            for k in range(0, len(sensors), SENSORS_PER_QUERY)
            for series in _read_all(store, site, list(sensors)[k : k + SENSORS_PER_QUERY], lo, hi, rollup)
        ]
        batch = ReadingBatch.concat([p for p in parts if len(p)])
        if len(batch):
            yield batch.take(np.argsort(batch.ts_ms, kind="stable"))


def _read_all(
    store: ReadingStore, site: str, sensors: list[str], lo: int, hi: int, rollup: bool
) -> Iterator[Series]:
    """Every point of the sensors in [lo, hi); a series that filled its LIMIT is read on after its last."""
    pending = {s: lo for s in sensors}
    while pending:
        froms = sorted(set(pending.values()))
        group = [s for s in pending if pending[s] == froms[0]]
        got = store.read(site, group, froms[0], hi, resolution="1m" if rollup else "raw", limit=PAGE_POINTS)
        for s in group:
            del pending[s]
        for series in got:
            yield series
            if len(series.ts_ms) >= PAGE_POINTS:
                pending[series.sensor] = int(series.ts_ms[-1]) + 1


def _to_batch(index: SensorIndex, series: Series, rollup: bool) -> ReadingBatch:
    slot = index.by_site.get(series.site, {}).get(series.sensor)
    if slot is None:
        return ReadingBatch.empty()
    value = series.values["mean" if rollup else "value"]
    quality = series.values.get("quality")
    q = (
        np.zeros(len(value), np.int8)
        if quality is None
        else np.clip(np.nan_to_num(quality), 0, 2).astype(np.int8)
    )
    ok = np.isfinite(value)
    n = int(ok.sum())
    return ReadingBatch(
        np.full(n, slot, np.int32), series.ts_ms[ok].astype(np.int64), value[ok].astype(np.float64), q[ok]
    )
