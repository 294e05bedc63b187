"""Sensor kinds (sensors/kinds.py): one profile per kind, and every per-kind table derived from it."""

from __future__ import annotations

import numpy as np

from alerts.engine import alarm_engine as engine
from alerts.engine import early_warning as ew
from alerts.engine import forecast as fc
from alerts.engine.alarm_engine import AlarmEngine, EngineConfig
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from alerts.engine.early_warning import attach_early_warnings
from alerts.tune_settings import CAPS
from sensors.index import SensorIndex
from sensors.kinds import KINDS, WarnProfile
from sensors.model import SENSOR_KINDS, UNITS_BY_KIND, Registry
from sensors.readings import ReadingBatch
from sensors.registry import parse_registry_text


def test_every_kind_has_a_name_that_keys_it_and_at_least_one_unit() -> None:
    for name, kind in KINDS.items():
        assert kind.name == name
        assert kind.units and len(set(kind.units)) == len(kind.units)
    assert set(KINDS) == SENSOR_KINDS


def test_the_tables_of_the_registry_engine_forecast_and_tuning_are_the_profiles() -> None:
    for name, kind in KINDS.items():
        assert UNITS_BY_KIND[name] == kind.units
        assert (name in engine.CRITICAL_KINDS) == kind.critical
        assert (name in engine.FLATLINE_KINDS) == kind.may_flatline
        assert fc.TREND_WINDOW_S[name] == kind.trend_window_s
        assert fc.HORIZON_S[name] == kind.horizon_s
        assert (name in fc.DAILY_CYCLE_KINDS) == kind.daily_cycle
        assert (name in ew.CREEP_KINDS) == kind.creep
        assert (name in ew.GUSTY_KINDS) == kind.gusty
        assert ew.FORECAST_CHANNELS.get(name, ()) == kind.channels
        assert ew.EarlyWarningConfig().profile(name) == kind.warn
        assert CAPS[name] == kind.tune_cap


# ---- h2s_ppm: a kind added by one entry (the proof that adding a kind is one profile, its tests and docs)

H2S_YAML = """
sites:
  - id: s1
    name: 站
    kind: chemical
    grade: 2
    sensors:
      - {id: AT-1, name: 硫磺回收硫化氢检测器, kind: h2s_ppm, unit: UNIT, range: [0, 50], interval_s: 10,
         limits: {h: 7, hh: 14}, forecast: true, device: gw}
"""


def h2s_engine() -> AlarmEngine:
    sites, issues = parse_registry_text(H2S_YAML.replace("UNIT", "ppm"))
    assert issues == []
    engine = AlarmEngine(
        SensorIndex.build(Registry(sites=tuple(sites))), EngineConfig(stale_if_never_heard=False)
    )
    attach_early_warnings(engine, {"s1": "Asia/Shanghai"})
    return engine


def feed(engine: AlarmEngine, t_ms: np.ndarray, x: np.ndarray, quality: int = 0) -> list[ConditionChange]:
    n = len(t_ms)
    q = np.full(n, quality, np.int8)
    return engine.process(ReadingBatch(np.zeros(n, np.int32), np.asarray(t_ms, np.int64), np.asarray(x), q))


def test_h2s_is_a_kind_of_the_registry_in_ppm_only() -> None:
    kind = KINDS["h2s_ppm"]
    assert kind.critical and kind.gusty and kind.units == ("ppm",)
    assert kind.horizon_s == 30 * 60.0 and kind.warn == WarnProfile(0.5, 60.0)
    _, issues = parse_registry_text(H2S_YAML.replace("UNIT", "mg/m3"))
    assert [i.key for i in issues] == ["unit"]


def test_a_h2s_leak_is_warned_ahead_then_alarmed_as_a_critical_gas() -> None:
    engine = h2s_engine()
    t0 = 1_795_392_000_000
    rng = np.random.default_rng(3)
    t = t0 + np.arange(0, 60 * 60, 10) * 1000  # an hour of 10 s samples
    minutes = (t - t0) / 60_000
    # clean air (0.2 ppm, noise 0.05) for 25 minutes, then a leak rising 0.5 ppm a minute
    x = 0.2 + rng.normal(0, 0.05, len(t)).clip(-0.2) + 0.5 * np.clip(minutes - 25, 0, None)
    changes = feed(engine, t, x)
    raised = {(c.kind, c.level): c for c in reversed(changes) if c.active}  # the first of each
    warn = raised[ConditionKind.EARLY_WARNING, "HH"]
    h, hh = raised[ConditionKind.H, "H"], raised[ConditionKind.HH, "HH"]
    # the gas profile: HH warned inside its 30 min horizon, before the alarm; a toxic gas's priorities
    assert warn.time_ms < hh.time_ms and hh.time_ms - warn.time_ms <= 30 * 60_000
    assert warn.forecast["horizon_s"] == 30 * 60.0
    assert (h.priority, hh.priority) == (Priority.HIGH, Priority.CRITICAL)
    # a reading of bad quality is a fault of high priority, as for every critical kind
    fault = feed(engine, np.array([t[-1] + 10_000]), np.array([x[-1]]), quality=2)
    assert [(c.kind, c.priority) for c in fault if c.kind == ConditionKind.FAULT] == [
        (ConditionKind.FAULT, Priority.HIGH)
    ]
