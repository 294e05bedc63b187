"""Operating modes of the field realism (feature `modes`): machines, truck loading, batches, thermostats.

Plants do not sit at one operating point. Machines (pumps, compressors) start and stop; trucks are
loaded one after another on day shifts, and the loading pumps and the tanks they draw from follow
them; batch reactors heat, hold and cool; heated tanks saw-tooth on their thermostats; tanks are
filled to their normal fill height (simulators/tanks.py). All of it is per-slot arrays stepped with a
few numpy calls, driven by generators that simulators/field.py (FieldPhysics) owns; it calls `before`
(trucks, tanks) and `after` (machines, batches, thermostats) around its other features.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from sensors.model import Sensor
from simulators.signals import DRIFT, LEVEL_M_TO_UNIT, LPG_P
from simulators.tanks import TankOperations
from simulators.workweek import HOUR_S, day_shift, weekday

if TYPE_CHECKING:
    from simulators.signals import FleetModel

#: record(t_s, site, target, what, value): how the modes tell the field log what they did.
Record = Callable[[float, str, str, str, "float | None"], None]

#: How fast a machine's sensors follow a start or stop, by kind (s).
MODE_TAU_S = {"pressure": 15.0, "flow": 45.0, "temperature": 600.0}
#: A truck at the loading bay takes 0.4-1.2 h (a 25 t LPG tanker at ~50 m³/h, a 30 m³ product truck);
#: the next one comes after an exponential gap (mean, h), on day shifts only.
TRUCK_LOAD_H = (0.4, 1.2)
TRUCK_CHANGE_H = 1 / 6  # disconnect, weigh, connect and earth the next truck: at least 10 min ...
TRUCK_GAP_H = 0.3  # ... plus an exponential wait (mean, h)
#: Batch reactors (names with 间歇/批次/batch): heat at 30-45 °C/h to the reaction temperature (10-15 % of
#: the band below H), hold 3-5 h, cool with jacket water (τ 40-60 min), discharge and recharge in 1-2 h;
#: new batches start on working days only.
BATCH_WORDS = re.compile(r"间歇|批次|batch", re.IGNORECASE)
#: Heated storage (names with 加热/保温/伴热/heated): steam coils on an on/off thermostat. The heater
#: switches off at 12-18 % of the band below H and back on 4-7 °C lower; with the heater on, the tank
#: would settle 25-40 °C above the switch-off point, off it cools to the weather, time-constant 6-12 h.
HEATED_WORDS = re.compile(r"加热|保温|伴热|heated", re.IGNORECASE)
IDLE, HEAT, HOLD, COOL = range(4)
#: How a machine's state shows: flows stop (GATE), discharge pressures lose the machine's head (LIFT),
#: discharge temperatures fall back to the weather (HEATS; loaded: 12-20 % of the band below H).
GATE, LIFT, HEATS = range(3)
#: Machines in continuous service run 4-24 h, then stand 0.5-6 h.
RUN_H = (4.0, 24.0)
REST_H = (0.5, 6.0)
#: A machine tag in a sensor's name (K101, P-201): sensors naming the same machine share its state.
MACHINE_TAG = re.compile(r"[A-Z]{1,2}-?\d{3}[A-Z]?")
#: Names of pump or compressor discharge pressures, and of loading duty (runs on day shifts only).
PUMP_WORDS = re.compile(r"泵|压缩机|pump|compressor|discharge", re.IGNORECASE)
LOADING_WORDS = re.compile(r"装车|装卸|灌装|卸车|loading", re.IGNORECASE)


def words(pattern: re.Pattern[str], names: list[str]) -> np.ndarray:
    """(n,) bool: which names match."""
    return np.array([bool(pattern.search(w)) for w in names], dtype=bool)


def _machine(sensor: Sensor) -> tuple[str, str]:
    """(site, machine) a mode sensor belongs to: the tag in its name, else the sensor itself."""
    tag = MACHINE_TAG.search(sensor.name)
    return (sensor.site, tag.group(0) if tag else sensor.id)


class OperatingModes:
    """Machines, trucks, batches, thermostats and tanks of one FleetModel (see the module docstring)."""

    def __init__(
        self,
        model: FleetModel,
        names: list[str],
        par: np.random.Generator,
        rng: np.random.Generator,
        tank_rng: np.random.Generator,
        record: Record,
    ):
        self.model = m = model
        self._rng = rng
        self._record = record
        kind = np.array([s.kind for s in m.sensors])
        width = m.band_hi - m.band_lo
        phys = m.physics
        drift_like = phys == DRIFT
        batch = (kind == "temperature") & words(BATCH_WORDS, names)

        # -- modes: pumps and compressors that start and stop; sensors naming the same machine share it
        pumped = words(PUMP_WORDS, names)
        gate = drift_like & (kind == "flow") & ~m.has_lo_alarm
        lift = (kind == "pressure") & pumped & np.isin(phys, (DRIFT, LPG_P))
        heated = (kind == "temperature") & words(HEATED_WORDS, names)
        heat = (kind == "temperature") & pumped & ~batch & ~heated
        self.mode_slots = md = np.flatnonzero(gate | lift | heat)
        self.mode_style = np.select([gate[md], lift[md]], [GATE, LIFT], HEATS).astype(np.int8)
        self.mode_lift = np.where(lift[md], par.uniform(0.25, 0.35, md.size) * width[md], 0.0)
        # a DRIFT discharge pressure sits at its running value; an LPG one at the suction (vapour) pressure
        self.mode_on_ref = np.where(lift[md] & (phys[md] == DRIFT), 1.0, 0.0)
        top = np.where(m.has_hi_alarm[md], m.band_hi[md], m.range_hi[md])
        self.mode_hot = top - par.uniform(0.12, 0.2, md.size) * (top - m.range_lo[md])  # loaded, °C
        self.mode_base = np.full(md.size, np.nan)  # EW mean of a stopped machine's temperature (30 min)
        self.mode_tau_s = np.array([MODE_TAU_S.get(k, 30.0) for k in kind[md]], dtype=np.float64)
        self.mode = np.zeros(md.size)
        machines = [_machine(m.sensors[i]) for i in md.tolist()]
        keys = {key: g for g, key in enumerate(dict.fromkeys(machines))}
        self.mode_machine = np.array([keys[k] for k in machines], dtype=np.int64)
        loading = words(LOADING_WORDS, [names[i] for i in md.tolist()])
        nm = len(keys)
        self.machine_loading = np.zeros(nm, dtype=bool)
        np.logical_or.at(self.machine_loading, self.mode_machine, loading)
        self.machine_site = np.zeros(nm, dtype=np.int64)
        self.machine_site[self.mode_machine] = m.site_of_slot[md]
        self.machine_on = ~self.machine_loading & (par.random(nm) < 0.7)
        self.machine_next = np.full(nm, np.inf)
        self.machine_names = list(keys)
        # truck loading: a bay at each site with tanks or loading machines, served on day shifts;
        # loading pumps and tank draws follow it
        self.bay = np.zeros(len(m.sites), dtype=bool)
        self.bay[self.machine_site[self.machine_loading]] = True
        self.bay[m.site_of_slot[m._level]] = True
        self.truck_on = np.zeros(len(m.sites), dtype=bool)
        self.truck = np.zeros(len(m.sites))  # smoothed 0..1 (valves open over a minute)
        self.truck_next = np.full(len(m.sites), np.inf)

        # -- batch reactors
        self.batch_slots = np.flatnonzero(batch)
        bt = self.batch_slots
        top = np.where(m.has_hi_alarm[bt], m.band_hi[bt], m.range_hi[bt])
        self.batch_hold = top - par.uniform(0.10, 0.15, bt.size) * (top - m.range_lo[bt])
        self.batch_heat = par.uniform(30.0, 45.0, bt.size) / HOUR_S  # °C/s
        self.batch_cool_s = par.uniform(40.0, 60.0, bt.size) * 60.0
        self.batch_phase = np.full(bt.size, IDLE, dtype=np.int8)
        self.batch_lift = np.zeros(bt.size)  # above the idle (weather-following) temperature
        self.batch_base = np.full(bt.size, np.nan)  # EW mean of that temperature (30 min)
        self.batch_until = np.full(bt.size, np.inf)

        # -- heated storage on a thermostat
        self.thermo_slots = th = np.flatnonzero(heated & ~batch)
        top = np.where(m.has_hi_alarm[th], m.band_hi[th], m.range_hi[th])
        self.thermo_off = top - par.uniform(0.12, 0.18, th.size) * (top - m.range_lo[th])
        self.thermo_on = self.thermo_off - par.uniform(4.0, 7.0, th.size)
        self.thermo_rise = par.uniform(25.0, 40.0, th.size)  # settled, heater on: above thermo_off
        self.thermo_tau_s = par.uniform(6.0, 12.0, th.size) * HOUR_S
        self.thermo_heating = np.ones(th.size, dtype=bool)
        self.thermo_lift = np.full(th.size, np.nan)  # above the weather; starts inside the band

        # -- tanks run by operators
        self.tanks: TankOperations | None = None
        if m._level.size:
            lv = m._level
            to_unit = np.array([LEVEL_M_TO_UNIT.get(m.sensors[i].unit, 1.0) for i in lv.tolist()])
            self.tanks = TankOperations(m.band_lo[lv], m.band_hi[lv], to_unit, par, tank_rng)

    def start(self, t_s: float) -> None:
        """Draw the first switch times (at the first step)."""
        rng = self._rng
        k = self.machine_on.size
        dwell = np.where(self.machine_on, rng.uniform(*RUN_H, k), rng.uniform(*REST_H, k))
        self.machine_next = np.where(self.machine_loading, np.inf, t_s + dwell * HOUR_S)
        self.mode = self.machine_on[self.mode_machine].astype(np.float64)
        bays = np.flatnonzero(self.bay)
        self.truck_next[bays] = t_s + rng.exponential(TRUCK_GAP_H, bays.size) * HOUR_S
        self.batch_until = t_s + rng.uniform(0.0, 3.0, self.batch_slots.size) * HOUR_S

    def before(self, t_s: float, dt: float, local: np.ndarray, value: np.ndarray) -> None:
        """Trucks, then the tanks they draw from (true levels replace the classic fill/draw cycle)."""
        m = self.model
        self._step_trucks(t_s, dt, local)
        if self.tanks is not None:
            lv = m._level
            loading = self.truck[m.site_of_slot[lv]]
            true = self.tanks.step(t_s, dt, loading, lambda i, w, v: self._note(lv[i], w, v, t_s))
            value[lv] += true - m._level_value

    def after(self, t_s: float, dt: float, local: np.ndarray, value: np.ndarray) -> None:
        """Machines, batch reactors and thermostats, on top of the other features' values."""
        m = self.model
        if self.mode_slots.size:
            self._step_machines(t_s, dt)
            md, style = self.mode_slots, self.mode_style
            v = value[md]
            a = math.exp(-dt / 1800.0)
            self.mode_base = np.where(np.isnan(self.mode_base), v, self.mode_base * a + v * (1.0 - a))
            lo = m.range_lo[md]
            value[md] = np.select(
                [style == GATE, style == LIFT],
                [lo + self.mode * (v - lo), v + (self.mode - self.mode_on_ref) * self.mode_lift],
                v + self.mode * (self.mode_hot - self.mode_base),
            )
        if self.batch_slots.size:
            bt = self.batch_slots
            value[bt] += self._step_batches(t_s, dt, local[m.site_of_slot[bt]], value[bt])
        if self.thermo_slots.size:
            value[self.thermo_slots] += self._step_thermostats(dt, value[self.thermo_slots])

    def _note(self, slots: np.ndarray, what: str, values: np.ndarray | None, t_s: float) -> None:
        sensors = self.model.sensors
        for j, i in enumerate(slots.tolist()):
            v = None if values is None else float(values[j])
            self._record(t_s, sensors[i].site, sensors[i].id, what, v)

    def _step_trucks(self, t_s: float, dt: float, local: np.ndarray) -> None:
        """Trucks at each site's loading bay: one after another on day shifts, none at night or weekends."""
        rng = self._rng
        due = t_s >= self.truck_next
        if due.any():
            idx = np.flatnonzero(due)
            on = self.truck_on[idx]
            start = ~on & (day_shift(local[idx]) > 0.5)
            k = idx.size
            run_h = rng.uniform(*TRUCK_LOAD_H, k)
            rest_h = TRUCK_CHANGE_H + rng.exponential(TRUCK_GAP_H, k)
            self.truck_on[idx] = start
            self.truck_next[idx] = t_s + np.where(start, run_h, rest_h) * HOUR_S
            for i in idx[start].tolist():
                self._record(t_s, self.model.sites[i].id, "loading bay", "truck starts", None)
        self.truck = self.truck_on + (self.truck - self.truck_on) * math.exp(-dt / 60.0)

    def _step_machines(self, t_s: float, dt: float) -> None:
        """Start and stop machines (loading ones follow their site's trucks); move their sensors."""
        rng = self._rng
        due = t_s >= self.machine_next
        if due.any():
            idx = np.flatnonzero(due)
            start = ~self.machine_on[idx]
            k = idx.size
            dwell_h = np.where(start, rng.uniform(*RUN_H, k), rng.uniform(*REST_H, k))
            self.machine_on[idx] = start
            self.machine_next[idx] = t_s + dwell_h * HOUR_S
            for g, on in zip(idx.tolist(), start.tolist(), strict=True):
                site, machine = self.machine_names[g]
                self._record(t_s, site, machine, "machine starts" if on else "machine stops", None)
        ld = self.machine_loading
        self.machine_on[ld] = self.truck_on[self.machine_site[ld]]
        target = self.machine_on[self.mode_machine].astype(np.float64)
        self.mode = target + (self.mode - target) * np.exp(-dt / self.mode_tau_s)

    def _step_batches(self, t_s: float, dt: float, local: np.ndarray, idle_c: np.ndarray) -> np.ndarray:
        """Advance the batch cycles; return each reactor's lift above its idle temperature `idle_c`."""
        rng = self._rng
        a = math.exp(-dt / 1800.0)
        self.batch_base = np.where(np.isnan(self.batch_base), idle_c, self.batch_base * a + idle_c * (1 - a))
        ph, lift = self.batch_phase, self.batch_lift
        need = self.batch_hold - self.batch_base  # lift that puts the reactor at its reaction temperature
        start = (ph == IDLE) & (t_s >= self.batch_until) & (weekday(local) < 5)
        ph[start] = HEAT
        self._note(self.batch_slots[start], "batch starts", None, t_s)
        heat = ph == HEAT
        lift[heat] += self.batch_heat[heat] * dt
        hot = heat & (lift >= need)
        ph[hot] = HOLD
        self.batch_until[hot] = t_s + rng.uniform(3.0, 5.0, int(hot.sum())) * HOUR_S
        hold = ph == HOLD
        lift[hold] = need[hold]  # the jacket controller holds the reaction temperature
        done = hold & (t_s >= self.batch_until)
        ph[done] = COOL
        cool = ph == COOL
        lift[cool] *= np.exp(-dt / self.batch_cool_s[cool])
        cold = cool & (lift < 1.0)
        lift[cold] = 0.0
        ph[cold] = IDLE
        self.batch_until[cold] = t_s + rng.uniform(1.0, 2.0, int(cold.sum())) * HOUR_S
        return lift

    def _step_thermostats(self, dt: float, weather_c: np.ndarray) -> np.ndarray:
        """On/off heating between two switch points; return each tank's lift above `weather_c`."""
        if np.isnan(self.thermo_lift).any():
            self.thermo_lift = 0.5 * (self.thermo_on + self.thermo_off) - weather_c
        temp = weather_c + self.thermo_lift
        turn_on = self.thermo_heating | (temp <= self.thermo_on)
        self.thermo_heating = np.where(temp >= self.thermo_off, False, turn_on)
        goal = np.where(self.thermo_heating, self.thermo_off + self.thermo_rise - weather_c, 0.0)
        self.thermo_lift = goal + (self.thermo_lift - goal) * np.exp(-dt / self.thermo_tau_s)
        return self.thermo_lift
