"""A reading store in memory (ingest/store.py's port) for the unit tests of the service and the API.

It keeps what is written, in the writer's own way (encode -> opaque body -> write_encoded), and
answers reads from it: raw points, or 1-minute min/mean/max/count like the InfluxDB rollup. A test
may also `put` points directly (a NaN value where the database has a null), set `fail` to the
typed error a read should raise (the store down, or refusing), and look at `calls`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ingest.store import Resolution, Series, StorageError
from sensors.index import SensorIndex
from sensors.readings import ReadingBatch

_ROW = np.dtype([("slot", "<i4"), ("ts", "<i8"), ("value", "<f8"), ("quality", "<i1")])
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class ReadCall:
    """One read as the store saw it."""

    site: str
    sensors: tuple[str, ...]
    start_ms: int
    end_ms: int
    resolution: Resolution
    limit: int


@dataclass
class MemoryStore:
    """In-memory ReadingStore; `index` names the slots of the batches it is given."""

    index: SensorIndex | None = None
    bodies: list[bytes] = field(default_factory=list)
    calls: list[ReadCall] = field(default_factory=list)
    fail: StorageError | None = None
    schema: tuple[int, int] | None = None
    closed: bool = False
    _points: dict[tuple[str, str], list[tuple[int, float, int]]] = field(default_factory=dict)

    # ---- writing, as the writer and the spool do it

    def encode(self, batch: ReadingBatch) -> bytes:
        rows = np.empty(len(batch.slot), _ROW)
        rows["slot"], rows["ts"], rows["value"], rows["quality"] = (
            batch.slot,
            batch.ts_ms,
            batch.value,
            batch.quality,
        )
        return rows.tobytes()

    def encoded_points(self, body: bytes) -> int:
        return len(body) // _ROW.itemsize

    def write_encoded(self, body: bytes) -> None:
        if self.index is None:
            raise ValueError("MemoryStore needs the SensorIndex to store encoded batches")
        self.bodies.append(body)
        for slot, ts, value, quality in np.frombuffer(body, _ROW).tolist():
            sensor = self.index.sensor(slot)
            self.put(sensor.site, sensor.id, [ts], [value], [quality])

    def put(self, site: str, sensor: str, ts_ms, values, quality=None) -> None:
        """Store points of one sensor directly (NaN: the database holds no value there). As in
        InfluxDB, a point at a timestamp the sensor already has replaces it."""
        quality = [0] * len(ts_ms) if quality is None else quality
        points = {p[0]: p for p in self._points.get((site, sensor), [])}
        points.update(
            {int(t): (int(t), float(v), int(q)) for t, v, q in zip(ts_ms, values, quality, strict=True)}
        )
        self._points[(site, sensor)] = sorted(points.values())

    # ---- reading

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
        self.calls.append(ReadCall(site, tuple(sensors), start_ms, end_ms, resolution, limit))
        if self.fail is not None:
            raise self.fail
        out = []
        for sensor in sensors:
            points = [p for p in self._points.get((site, sensor), []) if start_ms <= p[0] < end_ms]
            if not points:
                continue
            ts = np.array([p[0] for p in points], np.int64)
            value = np.array([p[1] for p in points], np.float64)
            if resolution == "raw":
                quality = np.array([p[2] for p in points], np.float64)
                cols = {"value": value[:limit], "quality": quality[:limit]}
                out.append(Series(site, sensor, ts[:limit], cols))
            else:
                out.append(_one_minute(site, sensor, ts, value, limit))
        return out

    def bin_means(self, site, sensors, start_ms, end_ms, step_s):
        """Means in bins of ``step_s`` from the epoch: sensor -> (bin starts, means)."""
        step = int(step_s * 1000)
        out = {}
        for series in self.read(site, sensors, start_ms, end_ms, resolution="raw"):
            bins = series.ts_ms // step * step
            starts = np.unique(bins)
            means = np.array([np.nanmean(series.values["value"][bins == b]) for b in starts])
            out[series.sensor] = (starts, means)
        return out

    # ---- housekeeping

    def ensure_schema(self, raw_days: int, rollup_days: int) -> None:
        self.schema = (raw_days, rollup_days)

    def ping(self) -> bool:
        return self.fail is None

    def close(self) -> None:
        self.closed = True


def _one_minute(site: str, sensor: str, ts: np.ndarray, value: np.ndarray, limit: int) -> Series:
    """The 1-minute rollup of raw points: min, mean, max and the count of values (NaN: none)."""
    minute = ts // MINUTE_MS * MINUTE_MS
    starts = np.unique(minute)[:limit]
    cols: dict[str, list[float]] = {"min": [], "mean": [], "max": [], "count": []}
    for start in starts:
        v = value[minute == start]
        v = v[np.isfinite(v)]
        cols["count"].append(float(v.size))
        for name, fn in (("min", np.min), ("mean", np.mean), ("max", np.max)):
            cols[name].append(float(fn(v)) if v.size else np.nan)
    return Series(site, sensor, starts, {k: np.array(c, np.float64) for k, c in cols.items()})
