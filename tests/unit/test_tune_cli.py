"""`hazmon tune` as a command on a scenario recording: suggestions only, honest about short histories."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from hazmon.cli import main

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "gas_leak_2oo3"  # three 2-s detectors
# the last 2.4 h of the recording: the leak from 04:00 (20:00Z) and its end
ARGS = [
    "tune", "--registry", str(SCENARIO / "registry.yaml"), "--readings", str(SCENARIO / "readings.csv"),
    "--days", "0.1",
]  # fmt: skip


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
    assert "warning thresholds (early warnings):" in out and "ProbabilityHistory" in out


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
        assert r["warning_threshold"]["threshold"] is None
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
