"""The history `hazmon tune` replays, read from a real InfluxDB window by window."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ingest import history as influx_history
from ingest.lineproto import batch_to_line_protocol, series_prefixes
from ingest.payloads import ReadingBatch
from sensors.index import SensorIndex
from tests.unit.test_tune import DAY, HOUR, SENSORS, batch_of, history, registry

pytestmark = pytest.mark.integration
CHOSEN = (SENSORS[0], SENSORS[2])  # CHAT (gets a suggestion) and QUIET (no change)


@pytest.fixture
def recorded(influx_client):
    """Four days of CHAT and QUIET written to raw.readings, ending at today's midnight (UTC)."""
    influx_client.ensure_schema()
    t0 = (int(time.time() * 1000) // DAY - 4) * DAY
    data, end = history(t0=t0)
    index = SensorIndex.build(registry(*CHOSEN))
    batch = batch_of(index, data)
    influx_client.write_lines(batch_to_line_protocol(series_prefixes(index), batch))
    return index, batch, t0, end


def _sorted(b: ReadingBatch) -> list[tuple[int, int, float]]:
    return sorted(zip(b.ts_ms.tolist(), b.slot.tolist(), b.value.tolist(), strict=True))


def test_the_history_comes_back_whole_in_hour_windows_also_when_a_series_fills_its_page(
    influx_client, recorded, monkeypatch
):
    index, batch, t0, end = recorded
    windows = list(influx_history.read_history(influx_client, index, t0, end))
    assert all(w.ts_ms[0] // HOUR == w.ts_ms[-1] // HOUR for w in windows)
    assert all(np.all(np.diff(w.ts_ms) >= 0) for w in windows)
    assert _sorted(ReadingBatch.concat(windows)) == _sorted(batch)
    monkeypatch.setattr(influx_history, "PAGE_POINTS", 50)  # the noon hour of CHAT has 360+ points
    paged = list(influx_history.read_history(influx_client, index, t0, end))
    assert _sorted(ReadingBatch.concat(paged)) == _sorted(batch)


def test_the_rollup_fallback_reads_the_one_minute_means(influx_client):
    influx_client.ensure_schema()
    t0 = (int(time.time() * 1000) // DAY - 2) * DAY
    minutes = t0 + 60_000 * np.arange(3 * 60, dtype=np.int64)  # three hours
    lines = "\n".join(
        f"readings_1m,kind=level,sensor=QUIET,site=s1 min={m - 0.1},mean={m},max={m + 0.1},count=6i {t}"
        for t, m in zip(minutes.tolist(), (12.0 + 0.01 * np.arange(len(minutes))).tolist(), strict=True)
    )
    influx_client.write_lines(lines.encode(), rp="year")
    index = SensorIndex.build(registry(SENSORS[2]))
    windows = list(influx_history.read_history(influx_client, index, t0, t0 + DAY, rollup=True))
    assert len(windows) == 1  # one day per window
    got = windows[0]
    assert got.ts_ms.tolist() == minutes.tolist()
    assert got.value == pytest.approx(12.0 + 0.01 * np.arange(len(minutes)))
