"""Sensors' history from the reading store's 1-minute rollup, binned for learning their behaviour.

The adapter behind alerts/learning.py's HistorySource port in the service: `bin_means` answers the
learner's grid (bins of the learning step, aligned to the epoch) from `year.readings_1m`, which holds a
year, so a restart or a new hazmon learns from the history already stored. Sensors are asked
SENSORS_PER_QUERY at a time per site, so query strings stay short and InfluxDB answers in parts.
"""

from __future__ import annotations

import numpy as np

from ingest.store import ReadingStore
from sensors.index import SensorIndex

SENSORS_PER_QUERY = 50


class RollupHistory:
    """Bin means of the rollup for sensor slots of one SensorIndex."""

    def __init__(self, store: ReadingStore, index: SensorIndex):
        self.store = store
        self.keys = [(s.site, s.id) for s in index.sensors]

    def bin_means(self, slots: np.ndarray, start_ms: int, step_s: float, n_bins: int) -> np.ndarray:
        out = np.full((len(slots), n_bins), np.nan)
        step_ms = round(step_s * 1000)
        end_ms = start_ms + n_bins * step_ms
        by_site: dict[str, dict[str, int]] = {}
        for row, slot in enumerate(np.asarray(slots).tolist()):
            site, sensor = self.keys[slot]
            by_site.setdefault(site, {})[sensor] = row
        for site, rows in by_site.items():
            names = sorted(rows)
            for k in range(0, len(names), SENSORS_PER_QUERY):
                part = names[k : k + SENSORS_PER_QUERY]
                got = self.store.bin_means(site, part, start_ms, end_ms, round(step_s))
                for sensor, (ts, mean) in got.items():
                    if sensor not in rows:
                        continue
                    b = (ts - start_ms) // step_ms
                    ok = (b >= 0) & (b < n_bins)
                    out[rows[sensor], b[ok]] = mean[ok]
        return out
