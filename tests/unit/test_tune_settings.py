"""Candidate settings for `hazmon tune`: never below what an engineer set, never beyond the caps."""

from __future__ import annotations

from alerts.tune_settings import CAPS, Setting, candidate_settings
from sensors.model import Limits, Sensor


def sensor(**kw) -> Sensor:
    base = dict(
        id="P-1", site="s", name="压力", kind="pressure", unit="MPa", range=(0.0, 2.0), interval_s=5.0,
        limits=Limits(l=0.5, h=1.6, hh=1.62),
    )  # fmt: skip
    return Sensor(**(base | kw))


def test_the_current_setting_comes_first_and_no_candidate_loosens_it():
    now = sensor(deadband=0.01, on_delay_s=5.0)
    got = candidate_settings(now)
    assert got[0] == Setting.of(now)
    assert all(c.deadband >= 0.01 and c.on_delay_s >= 5.0 and c.off_delay_s >= 0.0 for c in got)
    assert got[1:] == sorted(got[1:]) and len(set(got)) == len(got)


def test_candidates_stay_within_the_kind_cap_and_below_the_room_between_limits():
    cap = CAPS["pressure"]  # DOMAIN §6: 2 % of range, 15 s
    got = candidate_settings(sensor())
    assert max(c.on_delay_s for c in got) == cap.on_delay_s == max(c.off_delay_s for c in got)
    # 2 % of 2 MPa is 0.04, but H and HH are only 0.02 apart: the deadband stays below that
    assert max(c.deadband for c in got) < 0.02


def test_a_sensor_without_alarms_has_nothing_to_tune_and_a_rate_alarm_no_deadband():
    assert candidate_settings(sensor(limits=Limits())) == []
    rate_only = candidate_settings(sensor(limits=Limits(), roc_per_min=0.1))
    assert rate_only and {c.deadband for c in rate_only} == {0.0}
