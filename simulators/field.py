"""Field realism on top of the classic quiet physics (simulators/realism.py lists the features).

`FieldPhysics.apply(t, dt, value)` takes the classic values of one FleetModel step, before they are
folded into the quiet band, and adds what recorded plant data have: coloured noise, heavy-tailed
bursts, operating modes, setpoint changes, recalibration offsets, the working week and the seasons;
`silent(t)` says which sensors do not report (gaps, maintenance). It exists only when a realism
feature is on, with generators of its own, so the classic physics and every recording made with it
stay exactly as they were. Every sensor is one slot of a few arrays and random events are Poisson
arrivals kept as "next time" per slot, so a step costs a fixed number of numpy calls whatever the
fleet size; every feature draws from its own seeded generators, so switching one feature off leaves
the others' paths unchanged.

Numbers (modelling choices, not sourced; DOMAIN.md has none for these):

- AR part: an Ornstein-Uhlenbeck process (exact discretisation, lag-1 autocorrelation exp(-dt/τ)),
  Student-t innovations (ν = 4) for heavy tails; τ and σ per kind in AR_BY_KIND;
- bursts: a few per week, mean-reverting (rise 1-3 min, decay 5-30 min), size |t₂|-distributed;
- modes: machines (pumps, compressors; sensors naming the same tag, e.g. K101, share one) run 4-24 h
  and stand 0.5-6 h; a stopped machine's flow reads 0 (flows without a low alarm: stopping is normal
  for them), its discharge pressure loses the head (25-35 % of the band), its discharge temperature
  falls back to the weather from 12-20 % of the band below H; loading machines follow the site's
  trucks, which come one after another on day shifts (0.4-1.2 h each, >= 10 min apart); batch
  reactors heat at 30-45 °C/h to 10-15 % of the band below H, hold 3-5 h, cool, start on working
  days; heated tanks cycle on an on/off thermostat; all of it in simulators/modes.py and tanks.py;
- setpoints: a process temperature, pressure or flow gets a new setpoint every 4-10 days, 5-15 % of
  its band, settling in SETPOINT_TAU_S (closed loop);
- maintenance: every 60-180 days a sensor is off line for 0.5-2 h and comes back 0.3-1.5 % of its
  span away (recalibration or a swapped transmitter);
- weekly: process values follow the plant load (workweek.py), flows in proportion;
- seasonal: a pond stands up to 0.8-1.5 m lower before the flood season than at its end; showers are
  heavier-tailed and heavier in the wet season (SHOWER_MEAN_MM_H);
- gaps: a sensor drops out every ~5 days for minutes (median 15 min, up to 6 h), a gateway every
  ~12 days (median 40 min, up to 4 h).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from simulators.modes import BATCH_WORDS, OperatingModes, words
from simulators.payloads import DeviceLayout
from simulators.realism import FEATURES, Realism
from simulators.signals import (
    BAR_TO_UNIT,
    DRIFT,
    PHYSICS_NAMES,
    POND,
    RAIN,
    YEAR_S,
)
from simulators.workweek import DAY_S, HOUR_S, plant_load

if TYPE_CHECKING:
    from simulators.signals import FleetModel

#: Ponds stand highest at the end of the wet season (late September) and lowest before the flood season.
POND_HIGH_EPOCH_S = datetime(2000, 9, 25, tzinfo=UTC).timestamp()
#: The wettest time of year in South China (dragon-boat / plum rains, mid-June).
WETTEST_EPOCH_S = datetime(2000, 6, 15, tzinfo=UTC).timestamp()
#: Showers (realism `seasonal`): intensity exponential with a mean of 1.5 mm/h in the dry season and
#: 4.5 mm/h in the wet one (a heavy tail, where the classic showers are uniform 0.5-6 mm/h), lasting
#: 0.3-2.5 h; ordinary showers stay under the CMA orange intensity of 16.7 mm/h (DOMAIN §4.5).
SHOWER_MEAN_MM_H = (1.5, 4.5)
SHOWER_MAX_MM_H = 15.0
SHOWER_HOURS = (0.3, 2.5)

#: Coloured noise per kind: (τ s, σ as a fraction of the L..H band). Tank temperatures (big thermal
#: mass), LPG and GNSS use absolute values (AR_ABSOLUTE).
AR_BY_KIND: dict[str, tuple[float, float]] = {
    "gas_lel": (60.0, 0.02),
    "gas_toxic": (60.0, 0.02),
    "oxygen": (300.0, 0.01),
    "level": (300.0, 0.0002),
    "temperature": (1200.0, 0.01),
    "pressure": (300.0, 0.01),
    "flow": (120.0, 0.015),
    "seepage": (3600.0, 0.01),
    "phreatic_depth": (6 * HOUR_S, 0.005),
    "pond_level": (900.0, 0.0003),
    "dry_beach": (6 * HOUR_S, 0.003),
}
#: (τ s, σ in the sensor's unit) by physics name: weather-driven tank temperatures, LPG in bar, GNSS in mm.
AR_ABSOLUTE: dict[str, tuple[float, float]] = {
    "ambient_temperature": (1200.0, 0.1),
    "lpg_pressure": (300.0, 0.005),
    "creep": (4 * HOUR_S, 0.8),
}
STUDENT_NU = 4.0
#: Mean days between bursts, by kind (others have none).
BURST_EVERY_D = {"gas_lel": 2.0, "gas_toxic": 3.0, "pressure": 3.0, "flow": 2.0, "temperature": 5.0}
#: Setpoint settling time-constant by kind (closed loop).
SETPOINT_TAU_S = {"temperature": 1800.0, "pressure": 300.0, "flow": 120.0}
SETPOINT_KINDS = frozenset(SETPOINT_TAU_S)


@dataclass(frozen=True, slots=True)
class FieldEvent:
    """Something the field physics did: a pump start, a setpoint move, a gap; for scenario notes."""

    t_s: float
    site: str
    target: str  # sensor id, or device id for a gateway gap
    what: str
    value: float | None = None


def _lognormal_s(
    rng: np.random.Generator, median_s: float, sigma: float, lo_s: float, hi_s: float, k: int
) -> np.ndarray:
    """k durations (s): log-normal around `median_s`, clipped to [lo_s, hi_s]."""
    return np.clip(median_s * np.exp(sigma * rng.standard_normal(k)), lo_s, hi_s)


class FieldPhysics:
    """The realism features of one FleetModel, as per-slot arrays (see the module docstring)."""

    def __init__(self, model: FleetModel, realism: Realism, seed: int):
        self.model = m = model
        self.realism = realism
        self.log: list[FieldEvent] = []
        n = m.n
        self._rng = {f: np.random.default_rng([seed, 0xF1E1D, i]) for i, f in enumerate(FEATURES)}
        # parameters too come from one generator per feature, so a feature's draws do not shift another's
        par = {f: np.random.default_rng([seed, 0x1A17, i]) for i, f in enumerate(FEATURES)}
        kind = np.array([s.kind for s in m.sensors])
        names = [f"{s.id} {s.name}" for s in m.sensors]
        width = m.band_hi - m.band_lo
        span = m.range_hi - m.range_lo
        phys = m.physics
        self.layout = DeviceLayout.build(m.sensors)
        self._t0: float | None = None

        # -- coloured noise: every slot with noise (rain gauges read exactly 0 when dry)
        tau = np.full(n, np.inf)
        sigma = np.zeros(n)
        for k, (t, frac) in AR_BY_KIND.items():
            sel = kind == k
            tau[sel], sigma[sel] = t, frac * width[sel]
        for p, (t, s) in AR_ABSOLUTE.items():
            sel = np.flatnonzero(phys == PHYSICS_NAMES.index(p))
            per_unit = [BAR_TO_UNIT.get(m.sensors[i].unit, 1.0) if p == "lpg_pressure" else 1.0 for i in sel]
            tau[sel], sigma[sel] = t, s * np.array(per_unit)
        self.ar_slots = np.flatnonzero(sigma > 0) if realism.has("ar") else np.zeros(0, dtype=np.int64)
        self.ar_tau_s = tau[self.ar_slots]
        self.ar_sigma = sigma[self.ar_slots]
        self.ar = self.ar_sigma * par["ar"].standard_normal(self.ar_slots.size)

        # -- bursts: mean-reverting excursions; gas puffs only upwards
        every = np.array([BURST_EVERY_D.get(k, 0.0) for k in kind]) * DAY_S
        drift_like = phys == DRIFT
        on = (every > 0) & drift_like & realism.has("bursts")
        self.burst_slots = np.flatnonzero(on)
        b = self.burst_slots
        self.burst_every_s = every[b]
        self.burst_scale = 0.03 * width[b]
        self.burst_cap = 0.15 * width[b]
        self.burst_up_only = np.isin(kind[b], ("gas_lel", "gas_toxic"))
        self.burst_rise_s = par["bursts"].uniform(60.0, 180.0, b.size)
        self.burst_decay_s = par["bursts"].uniform(300.0, 1800.0, b.size)
        self.burst_goal = np.zeros(b.size)
        self.burst = np.zeros(b.size)
        self.burst_next = np.full(b.size, np.inf)

        # -- setpoints of controlled process values
        batch = (kind == "temperature") & words(BATCH_WORDS, names)
        on = drift_like & np.isin(kind, list(SETPOINT_KINDS)) & ~batch & realism.has("setpoints")
        self.sp_slots = np.flatnonzero(on)
        s = self.sp_slots
        self.sp_tau_s = np.array([SETPOINT_TAU_S[k] for k in kind[s]], dtype=np.float64)
        self.sp_every_s = par["setpoints"].uniform(4.0, 10.0, s.size) * DAY_S
        self.sp_goal = np.zeros(s.size)
        self.sp = np.zeros(s.size)
        self.sp_next = np.full(s.size, np.inf)

        # -- weekly plant load: flows in proportion, process temperatures and pressures a little
        gain = np.zeros(n)
        if realism.has("weekly"):
            flow = drift_like & (kind == "flow")
            gain[flow] = m.op[flow] - m.range_lo[flow]
            proc = drift_like & np.isin(kind, ("temperature", "pressure")) & ~batch
            gain[proc] = par["weekly"].uniform(0.1, 0.3, int(proc.sum())) * width[proc]
        self.load_slots = np.flatnonzero(gain)
        self.load_gain = gain[self.load_slots]

        # -- operating modes: machines, trucks, batches, thermostats, tanks (simulators/modes.py)
        self.modes: OperatingModes | None = None
        if realism.has("modes"):
            tank_rng = np.random.default_rng([seed, 0x7A4C])
            self.modes = OperatingModes(m, names, par["modes"], self._rng["modes"], tank_rng, self._record)

        # -- maintenance: recalibration offsets
        # (a rain gauge is tipped and cleaned, not offset: a dry gauge still reads exactly 0)
        on = (phys != RAIN) & realism.has("maintenance")
        self.cal_slots = np.flatnonzero(on)
        self.cal_every_s = par["maintenance"].uniform(60.0, 180.0, self.cal_slots.size) * DAY_S
        self.cal_offset = np.zeros(n)
        self.cal_span = span
        self.cal_next = np.full(self.cal_slots.size, np.inf)
        self.cal_pending = np.zeros(n)  # offset that applies once the sensor is back
        self.off_until = np.full(n, -np.inf)  # in maintenance (off line) until

        # -- gaps: sensors and gateways
        self.gaps = realism.has("gaps")
        self.gap_next = np.full(n, np.inf)
        self.gap_until = np.full(n, -np.inf)
        nd = len(self.layout.devices)
        self.dev_gap_next = np.full(nd, np.inf)
        self.dev_gap_until = np.full(nd, -np.inf)

        # -- seasons: pond level (and dry beach) by site
        ms = len(m.sites)
        has_pond = np.zeros(ms, dtype=bool)
        has_pond[m.site_of_slot[phys == POND]] = True
        amp = np.where(has_pond, par["seasonal"].uniform(0.8, 1.5, ms), 0.0)
        self.site_season_amp_m = amp if realism.has("seasonal") else np.zeros(ms)

    # ---- schedules

    def _start(self, t_s: float) -> None:
        self._t0 = t_s
        r = self._rng
        self.burst_next = t_s + r["bursts"].exponential(self.burst_every_s)
        self.sp_next = t_s + r["setpoints"].exponential(self.sp_every_s)
        self.cal_next = t_s + r["maintenance"].exponential(self.cal_every_s)
        if self.gaps:
            g = r["gaps"]
            self.gap_next = t_s + g.exponential(5 * DAY_S, self.gap_next.size)
            self.dev_gap_next = t_s + g.exponential(12 * DAY_S, self.dev_gap_next.size)
        if self.modes is not None:
            self.modes.start(t_s)

    def _record(self, t_s: float, site: str, target: str, what: str, value: float | None) -> None:
        self.log.append(FieldEvent(t_s, site, target, what, value))

    def _note(self, slots: np.ndarray, what: str, values: np.ndarray | None = None, t_s: float = 0.0) -> None:
        sensors = self.model.sensors
        for j, i in enumerate(slots.tolist()):
            v = None if values is None else float(values[j])
            self._record(t_s, sensors[i].site, sensors[i].id, what, v)

    # ---- the step

    def apply(self, t_s: float, dt: float, value: np.ndarray) -> np.ndarray:
        """Add the field behaviours to one step's classic values (before the fold); returns `value`."""
        if self._t0 is None:
            self._start(t_s)
        m = self.model
        local = m.site_local_s(t_s)  # (n_sites,)
        if self.modes is not None:
            self.modes.before(t_s, dt, local, value)
        if self.ar_slots.size:
            rng = self._rng["ar"]
            a = np.exp(-dt / self.ar_tau_s)
            z = rng.standard_t(STUDENT_NU, self.ar_slots.size) * math.sqrt((STUDENT_NU - 2.0) / STUDENT_NU)
            self.ar = self.ar * a + self.ar_sigma * np.sqrt(1.0 - a * a) * z
            value[self.ar_slots] += self.ar
        if self.burst_slots.size:
            value[self.burst_slots] += self._step_bursts(t_s, dt)
        if self.sp_slots.size:
            value[self.sp_slots] += self._step_setpoints(t_s, dt)
        if self.load_slots.size:
            load = plant_load(local[m.site_of_slot[self.load_slots]])
            value[self.load_slots] += self.load_gain * (load - 1.0)
        if self.modes is not None:
            self.modes.after(t_s, dt, local, value)
        if self.site_season_amp_m.any():
            phase = 2.0 * math.pi * (t_s - POND_HIGH_EPOCH_S) / YEAR_S
            season = -self.site_season_amp_m * 0.5 * (1.0 - math.cos(phase))  # (n_sites,) m
            value[m._pond] += season[m.site_of_slot[m._pond]]
            sites = m.site_of_slot[m._beach]
            value[m._beach] -= season[sites] / m.site_beach_slope[sites]
        if self.cal_slots.size:
            self._step_maintenance(t_s)
            value += self.cal_offset
        if self.gaps:
            self._step_gaps(t_s)
        return value

    def shower_shape(self, t_s: float, hours: np.ndarray, mm_h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Duration (h) and intensity (mm/h) of showers starting at `t_s`: the classic ones, or by season."""
        if not self.site_season_amp_m.size or not self.realism.has("seasonal"):
            return hours, mm_h
        rng = self._rng["seasonal"]
        wet = 0.5 + 0.5 * math.cos(2.0 * math.pi * (t_s - WETTEST_EPOCH_S) / YEAR_S)
        dry_mean, wet_mean = SHOWER_MEAN_MM_H
        mean = dry_mean + (wet_mean - dry_mean) * wet
        k = hours.size
        return rng.uniform(*SHOWER_HOURS, k), np.clip(rng.exponential(mean, k), 0.3, SHOWER_MAX_MM_H)

    def silent(self, t_s: float) -> np.ndarray:
        """(n_sensors,) bool: sensors that report nothing at `t_s` (own gap, gateway gap, maintenance)."""
        dev = t_s < self.dev_gap_until
        return (t_s < self.gap_until) | (t_s < self.off_until) | dev[self.layout.device_of_slot]

    def devices_down(self, t_s: float) -> np.ndarray:
        """(n_devices,) bool: gateways in a gap (their broker would publish `offline`)."""
        return t_s < self.dev_gap_until

    # ---- features

    def _step_bursts(self, t_s: float, dt: float) -> np.ndarray:
        rng = self._rng["bursts"]
        due = t_s >= self.burst_next
        if due.any():
            k = int(due.sum())
            size = np.fmin(self.burst_scale[due] * np.abs(rng.standard_t(2.0, k)), self.burst_cap[due])
            sign = np.where(self.burst_up_only[due] | (rng.random(k) < 0.5), 1.0, -1.0)
            self.burst_goal[due] += sign * size
            self.burst_next[due] = t_s + rng.exponential(self.burst_every_s[due])
        self.burst_goal *= np.exp(-dt / self.burst_decay_s)
        a = np.exp(-dt / self.burst_rise_s)
        self.burst = self.burst_goal + (self.burst - self.burst_goal) * a
        return self.burst

    def _step_setpoints(self, t_s: float, dt: float) -> np.ndarray:
        rng = self._rng["setpoints"]
        due = t_s >= self.sp_next
        if due.any():
            m = self.model
            idx = np.flatnonzero(due)
            s = self.sp_slots[idx]
            w = m.band_hi[s] - m.band_lo[s]
            step = rng.uniform(0.05, 0.15, idx.size) * w * np.where(rng.random(idx.size) < 0.5, 1.0, -1.0)
            lo, hi = m.band_lo[s] + 0.3 * w, m.band_hi[s] - 0.3 * w
            new = m.op[s] + self.sp_goal[idx] + step
            step = np.where((new < lo) | (new > hi), -step, step)  # operators keep clear of the limits
            self.sp_goal[idx] += step
            self.sp_next[idx] = t_s + rng.exponential(self.sp_every_s[idx])
            self._note(s, "setpoint moved by", step, t_s)
        a = np.exp(-dt / self.sp_tau_s)
        self.sp = self.sp_goal + (self.sp - self.sp_goal) * a
        return self.sp

    def _step_maintenance(self, t_s: float) -> None:
        rng = self._rng["maintenance"]
        due = t_s >= self.cal_next
        if due.any():
            idx = np.flatnonzero(due)
            s = self.cal_slots[idx]
            k = idx.size
            self.off_until[s] = t_s + rng.uniform(0.5, 2.0, k) * HOUR_S
            sign = np.where(rng.random(k) < 0.5, 1.0, -1.0)
            self.cal_pending[s] = sign * rng.uniform(0.003, 0.015, k) * self.cal_span[s]
            self.cal_next[idx] = t_s + rng.exponential(self.cal_every_s[idx])
            self._note(s, "maintenance: off line, back with an offset of", self.cal_pending[s], t_s)
        back = (self.cal_pending != 0.0) & (t_s >= self.off_until)
        if back.any():
            self.cal_offset[back] += self.cal_pending[back]
            self.cal_pending[back] = 0.0

    def _step_gaps(self, t_s: float) -> None:
        rng = self._rng["gaps"]
        due = t_s >= self.gap_next
        if due.any():
            k = int(due.sum())
            length = _lognormal_s(rng, 15 * 60.0, 1.0, 120.0, 6 * HOUR_S, k)
            self.gap_until[due] = t_s + length
            self.gap_next[due] = self.gap_until[due] + rng.exponential(5 * DAY_S, k)
            self._note(np.flatnonzero(due), "sensor gap (s)", length, t_s)
        due = t_s >= self.dev_gap_next
        if due.any():
            k = int(due.sum())
            length = _lognormal_s(rng, 40 * 60.0, 0.8, 300.0, 4 * HOUR_S, k)
            self.dev_gap_until[due] = t_s + length
            self.dev_gap_next[due] = self.dev_gap_until[due] + rng.exponential(12 * DAY_S, k)
            for d, L in zip(np.flatnonzero(due).tolist(), length.tolist(), strict=True):
                site, dev = self.layout.devices[d]
                self.log.append(FieldEvent(t_s, site, dev, "gateway gap (s)", L))
