"""Seed the rolling windows of computed sensors from the reading store at start (issue 12).

Without it a restarted hazmon begins with empty windows: its 24 h rainfall reads low (and
`uncertain`) for a day. Reading each window's input over the window, one store read per site,
fills them as if the process had run all along; the windows' own coverage rule still marks what
the store lacks. A store that cannot answer costs nothing but the seed: the windows start empty.
"""

from __future__ import annotations

import logging

import numpy as np

from ingest.store import ReadingStore, StorageError
from sensors.computed import ComputedSensors
from sensors.index import SensorIndex
from sensors.readings import ReadingBatch
from sensors.windows import BUCKETS

logger = logging.getLogger(__name__)


def seed_windows(computed: ComputedSensors, store: ReadingStore, index: SensorIndex, now_ms: int) -> int:
    """Feed the stored readings of every window's input over its window (and two of its buckets);
    return how many were taken."""
    inputs = computed.window_inputs()
    by_site: dict[str, dict[str, int]] = {}
    for slot, window_ms in inputs.items():
        sensor = index.sensor(slot)
        # two buckets more: the window of the first live reading starts on a bucket boundary up to
        # a bucket before it, and must start after the first seeded reading to be covered
        by_site.setdefault(sensor.site, {})[sensor.id] = window_ms + 2 * window_ms // BUCKETS
    parts = []
    for site, windows in by_site.items():
        start = now_ms - max(windows.values())
        try:
            series = store.read(site, sorted(windows), start, now_ms + 1, resolution="raw")
        except StorageError as e:
            logger.warning("windows of site %s not seeded from the store (%s): they start empty", site, e)
            continue
        for s in series:
            value = s.values["value"]
            keep = np.isfinite(value) & (s.ts_ms >= now_ms - windows[s.sensor])
            quality = np.nan_to_num(s.values.get("quality", np.zeros_like(value)), nan=0.0)
            slot = index.by_site[site][s.sensor]
            parts.append(
                ReadingBatch(
                    np.full(int(keep.sum()), slot, np.int32),
                    s.ts_ms[keep].astype(np.int64),
                    value[keep],
                    quality[keep].astype(np.int8),
                )
            )
    taken = computed.seed(ReadingBatch.concat(parts))
    if inputs:
        logger.info("rolling windows seeded: %d stored readings of %d inputs", taken, len(inputs))
    return taken
