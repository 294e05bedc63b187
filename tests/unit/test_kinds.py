"""Sensor kinds (sensors/kinds.py): one profile per kind, and every per-kind table derived from it."""

from __future__ import annotations

from alerts import early_warning as ew
from alerts import engine
from alerts import forecast as fc
from alerts.tune_settings import CAPS
from sensors.kinds import KINDS
from sensors.model import SENSOR_KINDS, UNITS_BY_KIND


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
