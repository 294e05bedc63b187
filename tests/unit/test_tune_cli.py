"""`hazmon tune` as a command on a scenario recording: suggestions only, honest about short histories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from alerts.engine.early_warning import WARN_PROFILES
from alerts.replay import load_readings_csv
from alerts.warning_threshold import THRESHOLD_LADDER
from hazmon import tune_cmd
from hazmon.cli import main

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "gas_leak_2oo3"  # three 2-s detectors
# the last 2.4 h of the recording: the leak from 04:00 (20:00Z) and its end
ARGS = [
    "tune", "--registry", str(SCENARIO / "registry.yaml"), "--readings", str(SCENARIO / "readings.csv"),
    "--days", "0.1",
]  # fmt: skip


@pytest.mark.deep
def test_hours_of_readings_are_too_little_for_a_suggestion_and_the_table_says_so(capsys):
    assert main([*ARGS, "--quiet"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == lines[-1] and "nothing was changed" in lines[0]
    assert "site jianghai-tf-01" in out
    for sensor in ("GT-111", "GT-112", "GT-113"):
        assert any(line.startswith(sensor) and "甲醇泵P-101" in line for line in lines)
    assert out.count("too little data: 0.1 days of data; at least 3 are needed") == 3
    assert "suggest:" not in out
    # the detectors forecast, but 2.4 h holds too little quiet time to tune their warning threshold on
    assert (
        "  gas_lel: not available (0.1 quiet sensor-days; at least 3 are needed); now 0.5, held 60 s" in out
    )
    assert "    warnings per threshold: 0.5: " in out


@pytest.mark.deep
def test_json_gives_one_object_per_selected_sensor_with_what_the_current_setting_raised(capsys):
    assert main([*ARGS, "--quiet", "--json", "--min-days", "0.05", "--sensor", "GT-111", "GT-113"]) == 0
    captured = capsys.readouterr()
    rows = [orjson.loads(line) for line in captured.out.splitlines()]
    assert [r["sensor"] for r in rows] == ["GT-111", "GT-113"]
    assert "nothing was changed" in captured.err
    for r in rows:
        assert r["suggestion_only"] is True and r["site"] == "jianghai-tf-01"
        assert r["current"]["deadband"] == 3.0 and r["current"]["on_delay_s"] == 4.0
        assert set(r["current"]["activations"]) == {"H", "HH"}
        assert r["current"]["total"] == sum(r["current"]["per_day"]) > 0
        assert r["status"] in {"suggest", "no_change", "unreachable"}
        w = r["warning_threshold"]
        assert w["kind"] == "gas_lel" and w["threshold"] is None and w["available"] is False
        assert w["persistence_s"] == 60.0 and "quiet sensor-days; at least 3 are needed" in w["reason"]
    # the leak is real: whatever is suggested, no excursion is hidden or alarmed late
    for r in rows:
        for outcome in (r["suggested"], r["closest"]):
            if outcome is not None:
                assert outcome["missed_excursions"] == 0 and outcome["late_excursions"] == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sensor", "NOPE"], "no sensor NOPE"),
        (["--site", "nowhere"], "no site nowhere"),
        (["--rollup"], "--rollup goes with --from-influx"),
    ],
)
def test_names_the_registry_lacks_and_misused_options_are_refused(capsys, extra, message):
    assert main([*ARGS, *extra]) == 2
    assert message in capsys.readouterr().err


T0 = 1_795_392_000_000  # 2026-11-23T00:00:00Z
MIN, HOUR = 60_000, 3_600_000
REGISTRY = """\
sites:
  - id: t1
    name: 储罐区
    kind: chemical
    grade: 2
    timezone: UTC
    sensors:
      - {{id: LT-1, name: 储罐液位, kind: level, unit: m, range: [0, 20], interval_s: 60,
         limits: {{h: 15, hh: 18}}, deadband: 0.2, forecast: {forecast}}}
      - {{id: PT-1, name: 储罐压力, kind: pressure, unit: MPa, range: [0, 2.5], interval_s: 60,
         limits: {{h: 1.45}}, deadband: 0.05}}
"""


def tank_farm(tmp_path: Path, forecast: bool, days: int = 6) -> list[str]:
    """A tank filled every day at 08:00 from 4 m to 13 m in 2 h (H is 15 m) and emptied at 16:00, and a
    steady pressure beside it; 1-minute readings. Returns the tune arguments."""
    rng = np.random.default_rng(1)
    t = T0 + MIN * np.arange(days * 1440, dtype=np.int64)
    hour = (t - T0) % (24 * HOUR) / HOUR
    level = 4 + 9 * (np.clip((hour - 8) / 2, 0, 1) - np.clip((hour - 16) / 2, 0, 1))
    level += rng.normal(0, 0.03, len(t))
    pressure = 1.0 + rng.normal(0, 0.005, len(t))
    csv = tmp_path / "readings.csv"
    with open(csv, "w") as f:
        f.write("time,site,sensor,value\n")
        np.savetxt(f, np.column_stack([t, level]), fmt="%d,t1,LT-1,%.3f")
        np.savetxt(f, np.column_stack([t, pressure]), fmt="%d,t1,PT-1,%.4f")
    reg = tmp_path / "registry.yaml"
    reg.write_text(REGISTRY.format(forecast=str(forecast).lower()), encoding="utf-8")
    return ["tune", "--registry", str(reg), "--readings", str(csv), "--quiet"]


@pytest.mark.deep
def test_a_forecast_kind_gets_a_warning_threshold_from_the_probabilities_replayed_on_its_history(
    tmp_path, capsys
):
    assert main([*tank_farm(tmp_path, forecast=True), "--json"]) == 0
    rows = {r["sensor"]: r for r in map(orjson.loads, capsys.readouterr().out.splitlines())}
    w = rows["LT-1"]["warning_threshold"]
    assert w["kind"] == "level" and w["available"] is True
    assert w["persistence_s"] == WARN_PROFILES["level"].persist_s == 600.0
    assert w["current_threshold"] == WARN_PROFILES["level"].p_warn
    # no fill reaches H, so every day is quiet once the tank has learned its routine (a fit covering
    # four horizons, 8 h: the refit at 9 h of history): the warm-up before that, judged by the trend
    # alone, is not counted
    assert 6.0 - 11 / 24 <= w["quiet_sensor_days"] <= 6.0 - 8 / 24
    counts = {float(k): n for k, n in w["warnings"].items()}
    assert list(counts) == list(THRESHOLD_LADDER)
    assert list(counts.values()) == sorted(counts.values(), reverse=True)
    # the suggestion is the lowest step of the ladder that meets 1 warning per 100 quiet sensor-days
    allowed = w["target_per_100_days"] * w["quiet_sensor_days"] / 100
    assert w["threshold"] in counts and counts[w["threshold"]] <= allowed
    assert all(n > allowed for thr, n in counts.items() if thr < w["threshold"])
    days, thr = f"{w['quiet_sensor_days']:.1f}", w["threshold"]
    assert w["reason"] == f"{counts[thr]} warnings in {days} quiet sensor-days at {thr:g}"
    # a kind without forecasting sensors has none to tune
    other = rows["PT-1"]["warning_threshold"]
    assert other["kind"] == "pressure" and other["threshold"] is None and other["available"] is False
    assert other["reason"].startswith("not available")


@pytest.mark.deep
def test_without_forecast_sensors_the_warning_threshold_is_not_available(tmp_path, capsys):
    args = tank_farm(tmp_path, forecast=False, days=1)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert (
        "warning thresholds (early warnings):\n  not available: no selected sensor has early warnings" in out
    )
    assert "warnings per threshold" not in out
    assert main([*args, "--json"]) == 0
    for row in map(orjson.loads, capsys.readouterr().out.splitlines()):
        assert row["warning_threshold"]["threshold"] is None
        assert row["warning_threshold"]["reason"].startswith("not available: no selected sensor")


@pytest.mark.deep
def test_from_influx_the_forecast_readings_kept_while_tuning_give_the_same_thresholds_as_the_csv(
    tmp_path, capsys, monkeypatch
):
    args = tank_farm(tmp_path, forecast=True, days=2)
    assert main([*args, "--json"]) == 0
    from_csv = [orjson.loads(line)["warning_threshold"] for line in capsys.readouterr().out.splitlines()]
    csv = Path(args[args.index("--readings") + 1])

    def influx_history(index, start_ms, end_ms, rollup):
        """InfluxDB's answer, an hour at a time, from the same readings."""
        batch, _ = load_readings_csv(csv, index)
        hour = batch.ts_ms // HOUR
        for h in np.unique(hour):
            yield batch.take(np.flatnonzero(hour == h))

    monkeypatch.setattr(tune_cmd, "influx_history", influx_history)
    monkeypatch.setattr(tune_cmd.time, "time", lambda: (T0 + 2 * 24 * HOUR) / 1000)
    influx_args = [a for a in args if a not in ("--readings", str(csv))]
    assert main([*influx_args, "--from-influx", "--days", "2", "--json"]) == 0
    from_influx = [orjson.loads(line)["warning_threshold"] for line in capsys.readouterr().out.splitlines()]
    assert from_influx == from_csv
    level = from_influx[0]
    # two days less the warm-up (8-11 h) are too few quiet days to suggest a threshold
    assert level["kind"] == "level" and 2.0 - 11 / 24 <= level["quiet_sensor_days"] <= 2.0 - 8 / 24
    assert level["available"] is False and level["threshold"] is None
