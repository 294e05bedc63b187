"""Toxic exposure (issue 12, item 6): the shipped OEL table, the registry key `exposure` and the
computed `<id>.TWA` / `<id>.STEL` sensors it adds, their alarms, and the daily compliance figure."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml

from alerts.engine.alarm_engine import AlarmEngine
from sensors import RegistryError, SensorIndex, load_registry
from sensors.computed import ComputedSensors
from sensors.exposure import daily_compliance, oel_table
from sensors.readings import ReadingBatch
from sensors.registry import registry_to_json
from tests.support.api_rig import api_rig

T0 = 1_795_392_000_000  # 2026-11-23 00:00 UTC
MIN = 60_000
NH3_TWA_PPM = 20 * 24.45 / 17.03  # 28.71 ppm
NH3_STEL_PPM = 30 * 24.45 / 17.03  # 43.07 ppm


def detector(sid: str = "GT-303", **more) -> dict:
    return {
        "id": sid,
        "name": "氨气检测器",
        "kind": "gas_toxic",
        "unit": "ppm",
        "range": [0, 100],
        "interval_s": 60,
        "limits": {"h": 45, "hh": 90},  # instantaneous alarms above the STEL
        "exposure": {"substance": "NH3"},
        **more,
    }


def site(*sensors: dict) -> dict:
    return {"id": "srs-a", "name": "硫磺回收", "kind": "chemical", "grade": 3, "sensors": list(sensors)}


def load(tmp_path: Path, *sensors: dict):
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"sites": [site(*sensors)]}, allow_unicode=True))
    return load_registry(path)


def test_the_shipped_table_gives_twa_and_stel_or_a_mac_only_and_converts_at_25_c():
    table = oel_table()
    assert table.molar_volume_l == 24.45
    nh3, h2s = table.get("nh3"), table.get("H2S")
    assert (nh3.twa, nh3.stel, nh3.mac) == (20, 30, None)
    assert (h2s.twa, h2s.stel, h2s.mac) == (None, None, 10)
    assert nh3.in_unit(20, "ppm", table.molar_volume_l) == pytest.approx(28.71, abs=0.01)
    assert nh3.in_unit(20, "mg/m3", table.molar_volume_l) == 20
    assert all(
        s.molar_mass > 0 and (s.twa is not None or s.mac is not None) for s in table.substances.values()
    )


def test_an_exposure_adds_a_twa_and_a_stel_sensor_with_the_limits_in_the_detectors_unit(tmp_path):
    registry = load(tmp_path, detector())
    by_id = {s.id: s for s in registry.sensors()}
    assert list(by_id) == ["GT-303", "GT-303.TWA", "GT-303.STEL"]
    twa, stel = by_id["GT-303.TWA"], by_id["GT-303.STEL"]
    assert twa.limits.configured() == {"h": pytest.approx(NH3_TWA_PPM, abs=1e-3)}
    assert stel.limits.configured() == {"h": pytest.approx(NH3_STEL_PPM, abs=1e-3)}
    assert twa.formula.expr == "mean_over(c, 28800)" and stel.formula.expr == "mean_over(c, 900)"
    assert (twa.made_by, twa.device, twa.unit) == ("GT-303", None, "ppm")
    assert [s.id for s in registry.measured().sensors()] == ["GT-303"]
    again = tmp_path / "again.json"
    again.write_bytes(registry_to_json(registry))  # the added sensors are not written: the key makes them
    assert load_registry(again).sites == registry.sites


@pytest.mark.parametrize(
    ("sensor", "says"),
    [
        (detector(exposure={"substance": "XYZ"}), "unknown substance 'XYZ'"),
        (detector(exposure={"substance": "H2S"}), "H2S has a MAC \\(ceiling\\) only"),
        (detector(exposure="NH3"), "must be a mapping"),
        (detector(kind="oxygen", unit="%VOL", range=[0, 25], limits={}), "toxic-gas detector"),
        (detector(range=[0, 30], limits={}), "15 min STEL limit of NH3 \\(43.07 ppm\\) is outside"),
        (detector(sid="G" * 62), "longer than 64 characters"),
        (detector(compute={"expr": "a", "inputs": {"a": "X"}}), "not a computed sensor"),
    ],
)
def test_a_wrong_exposure_is_refused_with_its_reason(tmp_path, sensor, says):
    with pytest.raises(RegistryError, match=says):
        load(tmp_path, sensor)


def test_an_added_id_that_a_registry_sensor_already_has_is_a_duplicate(tmp_path):
    clash = {**detector("GT-303.TWA"), "exposure": None}
    with pytest.raises(RegistryError, match=r"sensor GT-303\.TWA: key 'id': duplicate sensor id"):
        load(tmp_path, detector(), clash)


@pytest.mark.deep  # 16 h of buffered minutes through derivation and engine: the deep profile (CI)
def test_an_exposure_under_every_instantaneous_limit_alarms_when_its_8_h_twa_exceeds_the_limit(tmp_path):
    index = SensorIndex.build(load(tmp_path, detector()))
    computed, engine = ComputedSensors(index), AlarmEngine(index, start_ms=T0)
    gt = index.by_site["srs-a"]["GT-303"]
    # 10 ppm for 8 h, then 38 ppm: under the detector's H (45) and the STEL (43.07), never a peak
    ppm = np.r_[np.full(8 * 60, 10.0), np.full(8 * 60, 38.0)]
    twa_at: dict[int, float] = {}
    raised = []
    for start in range(0, ppm.size, 30):  # a gateway's half hour of buffered readings per message
        ts = T0 + np.arange(start, start + 30) * MIN
        batch = ReadingBatch(np.full(30, gt, np.int32), ts, ppm[start : start + 30], np.zeros(30, np.int8))
        derived = computed.derive(batch)
        twa = derived.take(derived.slot == index.by_site["srs-a"]["GT-303.TWA"])
        twa_at.update(zip(twa.ts_ms.tolist(), twa.value.tolist(), strict=True))
        changes = engine.process(ReadingBatch.concat([batch, derived]))
        raised += [(c.source, c.level, c.time_ms) for c in changes if c.active]
    crossing = T0 + (8 * 60 + 1 + int(np.ceil((NH3_TWA_PPM - 10) / 28 * 480))) * MIN
    assert [(source, level) for source, level, _ in raised] == [("GT-303.TWA", "H")]
    assert raised[0][2] == pytest.approx(crossing, abs=2 * MIN)
    # the last 8 h at 38 ppm, but for the interval in which it rose (trapezoid rule)
    assert twa_at[T0 + (16 * 60 - 1) * MIN] == pytest.approx((24 + 479 * 38) / 480)
    assert max(twa_at.values()) < 45  # ... and the TWA itself never reached the detector's H


def test_the_daily_compliance_is_the_highest_twa_of_each_local_day_against_the_limit():
    # Asia/Shanghai (UTC+8): T0 is 08:00 on 23 November; readings every hour for two days
    ts = T0 + np.arange(48) * 3_600_000
    twa = np.r_[np.full(16, 12.0), np.full(24, 30.0), np.full(8, 20.0)]
    got = daily_compliance(ts, twa, NH3_TWA_PPM, "Asia/Shanghai")
    assert [(d.day, d.highest, d.compliant, d.points) for d in got] == [
        (date(2026, 11, 23), 12.0, True, 16),
        (date(2026, 11, 24), 30.0, False, 24),
        (date(2026, 11, 25), 20.0, True, 8),
    ]
    assert daily_compliance(np.empty(0, np.int64), np.empty(0), 1.0, "Asia/Shanghai") == []


def test_the_api_gives_each_local_days_compliance_of_an_exposure_sensor(tmp_path):
    registry = load(tmp_path, detector())
    zone = ZoneInfo("Asia/Shanghai")
    today = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    midnight = int(today.timestamp() * 1000)
    with api_rig(tmp_path, registry) as api:
        api.store.put(
            "srs-a", "GT-303.TWA", [midnight - 43_200_000, midnight - 43_140_000, midnight], [20, 30, 10]
        )
        with api.client() as client:
            body = client.get("/api/v1/sites/srs-a/sensors/GT-303.TWA/compliance", params={"days": 2}).json()
            assert (body["detector"], body["unit"], body["start_ms"]) == (
                "GT-303",
                "ppm",
                midnight - 86_400_000,
            )
            assert body["limit"] == pytest.approx(NH3_TWA_PPM, abs=1e-3)
            yesterday = (today - timedelta(days=1)).date().isoformat()
            assert body["days"] == [
                {"day": yesterday, "highest": 30.0, "compliant": False, "minutes": 2},
                {"day": today.date().isoformat(), "highest": 10.0, "compliant": True, "minutes": 1},
            ]
            detector_itself = client.get("/api/v1/sites/srs-a/sensors/GT-303/compliance")
            assert detector_itself.status_code == 404 and "not an exposure sensor" in detector_itself.text
            assert client.get("/api/v1/sites/srs-a/sensors/GT-303.TWA/compliance?days=0").status_code == 422
