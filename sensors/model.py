"""Typed, immutable registry model: sites, sensors, limits (docs/contracts.md §2).

Pure data: no I/O, so the engine, the backtest and the simulators share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum
from types import MappingProxyType
from typing import Literal

from sensors.discrete import Contradiction, StateAlarm
from sensors.formula import Formula
from sensors.hazard_register import Dam, HazardSource
from sensors.kinds import KINDS
from sensors.warning_levels import Escalation, WarningItem, WarningLevels

SiteKind = Literal["chemical", "tailings"]

#: Sensor kinds and the units each accepts (sensors/kinds.py; docs/contracts.md §2), the usual one first.
UNITS_BY_KIND: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {k.name: k.units for k in KINDS.values()}
)
SENSOR_KINDS: frozenset[str] = frozenset(UNITS_BY_KIND)
LIMIT_KEYS: tuple[str, ...] = ("ll", "l", "h", "hh")


class Quality(IntEnum):
    """Reading quality as stored in InfluxDB's integer `quality` field (docs/contracts.md §5)."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


@dataclass(frozen=True, slots=True)
class Limits:
    """Alarm limits in the sensor's unit; any subset may be set (None = not configured)."""

    ll: float | None = None
    l: float | None = None  # noqa: E741 - ISA-18.2 calls it L
    h: float | None = None
    hh: float | None = None

    def configured(self) -> dict[str, float]:
        """Return the limits that are set, lowest first."""
        return {k: v for k in LIMIT_KEYS if (v := getattr(self, k)) is not None}


@dataclass(frozen=True, slots=True)
class Sensor:
    """One measuring point of a site."""

    id: str
    site: str
    name: str
    kind: str
    unit: str
    range: tuple[float, float]
    interval_s: float
    limits: Limits = field(default_factory=Limits)
    deadband: float = 0.0
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    forecast: bool = False
    group: str | None = None
    device: str | None = None
    roc_per_min: float | None = None  # rate-of-change alarm: |change| per minute over roc_window_s
    roc_window_s: float = 60.0
    stale_after_s: float | None = None  # default: 3 reporting intervals (at least 30 s)
    # flat-line (stuck) detection: the shortest frozen stretch that may be judged stuck (default
    # 300 s, alerts/engine/alarm_engine.py EngineConfig.stuck_after_s), and the instrument's resolution (its
    # smallest step, e.g. 1 %LEL; 0 = unknown, the engine learns it from the readings)
    stuck_after_s: float | None = None
    resolution: float = 0.0
    # a computed sensor (registry key `compute`): hazmon derives its readings from other sensors of
    # the site (sensors/computed.py); none is published for it
    formula: Formula | None = None
    # tailings warning thresholds blue..red (registry key `warning_levels`, sensors/warning_levels.py)
    warning: WarningLevels | None = None
    # a discrete signal (kinds interlock, esd, valve, controller, power): its states, codes 0, 1, ...,
    # and which of them are alarms after how long (sensors/discrete.py); empty for analog sensors
    states: tuple[str, ...] = ()
    state_alarms: tuple[StateAlarm, ...] = ()
    contradicts: Contradiction | None = None  # a state a measurement contradicts (a closed valve, flow)

    # a toxic detector's `exposure` (sensors/exposure.py): the substance whose TWA and STEL hazmon adds
    exposure: str | None = None
    # the sensor whose registry key made this one (an exposure's `<id>.TWA`); None: written in the registry
    made_by: str | None = None

    @property
    def discrete(self) -> bool:
        return bool(self.states)

    @property
    def key(self) -> tuple[str, str]:
        """(site, sensor): sensor ids are unique only within their site."""
        return (self.site, self.id)


@dataclass(frozen=True, slots=True)
class Location:
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Site:
    """A major hazard source: a chemical site or a tailings dam."""

    id: str
    name: str
    kind: SiteKind
    grade: int
    sensors: tuple[Sensor, ...]
    timezone: str = "Asia/Shanghai"
    location: Location | None = None
    roster: str | None = None
    district: str | None = None
    city: str | None = None
    province: str | None = None  # the jurisdiction above the city (广东省)
    park: str | None = None  # the chemical park the site is in (a named set of sites), if any
    # tailings warning levels (sensors/warning_levels.py): the monitored items and their escalation
    warning_items: tuple[WarningItem, ...] = ()
    warning_escalation: Escalation = field(default_factory=Escalation)
    # the hazard-source register (sensors/hazard_register.py): a chemical site's units and their
    # substances, a tailings pond's dam; hazmon computes the grade or class from them
    hazard_sources: tuple[HazardSource, ...] = ()
    dam: Dam | None = None
    names_en: tuple[tuple[str, str], ...] = ()  # the English of the site's own names (console)

    def warning_item_list(self) -> tuple[WarningItem, ...]:
        """The pond's monitored items: those declared, then each point with warning levels that no
        item names, as an item of its own (so it still counts towards the pond)."""
        named = {p for item in self.warning_items for p in item.points}
        alone = tuple(
            WarningItem(s.id, s.name, (s.id,))
            for s in self.sensors
            if s.warning is not None and s.id not in named
        )
        return (*self.warning_items, *alone)


@dataclass(frozen=True, slots=True)
class Registry:
    """All sites; the unit the service loads at start."""

    sites: tuple[Site, ...]
    sources: tuple[str, ...] = ()

    def sensors(self) -> tuple[Sensor, ...]:
        """Every sensor of every site, in registry order."""
        return tuple(s for site in self.sites for s in site.sensors)

    def measured(self) -> Registry:
        """The registry without its computed sensors: what field gateways (and simulators) publish."""
        sites = tuple(
            replace(site, sensors=tuple(s for s in site.sensors if s.formula is None)) for site in self.sites
        )
        return replace(self, sites=tuple(site for site in sites if site.sensors))

    def site(self, site_id: str) -> Site:
        for site in self.sites:
            if site.id == site_id:
                return site
        raise KeyError(site_id)
