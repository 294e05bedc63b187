"""Seeded, vectorised physics of a quietly operating sensor fleet (DOMAIN.md §7); pure, no I/O.

`FleetModel.step(t_s)` returns one value per sensor (registry order) at simulated time `t_s`
(epoch seconds). Every sensor is one slot of a few state arrays, so a step costs a handful of
numpy calls whatever the fleet size; the same model feeds the MQTT fleet and, later, CSV files.

Each value is `base(t) + drift + noise`:

- base: the physics of the sensor's kind: tank fill/draw cycles, ambient-driven temperatures,
  LPG vapour pressure, pond level and dry beach driven by rain, creeping displacement, or a
  constant operating point;
- drift: an Ornstein-Uhlenbeck process (exact discretisation, so any step length works);
- noise: white measurement noise.

The result is folded back inside the sensor's quiet band (inside L..H with a margin, inside the
instrument range elsewhere) and rounded to the instrument's resolution, so a quiet fleet raises
no alarm. Incidents (simulators/incidents.py) are applied on top of these values.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from sensors.model import Registry, Sensor, Site
from simulators.realism import CLASSIC, Realism

if TYPE_CHECKING:
    from simulators.field import FieldPhysics

# ---- constants

HOUR_S = 3600.0
DAY_S = 86400.0
YEAR_S = 365.2425 * DAY_S
#: Seasonal temperature peak reference (late July in the northern hemisphere).
SUMMER_PEAK_EPOCH_S = datetime(2000, 7, 20, tzinfo=UTC).timestamp()

#: Propane vapour pressure, bar g (DOMAIN §7.2); ends added at the normal boiling point
#: (-42.1 °C, 0 bar g) and 50 °C (17.1 bar abs) so np.interp does not flatten summer peaks.
PROPANE_T_C = np.array([-42.1, -6.7, 4.4, 10.0, 15.6, 21.1, 26.7, 32.2, 37.8, 43.3, 50.0])
PROPANE_P_BARG = np.array([0.0, 2.9, 4.5, 5.4, 6.4, 7.6, 8.8, 10.3, 12.2, 14.1, 16.1])
BAR_TO_UNIT = {"MPa": 0.1, "kPa": 100.0, "bar": 1.0}
#: Level rates are drawn in m/h (DOMAIN §7.1: 500 m³/h into a 50 m tank = 0.25 m/h) and converted.
LEVEL_M_TO_UNIT = {"m": 1.0, "mm": 1000.0, "%": 100.0 / 15.0}  # %: assume a ~15 m tall tank or sphere

#: Names that mark a pressure or temperature as an LPG sphere (its pressure follows vapour pressure).
LPG_WORDS = re.compile(r"lpg|propane|sphere|液化石油气|液化气|丙烷|球罐", re.IGNORECASE)

#: Storm depth (mm) that brings a pond from its quiet operating level up to H: ponds are run with
#: flood storage for a rainstorm (暴雨, 50-99.9 mm/24 h, DOMAIN §4.5).
POND_STORAGE_MM = 80.0

# Physics codes, one per slot.
DRIFT, LEVEL, AMBIENT_T, LPG_P, POND, BEACH, RAIN, CREEP = range(8)
_KIND_PHYSICS = {"pond_level": POND, "dry_beach": BEACH, "rainfall": RAIN, "displacement": CREEP}
PHYSICS_NAMES = ("drift", "level", "ambient_temperature", "lpg_pressure", "pond", "beach", "rain", "creep")


def _f(x: float | None) -> float:
    return math.nan if x is None else float(x)


class FleetModel:
    """Quiet-operation physics for every sensor of a registry, one array slot per sensor."""

    def __init__(self, registry: Registry, seed: int = 0, realism: Realism = CLASSIC):
        self.registry = registry
        self.seed = seed
        self.realism = realism
        self.sensors: tuple[Sensor, ...] = registry.sensors()
        self.sites: tuple[Site, ...] = registry.sites
        self.n = n = len(self.sensors)
        self._rng = np.random.default_rng([seed, 0x5EED])
        init = np.random.default_rng([seed, 0x1A17])  # parameters: independent of the step sequence

        site_pos = {s.id: i for i, s in enumerate(self.sites)}
        self.site_of_slot = np.array([site_pos[s.site] for s in self.sensors], dtype=np.int64)
        self.range_lo = np.array([s.range[0] for s in self.sensors], dtype=np.float64)
        self.range_hi = np.array([s.range[1] for s in self.sensors], dtype=np.float64)
        self.limit_ll = np.array([_f(s.limits.ll) for s in self.sensors], dtype=np.float64)
        self.limit_l = np.array([_f(s.limits.l) for s in self.sensors], dtype=np.float64)
        self.limit_h = np.array([_f(s.limits.h) for s in self.sensors], dtype=np.float64)
        self.limit_hh = np.array([_f(s.limits.hh) for s in self.sensors], dtype=np.float64)
        self._quiet_band()
        self.physics = np.array([self._physics_of(s) for s in self.sensors], dtype=np.int8)

        span = self.range_hi - self.range_lo
        # Resolution: ~1/5000 of the range (1 mm on a 16 m radar gauge, 0.01 %LEL, 0.1 kPa on 2.5 MPa).
        decimals = np.clip(np.ceil(np.log10(5000.0 / span)), 0, 6)
        self.scale = 10.0**decimals

        self.op = self._operating_point()
        # Defaults for any drifting kind; the kinds below set their own.
        self.drift_sigma = 0.03 * (self.band_hi - self.band_lo)
        self.drift_tau_s = np.full(n, 6 * HOUR_S)
        self.noise_sigma = 0.005 * (self.band_hi - self.band_lo)
        self._init_sites(init)
        self._init_kinds(init)
        self.op = np.clip(self.op, self.quiet_lo, self.quiet_hi)
        self.drift = self.drift_sigma * init.standard_normal(n)
        self._last_t: float | None = None
        self._t_first: float | None = None
        self.field: FieldPhysics | None = None
        if realism:  # its own generators: the classic draws (and recordings) stay as they were
            from simulators.field import FieldPhysics

            self.field = FieldPhysics(self, realism, seed)

    # ---- static columns

    def _quiet_band(self) -> None:
        """Quiet values stay strictly inside the alarm limits (with a margin) and the instrument range."""
        lo_alarm = np.where(np.isnan(self.limit_l), self.limit_ll, self.limit_l)
        hi_alarm = np.where(np.isnan(self.limit_h), self.limit_hh, self.limit_h)
        # a tailings point's first warning colour bounds its quiet values like a limit
        warn_lo, warn_hi = self._first_warning()
        lo_alarm, hi_alarm = np.fmax(lo_alarm, warn_lo), np.fmin(hi_alarm, warn_hi)
        self.has_lo_alarm = ~np.isnan(lo_alarm)
        self.has_hi_alarm = ~np.isnan(hi_alarm)
        self.band_lo = np.where(self.has_lo_alarm, np.fmax(lo_alarm, self.range_lo), self.range_lo)
        self.band_hi = np.where(self.has_hi_alarm, np.fmin(hi_alarm, self.range_hi), self.range_hi)
        margin = 0.03 * (self.band_hi - self.band_lo)
        self.quiet_lo = np.where(self.has_lo_alarm, self.band_lo + margin, self.range_lo)
        self.quiet_hi = np.where(self.has_hi_alarm, self.band_hi - margin, self.range_hi)

    def _first_warning(self) -> tuple[np.ndarray, np.ndarray]:
        """The least severe warning threshold of each point, on its low or high side (NaN elsewhere)."""
        lo = np.full(len(self.sensors), np.nan)
        hi = np.full(len(self.sensors), np.nan)
        for i, s in enumerate(self.sensors):
            if s.warning is None:
                continue
            first = next(v for v in s.warning.thresholds if v is not None)
            (hi if s.warning.rising else lo)[i] = first
        return lo, hi

    def _warning_control(self) -> np.ndarray:
        """The yellow threshold of each rising warning point (else its first), NaN elsewhere."""
        out = np.full(len(self.sensors), np.nan)
        for i, s in enumerate(self.sensors):
            if s.warning is not None and s.warning.rising:
                first = next(v for v in s.warning.thresholds if v is not None)
                yellow = s.warning.thresholds[1]
                out[i] = yellow if yellow is not None else first
        return out

    def _physics_of(self, s: Sensor) -> int:
        words = f"{s.id} {s.name} {s.group or ''}"
        if s.kind == "level":
            return LEVEL
        if s.kind == "pressure" and LPG_WORDS.search(words) and s.unit in BAR_TO_UNIT:
            return LPG_P
        if s.kind == "temperature" and s.unit == "°C":
            return AMBIENT_T
        return _KIND_PHYSICS.get(s.kind, DRIFT)

    def _operating_point(self) -> np.ndarray:
        """Where a drifting sensor sits: mid-band, or halfway into the open side of a one-sided band."""
        lo = np.where(self.has_lo_alarm, self.band_lo, self.range_lo)
        hi = np.where(self.has_hi_alarm, self.band_hi, self.range_hi)
        return lo + 0.5 * (hi - lo)

    # ---- per-site climate and hydrology

    def _init_sites(self, init: np.random.Generator) -> None:
        m = len(self.sites)
        lat = np.array([s.location.lat if s.location else 30.0 for s in self.sites], dtype=np.float64)
        # East China climate, rough fit: Guangzhou ~22 °C mean, ±7.5 °C seasons; Beijing ~12 °C, ±15 °C.
        self.site_temp_mean_c = 22.0 - 0.6 * (lat - 22.0) + init.normal(0.0, 0.5, m)
        self.site_temp_season_c = 6.5 + 0.5 * np.fmax(lat - 22.0, 0.0)
        tz_names = [s.timezone for s in self.sites]
        self._tz_names = sorted(set(tz_names))
        self._tz_of_site = np.array([self._tz_names.index(z) for z in tz_names], dtype=np.int64)
        self._zones = [ZoneInfo(z) for z in self._tz_names]
        self._offsets_key: int | None = None
        self._offsets = np.zeros(len(self._zones))
        # Rain: showers arrive ~every 2 days, 0.5-3 h at 0.5-6 mm/h; ponds gain h = rain x catchment/pond
        # area x runoff (DOMAIN §7.4), here 4-8 mm of pond level per mm of rain, drained by the decant
        # with a 1-3 day time constant (dry stacks must be empty within 72 h).
        self.site_rain_gain_m_per_mm = init.uniform(0.004, 0.008, m)
        self.site_decant_tau_s = init.uniform(1.0, 3.0, m) * DAY_S
        self.site_beach_slope = init.uniform(0.008, 0.015, m)  # dry beach: 0.8-1.5 %
        self._shower_start = np.full(m, -np.inf)
        self._shower_end = np.full(m, -np.inf)
        self._shower_mm_h = np.zeros(m)
        self._next_shower: np.ndarray | None = None
        self.site_rain_mm_h = np.zeros(m)
        self.site_pond_excess_m = np.zeros(m)

    # ---- per-kind parameters

    def _init_kinds(self, init: np.random.Generator) -> None:
        width = self.band_hi - self.band_lo
        span = self.range_hi - self.range_lo
        kind = np.array([s.kind for s in self.sensors])
        unit = np.array([s.unit for s in self.sensors])
        phys = self.physics

        def sel(mask: np.ndarray) -> np.ndarray:
            return np.flatnonzero(mask)

        # Gas detectors: zero baseline 0-2 %LEL with σ ≈ 1 %LEL (DOMAIN §7.3), clipped at the range floor.
        i = sel(kind == "gas_lel")
        self.op[i] = self.range_lo[i] + init.uniform(0.2, 1.5, i.size) * span[i] / 100.0
        self.drift_sigma[i], self.drift_tau_s[i] = 0.3 * span[i] / 100.0, 1 * HOUR_S
        self.noise_sigma[i] = 1.0 * span[i] / 100.0
        i = sel(kind == "gas_toxic")
        scale = np.where(self.has_hi_alarm[i], self.band_hi[i] - self.range_lo[i], span[i] / 3.0)
        self.op[i] = self.range_lo[i] + init.uniform(0.0, 0.04, i.size) * scale
        self.drift_sigma[i], self.drift_tau_s[i] = 0.01 * scale, 1 * HOUR_S
        self.noise_sigma[i] = 0.02 * scale
        i = sel(kind == "oxygen")
        self.op[i] = 20.9
        self.drift_sigma[i], self.drift_tau_s[i], self.noise_sigma[i] = 0.05, 2 * HOUR_S, 0.03

        # Tank level: fill and draw at 0.15-0.35 m/h between targets inside the L..H band.
        i = sel(phys == LEVEL)
        to_unit = np.array([LEVEL_M_TO_UNIT.get(u, 1.0) for u in unit[i]])
        self._level_rate = init.uniform(0.15, 0.35, i.size) * to_unit / HOUR_S
        self._level_lo = self.band_lo[i] + init.uniform(0.15, 0.3, i.size) * width[i]
        self._level_hi = self.band_lo[i] + init.uniform(0.7, 0.85, i.size) * width[i]
        self._level = i
        self._level_value = init.uniform(self._level_lo, self._level_hi)
        self._level_phase = init.choice(np.array([-1, 0, 1], dtype=np.int8), i.size)
        self._level_next = np.where(init.random(i.size) < 0.5, -1, 1).astype(np.int8)
        self._level_idle_left_s = init.uniform(0.0, 3.0, i.size) * HOUR_S
        self._level_idle_until: np.ndarray | None = None
        self.drift_sigma[i] = 0.0  # the fill/draw cycle is the whole motion
        self.noise_sigma[i] = 0.002 * to_unit  # radar gauge: mm-level

        # Temperatures that follow the weather: the daily cycle lags and is damped by the vessel's mass.
        i = self._amb = sel(phys == AMBIENT_T)
        sphere = np.array(
            [bool(LPG_WORDS.search(f"{s.id} {s.name}")) for s in (self.sensors[j] for j in i)], dtype=bool
        )
        self._amb_amp_c = np.where(sphere, init.uniform(2.5, 3.5, i.size), init.uniform(0.4, 0.8, i.size))
        self._amb_peak_h = np.where(sphere, 15.5, 18.0) + init.uniform(-0.5, 0.5, i.size)
        self._amb_offset_c = np.where(sphere, 1.0, 0.5) + init.uniform(-0.5, 0.5, i.size)
        # A heated or chilled vessel whose band does not hold the weather falls back to a plain drift.
        sites = self.site_of_slot[i]
        t_min = self.site_temp_mean_c[sites] - self.site_temp_season_c[sites] - self._amb_amp_c
        t_max = self.site_temp_mean_c[sites] + self.site_temp_season_c[sites] + self._amb_amp_c + 1.5
        fits = (t_min >= self.band_lo[i]) & (t_max <= self.quiet_hi[i])
        self.physics[i[~fits]] = DRIFT
        self._amb, self._amb_amp_c = i[fits], self._amb_amp_c[fits]
        self._amb_peak_h, self._amb_offset_c = self._amb_peak_h[fits], self._amb_offset_c[fits]
        j = i[fits]
        self.drift_sigma[j], self.drift_tau_s[j], self.noise_sigma[j] = 0.3, 3 * HOUR_S, 0.05

        # Slow drift around the operating point (OU), per kind: (σ, τ in h, noise) as fractions of the band.
        for k, sigma, tau_h, noise in (
            ("pressure", 0.04, 2.0, 0.01),
            ("flow", 0.08, 0.5, 0.01),
            ("seepage", 0.03, 12.0, 0.01),
            ("phreatic_depth", 0.015, 12.0, 0.003),
            ("temperature", 0.03, 6.0, 0.003),
        ):
            j = sel((kind == k) & (self.physics == DRIFT))
            self.drift_sigma[j] = sigma * width[j]
            self.drift_tau_s[j] = tau_h * HOUR_S
            self.noise_sigma[j] = noise * width[j]

        # LPG spheres: vapour pressure of the liquid, which follows the weather (DOMAIN §7.2);
        # commercial LPG carries some butane, which lowers the pressure by up to ~15 %.
        i = self._lpg = sel(phys == LPG_P)
        self._lpg_amp_c = init.uniform(2.5, 3.5, i.size)
        self._lpg_peak_h = 15.5 + init.uniform(-0.5, 0.5, i.size)
        self._lpg_offset_c = 1.0 + init.uniform(-0.5, 0.5, i.size)
        self._lpg_factor = init.uniform(0.85, 1.0, i.size)
        self._lpg_to_unit = np.array([BAR_TO_UNIT[u] for u in unit[i]])
        self.drift_sigma[i] = 0.05 * self._lpg_to_unit  # 0.05 bar: filling and withdrawal
        self.drift_tau_s[i] = 2 * HOUR_S
        self.noise_sigma[i] = 0.01 * self._lpg_to_unit

        # Tailings: pond level rides on the site's rain-fed excess; dry beach shortens as the pond rises.
        i = self._pond = sel(phys == POND)
        gain = self.site_rain_gain_m_per_mm[self.site_of_slot[i]]
        top = np.where(np.isnan(self.limit_h[i]), self.limit_hh[i], self.limit_h[i])
        # a pond watched by warning colours is run with its flood storage below yellow (汛前控制水位)
        top = np.where(np.isnan(top), self._warning_control()[i], top)
        self.op[i] = np.where(
            np.isnan(top),
            self.op[i],
            np.fmax(top - POND_STORAGE_MM * gain, self.band_lo[i] + 0.2 * (top - self.band_lo[i])),
        )
        self.drift_sigma[i], self.drift_tau_s[i], self.noise_sigma[i] = 0.02, 6 * HOUR_S, 0.005
        i = self._beach = sel(phys == BEACH)
        self.drift_sigma[i], self.drift_tau_s[i] = 0.01 * width[i], 12 * HOUR_S
        self.noise_sigma[i] = 0.003 * width[i]
        self._rain = sel(phys == RAIN)
        self.drift_sigma[self._rain] = self.noise_sigma[self._rain] = 0.0  # a dry gauge reads exactly 0

        # Displacement: cumulative, 10-35 % of H already, creeping 3-15 mm/yr; GNSS noise ~0.7 mm.
        i = self._creep = sel(phys == CREEP)
        top = np.where(self.has_hi_alarm[i], self.band_hi[i], self.range_lo[i] + 0.3 * span[i])
        self.op[i] = np.fmax(self.range_lo[i], 0.0) + init.uniform(0.1, 0.35, i.size) * np.fmax(top, 1.0)
        self._creep_rate = init.uniform(3.0, 15.0, i.size) / YEAR_S
        self.drift_sigma[i], self.drift_tau_s[i], self.noise_sigma[i] = 0.3, 6 * HOUR_S, 0.7

    # ---- the step

    def site_local_s(self, t_s: float) -> np.ndarray:
        """Local wall-clock time of each site, epoch seconds (UTC `t_s` plus the zone offset), (n_sites,)."""
        hour_key = math.floor(t_s / HOUR_S)  # zone offsets change on the hour at most
        if self._offsets_key != hour_key:
            when = datetime.fromtimestamp(hour_key * HOUR_S, UTC)
            self._offsets = np.array([z.utcoffset(when).total_seconds() for z in self._zones])
            self._offsets_key = hour_key
        return t_s + self._offsets[self._tz_of_site]

    def local_hour(self, t_s: float, slots: np.ndarray) -> np.ndarray:
        """Local clock hour (0-24) at each slot's site, from its time zone."""
        local = self.site_local_s(t_s)[self.site_of_slot[slots]]
        return np.mod(local, DAY_S) / HOUR_S

    def site_mean_temp_c(self, t_s: float) -> np.ndarray:
        """Seasonal mean air temperature of each site (°C)."""
        season = np.cos(2 * math.pi * (t_s - SUMMER_PEAK_EPOCH_S) / YEAR_S)
        return self.site_temp_mean_c + self.site_temp_season_c * season

    def step(self, t_s: float) -> np.ndarray:
        """Advance to simulated time `t_s` (epoch s) and return every sensor's value, shape (n,)."""
        if self._last_t is None:
            self._last_t = self._t_first = t_s
            self._next_shower = t_s + self._rng.exponential(2 * DAY_S, len(self.sites))
            self._level_idle_until = t_s + self._level_idle_left_s
        dt = max(0.0, t_s - self._last_t)
        self._last_t = max(self._last_t, t_s)
        rng = self._rng

        a = np.exp(-dt / self.drift_tau_s)
        self.drift = self.drift * a + self.drift_sigma * np.sqrt(1.0 - a * a) * rng.standard_normal(self.n)
        value = self.op + self.drift + self.noise_sigma * rng.standard_normal(self.n)

        if self._level.size:
            value[self._level] += self._step_level(t_s, dt) - self.op[self._level]
        mean_c = self.site_mean_temp_c(t_s)
        if self._amb.size:
            i = self._amb
            hour = self.local_hour(t_s, i)
            temp = (
                mean_c[self.site_of_slot[i]]
                + self._amb_offset_c
                + self._amb_amp_c * np.cos(2 * math.pi * (hour - self._amb_peak_h) / 24.0)
            )
            value[i] += temp - self.op[i]
        if self._lpg.size:
            i = self._lpg
            hour = self.local_hour(t_s, i)
            liquid_c = (
                mean_c[self.site_of_slot[i]]
                + self._lpg_offset_c
                + self._lpg_amp_c * np.cos(2 * math.pi * (hour - self._lpg_peak_h) / 24.0)
            )
            p_barg = np.interp(liquid_c, PROPANE_T_C, PROPANE_P_BARG) * self._lpg_factor
            value[i] += p_barg * self._lpg_to_unit - self.op[i]
        self._step_rain(t_s, dt)
        if self._pond.size:
            value[self._pond] += self.site_pond_excess_m[self.site_of_slot[self._pond]]
        if self._beach.size:
            sites = self.site_of_slot[self._beach]
            value[self._beach] -= self.site_pond_excess_m[sites] / self.site_beach_slope[sites]
        if self._rain.size:
            i = self._rain
            rain = self.site_rain_mm_h[self.site_of_slot[i]]
            rain = rain * np.fmax(0.0, 1.0 + 0.05 * rng.standard_normal(i.size))
            value[i] = np.round(rain, 1)  # a gauge reads exactly 0 when dry
        if self._creep.size:
            value[self._creep] += self._creep_rate * (t_s - self._t_first)
        if self.field is not None:
            value = self.field.apply(t_s, dt, value)

        return np.round(self.fold(value) * self.scale) / self.scale

    def silent(self, t_s: float) -> np.ndarray | None:
        """(n,) bool: sensors not reporting at `t_s` (realism gaps and maintenance); None: all report."""
        return None if self.field is None else self.field.silent(t_s)

    def devices_down(self, t_s: float) -> np.ndarray | None:
        """(n_devices,) bool: gateways in a realism gap at `t_s`; None: none can be."""
        return None if self.field is None else self.field.devices_down(t_s)

    def fold(self, value: np.ndarray) -> np.ndarray:
        """Reflect values off the quiet band where an alarm limit bounds it; clip at bare range ends."""
        over = self.has_hi_alarm & (value > self.quiet_hi)
        value = np.where(over, 2 * self.quiet_hi - value, value)
        under = self.has_lo_alarm & (value < self.quiet_lo)
        value = np.where(under, 2 * self.quiet_lo - value, value)
        return np.clip(value, self.quiet_lo, self.quiet_hi)

    def _step_level(self, t_s: float, dt: float) -> np.ndarray:
        """Move tanks along their fill/draw/idle cycle; return the true levels."""
        rng = self._rng
        phase = self._level_phase
        lvl = self._level_value + phase * self._level_rate * dt
        full = (phase > 0) & (lvl >= self._level_hi)
        empty = (phase < 0) & (lvl <= self._level_lo)
        lvl = np.where(full, self._level_hi, np.where(empty, self._level_lo, lvl))
        stop = full | empty
        if stop.any():
            phase[stop] = 0
            self._level_next[full] = -1
            self._level_next[empty] = 1
            self._level_idle_until[stop] = t_s + rng.uniform(0.5, 6.0, int(stop.sum())) * HOUR_S
        resume = (phase == 0) & (t_s >= self._level_idle_until)
        if resume.any():
            phase[resume] = self._level_next[resume]
            k = int(resume.sum())
            i = self._level[resume]
            width = self.band_hi[i] - self.band_lo[i]
            self._level_lo[resume] = self.band_lo[i] + rng.uniform(0.15, 0.3, k) * width
            self._level_hi[resume] = self.band_lo[i] + rng.uniform(0.7, 0.85, k) * width
        self._level_value = lvl
        return lvl

    def _step_rain(self, t_s: float, dt: float) -> None:
        """Start and end showers per site and route the rain into each site's pond."""
        rng = self._rng
        start = t_s >= self._next_shower
        if start.any():
            k = int(start.sum())
            hours, mm_h = rng.uniform(0.5, 3.0, k), rng.uniform(0.5, 6.0, k)
            if self.field is not None:  # the classic draws still happen: the other paths stay as they were
                hours, mm_h = self.field.shower_shape(t_s, hours, mm_h)
            self._shower_start[start] = self._next_shower[start]
            self._shower_end[start] = self._next_shower[start] + hours * HOUR_S
            self._shower_mm_h[start] = mm_h
            self._next_shower[start] = self._shower_end[start] + rng.exponential(2 * DAY_S, k)
        raining = (t_s >= self._shower_start) & (t_s < self._shower_end)
        self.site_rain_mm_h = np.where(raining, self._shower_mm_h, 0.0)
        a = np.exp(-dt / self.site_decant_tau_s)
        inflow_m_per_s = self.site_rain_gain_m_per_mm * self.site_rain_mm_h / HOUR_S
        self.site_pond_excess_m = self.site_pond_excess_m * a + inflow_m_per_s * self.site_decant_tau_s * (
            1 - a
        )
