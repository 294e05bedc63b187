"""Write a fleet's simulated history straight into InfluxDB (the demo's week), with progress.

The history (simulators/history.py) goes to the layout live ingest writes (docs/contracts.md §5):
`raw.readings` through ingest's own line-protocol builder, and `year.readings_1m` with the rollup
that the continuous query would have made had the readings arrived on time (it recomputes only the
last 10 minutes). Not through MQTT: hazmon's ingest would take a week of readings as a flood of late
ones, and the alarm engine would judge them as the present.

Idempotent: each sensor resumes after its newest stored reading (within the range), so a second run
on the same database writes only what is missing, and never a point that live ingest wrote (which
would be another value at a stored timestamp, docs/contracts.md §1 History). The rollup of the minute
it resumes in is left to what is stored: the continuous query's, from every reading of that minute
(it recomputes the last 10 minutes), where ours would hold only the resumed part.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from ingest.influx import RAW_RP, ROLLUP_MEASUREMENT, ROLLUP_RP, InfluxClient
from ingest.lineproto import MEASUREMENT, batch_to_line_protocol, escape_tag
from sensors.model import Sensor
from sensors.readings import ReadingBatch
from simulators.history import MINUTE_MS, HistoryChunk, HistoryGenerator
from simulators.signals import FleetModel

logger = logging.getLogger(__name__)

_SD = np.dtypes.StringDType()
#: Lines per write request: InfluxDB 1.x takes 5 000-10 000 points per request best; a larger body
#: only costs memory on both sides.
LINES_PER_WRITE = 50_000
#: Requests in flight: one encodes while InfluxDB parses the other (two cores here).
WRITERS = 2


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """A snapshot for the progress line."""

    written: int  # readings written so far
    total: int  # readings to write
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return 1.0 if self.total == 0 else self.written / self.total

    @property
    def left_s(self) -> float | None:
        """Seconds left at the rate so far (None before there is a rate)."""
        if self.written == 0 or self.elapsed_s <= 0:
            return None
        return (self.total - self.written) * self.elapsed_s / self.written


def format_progress(p: BackfillProgress) -> str:
    """`backfill 43% (2.6 M of 6.2 M readings, 20 s left)`: the demo's progress line."""
    left = "" if p.left_s is None else f", {p.left_s:.0f} s left"
    return f"backfill {p.fraction:4.0%} ({p.written / 1e6:.1f} M of {p.total / 1e6:.1f} M readings{left})"


@dataclass(frozen=True, slots=True)
class BackfillResult:
    readings: int
    rollup_points: int
    resumed_sensors: int  # sensors with readings already stored in the range: only the rest written
    elapsed_s: float


def _prefixes(sensors: tuple[Sensor, ...], measurement: str, first_field: str) -> np.ndarray:
    """Per slot, `measurement,kind=K,sensor=S,site=X <first_field>=` (ingest's tag order)."""
    return np.array(
        [
            f"{measurement},kind={escape_tag(s.kind)},sensor={escape_tag(s.id)},"
            f"site={escape_tag(s.site)} {first_field}="
            for s in sensors
        ],
        dtype=_SD,
    )


def rollup_lines(prefixes: np.ndarray, chunk: HistoryChunk) -> list[str]:
    """The chunk's rollup as line protocol (ms), fields as the continuous query writes them."""
    if chunk.minute_slot.size == 0:
        return []
    s = np.strings.add(prefixes[chunk.minute_slot], chunk.minute_min.astype(_SD))
    s = np.strings.add(np.strings.add(s, ",mean="), chunk.minute_mean.astype(_SD))
    s = np.strings.add(np.strings.add(s, ",max="), chunk.minute_max.astype(_SD))
    s = np.strings.add(np.strings.add(s, ",count="), chunk.minute_count.astype(_SD))
    s = np.strings.add(np.strings.add(s, "i "), chunk.minute_ms.astype(_SD))
    return s.tolist()


def _whole_minutes(chunk: HistoryChunk, whole_from_ms: np.ndarray) -> HistoryChunk:
    """The chunk without the rollup rows of minutes that began before `whole_from_ms` of their slot."""
    keep = chunk.minute_ms >= whole_from_ms[chunk.minute_slot]
    if keep.all():
        return chunk
    return replace(
        chunk,
        minute_slot=chunk.minute_slot[keep],
        minute_ms=chunk.minute_ms[keep],
        minute_min=chunk.minute_min[keep],
        minute_mean=chunk.minute_mean[keep],
        minute_max=chunk.minute_max[keep],
        minute_count=chunk.minute_count[keep],
    )


def stored_until_ms(client: InfluxClient, sensors: tuple[Sensor, ...], since_ms: int) -> np.ndarray:
    """Per slot, the newest stored raw timestamp at or after `since_ms` (-1: none)."""
    data = client.query(
        f'SELECT last("value") FROM "{RAW_RP}"."{MEASUREMENT}" WHERE time >= {int(since_ms)}ms '
        'GROUP BY "site", "sensor"'
    )
    newest: dict[tuple[str, str], int] = {}
    for result in data.get("results", []):
        for series in result.get("series", []):
            tags = series.get("tags", {})
            rows = series.get("values") or []
            if rows:
                newest[(tags.get("site", ""), tags.get("sensor", ""))] = int(rows[0][0])
    return np.array([newest.get((s.site, s.id), -1) for s in sensors], dtype=np.int64)


def backfill(
    client: InfluxClient,
    model: FleetModel,
    start_ms: int,
    end_ms: int,
    *,
    seed: int = 0,
    progress: Callable[[BackfillProgress], None] | None = None,
    stop: threading.Event | None = None,
) -> BackfillResult:
    """Write the model's history of [start_ms, end_ms) for every sensor not yet stored there.

    The database must exist (`InfluxClient.ensure_schema`). Leaves the model at `end_ms`, so a live
    fleet on it continues the trend. Raises InfluxUnavailable / InfluxRejected from the client.
    """
    t0 = time.monotonic()
    stop = stop or threading.Event()
    sensors = model.sensors
    newest = stored_until_ms(client, sensors, start_ms)
    slot_start = np.maximum(np.where(newest >= 0, newest + 1, start_ms), start_ms)
    # minutes before this hold stored readings: their rollup is not ours to write
    whole_from = np.where(newest >= 0, (newest // MINUTE_MS + 1) * MINUTE_MS, start_ms)
    resumed = int(np.count_nonzero(newest >= 0))
    gen = HistoryGenerator(model, slot_start, end_ms, seed=seed)
    total = gen.total_readings()
    raw_prefixes = _prefixes(sensors, MEASUREMENT, "value")
    roll_prefixes = _prefixes(sensors, ROLLUP_MEASUREMENT, "min")
    written = rolled = 0
    pending: list[Future[None]] = []

    def drain(keep: int) -> None:
        while len(pending) > keep:
            pending.pop(0).result()  # re-raises a failed write here

    with ThreadPoolExecutor(WRITERS, thread_name_prefix="backfill") as pool:
        if progress:
            progress(BackfillProgress(0, total, 0.0))
        for chunk in gen:
            if stop.is_set():
                break
            batch = ReadingBatch(
                chunk.slot.astype(np.int32), chunk.ts_ms, chunk.value, np.zeros(len(chunk), np.int8)
            )
            for k in range(0, len(batch), LINES_PER_WRITE):
                body = batch_to_line_protocol(raw_prefixes, batch.take(slice(k, k + LINES_PER_WRITE)))
                pending.append(pool.submit(client.write_lines, body, RAW_RP))
                drain(WRITERS)
            lines = rollup_lines(roll_prefixes, _whole_minutes(chunk, whole_from))
            for k in range(0, len(lines), LINES_PER_WRITE):
                body = "\n".join(lines[k : k + LINES_PER_WRITE]).encode()
                pending.append(pool.submit(client.write_lines, body, ROLLUP_RP))
                drain(WRITERS)
            written += len(chunk)
            rolled += len(lines)
            if progress:
                progress(BackfillProgress(written, total, time.monotonic() - t0))
        drain(0)
    return BackfillResult(written, rolled, resumed, time.monotonic() - t0)
