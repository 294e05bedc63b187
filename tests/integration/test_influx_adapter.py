"""The InfluxDB adapter against a real InfluxDB: schema, writes, raw and downsampled reads."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ingest.influx import CQ_NAME, InfluxClient, InfluxRejected, InfluxUnavailable
from ingest.lineproto import batch_to_line_protocol, series_prefixes
from sensors.index import SensorIndex
from sensors.readings import ReadingBatch
from tests.unit.conftest import make_registry

pytestmark = pytest.mark.integration
INDEX = SensorIndex.build(make_registry())


def write_minutes(client: InfluxClient, start_ms: int, minutes: int) -> None:
    """S0 and S1 of site-0, one reading every 10 s; S1 = 2 x S0."""
    n = minutes * 6
    ts = start_ms + np.arange(n, dtype=np.int64) * 10_000
    values = np.arange(n, dtype=np.float64)
    batch = ReadingBatch(
        np.r_[np.zeros(n, np.int32), np.ones(n, np.int32)],
        np.r_[ts, ts],
        np.r_[values, 2 * values],
        np.zeros(2 * n, np.int8),
    )
    client.write_lines(batch_to_line_protocol(series_prefixes(INDEX), batch))


def test_schema_creates_retention_policies_and_rollup_query_idempotently(influx_client):
    influx_client.ensure_schema(rollup_every="1s")
    influx_client.ensure_schema(rollup_every="1s")  # a restart must not fail on existing objects
    rps = {
        r["name"] if isinstance(r, dict) else r[0]: r
        for r in influx_client._rows('SHOW RETENTION POLICIES ON "hazmon"')
    }
    assert {"raw", "year"} <= set(rps)
    assert rps["raw"][1] == "720h0m0s" and rps["raw"][4] is True  # 30 days, the default policy
    assert rps["year"][1] == "8760h0m0s"
    assert any(row[0] == CQ_NAME for row in influx_client._cq_rows())


def test_reads_one_or_many_sensors_raw_over_a_window(influx_client):
    influx_client.ensure_schema()
    start = (int(time.time() * 1000) // 60_000 - 30) * 60_000
    write_minutes(influx_client, start, minutes=5)
    series = influx_client.read("site-0", ["S0", "S1"], start + 60_000, start + 120_000)
    by_sensor = {s.sensor: s for s in series}
    assert set(by_sensor) == {"S0", "S1"}
    assert by_sensor["S0"].ts_ms.tolist() == [start + 60_000 + k * 10_000 for k in range(6)]
    assert by_sensor["S0"].values["value"].tolist() == [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    assert by_sensor["S1"].values["value"].tolist() == [12.0, 14.0, 16.0, 18.0, 20.0, 22.0]
    assert influx_client.count_points(site="site-0", sensor="S1") == 30


def test_downsampled_series_has_min_mean_max_count_per_minute(influx_client):
    influx_client.ensure_schema(rollup_every="1s")
    start = (int(time.time() * 1000) // 60_000 - 6) * 60_000  # inside the CQ's 10-minute window
    write_minutes(influx_client, start, minutes=3)
    deadline = time.monotonic() + 30
    series = []
    while time.monotonic() < deadline:
        series = influx_client.read("site-0", ["S0"], start, start + 3 * 60_000, downsampled=True)
        if series and len(series[0].ts_ms) == 3:
            break
        time.sleep(0.5)
    assert series, "the continuous query produced no rollup"
    s0 = series[0]
    assert s0.ts_ms.tolist() == [start, start + 60_000, start + 120_000]
    assert s0.values["min"].tolist() == [0.0, 6.0, 12.0]
    assert s0.values["max"].tolist() == [5.0, 11.0, 17.0]
    assert s0.values["mean"].tolist() == [2.5, 8.5, 14.5]
    assert s0.values["count"].tolist() == [6.0, 6.0, 6.0]


def test_errors_are_mapped_to_our_own_hierarchy(influx, influx_client):
    influx_client.ensure_schema()
    with pytest.raises(InfluxRejected):
        influx_client.write_lines(b"readings,site=a value=not-a-number 1")
    influx.stop()
    with pytest.raises(InfluxUnavailable):
        influx_client.write_lines(b"readings,site=a value=1 1")
    assert not influx_client.ping()
