"""Scenarios with what real recordings have (issue 9 item 6): quiet weeks that must raise nothing, and one
slow incident hidden in the same kind of data.

Each runs the simulator with the `field` realism (simulators/realism.py: coloured noise, heavy-tailed
bursts, operating modes, operator transfers, batch cycles, thermostats, setpoint moves, recalibration
steps, the working week, seasonal pond drift, gaps), plus the scheduled operations a scenario's story
needs (`setpoint`, `recal`, `outage` specs of simulators/incidents.py). A quiet recording is one quiet stretch
at its site: no early warning, alarm or fault; the only events allowed are stale conditions (and their
returns to normal) of the sensors and gateways that really went silent, which the notes list.
`reactor_cooling_loss` is the exception: a cooling failure whose physics is written here.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime

import numpy as np

from sensors.model import Registry
from simulators.realism import FIELD, Realism
from tests.scenarios.recording import DAY_S, HOUR_S, MIN_S, T0_S, TZ, Built, Recording, iso, simulate

#: The reactor's story has one operating change, the scheduled one: no random setpoint moves.
REACTOR_REALISM = Realism.parse("field,-setpoints")

GAP_WORDS = ("sensor gap", "maintenance")
STALE_ALLOWED = {"type": ["stale", "return_to_normal"], "level": "STALE"}


def _silent_targets(rec: Recording, specs: tuple[str, ...]) -> list[str]:
    """Sensors and gateways that went silent (realism gaps and maintenance, scheduled recal/gap/outage),
    with every sensor of a silent gateway: a slow member may go stale after the gateway's roll-up."""
    out = {e.target for e in rec.events if e.what.startswith(GAP_WORDS) or e.what.startswith("gateway gap")}
    for spec in specs:
        kind, _, rest = spec.partition(":")
        if kind in ("recal", "gap", "outage"):
            out.add(rest.split("/", 1)[1].split("@", 1)[0])
    out |= {s.id for s in rec.registry.sensors() if s.device in out}
    return sorted(out)


def _quiet(rec: Recording, site: str, start: float, end: float, specs: tuple[str, ...], why: str) -> dict:
    window: dict = {"from": iso(start), "to": iso(end), "site": site}
    silent = _silent_targets(rec, specs)
    if silent:
        window["allow"] = [{**STALE_ALLOWED, "sensors": silent}]
    window["why"] = why
    return window


def _fmt(v: float | None) -> str:
    return "" if v is None else f" {v:+.4g}" if abs(v) < 1e4 else f" {v:.0f}"


def _notes(rec: Recording, specs: tuple[str, ...]) -> dict:
    """What happened, for whoever diagnoses an event: scheduled operations, the realism log, extremes."""
    listed: dict[str, list[str]] = defaultdict(list)
    counted: Counter[str] = Counter()
    for e in rec.events:
        if e.what.startswith(("machine", "batch", "truck")):
            counted[f"{e.target} {e.what}"] += 1
        elif e.what.startswith(("sensor gap", "gateway gap")):
            listed["gaps"].append(f"{iso(e.t_s)} {e.target} silent for {e.value / 60:.0f} min")
        else:
            listed[e.what.split(" ", 1)[0]].append(f"{iso(e.t_s)} {e.target} {e.what}{_fmt(e.value)}")
    notes: dict = {}
    if specs:
        notes["scheduled"] = list(specs)
    notes.update(listed)
    if counted:
        notes["counts"] = dict(sorted(counted.items()))
    notes["ranges"] = {
        sid: [float(s.value.min()), float(s.value.max())] for sid, s in rec.series.items() if s.value.size
    }
    return notes


def _first_at(t_s: np.ndarray, value: np.ndarray, limit: float, after_s: float) -> float:
    """Time of the first reading at or above `limit` from `after_s` on."""
    hit = np.flatnonzero((t_s >= after_s) & (value >= limit))
    if not hit.size:
        raise RuntimeError(f"never reaches {limit}: the scenario does not produce its incident")
    return float(t_s[hit[0]])


def _run(
    registry: Registry, start: float, end: float, seed: int, specs: tuple[str, ...], realism: Realism = FIELD
) -> Recording:
    return simulate(registry, start, end, seed, specs, realism=realism)


# ---- scenarios


def tank_farm_routine(seed: int, registry: Registry) -> Built:
    """A week of a tank farm's routine: receipts to the normal fill height, truck loading on day shifts."""
    site, start, end = "jianghai-tf-01", T0_S, T0_S + 7 * DAY_S
    specs: tuple[str, ...] = ()
    rec = _run(registry, start, end, seed, specs)
    return Built(
        rec,
        {
            "title": "Tank farm routine: receipts up to the normal fill height and truck loading, one week",
            "description": (
                "Monday to Sunday at the Jianghai tank farm (three Φ30 m tanks, H 14.2 m = maximum working "
                "level, HH 14.8 m). Operators run the tanks as a terminal does (simulator realism `modes`, "
                "simulators/tanks.py): a receipt is pumped in at 0.5-0.75 m/h (350-530 m³/h) and stopped "
                "at the tank's normal fill height, 0.65-1.3 m below H; the product settles 4-12 h; it "
                "leaves by truck loading, one truck after another on weekday day shifts (0.15-0.3 m/h "
                "while a truck loads, nothing at night or at the weekend); at the reorder level the next "
                "receipt is nominated and arrives 2-24 h later, at any hour. Blanket pressures and "
                "temperatures carry coloured noise, small process bursts, setpoint moves of the N2 "
                "regulators and the weekly load; sensors and gateways drop out now and then. Every fill "
                "stops short of H by the operator's plan: nothing may be warned, alarmed or faulted."
            ),
            "incidents": [],
            "quiet": [
                _quiet(rec, site, start, end, specs, "a normal week of receipts and truck loading"),
            ],
            "notes": _notes(rec, specs),
        },
    )


def reactor_setpoint(seed: int, registry: Registry) -> Built:
    """Two weeks of a hydrogenation reactor: AR noise, the working week, a setpoint raised by 5 °C."""
    site, start, end = "xinhui-hyd-01", T0_S, T0_S + 14 * DAY_S
    specs = ("setpoint:xinhui-hyd-01/R101-TT@+8d10h=+5",)
    rec = _run(registry, start, end, seed, specs, REACTOR_REALISM)
    raised = start + 8 * DAY_S + 10 * HOUR_S
    return Built(
        rec,
        {
            "title": "Hydrogenation reactor: coloured noise, the working week and a setpoint change",
            "description": (
                "Fourteen days of DCS data (every 5 min) of continuous hydrogenation reactor R-101, bed "
                "temperature ~150 °C (L 130, H 170, HH 180 °C), hydrogen pressure ~2.6 MPa (H 3.2), "
                "hydrogen make-up flow. Simulator realism `field` but for random setpoint moves: coloured "
                "noise (AR(1), Student-t innovations) on top of slow drift, occasional mean-reverting "
                "process upsets, throughput that follows the day shift and the working week (full on "
                "weekday days, ~85 % at night and at weekends, so the bed runs cooler and the flow "
                "lower), instrument gaps. On "
                + datetime.fromtimestamp(raised, TZ).strftime("%a %d %b %H:%M")
                + " the operators raise the temperature setpoint by 5 °C to make up for catalyst ageing "
                "(`setpoint` spec): the bed settles ~5 °C higher with the 30-min closed-loop response and "
                "stays there, around 153-155 °C, some 15 °C under H. An operating change, not an incident: "
                "nothing may be warned, alarmed or faulted."
            ),
            "incidents": [],
            "quiet": [_quiet(rec, site, start, end, specs, "two weeks of normal operation")],
            "notes": _notes(rec, specs),
        },
    )


def dam_maintenance(seed: int, registry: Registry) -> Built:
    """Dam instruments through two weeks of maintenance: a GNSS antenna swap, a piezometer, an RTU outage."""
    site, start, end = "renhua-tsf-01", T0_S, T0_S + 14 * DAY_S
    specs = (
        "recal:renhua-tsf-01/GNSS-01@+4d10h~3h=+4.5",
        "outage:renhua-tsf-01/sg-rtu-02@+6d19h~11h",
        "recal:renhua-tsf-01/PZ-A2@+9d9h~5h=-0.3",
    )
    rec = _run(registry, start, end, seed, specs)
    return Built(
        rec,
        {
            "title": "Tailings dam: maintenance steps and data gaps in quiet monitoring data",
            "description": (
                "Two July weeks of the Renhua dam's online monitoring (30-min solutions): GNSS "
                "displacement creeping a few mm/yr with coloured GNSS noise (AR(1), τ 4 h, 0.8 mm, "
                "Student-t) on the ~0.7 mm white noise, piezometers and the seepage weir with slow drift "
                "(simulator realism `field`). Maintenance the way it happens: on day 5 the GNSS-01 antenna, "
                "damaged by lightning, is replaced; the receiver is off for 3 h and its solutions come back "
                "4.5 mm further downstream (new antenna phase centre and mount), a step, not movement. On "
                "day 7 the solar-powered RTU sg-rtu-02 runs flat overnight after rainy days and is silent "
                "for 11 h. On day 10 piezometer PZ-A2 is replaced; the new gauge's zero puts the "
                "phreatic line 0.30 m shallower, still 12 m from its orange limit. Random sensor gaps and "
                "recalibrations of the realism model come on top. Nothing may be warned, alarmed or "
                "faulted; the silent sensors and the RTU may go stale."
            ),
            "incidents": [],
            "quiet": [_quiet(rec, site, start, end, specs, "two weeks with maintenance steps and gaps")],
            "notes": _notes(rec, specs),
        },
    )


def lpg_loading_modes(seed: int, registry: Registry) -> Built:
    """A week of truck loading at an LPG station: the loading pump switching on and off all day."""
    site, start, end = "gaolan-lpg-01", T0_S, T0_S + 7 * DAY_S
    specs: tuple[str, ...] = ()
    rec = _run(registry, start, end, seed, specs)
    return Built(
        rec,
        {
            "title": "LPG truck loading: a pump discharge pressure switching between operating modes",
            "description": (
                "Monday to Sunday at the Gaolan LPG station. Road tankers are loaded one after another on "
                "weekday day shifts (0.4-1.2 h per truck, at least 10 min between trucks, none at night or "
                "at the weekend; simulator realism `modes`). Loading pump P-201 starts with each truck: its "
                "discharge pressure steps from the sphere's vapour pressure (0.75-0.95 MPa this week, "
                "following the liquid temperature's daily cycle) up by the pump head (0.55-0.75 MPa) "
                "within seconds, and falls back when the truck is full; the loading flow jumps between 0 "
                "and ~35 m³/h (a low-flow cut-off makes a stopped meter read exactly 0). The spheres "
                "are drawn while trucks load and refilled by receipts to their normal fill height "
                "(78-81.5 %, below H 85 %). Coloured noise, gaps and the realism model's other behaviours "
                "come on top. The highest discharge pressure stays well under H 2.2 MPa: nothing may be "
                "warned, alarmed or faulted."
            ),
            "incidents": [],
            "quiet": [_quiet(rec, site, start, end, specs, "a normal loading week")],
            "notes": _notes(rec, specs),
        },
    )


def pond_wet_season(seed: int, registry: Registry) -> Built:
    """Three weeks of a tailings pond in the plum-rain season: showers and a slow seasonal rise."""
    site = "chenzhou-tsf-01"
    start = datetime(2026, 6, 1, tzinfo=TZ).timestamp()
    end = start + 21 * DAY_S
    specs = ("recal:chenzhou-tsf-01/PL-01@+10d10h~2h=+0.06",)
    rec = _run(registry, start, end, seed, specs)
    return Built(
        rec,
        {
            "title": "Tailings pond in the wet season: showers and a seasonal rise, far below H",
            "description": (
                "Three weeks of June (plum-rain season) at the Chenzhou pond, 30-min solutions. Showers "
                "every ~2 days (0.5-6 mm/h for 0.5-3 h) lift the pond by rain x catchment/pond area x "
                "runoff and the decant drains it (DOMAIN §7.4); under them the pond rises slowly with the "
                "season (simulator realism `seasonal`: ~1 cm/day in June, the pond stands lowest before "
                "the flood season and highest at its end), and the dry beach shortens with it. The pond "
                "stays 1.2-1.5 m under its flood-season control level H 309.0 m. Before the flood "
                "season the radar gauge's elevation is re-checked (GB 51108 6.4, DOMAIN §4.3): it is off "
                "for 2 h on day 11 and reads 6 cm higher afterwards (`recal` spec). Rain-gauge readings "
                "stay under the orange intensity. Nothing may be warned, alarmed or faulted."
            ),
            "incidents": [],
            "quiet": [_quiet(rec, site, start, end, specs, "three weeks of ordinary wet-season weather")],
            "notes": _notes(rec, specs),
        },
    )


def batch_reactor_cycles(seed: int, registry: Registry) -> Built:
    """A working week of batch reactors: heat-up, hold below H, cool, recharge; idle at the weekend."""
    site, start, end = "xinhui-batch-01", T0_S, T0_S + 7 * DAY_S
    specs: tuple[str, ...] = ()
    rec = _run(registry, start, end, seed, specs)
    return Built(
        rec,
        {
            "title": "Batch reactors: every heat-up climbs steeply and stops below H",
            "description": (
                "Monday to Sunday in a fine-chemicals batch workshop: reactors R-201 and R-202 run one "
                "recipe (simulator realism `modes`): charged at ambient temperature, heated with jacket "
                "steam at 30-45 °C/h to the reaction temperature, 10-15 % of the band below H (about "
                "81-86 °C against H 95 °C), held there 3-5 h by the jacket controller, cooled with jacket "
                "water (τ 40-60 min), discharged and recharged in 1-2 h: two to three batches a day per "
                "reactor, started on working days only, so both reactors stand idle at the weekend and "
                "follow the weather. Coloured noise and the occasional gap come on top. Every heat-up "
                "stops at the recipe's temperature: nothing may be warned, alarmed or faulted."
            ),
            "incidents": [],
            "quiet": [_quiet(rec, site, start, end, specs, "a normal production week")],
            "notes": _notes(rec, specs),
        },
    )


def compressor_modes(seed: int, registry: Registry) -> Built:
    """A week of a reciprocating compressor starting and stopping: discharge temperature steps."""
    site, start, end = "xinhui-hyd-01", T0_S, T0_S + 7 * DAY_S
    specs: tuple[str, ...] = ()
    rec = _run(registry, start, end, seed, specs)
    return Built(
        rec,
        {
            "title": "Compressor starts and stops: the discharge temperature between two operating modes",
            "description": (
                "A week of hydrogen make-up compressor K-101 at the hydrogenation unit (DCS, every "
                "minute). The machine runs 4-24 h while the reactor takes make-up hydrogen and stands "
                "0.5-6 h when it does not (simulator realism `modes`): loaded, its second-stage discharge "
                "temperature settles at ~120-130 °C within ~10 min (thermal time-constant), stopped it "
                "cools back to the weather; the discharge flow steps between ~650 Nm³/h and 0. Coloured "
                "noise, bursts, setpoint moves of the flow and gaps come on top. Every start settles "
                "well below H 150 °C: nothing may be warned, alarmed or faulted."
            ),
            "incidents": [],
            "quiet": [_quiet(rec, site, start, end, specs, "a normal week of starts and stops")],
            "notes": _notes(rec, specs),
        },
    )


def heated_tank_thermostat(seed: int, registry: Registry) -> Built:
    """A week of heated phenol tanks: on/off steam heating, receipts and truck loading."""
    site, start, end = "nansha-phenol-01", T0_S, T0_S + 7 * DAY_S
    specs: tuple[str, ...] = ()
    rec = _run(registry, start, end, seed, specs)
    temps = {sid: rec.series[sid].value for sid in ("T301-TT", "T302-TT")}
    lo, hi = min(float(v.min()) for v in temps.values()), max(float(v.max()) for v in temps.values())
    return Built(
        rec,
        {
            "title": "Heated phenol tanks: a thermostat's saw-tooth and routine receipts",
            "description": (
                "A week at a phenol tank farm (two 2 000 m³ heated tanks, Φ13 m, H 13.8 m). Phenol "
                "freezes at 41 °C, so steam coils on an on/off thermostat keep it liquid (simulator realism "
                "`modes`): the valve opens at the lower switch point and the tank warms at 2-5 °C/h "
                "(time-constant 6-12 h towards 25-40 °C above the upper switch point), closes at the upper "
                "one, 12-18 % of the band below H, and the tank cools towards the weather; a saw-tooth of "
                f"4-7 °C every few hours, {lo:.0f}-{hi:.0f} °C this week against H 65 °C. Receipts are "
                "stopped at the normal fill height, trucks load on weekday day shifts, as in "
                "tank_farm_routine; coloured noise and gaps come on top. Nothing may be warned, "
                "alarmed or faulted."
            ),
            "incidents": [],
            "quiet": [_quiet(rec, site, start, end, specs, "a normal week of heating, receipts and loading")],
            "notes": _notes(rec, specs),
        },
    )


def reactor_cooling_loss(seed: int, registry: Registry) -> Built:
    """The hydrogenation reactor of reactor_setpoint loses cooling: its temperature drifts up to H."""
    site, start = "xinhui-hyd-01", T0_S
    fail = start + 8 * DAY_S + 13.5 * HOUR_S
    end = fail + 10 * HOUR_S
    rise_c, tau_s = 35.0, 8 * HOUR_S  # new equilibrium with the cooling tower's fans tripped
    specs: tuple[str, ...] = ()
    rec = _run(registry, start, end, seed, specs, REACTOR_REALISM)
    tt = rec.series["R101-TT"]
    heat = np.where(tt.t_s >= fail, rise_c * (1.0 - np.exp(-(tt.t_s - fail) / tau_s)), 0.0)
    tt.value = np.round(tt.value + heat, tt.decimals)
    h_at = _first_at(tt.t_s, tt.value, 170.0, fail)
    others = [s.id for s in registry.sensors() if s.id != "R101-TT"]
    quiet_before = _quiet(rec, site, start, fail, specs, "eight and a half days of normal operation")
    quiet_others = _quiet(rec, site, start, end, specs, "pressure and hydrogen flow stay in their band")
    quiet_others["sensors"] = others
    return Built(
        rec,
        {
            "title": "Reactor cooling loss: a slow drift out of the daily and weekly pattern, up to H",
            "description": (
                "The hydrogenation reactor R-101 of reactor_setpoint (same realism: coloured noise, "
                "bursts, the working week, gaps) runs normally for eight and a half days. "
                "On Tuesday 14 July at 13:30, on a hot afternoon, the cooling tower fans trip and the "
                "jacket cooling water warms up: the bed temperature leaves its pattern and approaches a "
                "new equilibrium 35 °C higher with an 8 h time-constant (4.4 °C/h at first, written "
                "here on top of the simulated signal). Nobody intervenes in the recording, which ends "
                f"10 h after the trip: the bed crosses H 170 °C {(h_at - fail) / HOUR_S:.1f} h after it, "
                f"at {float(tt.value[tt.t_s >= fail].max()):.0f} °C at the end (HH 180 °C). The drift is "
                "visible hours before H against a background of 5-min DCS noise and day/night swings "
                "of the plant load."
            ),
            "incidents": [
                {
                    "id": "R101-cooling-loss",
                    "site": site,
                    "sensors": ["R101-TT"],
                    "what": "bed temperature reaches H 170 °C (first reading at or above)",
                    "starts": iso(fail),
                    "happens": iso(h_at),
                    "deadline": iso(h_at + 10 * MIN_S),
                    "accept": [{"type": "early_warning"}, {"type": "alarm", "level": ["H", "HH"]}],
                    "notes": {
                        "cooling_lost": iso(fail),
                        "deadline_why": "an H alarm with its 60-s on-delay at the next 5-min sample",
                    },
                },
                {
                    "id": "R101-cooling-loss-warned-early",
                    "site": site,
                    "sensors": ["R101-TT"],
                    "what": "the drift is warned at least 2 h before the bed reaches H",
                    "starts": iso(fail),
                    "happens": iso(h_at),
                    "deadline": iso(h_at - 2 * HOUR_S),
                    "accept": [{"type": "early_warning"}],
                },
            ],
            "quiet": [quiet_before, quiet_others],
            "notes": _notes(rec, specs),
        },
    )


SCENARIOS = {
    "tank_farm_routine": tank_farm_routine,
    "reactor_setpoint": reactor_setpoint,
    "dam_maintenance": dam_maintenance,
    "lpg_loading_modes": lpg_loading_modes,
    "pond_wet_season": pond_wet_season,
    "batch_reactor_cycles": batch_reactor_cycles,
    "compressor_modes": compressor_modes,
    "heated_tank_thermostat": heated_tank_thermostat,
    "reactor_cooling_loss": reactor_cooling_loss,
}
