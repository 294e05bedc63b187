"""`hazmon tune --from-influx` against a real InfluxDB: the history read back window by window, and the
same verdicts as from the same readings in memory."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest

from alerts.tune import tune
from hazmon.cli import main
from ingest import history as influx_history
from ingest.influx_store import InfluxStore
from ingest.lineproto import batch_to_line_protocol, series_prefixes
from sensors.index import SensorIndex
from sensors.readings import ReadingBatch
from tests.unit.test_tune import DAY, HOUR, SENSORS, batch_of, history, registry

pytestmark = pytest.mark.integration
CHOSEN = (SENSORS[0], SENSORS[2])  # CHAT (gets a suggestion) and QUIET (no change)


def registry_yaml(path) -> None:
    rows = "\n".join(
        f"      - {{id: {s.id}, name: {s.name}, kind: {s.kind}, unit: {s.unit}, range: [0, 20],"
        f" interval_s: {s.interval_s:g}, limits: {{h: 16, hh: 18}}}}"
        for s in CHOSEN
    )
    path.write_text(
        f"sites:\n  - id: s1\n    name: 站\n    kind: chemical\n    grade: 2\n    sensors:\n{rows}\n",
        encoding="utf-8",
    )


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
    windows = list(influx_history.read_history(InfluxStore(influx_client, index), index, t0, end))
    assert all(w.ts_ms[0] // HOUR == w.ts_ms[-1] // HOUR for w in windows)
    assert all(np.all(np.diff(w.ts_ms) >= 0) for w in windows)
    assert _sorted(ReadingBatch.concat(windows)) == _sorted(batch)
    monkeypatch.setattr(influx_history, "PAGE_POINTS", 50)  # the noon hour of CHAT has 360+ points
    paged = list(influx_history.read_history(InfluxStore(influx_client, index), index, t0, end))
    assert _sorted(ReadingBatch.concat(paged)) == _sorted(batch)


def test_tune_from_influx_gives_the_verdicts_of_the_same_readings_in_memory(
    influx, recorded, tmp_path, monkeypatch, capsys
):
    index, batch, t0, end = recorded
    monkeypatch.setenv("HAZMON_INFLUX_URL", influx.url)
    monkeypatch.setenv("HAZMON_INFLUX_DB", "hazmon")
    registry_yaml(tmp_path / "r.yaml")
    args = [
        "tune",
        "--registry",
        str(tmp_path / "r.yaml"),
        "--from-influx",
        "--days",
        "5",
        "--json",
        "--quiet",
    ]
    assert main(args) == 0
    out = capsys.readouterr()
    got = {row["sensor"]: row for row in map(orjson.loads, out.out.splitlines())}
    assert "nothing was changed" in out.err
    expected = {t.sensor.id: t for t in tune(index, [batch], t0, end)}
    for sensor_id, t in expected.items():
        row = got[sensor_id]
        assert row["status"] == t.status.value
        assert row["current"]["total"] == t.current.total
        assert row["observed_days"] == pytest.approx(t.observed_days, abs=1e-3)
    chat = got["CHAT"]["suggested"]
    s = expected["CHAT"].suggested.setting
    assert (chat["deadband"], chat["on_delay_s"], chat["off_delay_s"]) == (
        s.deadband,
        s.on_delay_s,
        s.off_delay_s,
    )


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
    store = InfluxStore(influx_client, index)
    windows = list(influx_history.read_history(store, index, t0, t0 + DAY, rollup=True))
    assert len(windows) == 1  # one day per window
    got = windows[0]
    assert got.ts_ms.tolist() == minutes.tolist()
    assert got.value == pytest.approx(12.0 + 0.01 * np.arange(len(minutes)))
