"""One profile per sensor kind: every per-kind fact the registry, the engine and the early warnings use.

Adding a kind is one entry in :data:`KINDS` (plus its rule, if it needs one the profile cannot
express), its tests and its line in docs/contracts.md §2. The modules that need a per-kind table
derive it from here (sensors/model.py ``UNITS_BY_KIND``, alerts/engine/alarm_engine.py ``CRITICAL_KINDS`` and
``FLATLINE_KINDS``, alerts/engine/forecast.py ``TREND_WINDOW_S``, ``HORIZON_S`` and ``DAILY_CYCLE_KINDS``,
alerts/engine/early_warning.py ``CREEP_KINDS``, ``FORECAST_CHANNELS``, ``GUSTY_KINDS`` and
``WARN_PROFILES``, alerts/tune_settings.py ``CAPS``).

Pure data: no I/O and no imports from the rest of hazmon, so every layer may read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

_MINUTE_S = 60.0
_HOUR_S = 3600.0
_DAY_S = 86400.0

Channels = tuple[tuple[float, float], ...]  # (trend memory s, horizon s) per early-warning channel


@dataclass(frozen=True, slots=True)
class WarnProfile:
    """When a kind's chance of reaching a limit becomes a warning."""

    p_warn: float  # raise at or above this probability ...
    persist_s: float  # ... once it has held this long


@dataclass(frozen=True, slots=True)
class Cap:
    """The largest deadband (% of range) and on/off delays (s) `hazmon tune` may suggest."""

    deadband_pct: float
    on_delay_s: float
    off_delay_s: float


#: Defaults of a kind's profile, also used for a sensor whose kind has no profile (tests build some).
DEFAULT_TREND_WINDOW_S = 6 * _HOUR_S
DEFAULT_HORIZON_S = 24 * _HOUR_S
#: the slow kinds need 80 % held half an hour before a warning
DEFAULT_PROFILE = WarnProfile(0.8, 1800.0)
#: the pressure/flow starting point of DOMAIN.md §6 (UNCONFIRMED ISA-18.2 guidance), our choice for
#: kinds that have none (tailings, seepage, rain)
DEFAULT_CAP = Cap(2.0, 15.0, 15.0)

#: Gas detectors guard people, where minutes matter: half a chance held a minute warns, and `hazmon
#: tune` suggests a deadband up to the detector's ±3 %LEL action error (GB 15322.1), at most 5 s
#: before an alarm shows but up to 60 s of holding it on (an off-delay never postpones an alarm; wind
#: makes a leak flicker). Our choice, not sourced.
_GAS_WARN = WarnProfile(0.5, 60.0)
_GAS_CAP = Cap(3.0, 5.0, 60.0)
#: A tank's level is moved by operators, a pond's by storms: 70 % held 10 min.
_MOVED_WARN = WarnProfile(0.7, 600.0)


@dataclass(frozen=True, slots=True)
class SensorKind:
    """What hazmon knows about one kind of measurement, whatever site or sensor carries it."""

    name: str
    #: units the registry accepts; the first is the usual one (docs/contracts.md §2)
    units: tuple[str, ...]
    #: people die within minutes: limit alarms one priority up (H/L high, HH/LL critical), faults high
    critical: bool = False
    #: a flat reading is normal (a dry rain gauge reads 0 for days), so it is never judged stuck
    may_flatline: bool = False
    #: trend memory (EW time-constant, s): how much history one trend describes
    trend_window_s: float = DEFAULT_TREND_WINDOW_S
    #: forecast horizon (s): how far ahead a limit crossing is worth warning of
    horizon_s: float = DEFAULT_HORIZON_S
    #: the value follows the weather's daily cycle (DOMAIN §7.2): a harmonic daily model de-seasonalises
    #: the trend. (Weekly cycles are learned per sensor, alerts/engine/behaviour.py, for every kind.)
    daily_cycle: bool = False
    #: displacement of a tailings dam: also feeds the inverse-velocity failure forecast (DOMAIN §7.4)
    creep: bool = False
    #: early-warning channels (trend memory s, horizon s) where one (trend_window_s, horizon_s) does not
    #: fit the physics; empty = that one channel
    channels: Channels = ()
    #: during an excursion the readings swing about the trend in gusts (a gas plume meanders): the
    #: trend's own residuals are the noise of its warning band
    gusty: bool = False
    #: probability and persistence that make an early warning
    warn: WarnProfile = DEFAULT_PROFILE
    #: the most `hazmon tune` may suggest
    tune_cap: Cap = DEFAULT_CAP
    #: a discrete (on/off or enumerated) signal: its states, code 0, 1, ... (empty: an analog value)
    states: tuple[str, ...] = ()

    @property
    def discrete(self) -> bool:
        return bool(self.states)


def _kinds(*kinds: SensorKind) -> MappingProxyType[str, SensorKind]:
    return MappingProxyType({k.name: k for k in kinds})


#: Every sensor kind, by name, in the order docs/contracts.md §2 lists them.
KINDS: MappingProxyType[str, SensorKind] = _kinds(
    SensorKind(
        "gas_lel", ("%LEL",), critical=True, trend_window_s=15 * _MINUTE_S, horizon_s=30 * _MINUTE_S,
        gusty=True, warn=_GAS_WARN, tune_cap=_GAS_CAP,
    ),
    SensorKind(
        "gas_toxic", ("ppm", "mg/m3", "mg/m³"), critical=True, trend_window_s=15 * _MINUTE_S,
        horizon_s=30 * _MINUTE_S, gusty=True, warn=_GAS_WARN, tune_cap=_GAS_CAP,
    ),
    SensorKind(
        "oxygen", ("%VOL",), critical=True, trend_window_s=15 * _MINUTE_S, horizon_s=30 * _MINUTE_S,
        warn=_GAS_WARN, tune_cap=_GAS_CAP,
    ),
    # hydrogen sulphide (sour crude, sulphur recovery, sulphide ores): a toxic gas that guards people and
    # spreads in gusts like gas_toxic, read in ppm only. GB/T 50493-2019 alarms at 10 and 20 mg/m³
    # (DOMAIN §2.2), about 7 and 14 ppm at 25 °C (1 ppm = 1.39 mg/m³): the limits its sensors get.
    SensorKind(
        "h2s_ppm", ("ppm",), critical=True, trend_window_s=15 * _MINUTE_S, horizon_s=30 * _MINUTE_S,
        gusty=True, warn=_GAS_WARN, tune_cap=_GAS_CAP,
    ),
    # LPG sphere pressure follows the liquid temperature (DOMAIN §7.2)
    SensorKind(
        "pressure", ("MPa", "kPa", "bar"), horizon_s=2 * _HOUR_S, daily_cycle=True,
        tune_cap=Cap(2.0, 15.0, 15.0),
    ),
    # tank level moves by operator-driven transfers that start and stop within hours; a straight line
    # through a routine fill meets H within a day, so the warning horizon is the operator's response
    # window
    SensorKind(
        "level", ("m", "mm", "%"), trend_window_s=2 * _HOUR_S, channels=((2 * _HOUR_S, 2 * _HOUR_S),),
        warn=_MOVED_WARN, tune_cap=Cap(5.0, 60.0, 60.0),
    ),
    SensorKind("temperature", ("°C",), daily_cycle=True, tune_cap=Cap(1.0, 60.0, 60.0)),
    SensorKind(
        "flow", ("m3/h", "m³/h", "t/h", "L/s", "kg/h"), trend_window_s=30 * _MINUTE_S,
        tune_cap=Cap(5.0, 15.0, 15.0),
    ),
    # a tailings pond rises slowly with the seasons and fast after a rainstorm: a 12 h memory sees the
    # first, a 1 h memory with a 6 h horizon the second (the flood routing reacts in hours)
    SensorKind(
        "pond_level", ("m",), trend_window_s=12 * _HOUR_S,
        channels=((12 * _HOUR_S, _DAY_S), (1 * _HOUR_S, 6 * _HOUR_S)), warn=_MOVED_WARN,
    ),
    SensorKind("phreatic_depth", ("m",), trend_window_s=12 * _HOUR_S),
    SensorKind("dry_beach", ("m",), trend_window_s=12 * _HOUR_S),
    SensorKind("displacement", ("mm",), trend_window_s=3 * _DAY_S, creep=True),
    # displacement velocity and acceleration, usually computed from a displacement series
    # (`rate_over`, sensors/windows.py; issue 12): a rate of its own kind, not fed to the creep forecast
    SensorKind("displacement_rate", ("mm/d", "mm/d2", "mm/d²"), trend_window_s=1 * _DAY_S),
    SensorKind("rainfall", ("mm", "mm/h"), may_flatline=True, trend_window_s=1 * _HOUR_S),
    SensorKind("seepage", ("L/s", "m3/h", "m³/h")),
    # discrete signals of safety systems (issue 12): codes 0, 1, ... of their states; never stuck
    SensorKind("interlock", ("state",), may_flatline=True, states=("in_service", "bypassed")),
    SensorKind("esd", ("state",), may_flatline=True, states=("normal", "tripped")),
    SensorKind("valve", ("state",), may_flatline=True, states=("closed", "open", "travelling")),
    SensorKind("controller", ("state",), may_flatline=True, states=("healthy", "fault")),
    SensorKind("power", ("state",), may_flatline=True, states=("on", "off")),
)  # fmt: skip

#: how people read the usual state names (messages, console); other names are shown as they are
STATE_NAMES_ZH: MappingProxyType[str, str] = MappingProxyType(
    {
        "in_service": "投用",
        "bypassed": "旁路(摘除)",
        "normal": "正常",
        "tripped": "已动作",
        "closed": "关",
        "open": "开",
        "travelling": "动作中",
        "healthy": "正常",
        "fault": "故障",
        "on": "通电",
        "off": "断电",
    }
)


def names_where(fact: Callable[[SensorKind], bool]) -> frozenset[str]:
    """The names of the kinds with a fact, e.g. ``names_where(lambda k: k.critical)``."""
    return frozenset(k.name for k in KINDS.values() if fact(k))
