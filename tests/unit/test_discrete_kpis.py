"""Daily figures of discrete signals (issue 12): hours per state, interlock in-service ratio and
bypass hours, from the core (alerts/discrete_kpis.py) and GET /api/v1/sites/{site}/discrete-kpis."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from alerts.discrete_kpis import in_service_ratio, state_hours
from tests.support.api_rig import api_rig
from tests.unit.test_discrete import registry

H = 3_600_000
DAY0 = int(datetime(2026, 12, 1, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)


def test_each_state_lasts_until_the_next_reading_and_the_state_before_the_day_counts():
    ts = np.array([DAY0 - 5 * H, DAY0 + 6 * H, DAY0 + 14 * H])  # in service since yesterday, bypassed 6-14 h
    hours = state_hours(ts, np.array([0.0, 1.0, 0.0]), np.zeros(3, int), DAY0, DAY0 + 24 * H, 2)
    assert hours.hours.tolist() == [16.0, 8.0] and hours.unknown_hours == 0.0
    assert in_service_ratio(hours) == 16 / 24


def test_time_before_any_state_and_after_a_bad_reading_is_unknown():
    ts = np.array([DAY0 + 2 * H, DAY0 + 10 * H, DAY0 + 12 * H, DAY0 + 30 * H])
    codes = np.array([0.0, 1.0, 7.0, 1.0])  # 7 is no state of an interlock; 30 h is after the day
    quality = np.array([0, 2, 0, 0])  # the 10 h reading is bad
    hours = state_hours(ts, codes, quality, DAY0, DAY0 + 24 * H, 2)
    assert hours.hours.tolist() == [8.0, 0.0] and hours.unknown_hours == 16.0
    assert in_service_ratio(state_hours(ts[:0], codes[:0], quality[:0], DAY0, DAY0 + H, 2)) is None


def test_the_api_gives_a_sites_day_of_interlocks_and_other_signals(tmp_path):
    with api_rig(tmp_path, registry()) as api:
        store = api.store
        store.put("plant-1", "SIS-101", [DAY0 - H, DAY0 + 6 * H, DAY0 + 14 * H], [0, 1, 0])
        store.put("plant-1", "ESD-1", [DAY0 + 12 * H], [0])
        with api.client() as client:
            body = client.get("/api/v1/sites/plant-1/discrete-kpis?day=2026-12-01").json()
            assert (body["day"], body["interlocks"], body["bypass_hours"]) == ("2026-12-01", 1, 8.0)
            assert body["in_service_ratio"] == round(16 / 24, 4)
            signals = {s["id"]: s for s in body["signals"]}
            assert signals["SIS-101"]["hours"] == {"in_service": 16.0, "bypassed": 8.0}
            assert signals["ESD-1"]["hours"] == {"normal": 12.0, "tripped": 0.0}
            assert signals["ESD-1"]["unknown_hours"] == 12.0 and signals["ESD-1"]["in_service_ratio"] is None
            assert "PT-101" not in signals and "FT-101" not in signals
            assert client.get("/api/v1/sites/plant-1/discrete-kpis?day=12/01").status_code == 422
            assert client.get("/api/v1/sites/plant-1/discrete-kpis?day=2099-01-01").status_code == 422
            assert client.get("/api/v1/sites/nowhere/discrete-kpis").status_code == 404
