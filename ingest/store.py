"""The reading-store port: what hazmon needs of the database that keeps its readings.

Everything outside the adapter (the writer, the spool, the learner, the API, `hazmon tune`) speaks
to this Protocol and its typed errors; the wire format (InfluxDB's line protocol, today) lives
only inside the adapter (ingest/influx_store.py). A batch is encoded once into the adapter's
*opaque* bytes: that body is what the writer sends and, while the database is away, what the
spool keeps on disk and replays, so a crash between the two never re-encodes or loses a reading.

Errors:
    StorageError
    ├── StoreUnavailable   unreachable, timeout or failing on its side: retry later, spool meanwhile
    └── StoreRejected      the request itself is wrong; retrying it will not help
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from sensors.readings import ReadingBatch

#: "raw": the readings as stored (`value`, `quality`); "1m": 1-minute `min`, `mean`, `max`, `count`
Resolution = Literal["raw", "1m"]


class StorageError(Exception):
    """Something went wrong talking to the reading store."""


class StoreUnavailable(StorageError):
    """The store could not be reached or failed on its side; worth retrying."""


class StoreRejected(StorageError):
    """The store refused the request; retrying the same request will not help."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Series:
    """Points of one sensor: columns of equal length."""

    site: str
    sensor: str
    ts_ms: np.ndarray  # (n,) int64
    values: dict[str, np.ndarray]  # field name -> (n,) float64 (NaN where null)


class ReadingStore(Protocol):
    """Where accepted readings are kept, and read back for the API, learning and tuning."""

    def encode(self, batch: ReadingBatch) -> bytes:
        """The batch in the store's own write format: opaque bytes the spool may keep."""
        ...

    def encoded_points(self, body: bytes) -> int:
        """How many readings an encoded body holds (for the counters of a replayed spool)."""
        ...

    def write_encoded(self, body: bytes) -> None:
        """Store an encoded body; raise StoreUnavailable (retry) or StoreRejected (drop)."""
        ...

    def read(
        self,
        site: str,
        sensors: list[str],
        start_ms: int,
        end_ms: int,
        *,
        resolution: Resolution = "raw",
        limit: int = 100_000,
    ) -> list[Series]:
        """One or many sensors of a site over [start, end), time-ordered, at most ``limit`` per sensor."""
        ...

    def bin_means(
        self, site: str, sensors: list[str], start_ms: int, end_ms: int, step_s: int
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Means of the 1-minute rollup in bins of ``step_s`` from the epoch: sensor -> (starts ms, means)."""
        ...

    def ensure_schema(self, raw_days: int, rollup_days: int) -> None:
        """Create what the store needs (database, retention, rollup) if missing; idempotent."""
        ...

    def ping(self) -> bool:
        """True if the store answers."""
        ...

    def close(self) -> None: ...
