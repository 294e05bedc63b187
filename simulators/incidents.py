"""Incidents, instrument faults and scheduled operations on top of the quiet fleet; vectorised updates.

An incident is written `KIND:SITE[/TARGET][@START][~DURATION][=AMOUNT]`, START and DURATION as `90s`,
`10m`, `2h`, `1d` (START counts from the simulation start, default 0; a leading `+` is allowed),
AMOUNT a signed number in the sensor's unit (taken by the operations below, and by a storm as mm/h):

  leak:SITE/SENSOR       gas release: ramps the detector above H and HH; the other detectors of
                         its `group` follow later and lower (DOMAIN §7.3). ~D: the release stops
                         after D and the gas clears.
  seep:SITE/SENSOR       slow gas release (a weeping seal or flange): the detector climbs steadily and
                         reaches H about 20 min after START, so a trend sees it coming (an early
                         warning before the H alarm); its `group` neighbours follow later and lower.
                         ~D: isolated after D (default 25 min); the gas clears in a few minutes.
  overfill:SITE/SENSOR   tank level keeps rising, past H and HH (~15 min to HH), up to the top of
                         the range (API 2350, DOMAIN §7.1). ~D: filling stops and the tank is drawn back.
  stuck:SITE/SENSOR      the value freezes at its last reading (for D, default: for good).
  spike:SITE/SENSOR      one sample jumps to 97 % of the instrument range.
  outage:SITE/DEVICE     the device (or the device of the given sensor) stops publishing and its
                         status goes `offline`, as the broker would publish its will; back after D.
  storm:SITE[=MM_H]      rainstorm of 40 mm/h (or MM_H) for D (default 3 h): rain gauges read it, the pond
                         rises by rain x catchment/pond area x runoff and drains through the decant,
                         dry beaches shorten (DOMAIN §7.4).
  creep:SITE/SENSOR      accelerating displacement (tertiary creep): inverse velocity falls linearly
                         to 0 at failure time D after START (default 24 h, Fukuzono); H is crossed at
                         about 0.9 D; after failure the reading sits at the top of the range.

Operations (normal plant life, not incidents; the realism features draw them at random, these put
one where a scenario needs it):

  setpoint:SITE/SENSOR=DELTA  an operator moves the controller setpoint by DELTA; the value settles
                         at the new level with the closed-loop time-constant of its kind (temperature
                         30 min, pressure 5 min, flow 2 min). ~D: the setpoint is put back after D.
  recal:SITE/SENSOR=STEP  maintenance: the sensor is off line for D (default 1 h) and comes back
                         STEP away (recalibration, swapped transmitter or GNSS antenna).
  gap:SITE/SENSOR        the sensor reports nothing for D (default 1 h); a DEVICE silences all its
                         sensors while the gateway itself stays online (a field-bus fault).

Example: `--incident leak:jianghai-tf-01/GT-101@+60s~10m --incident storm:renhua-tsf-01@+5m~3h`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sensors.model import Sensor
from simulators.durations import format_duration, parse_duration
from simulators.field import SETPOINT_TAU_S
from simulators.payloads import DEFAULT_DEVICE, DeviceLayout
from simulators.signals import HOUR_S, FleetModel

KINDS = ("leak", "seep", "overfill", "stuck", "spike", "outage", "storm", "creep", "setpoint", "recal", "gap")
#: Kinds that need an =AMOUNT, and kinds that may take one.
AMOUNT_KINDS = frozenset({"setpoint", "recal"})
OPTIONAL_AMOUNT_KINDS = frozenset({"storm"})
SENSOR_KINDS_FOR = {
    "leak": ("gas_lel", "gas_toxic"),
    "seep": ("gas_lel", "gas_toxic"),
    "overfill": ("level",),
    "creep": ("displacement",),
}
STORM_MM_H = 40.0  # CMA red signal is 100 mm in 3 h ≈ 33 mm/h (DOMAIN §4.5)
DEFAULT_DURATION_S = {
    "seep": 900.0,
    "storm": 3 * HOUR_S,
    "creep": 24 * HOUR_S,
    "recal": HOUR_S,
    "gap": HOUR_S,
}
DEFAULT_SETPOINT_TAU_S = 600.0
OVERFILL_TO_HH_S = 900.0
SEEP_TO_H_S = 1200.0  # a seep's lead detector reaches H this long after it starts
SEEP_CLEAR_S = 120.0  # time-constant of the gas clearing once the seep is isolated
SPIKE_FRACTION = 0.97

_SPEC_RE = re.compile(
    r"^(?P<kind>[a-z]+):(?P<site>[^/@~=\s]+)(?:/(?P<target>[^@~=\s]+))?"
    r"(?:@\+?(?P<start>[^~=\s]+))?(?:~(?P<duration>[^=\s]+))?(?:=(?P<amount>\S+))?$"
)


@dataclass(frozen=True, slots=True)
class Incident:
    """One scheduled incident; `start_s` counts from the simulation start."""

    kind: str
    site: str
    target: str | None = None
    start_s: float = 0.0
    duration_s: float | None = None
    amount: float | None = None

    def __str__(self) -> str:
        where = f"{self.site}/{self.target}" if self.target else self.site
        end = f"~{format_duration(self.duration_s)}" if self.duration_s is not None else ""
        amount = f"={self.amount:+g}" if self.amount is not None else ""
        return f"{self.kind}:{where}@+{format_duration(self.start_s)}{end}{amount}"


def parse_incident(text: str) -> Incident:
    """Parse `KIND:SITE[/TARGET][@START][~DURATION]`; raise ValueError naming the problem."""
    m = _SPEC_RE.match(text.strip())
    if m is None:
        raise ValueError(
            f"incident {text!r}: expected KIND:SITE[/TARGET][@+START][~DURATION][=AMOUNT], "
            f"e.g. leak:site-1/GT-101@+60s~10m"
        )
    kind = m.group("kind")
    if kind not in KINDS:
        raise ValueError(f"incident {text!r}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    target = m.group("target")
    if target is None and kind != "storm":
        raise ValueError(f"incident {text!r}: {kind} needs SITE/{'DEVICE' if kind == 'outage' else 'SENSOR'}")
    try:
        start = parse_duration(m.group("start")) if m.group("start") else 0.0
        duration = parse_duration(m.group("duration")) if m.group("duration") else None
    except ValueError as e:
        raise ValueError(f"incident {text!r}: {e}") from None
    if duration is not None and duration <= 0:
        raise ValueError(f"incident {text!r}: duration must be positive")
    amount = _amount(text, kind, m.group("amount"))
    return Incident(
        kind=kind, site=m.group("site"), target=target, start_s=start, duration_s=duration, amount=amount
    )


def _amount(text: str, kind: str, raw: str | None) -> float | None:
    if kind in OPTIONAL_AMOUNT_KINDS and raw is None:
        return None
    if kind not in AMOUNT_KINDS | OPTIONAL_AMOUNT_KINDS:
        if raw is not None:
            raise ValueError(f"incident {text!r}: {kind} takes no =AMOUNT")
        return None
    if raw is None:
        raise ValueError(f"incident {text!r}: {kind} needs =AMOUNT (signed, in the sensor's unit)")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"incident {text!r}: bad amount {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"incident {text!r}: amount must be finite")
    if kind == "storm" and value <= 0:
        raise ValueError(f"incident {text!r}: a storm's intensity must be positive (mm/h)")
    return value


def _columns(rows: list[tuple], n: int) -> list[np.ndarray]:
    """Transpose entry tuples into n column arrays (empty arrays when there are no entries)."""
    if not rows:
        return [np.array([]) for _ in range(n)]
    return [np.array(c) for c in zip(*rows, strict=True)]


class IncidentEngine:
    """Applies a set of incidents to each tick's quiet values, all in a few array operations.

    Additive incidents (leak, overfill, storm, creep) are closed-form functions of time, so the
    result does not depend on the tick length; stuck and spike need the tick's values and keep a
    little state (the held value, whether the spike fired).
    """

    def __init__(
        self,
        model: FleetModel,
        layout: DeviceLayout,
        incidents: Sequence[Incident],
        start_s: float,
        seed: int = 0,
    ):
        self.model = model
        self.layout = layout
        self.incidents = tuple(incidents)
        self.start_s = start_s
        self._rng = np.random.default_rng([seed, 0x1C1D])
        self._slot = {(s.site, s.id): i for i, s in enumerate(model.sensors)}
        self._sites = {s.id: i for i, s in enumerate(model.sites)}
        add: list[tuple[int, float, float, float, float, float, float]] = []  # ramp entries
        lin: list[tuple[int, float, float, float, float]] = []
        storm: list[tuple[int, int, float, float, float]] = []  # (slot, role, t_on, t_off, mm/h)
        creep: list[tuple[int, float, float, float]] = []
        stuck: list[tuple[int, float, float]] = []
        spike: list[tuple[int, float]] = []
        outage: list[tuple[int, float, float]] = []
        setpoint: list[tuple[int, float, float, float, float]] = []  # (slot, t_on, t_off, delta, tau)
        mute: list[tuple[int, float, float]] = []
        offset: list[tuple[int, float, float]] = []  # (slot, from, amount): recalibration steps
        for number, inc in enumerate(self.incidents):
            t_on = start_s + inc.start_s
            dur = inc.duration_s if inc.duration_s is not None else DEFAULT_DURATION_S.get(inc.kind)
            t_off = t_on + dur if dur is not None else math.inf
            if inc.kind == "outage":
                outage.append((self._device(inc), t_on, t_off))
                continue
            if inc.kind == "storm":
                mm_h = STORM_MM_H if inc.amount is None else inc.amount
                storm.extend((slot, role, t_on, t_off, mm_h) for slot, role in self._storm_slots(inc))
                continue
            if inc.kind == "gap":
                mute.extend((slot, t_on, t_off) for slot in self._gap_slots(inc))
                continue
            slot = self._sensor(inc)
            if inc.kind == "leak":
                add.extend(self._leak_entries(inc, slot, t_on, t_off, number, seed))
            elif inc.kind == "seep":
                lin.extend(self._seep_entries(inc, slot, t_on, t_off, number, seed))
            elif inc.kind == "overfill":
                target = self._top(slot)
                rate = max(target - model.op[slot], 0.05 * self._span(slot)) / OVERFILL_TO_HH_S
                lin.append((slot, t_on, rate, t_off, 1200.0))
            elif inc.kind == "creep":
                creep.append((slot, t_on, t_off, self._creep_scale(slot)))
            elif inc.kind == "stuck":
                stuck.append((slot, t_on, t_off))
            elif inc.kind == "spike":
                spike.append((slot, t_on))
            elif inc.kind == "setpoint":
                tau = SETPOINT_TAU_S.get(model.sensors[slot].kind, DEFAULT_SETPOINT_TAU_S)
                setpoint.append((slot, t_on, t_off, float(inc.amount or 0.0), tau))
            elif inc.kind == "recal":
                mute.append((slot, t_on, t_off))
                offset.append((slot, t_off, float(inc.amount or 0.0)))
        (
            self._ramp_slot,
            self._ramp_on,
            self._ramp_off,
            self._ramp_peak,
            self._ramp_rise,
            self._ramp_fall,
            self._ramp_jitter,
        ) = _columns(add, 7)
        self._lin_slot, self._lin_on, self._lin_rate, self._lin_off, self._lin_fall = _columns(lin, 5)
        self._storm_slot, self._storm_role, self._storm_on, self._storm_off, self._storm_mm_h = _columns(
            storm, 5
        )
        self._creep_slot, self._creep_on, self._creep_fail, self._creep_k = _columns(creep, 4)
        self._stuck_slot, self._stuck_on, self._stuck_off = _columns(stuck, 3)
        self._stuck_held = np.full(len(stuck), np.nan)
        self._spike_slot, self._spike_on = _columns(spike, 2)
        self._spike_fired = np.zeros(len(spike), dtype=bool)
        self._out_dev, self._out_on, self._out_off = _columns(outage, 3)
        self._sp_slot, self._sp_on, self._sp_off, self._sp_delta, self._sp_tau = _columns(setpoint, 5)
        self._mute_slot, self._mute_on, self._mute_off = _columns(mute, 3)
        self._off_slot, self._off_from, self._off_amount = _columns(offset, 3)
        for name in (
            "_sp_slot",
            "_mute_slot",
            "_off_slot",
            "_ramp_slot",
            "_lin_slot",
            "_storm_slot",
            "_storm_role",
            "_creep_slot",
            "_stuck_slot",
            "_spike_slot",
            "_out_dev",
        ):
            setattr(self, name, getattr(self, name).astype(np.int64))

    # ---- resolving names

    def _where(self, inc: Incident) -> str:
        return f"incident {inc}"

    def _sensor(self, inc: Incident) -> int:
        if inc.site not in self._sites:
            raise ValueError(
                f"{self._where(inc)}: unknown site {inc.site!r} (sites: {', '.join(sorted(self._sites))})"
            )
        slot = self._slot.get((inc.site, inc.target or ""))
        if slot is None:
            raise ValueError(f"{self._where(inc)}: site {inc.site} has no sensor {inc.target!r}")
        allowed = SENSOR_KINDS_FOR.get(inc.kind)
        kind = self.model.sensors[slot].kind
        if allowed and kind not in allowed:
            raise ValueError(
                f"{self._where(inc)}: {inc.target} is a {kind} sensor; "
                f"{inc.kind} applies to {', '.join(allowed)}"
            )
        return slot

    def _device(self, inc: Incident) -> int:
        if inc.site not in self._sites:
            raise ValueError(f"{self._where(inc)}: unknown site {inc.site!r}")
        slot = self._slot.get((inc.site, inc.target or ""))
        device = (self.model.sensors[slot].device or DEFAULT_DEVICE) if slot is not None else inc.target
        try:
            return self.layout.device_index(inc.site, device or "")
        except ValueError:
            known = sorted({d for s, d in self.layout.devices if s == inc.site})
            raise ValueError(
                f"{self._where(inc)}: site {inc.site} has no device or sensor {inc.target!r} "
                f"(devices: {', '.join(known)})"
            ) from None

    def _gap_slots(self, inc: Incident) -> list[int]:
        """The sensor named, or every sensor of the device named."""
        slot = self._slot.get((inc.site, inc.target or ""))
        if slot is not None:
            return [slot]
        d = self._device(inc)
        return np.flatnonzero(self.layout.device_of_slot == d).tolist()

    def _storm_slots(self, inc: Incident) -> list[tuple[int, int]]:
        if inc.site not in self._sites:
            raise ValueError(f"{self._where(inc)}: unknown site {inc.site!r}")
        roles = {"rainfall": 0, "pond_level": 1, "dry_beach": 2}
        found = [
            (i, roles[s.kind])
            for i, s in enumerate(self.model.sensors)
            if s.site == inc.site and s.kind in roles
        ]
        if not found:
            raise ValueError(
                f"{self._where(inc)}: site {inc.site} has no rainfall, pond_level or dry_beach sensor"
            )
        return found

    # ---- parameters

    def _span(self, slot: int) -> float:
        return float(self.model.range_hi[slot] - self.model.range_lo[slot])

    def _top(self, slot: int) -> float:
        """The highest configured high limit, else 90 % of the range."""
        m = self.model
        for lim in (m.limit_hh[slot], m.limit_h[slot]):
            if not math.isnan(lim):
                return float(lim)
        return float(m.range_lo[slot] + 0.9 * self._span(slot))

    def _leak_peak(self, slot: int) -> float:
        """How far above its baseline a detector at the release reads: 1.2 x HH, capped by the range."""
        m = self.model
        lo = float(m.range_lo[slot])
        if not math.isnan(m.limit_hh[slot]):
            peak = 1.2 * (m.limit_hh[slot] - lo)
        elif not math.isnan(m.limit_h[slot]):
            peak = 2.0 * (m.limit_h[slot] - lo)
        else:
            peak = 0.6 * self._span(slot)
        return float(min(peak, 0.95 * self._span(slot)))

    def _leak_entries(
        self, inc: Incident, lead: int, t_on: float, t_off: float, number: int, seed: int
    ) -> list[tuple[int, float, float, float, float, float, float]]:
        """The lead detector rises first (T90 ≲ 30 s); group neighbours later and to 55-75 % of it."""
        rng = np.random.default_rng([seed, 0x1EA4, number])
        sensor: Sensor = self.model.sensors[lead]
        entries = [(lead, t_on, t_off, self._leak_peak(lead), 40.0, 60.0, 0.08)]
        if sensor.group is None:
            return entries
        neighbours = [
            i
            for i, s in enumerate(self.model.sensors)
            if s.site == sensor.site
            and s.group == sensor.group
            and i != lead
            and s.kind in SENSOR_KINDS_FOR["leak"]
        ]
        for k, slot in enumerate(neighbours, start=1):
            lag = 10.0 * k + float(rng.uniform(5.0, 15.0))
            gain = float(rng.uniform(0.55, 0.75)) * 0.9 ** (k - 1)
            entries.append(
                (slot, t_on + lag, t_off + lag, gain * self._leak_peak(slot), 60.0 + 30.0 * k, 90.0, 0.08)
            )
        return entries

    def _seep_entries(
        self, inc: Incident, lead: int, t_on: float, t_off: float, number: int, seed: int
    ) -> list[tuple[int, float, float, float, float]]:
        """Linear climbs: the lead detector to H in SEEP_TO_H_S; group neighbours later, at 40-60 % of it."""
        m = self.model
        rng = np.random.default_rng([seed, 0x5EE9, number])
        sensor: Sensor = m.sensors[lead]

        def rate(slot: int) -> float:
            h = (
                m.limit_h[slot]
                if not math.isnan(m.limit_h[slot])
                else m.range_lo[slot] + 0.25 * self._span(slot)
            )
            return float(max(h - m.op[slot], 0.05 * self._span(slot)) / SEEP_TO_H_S)

        entries = [(lead, t_on, rate(lead), t_off, SEEP_CLEAR_S)]
        if sensor.group is None:
            return entries
        neighbours = [
            i
            for i, s in enumerate(m.sensors)
            if s.site == sensor.site
            and s.group == sensor.group
            and i != lead
            and s.kind in SENSOR_KINDS_FOR["seep"]
        ]
        for k, slot in enumerate(neighbours, start=1):
            lag = 20.0 * k + float(rng.uniform(10.0, 30.0))
            gain = float(rng.uniform(0.4, 0.6)) * 0.9 ** (k - 1)
            entries.append((slot, t_on + lag, gain * rate(slot), t_off + lag, SEEP_CLEAR_S))
        return entries

    def _creep_scale(self, slot: int) -> float:
        """Scale v0·T of the inverse-velocity law: H is crossed at ~0.9 of the time to failure."""
        m = self.model
        top = m.limit_h[slot] if not math.isnan(m.limit_h[slot]) else m.limit_hh[slot]
        if math.isnan(top):
            top = m.range_lo[slot] + 0.3 * self._span(slot)
        return float(max(top - m.op[slot], 1.0) / math.log(10.0))

    # ---- applying

    def silenced(self, t_s: float) -> np.ndarray:
        """(n_devices,) bool: devices in an outage at `t_s`."""
        mask = np.zeros(len(self.layout.devices), dtype=bool)
        if self._out_dev.size:
            mask[self._out_dev[(t_s >= self._out_on) & (t_s < self._out_off)]] = True
        return mask

    def muted(self, t_s: float) -> np.ndarray | None:
        """(n_sensors,) bool: sensors in a gap or off line for maintenance at `t_s`; None if none can be."""
        if not self._mute_slot.size:
            return None
        mask = np.zeros(self.model.n, dtype=bool)
        mask[self._mute_slot[(t_s >= self._mute_on) & (t_s < self._mute_off)]] = True
        return mask

    def apply(self, t_s: float, values: np.ndarray, due: np.ndarray | None = None) -> np.ndarray:
        """Return `values` (n_sensors,) with every incident active at `t_s` applied; `due` gates spikes."""
        if not self.incidents:
            return values
        m = self.model
        out = values.copy()
        if self._ramp_slot.size:
            end = np.minimum(t_s, self._ramp_off) - self._ramp_on
            rise = self._ramp_peak * (1.0 - np.exp(-np.fmax(end, 0.0) / self._ramp_rise))
            fall = np.exp(-np.fmax(t_s - self._ramp_off, 0.0) / self._ramp_fall)
            jitter = 1.0 + self._ramp_jitter * self._rng.standard_normal(self._ramp_slot.size)  # wind gusts
            np.add.at(out, self._ramp_slot, np.where(end > 0, rise * fall * jitter, 0.0))
        if self._lin_slot.size:
            run = np.fmax(np.minimum(t_s, self._lin_off) - self._lin_on, 0.0)
            fall = np.exp(-np.fmax(t_s - self._lin_off, 0.0) / self._lin_fall)
            np.add.at(out, self._lin_slot, self._lin_rate * run * fall)
        if self._storm_slot.size:
            np.add.at(out, self._storm_slot, self._storm_offsets(t_s))
        if self._sp_slot.size:  # closed-loop first-order response to the setpoint step (and back)
            up = np.fmax(t_s - self._sp_on, 0.0)
            down = np.fmax(t_s - self._sp_off, 0.0)
            moved = (1.0 - np.exp(-up / self._sp_tau)) - (1.0 - np.exp(-down / self._sp_tau))
            np.add.at(out, self._sp_slot, self._sp_delta * moved)
        if self._off_slot.size:
            np.add.at(out, self._off_slot, np.where(t_s >= self._off_from, self._off_amount, 0.0))
        if self._creep_slot.size:
            s = t_s - self._creep_on
            life = self._creep_fail - self._creep_on
            left = np.fmax(life - s, 1e-9)
            moved = np.where(s > 0, self._creep_k * np.log(life / left), 0.0)
            failed = s >= life * (1.0 - 1e-6)
            span = m.range_hi[self._creep_slot] - m.range_lo[self._creep_slot]
            np.add.at(out, self._creep_slot, np.where(failed, span, np.fmin(moved, span)))
        np.clip(out, m.range_lo, m.range_hi, out=out)
        out = np.round(out * m.scale) / m.scale
        if self._stuck_slot.size:
            active = (t_s >= self._stuck_on) & (t_s < self._stuck_off)
            grab = active & np.isnan(self._stuck_held)
            self._stuck_held[grab] = out[self._stuck_slot[grab]]  # frozen as last read, incidents included
            out[self._stuck_slot[active]] = self._stuck_held[active]
        if self._spike_slot.size:
            ready = ~self._spike_fired & (t_s >= self._spike_on)
            if due is not None:
                ready &= due[self._spike_slot]
            slots = self._spike_slot[ready]
            out[slots] = m.range_lo[slots] + SPIKE_FRACTION * (m.range_hi[slots] - m.range_lo[slots])
            self._spike_fired |= ready
        return out

    def _storm_offsets(self, t_s: float) -> np.ndarray:
        """Gauges read the storm; the pond rises by e = g·I·τ(1-e^(-s/τ)), then drains; beach -e/slope."""
        m = self.model
        site = m.site_of_slot[self._storm_slot]
        s = t_s - self._storm_on
        length = self._storm_off - self._storm_on
        raining = (s >= 0) & (s < length)
        tau = m.site_decant_tau_s[site]
        rain_m_per_s = m.site_rain_gain_m_per_mm[site] * self._storm_mm_h / HOUR_S
        filled = rain_m_per_s * tau * (1.0 - np.exp(-np.clip(s, 0.0, length) / tau))
        excess = np.where(s > 0, filled * np.exp(-np.fmax(s - length, 0.0) / tau), 0.0)
        gusts = np.fmax(0.0, 1.0 + 0.15 * self._rng.standard_normal(s.size))
        gauge = np.where(raining, self._storm_mm_h * gusts, 0.0)
        role = self._storm_role
        return np.where(
            role == 0, np.round(gauge, 1), np.where(role == 1, excess, -excess / m.site_beach_slope[site])
        )
