"""Readings as the whole system passes them: columns of accepted values, quality codes, event times.

They belong to the domain, not to the MQTT adapter that decodes them: the engine, the backtest, the
learner and the store all speak ReadingBatch, and a CSV or a database read yields the same.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np

#: a reading's quality, as payloads name it -> its code (docs/contracts.md §1)
QUALITY_CODES = {None: 0, "good": 0, "uncertain": 1, "bad": 2}


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """Accepted readings as columns, all of length n."""

    slot: np.ndarray  # (n,) int32: sensor slot in the SensorIndex
    ts_ms: np.ndarray  # (n,) int64: event time, ms since the epoch (UTC)
    value: np.ndarray  # (n,) float64: finite, in the sensor's unit
    quality: np.ndarray  # (n,) int8: 0 good, 1 uncertain, 2 bad

    @classmethod
    def empty(cls) -> ReadingBatch:
        return cls(
            np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int8)
        )

    @classmethod
    def concat(cls, batches: list[ReadingBatch]) -> ReadingBatch:
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        return cls(
            np.concatenate([b.slot for b in batches]),
            np.concatenate([b.ts_ms for b in batches]),
            np.concatenate([b.value for b in batches]),
            np.concatenate([b.quality for b in batches]),
        )

    def __len__(self) -> int:
        return int(self.slot.shape[0])

    def take(self, index: slice | np.ndarray) -> ReadingBatch:
        """Rows selected by a slice or a boolean/integer index."""
        return ReadingBatch(self.slot[index], self.ts_ms[index], self.value[index], self.quality[index])


MAX_TS_MS = 2**53  # far beyond any real time; keeps every timestamp exact in int64 and float64


def parse_timestamp_ms(value: object) -> int | None:
    """Parse an ISO 8601 string with an offset or integer ms since the epoch; None if invalid."""
    ms: int | None = None
    if type(value) is int:
        ms = value
    elif type(value) is float:
        ms = int(value) if math.isfinite(value) and value.is_integer() and abs(value) < 2**63 else None
    elif type(value) is str and 10 <= len(value) <= 40:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
        if dt.tzinfo is None:
            return None  # a time without an offset is ambiguous for a plant in another zone
        ms = int(dt.timestamp() * 1000)
    return ms if ms is not None and 0 <= ms < MAX_TS_MS else None


def now_ms() -> int:
    """The wall clock in the unit of event times: ms since the epoch (UTC)."""
    return time.time_ns() // 1_000_000
