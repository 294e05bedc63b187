"""The reading store on InfluxDB: the ingest/store.py port over InfluxClient and line protocol.

Bound to one SensorIndex, so each sensor's series key is rendered once (ingest/lineproto.py) and a
batch is encoded with a few numpy string operations. The encoded body is line protocol with
millisecond timestamps, one reading per line; the spool keeps it as opaque bytes.
"""

from __future__ import annotations

import numpy as np

from ingest.influx import InfluxClient
from ingest.lineproto import batch_to_line_protocol, series_prefixes
from ingest.store import Resolution, Series
from sensors.index import SensorIndex
from sensors.readings import ReadingBatch


class InfluxStore:
    """ReadingStore for the sensors of ``index`` in the database of ``client``."""

    def __init__(self, client: InfluxClient, index: SensorIndex):
        self.client = client
        self.prefixes = series_prefixes(index)

    def encode(self, batch: ReadingBatch) -> bytes:
        return batch_to_line_protocol(self.prefixes, batch)

    def encoded_points(self, body: bytes) -> int:
        return body.count(b"\n") + 1 if body else 0

    def write_encoded(self, body: bytes) -> None:
        self.client.write_lines(body)

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
        return self.client.read(site, sensors, start_ms, end_ms, downsampled=resolution == "1m", limit=limit)

    def bin_means(
        self, site: str, sensors: list[str], start_ms: int, end_ms: int, step_s: int
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return self.client.bin_means(site, sensors, start_ms, end_ms, step_s)

    def ensure_schema(self, raw_days: int, rollup_days: int) -> None:
        self.client.ensure_schema(raw_days, rollup_days)

    def ping(self) -> bool:
        return self.client.ping()

    def close(self) -> None:
        self.client.close()
