"""`hazmon backtest` as a command: docs/contracts.md §4 input in any order, §3 events out, clear errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import orjson
import pytest

from hazmon.cli import main

REGISTRY = Path(__file__).resolve().parents[2] / "sensors" / "examples"
T0 = 1_795_392_000_000  # 2026-11-23T00:00:00Z
SITE, TANK, TEMP = "jianghai-tf-01", "T101-LT", "T101-TT"


def write_csv(path: Path, rows: list[str], header: str = "time,site,sensor,value") -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def filling_tank_rows(hours: float = 32.0) -> list[str]:
    """T101 level every 10 s (its interval), filling 0.25 m/h from hour 2; temperature steady."""
    rng = np.random.default_rng(11)
    rows = []
    for i in range(int(hours * 360)):
        t = T0 + i * 10_000
        h = i / 360
        rows.append(f"{t},{SITE},{TANK},{8.0 + 0.25 * max(h - 2.0, 0.0) + rng.normal(0, 0.005):.4f}")
        if i % 6 == 0:
            rows.append(f"{t},{SITE},{TEMP},{22.0 + rng.normal(0, 0.05):.3f}")
    return rows


def events(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.deep
def test_a_fill_gives_an_early_warning_before_the_h_alarm_as_contract_events(tmp_path, capsys):
    csv = write_csv(tmp_path / "r.csv", filling_tank_rows())
    out = tmp_path / "e.jsonl"
    assert main(["backtest", "--registry", str(REGISTRY), "--readings", str(csv), "--out", str(out)]) == 0
    evs = events(out)
    types = [(e["type"], e["level"]) for e in evs]
    assert types[0] == ("early_warning", "H"), types
    assert ("alarm", "H") in types
    warn, alarm = evs[0], next(e for e in evs if e["type"] == "alarm")
    assert warn["time"] < alarm["time"] and warn["time"].endswith("+08:00")
    assert {"eta", "eta_low", "eta_high", "alarm_id", "message", "priority", "limit", "value"} <= warn.keys()
    assert warn["sensor"] == TANK and warn["limit"] == 14.2
    printed = capsys.readouterr().out
    assert "early_warning: 2 (H 1, HH 1)" in printed and "readings/s" in printed


@pytest.mark.deep
def test_rows_in_any_order_give_the_same_events_and_bad_rows_are_counted(tmp_path, capsys):
    rows = filling_tank_rows(hours=26)
    ordered = write_csv(tmp_path / "a.csv", rows)
    shuffled_rows = [*rows, "not-a-time,x,y,1", f"{T0},{SITE},NOPE,1", f"{T0},{SITE},{TANK},nan"]
    random.Random(3).shuffle(shuffled_rows)
    shuffled = write_csv(tmp_path / "b.csv", shuffled_rows)
    for name, csv in (("a", ordered), ("b", shuffled)):
        out = str(tmp_path / name)
        args = ["backtest", "--registry", str(REGISTRY), "--readings", str(csv), "--out", out]
        assert main([*args, "--quiet"]) == 0
    assert events(tmp_path / "a") == events(tmp_path / "b") != []
    printed = capsys.readouterr().out
    assert "3 rejected" in printed and "unknown_sensor 2" in printed and "bad_value 1" in printed


@pytest.mark.parametrize(
    ("content", "message"),
    [("when,site,sensor,value\n1,a,b,2\n", "missing ['time']"), ("", "missing")],
)
def test_a_bad_header_is_a_clear_error_not_a_traceback(tmp_path, capsys, content, message):
    csv = tmp_path / "r.csv"
    csv.write_text(content, encoding="utf-8")
    args = ["backtest", "--registry", str(REGISTRY), "--readings", str(csv), "--out", str(tmp_path / "e")]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_missing_files_are_refused(tmp_path, capsys):
    args = ["backtest", "--registry", str(tmp_path / "nope.yaml"), "--readings", "x.csv", "--out", "e"]
    assert main(args) == 2
    assert "no such file" in capsys.readouterr().err


def test_computed_sensors_are_derived_and_alarmed_in_a_backtest_and_their_csv_rows_dropped(tmp_path):
    """Issue 12: a backtest derives computed sensors as the live ingest does: freeboard = crest - pond
    falls below its LL as the pond rises; a row for the computed sensor itself is not taken."""
    registry = write_csv(
        tmp_path / "registry.yaml",
        [
            "sites:",
            "  - {id: tsf, name: 尾矿库, kind: tailings, grade: 3, sensors: [",
            "      {id: PL-01, name: 库水位, kind: pond_level, unit: m, range: [230, 250], interval_s: 300},",
            "      {id: FB-01, name: 安全超高, kind: level, unit: m, range: [-10, 20], interval_s: 300,",
            "       limits: {ll: 0.7}, compute: {expr: crest - pond, inputs: {pond: PL-01},",
            "       constants: {crest: 248.0}}}]}",
        ],
        header="",
    )
    rows = [f"{T0 + i * 300_000},tsf,PL-01,{246.0 + 0.02 * i:.2f}" for i in range(80)]
    rows.append(f"{T0},tsf,FB-01,-5")  # hazmon derives FB-01: this row is ignored
    csv = write_csv(tmp_path / "r.csv", rows)
    out = tmp_path / "e.jsonl"
    assert main(["backtest", "--registry", str(registry), "--readings", str(csv), "--out", str(out)]) == 0
    alarms = [e for e in events(out) if e["sensor"] == "FB-01" and e["type"] == "alarm"]
    assert [(a["level"], a["value"]) for a in alarms] == [("LL", pytest.approx(0.7))]
    assert alarms[0]["time"].startswith("2026-11-23T")
