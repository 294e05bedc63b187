"""Generate the public scenario library: `readings.csv` and `expected.yaml` in each scenario folder.

    python tests/scenarios/generate.py [--seed N] [--only NAME ...] [--out DIR] [--check]

Deterministic: the same seed (default SEED) gives byte-identical files, and the committed files are
the ones for SEED (tests/scenarios/test_scenarios.py checks it). Each scenario's `registry.yaml` is
hand-written and committed; this script only reads it.

Quiet physics, the reporting schedule, spikes and gateway outages come from the project's own
simulator (simulators/stream.py `Simulation`, simulators/incidents.py specs), read back from the MQTT
payloads it would publish (docs/contracts.md §1). Where the simulator's incident physics is not realistic
enough for a test fixture, the incident signal is written here, with its physics stated:

- tank fill: 500 m³/h into a Φ30 m tank = 0.707 m/h (DOMAIN §7.1); the simulator's `overfill`
  reaches HH in 15 min (tens of m/h), fine for a demo but no trend warning could ever be judged on it;
- stuck gauge (Buncefield 2005): the gauge repeats its last reading while the same fill goes on, so
  the freeze has to act on the written fill, not on the simulator's level;
- slow gas leak: a seal leak growing over the best part of an hour, wind-meandering, with T90 = 30 s
  detector response (DOMAIN §7.3); the simulator's `leak` reaches 1.2 x HH within minutes.

Tertiary creep (`creep`, 1/v linear to failure, DOMAIN §7.4), the rainstorm (`storm`), single-sample
spikes (`spike`) and device outages (`outage`) are the simulator's own.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from sensors.model import Registry  # noqa: E402
from sensors.registry import load_registry  # noqa: E402
from tests.scenarios import field_scenarios  # noqa: E402
from tests.scenarios.recording import (  # noqa: E402
    DAY_S,
    HOUR_S,
    MIN_S,
    T0_S,
    Built,
    Recording,
    Series,
    iso,
    simulate,
)

SEED = 20260706

# Tank physics shared by the fill scenarios (jianghai-tf-01 T101, DOMAIN §7.1).
TANK_AREA_M2 = math.pi * 15.0**2  # Φ30 m
FILL_M3_H = 500.0
FILL_M_PER_S = FILL_M3_H / TANK_AREA_M2 / HOUR_S  # 0.707 m/h
SHELL_TOP_M = 15.85  # overflow (critical high)
RADAR_NOISE_M = 0.002  # mm-level radar gauge, 1 mm resolution (as simulators/signals.py)


def _ou(rng: np.random.Generator, t_s: np.ndarray, tau_s: float, sigma: float) -> np.ndarray:
    """Ornstein-Uhlenbeck path sampled at `t_s` (exact discretisation), stationary start."""
    out = np.empty(t_s.size)
    x = sigma * rng.standard_normal()
    dt = np.diff(t_s, prepend=t_s[0])
    z = rng.standard_normal(t_s.size)
    for i in range(t_s.size):
        a = math.exp(-dt[i] / tau_s)
        x = x * a + sigma * math.sqrt(1.0 - a * a) * z[i]
        out[i] = x
    return out


def _first_lag(t_s: np.ndarray, x: np.ndarray, tau_s: float) -> np.ndarray:
    """First-order sensor response (T90 = 2.3 tau) applied to `x` sampled at `t_s`."""
    out = np.empty_like(x)
    y = x[0]
    prev = t_s[0]
    for i in range(x.size):
        a = math.exp(-(t_s[i] - prev) / tau_s)
        y = y * a + x[i] * (1.0 - a)
        out[i] = y
        prev = t_s[i]
    return out


def _fill_level(t_s: np.ndarray, level0_m: float, fill_start_s: float) -> np.ndarray:
    """True level of T101: idle at level0, then filling at FILL_M_PER_S, capped at the shell top."""
    return np.minimum(level0_m + FILL_M_PER_S * np.fmax(t_s - fill_start_s, 0.0), SHELL_TOP_M)


def _radar(rng: np.random.Generator, level_m: np.ndarray) -> np.ndarray:
    return np.round(level_m + RADAR_NOISE_M * rng.standard_normal(level_m.size), 3)


def _crossing(level0_m: float, fill_start_s: float, limit_m: float) -> float:
    return fill_start_s + (limit_m - level0_m) / FILL_M_PER_S


def _first_at_or_above(s: Series, limit: float, after_s: float) -> float:
    hit = np.flatnonzero((s.value >= limit) & (s.t_s >= after_s))
    if hit.size == 0:
        raise RuntimeError(f"{s.sensor} never reaches {limit}: the scenario does not produce its incident")
    return float(s.t_s[hit[0]])


def _first_sample_at(s: Series, t_s: float) -> float:
    return float(s.t_s[np.flatnonzero(s.t_s >= t_s - 1e-6)[0]])


# ---- scenarios

TANK_SENSORS = (
    "T101-LT",
    "T101-TT",
    "T101-PT",
    "T102-LT",
    "T102-TT",
    "T102-PT",
    "T103-LT",
    "T103-TT",
    "T103-PT",
)


def tank_overfill(seed: int, registry: Registry) -> Built:
    """T101 is filled at 500 m³/h and nobody stops the pump: H, HH, then the shell top."""
    start, fill, end = T0_S, T0_S + 4 * HOUR_S, T0_S + 12 * HOUR_S
    level0 = 9.80
    rec = simulate(registry, start, end, seed)
    rng = np.random.default_rng([seed, 0x0F11])
    lt = rec.series["T101-LT"]
    lt.value = _radar(rng, _fill_level(lt.t_s, level0, fill))
    hh = _crossing(level0, fill, 14.8)
    others = [s for s in TANK_SENSORS if s != "T101-LT"]
    return Built(
        rec,
        {
            "title": "Tank overfill: T101 filled at 500 m³/h past its maximum working level",
            "description": (
                "Methanol tank T101 (Φ30 m, shell 15.85 m) idles at 9.80 m; at 04:00 a transfer starts at "
                "500 m³/h (0.707 m/h, DOMAIN §7.1) and is never stopped. The true level crosses H 14.2 m, "
                "then "
                "HH 14.8 m (API 2350: the one required alarm), and would overflow at the shell top. Radar "
                "gauge noise 2 mm, 1 mm resolution, every 10 s. The other tanks, temperatures and blanket "
                "pressures run quietly (simulator)."
            ),
            "incidents": [
                {
                    "id": "T101-overfill",
                    "site": "jianghai-tf-01",
                    "sensors": ["T101-LT"],
                    "what": "true level of T101 reaches HH 14.8 m",
                    "starts": iso(fill),
                    "happens": iso(hh),
                    "deadline": iso(hh),
                    "accept": [{"type": "early_warning"}, {"type": "alarm", "level": ["H", "HH"]}],
                    "notes": {
                        "fill_starts": iso(fill),
                        "h_crossed": iso(_crossing(level0, fill, 14.2)),
                        "overflow": iso(_crossing(level0, fill, SHELL_TOP_M)),
                    },
                }
            ],
            "quiet": [
                {
                    "from": iso(start),
                    "to": iso(fill),
                    "site": "jianghai-tf-01",
                    "why": "four idle hours before the transfer: nothing may be raised anywhere",
                },
                {
                    "from": iso(start),
                    "to": iso(end),
                    "site": "jianghai-tf-01",
                    "sensors": others,
                    "why": "the other tanks and T101's temperature and pressure operate normally throughout",
                },
            ],
        },
    )


def stuck_gauge_fill(seed: int, registry: Registry) -> Built:
    """Buncefield: the gauge freezes three hours into a fill that goes on to overflow."""
    start, fill, end = T0_S, T0_S + 4 * HOUR_S, T0_S + 12 * HOUR_S
    freeze = fill + 3 * HOUR_S
    level0 = 9.80
    rec = simulate(registry, start, end, seed)
    rng = np.random.default_rng([seed, 0x57C4])
    lt = rec.series["T101-LT"]
    read = _radar(rng, _fill_level(lt.t_s, level0, fill))
    frozen = lt.t_s >= freeze
    held = read[np.flatnonzero(~frozen)[-1]]
    lt.value = np.where(frozen, held, read)
    hh = _crossing(level0, fill, 14.8)
    others = [s for s in TANK_SENSORS if s != "T101-LT"]
    return Built(
        rec,
        {
            "title": "Stuck level gauge during a fill (Buncefield 2005)",
            "description": (
                "As tank_overfill, but at 07:00, three hours into the 0.707 m/h fill, T101's gauge freezes: "
                "it "
                "keeps reporting its last reading (11.92 m) every 10 s while the tank goes on filling "
                "through "
                "H and HH towards the shell top. The level alarms can never fire from the gauge; only the "
                "instrument-fault (stuck) check, or a trend warning from the hours before the freeze, can "
                "save "
                "the tank. At Buncefield the servo gauge flat-lined for ~3 h before the overflow."
            ),
            "incidents": [
                {
                    "id": "T101-gauge-freezes",
                    "site": "jianghai-tf-01",
                    "sensors": ["T101-LT"],
                    "what": "T101-LT stops following the level during a steady fill",
                    "starts": iso(freeze),
                    "happens": iso(freeze),
                    "deadline": iso(freeze + 10 * MIN_S),
                    "accept": [{"type": "fault", "level": ["stuck"]}],
                    "notes": {"frozen_reading_m": float(held)},
                },
                {
                    "id": "T101-overfill-unseen",
                    "site": "jianghai-tf-01",
                    "sensors": ["T101-LT"],
                    "what": "true level of T101 reaches HH 14.8 m while the gauge still shows 11.92 m",
                    "starts": iso(fill),
                    "happens": iso(hh),
                    "deadline": iso(hh),
                    "accept": [{"type": "fault", "level": ["stuck"]}, {"type": "early_warning"}],
                    "notes": {
                        "h_crossed": iso(_crossing(level0, fill, 14.2)),
                        "overflow": iso(_crossing(level0, fill, SHELL_TOP_M)),
                    },
                },
                {
                    "id": "T101-trend-warning-before-freeze",
                    "required": False,
                    "site": "jianghai-tf-01",
                    "sensors": ["T101-LT"],
                    "what": "ideally the fill trend is warned (forecast to cross H) while the gauge still "
                    "moves",
                    "starts": iso(fill),
                    "happens": iso(hh),
                    "deadline": iso(freeze),
                    "accept": [{"type": "early_warning"}],
                },
            ],
            "quiet": [
                {
                    "from": iso(start),
                    "to": iso(fill),
                    "site": "jianghai-tf-01",
                    "why": "four idle hours before the transfer",
                },
                {
                    "from": iso(start),
                    "to": iso(end),
                    "site": "jianghai-tf-01",
                    "sensors": others,
                    "why": "the other tanks and T101's temperature and pressure operate normally throughout",
                },
            ],
        },
    )


def spike(seed: int, registry: Registry) -> Built:
    """Two single-sample spikes (97 % of range): a gas detector and a radar level gauge."""
    start, end = T0_S, T0_S + 5 * HOUR_S
    specs = ("spike:jianghai-tf-01/GT-102@+2h30m", "spike:jianghai-tf-01/T102-LT@+3h30m")
    rec = simulate(registry, start, end, seed, specs)
    incidents, allow = [], []
    for sid, at, why in (
        ("GT-102", start + 2.5 * HOUR_S, "one 2-s sample of 97 %LEL (radio handset EMI)"),
        ("T102-LT", start + 3.5 * HOUR_S, "one 10-s sample of 15.52 m, above HH (false radar echo)"),
    ):
        s = rec.series[sid]
        hit = _first_sample_at(s, at)
        incidents.append(
            {
                "id": f"{sid}-spike",
                "site": "jianghai-tf-01",
                "sensors": [sid],
                "what": why,
                "starts": iso(hit),
                "happens": iso(hit),
                "deadline": iso(hit + 60.0),
                "accept": [{"type": "fault", "level": ["spike"]}],
                "notes": {"spike_value": float(s.value[np.flatnonzero(s.t_s == hit)[0]])},
            }
        )
        allow += [
            {"type": "fault", "level": ["spike"], "sensors": [sid]},
            {"type": "return_to_normal", "level": ["spike"], "sensors": [sid]},
        ]
    return Built(
        rec,
        {
            "title": "Single-sample spikes: an instrument fault, never a process alarm",
            "description": (
                "Five quiet hours of the jianghai-tf-01 tank levels (10 s) and combustible gas detectors (2 "
                "s), "
                "with one single-sample spike to 97 % of range on GT-102 at 02:30 and on T102-LT at 03:30 "
                "(simulator `spike`). Each must be reported as a fault of kind spike within a minute and "
                "must "
                "not raise H/HH (no real gas release jumps 0 -> 97 %LEL in 2 s and back: T90 ≤ 30 s, "
                "GB 15322.1; no tank rises 5 m in 10 s)."
            ),
            "incidents": incidents,
            "quiet": [
                {
                    "from": iso(start),
                    "to": iso(end),
                    "site": "jianghai-tf-01",
                    "allow": allow,
                    "why": "only the two spike faults (and their return to normal) may appear",
                }
            ],
        },
    )


def gateway_outage(seed: int, registry: Registry) -> Built:
    """Gateway tf-gw-01 (six sensors) goes silent for an hour: one device-stale incident."""
    start, end = T0_S, T0_S + 6 * HOUR_S
    off = start + 4 * HOUR_S
    rec = simulate(registry, start, end, seed, ("outage:jianghai-tf-01/tf-gw-01@+4h~1h",))
    members = [s.id for s in registry.sensors() if s.device == "tf-gw-01"]
    return Built(
        rec,
        {
            "title": "Gateway outage: one silent device is one stale incident",
            "description": (
                "Field gateway tf-gw-01 (T101 and T102 level, temperature, pressure) stops publishing at "
                "04:00 "
                "for one hour (simulator `outage`; the broker publishes its will `offline`, which a CSV "
                "does not "
                "carry). Exactly one stale incident at device scope (event `sensor` = tf-gw-01) is expected "
                "within 5 minutes (the slowest member reports every 60 s: 3 missed intervals), and no stale "
                "event per sensor. tf-gw-02 (T103) keeps reporting and must stay quiet."
            ),
            "incidents": [
                {
                    "id": "tf-gw-01-outage",
                    "site": "jianghai-tf-01",
                    "sensors": ["tf-gw-01"],
                    "what": "gateway tf-gw-01 stops publishing",
                    "starts": iso(off),
                    "happens": iso(off),
                    "deadline": iso(off + 5 * MIN_S),
                    "accept": [{"type": "stale"}],
                    "at_most": {"count": 1, "type": ["stale"], "sensors": ["tf-gw-01", *members]},
                    "notes": {"back_at": iso(off + HOUR_S), "members": members},
                }
            ],
            "quiet": [
                {
                    "from": iso(start),
                    "to": iso(end),
                    "site": "jianghai-tf-01",
                    "allow": [
                        {"type": "stale", "sensors": ["tf-gw-01"]},
                        {"type": "return_to_normal", "sensors": ["tf-gw-01"]},
                    ],
                    "why": "only the device-scope stale incident and its return to normal",
                }
            ],
        },
    )


def lpg_daily_cycle(seed: int, registry: Registry) -> Built:
    """Five summer days of LPG sphere pressure following the liquid temperature: no event at all."""
    start, end = T0_S, T0_S + 5 * DAY_S
    rec = simulate(registry, start, end, seed)
    peaks = {sid: float(rec.series[sid].value.max()) for sid in ("V201-PT", "V202-PT", "V201-TT", "V202-TT")}
    return Built(
        rec,
        {
            "title": "LPG spheres: the daily pressure cycle is not an incident",
            "description": (
                "Five July days at Gaolan (Zhuhai): sphere pressure is propane vapour pressure at the liquid "
                "temperature (DOMAIN §7.2), which follows the weather with a damped, lagged daily cycle "
                "(simulator physics), peaking mid-afternoon near 1 MPa, far below H 1.45 MPa. A trend that "
                "extrapolates each morning's rise would cross H within hours; nothing may be raised, warned "
                "or "
                "faulted in the whole five days."
            ),
            "incidents": [],
            "quiet": [
                {
                    "from": iso(start),
                    "to": iso(end),
                    "site": "gaolan-lpg-01",
                    "why": "normal operation for five days",
                }
            ],
            "notes": {"peak_values": peaks},
        },
    )


def tailings_creep(seed: int, registry: Registry) -> Built:
    """Tertiary creep on the dam crest: 1/v falls linearly to 0 at failure (Fukuzono)."""
    start = T0_S
    onset, fail = start + 3 * DAY_S, start + 13 * DAY_S
    rec = simulate(registry, start, fail, seed, ("creep:chenzhou-tsf-01/GNSS-01@+3d~10d",))
    gnss = rec.series["GNSS-01"]
    h_at = _first_at_or_above(gnss, 32.0, onset)
    return Built(
        rec,
        {
            "title": "Tailings dam: displacement accelerating to failure (tertiary creep)",
            "description": (
                "GNSS-01 on the crest of a 45 m upstream dam creeps at a few mm/yr for three days, then "
                "enters "
                "tertiary creep (simulator `creep`): inverse velocity 1/v falls linearly and reaches 0 at "
                "the "
                "failure time Tf ten days later (Fukuzono 1985; Voight α = 2, DOMAIN §7.4). Velocity starts "
                "near "
                "1 mm/day and reaches ~10 mm/day on the last day. Fast-static GNSS solutions every 30 min "
                "with "
                "~0.7 mm noise. H 32 mm is crossed about a day before failure. The record ends at Tf (the "
                "monument is lost). GNSS-02 and the piezometers are quiet throughout."
            ),
            "incidents": [
                {
                    "id": "GNSS-01-failure",
                    "site": "chenzhou-tsf-01",
                    "sensors": ["GNSS-01"],
                    "what": "slope failure at Tf (1/v reaches 0)",
                    "starts": iso(onset),
                    "happens": iso(fail),
                    "deadline": iso(fail),
                    "accept": [{"type": "early_warning"}, {"type": "alarm", "level": ["H", "HH"]}],
                    "notes": {"tertiary_creep_starts": iso(onset), "h_crossed": iso(h_at)},
                },
                {
                    "id": "GNSS-01-warned-before-H",
                    "site": "chenzhou-tsf-01",
                    "sensors": ["GNSS-01"],
                    "what": "the inverse-velocity warning comes before the displacement crosses H (issue 12)",
                    "starts": iso(onset),
                    "happens": iso(fail),
                    "deadline": iso(h_at),
                    "accept": [{"type": "early_warning"}],
                },
            ],
            "quiet": [
                {
                    "from": iso(start),
                    "to": iso(onset),
                    "site": "chenzhou-tsf-01",
                    "why": "three days of steady secondary creep (3-15 mm/yr) and quiet piezometers",
                },
                {
                    "from": iso(start),
                    "to": iso(fail),
                    "site": "chenzhou-tsf-01",
                    "sensors": ["GNSS-02", "PZ-A1", "PZ-A2"],
                    "why": "the rest of the dam stays quiet",
                },
            ],
        },
    )


def pond_storm(seed: int, registry: Registry) -> Built:
    """A 3-hour 40 mm/h rainstorm lifts the pond over its flood-season control level H."""
    start = T0_S
    storm, end = start + 2 * DAY_S + 15 * HOUR_S, start + 3 * DAY_S + 6 * HOUR_S
    rec = simulate(registry, start, end, seed, ("storm:renhua-tsf-01@+2d15h~3h",))
    h_at = _first_at_or_above(rec.series["PL-01"], 244.5, storm)
    return Built(
        rec,
        {
            "title": "Tailings pond level rising after a rainstorm",
            "description": (
                "Two and a half days of ordinary weather (showers every ~2 days, simulator physics), then a "
                "15:00 convective rainstorm of 40 mm/h for 3 h (120 mm: CMA red signal is 100 mm in 3 h, "
                "DOMAIN §4.5; simulator `storm`). The pond rises by rain x catchment/pond area x runoff and "
                "drains through the decant (DOMAIN §7.4), crossing H = 汛前控制水位 244.5 m about two "
                "hours into the storm. An early warning on PL-01 is expected before H is crossed. "
                "Rain-gauge alarms and dry-beach consequences during the storm are legitimate and not judged."
            ),
            "incidents": [
                {
                    "id": "PL-01-above-H",
                    "site": "renhua-tsf-01",
                    "sensors": ["PL-01"],
                    "what": (
                        "pond level reaches H 244.5 m (first reading at or above; noise 5 mm ≪ 20 mm "
                        "per 5-min rise)"
                    ),
                    "starts": iso(storm),
                    "happens": iso(h_at),
                    "deadline": iso(h_at),
                    "accept": [{"type": "early_warning"}],
                    "notes": {"storm": f"{iso(storm)} for 3 h at 40 mm/h"},
                }
            ],
            "quiet": [
                {
                    "from": iso(start),
                    "to": iso(storm),
                    "site": "renhua-tsf-01",
                    "why": "two and a half days of ordinary weather with showers",
                }
            ],
        },
    )


def pond_storm_levels(seed: int, registry: Registry) -> Built:
    """A 9-hour 40 mm/h rainstorm on a pond watched by warning levels: one pond incident, blue -> red."""
    start = T0_S
    storm, end = start + 2 * DAY_S + 15 * HOUR_S, start + 3 * DAY_S + 6 * HOUR_S
    rec = simulate(registry, start, end, seed, ("storm:renhua-tsf-01@+2d15h~9h",))
    site = registry.sites[0]
    points = {s.id: s for s in site.sensors if s.warning is not None}

    def crossed(sensor_id: str, colour: int) -> float | None:
        """First reading at the colour's threshold (in the point's direction) after the storm began."""
        w = points[sensor_id].warning
        threshold = w.thresholds[colour]
        if threshold is None:
            return None
        s = rec.series[sensor_id]
        at = s.value >= threshold if w.rising else s.value <= threshold
        hit = np.flatnonzero(at & (s.t_s >= storm))
        return float(s.t_s[hit[0]]) if hit.size else None

    def first(colour: int) -> float:
        times = [t for p in points if (t := crossed(p, colour)) is not None]
        if not times:
            raise RuntimeError(f"no point reaches colour {colour}: the scenario does not produce it")
        return min(times)

    # red: any point at red, or both beach sections at orange (2 orange points -> red, GB 39496 5.5.4)
    beach_orange = max(t for p in ("DB-01", "DB-02") if (t := crossed(p, 2)) is not None)
    red = min(beach_orange, first(3))
    beach_minimum = first(3)
    latency = 20 * MIN_S + 2 * 10 * MIN_S  # the longest on-delay and two reporting intervals
    colours = (("blue", first(0)), ("yellow", first(1)), ("orange", first(2)), ("red", red))
    everything = ["renhua-tsf-01", *points]
    incidents = [
        {
            "id": f"pond-{name}",
            "site": "renhua-tsf-01",
            "sensors": ["renhua-tsf-01"],
            "what": f"the pond's warning level reaches {name} (first point at the colour, or the count rule)",
            "starts": iso(storm),
            "happens": iso(at),
            "deadline": iso(at + latency),
            "accept": [{"type": "alarm", "level": [name.upper()]}],
        }
        for name, at in colours
    ]
    incidents[-1]["at_most"] = {"count": 4, "type": ["alarm"], "sensors": everything}
    incidents[-1]["notes"] = {
        "one_incident": "at most 4 alarm events on the pond and its points: its colours"
    }
    incidents.append(
        {
            "id": "pond-red-before-minimum-beach",
            "required": False,
            "site": "renhua-tsf-01",
            "sensors": ["renhua-tsf-01"],
            "what": "red comes before any beach section is shorter than its 70 m minimum (two at orange)",
            "starts": iso(storm),
            "happens": iso(beach_minimum),
            "deadline": iso(beach_minimum),
            "accept": [{"type": "alarm", "level": ["RED"]}],
        }
    )
    return Built(
        rec,
        {
            "title": "Rainstorm on a pond watched by warning levels: one incident from blue to red",
            "description": (
                "The pond of `pond_storm` with tailings warning levels (GB 39496-2020 5.5.4) on its pond "
                "level, dry beach and phreatic line instead of H/HH limits, and a 9-hour 40 mm/h typhoon "
                "rainstorm (360 mm, 特大暴雨). The pond rises ~2.4 m and the beach, at a 0.8-1.5 % slope, "
                "shortens from ~275 m to under 10 m. Expected: one pond-scope alarm whose colour rises "
                "blue, yellow, orange, red (each within the on-delay and two intervals of the first point"
                " at that colour), red when both beach sections are orange (ideally before either is "
                "below its 70 m minimum, not required: the beach's 20-minute on-delay), and no point "
                "alarm of the warning points."
            ),
            "incidents": incidents,
            "quiet": [
                {
                    "from": iso(start),
                    "to": iso(storm),
                    "site": "renhua-tsf-01",
                    "why": "two and a half days of ordinary weather with showers",
                }
            ],
        },
    )


def _steps(t_s: np.ndarray, changes: list[tuple[float, float]], first: float) -> np.ndarray:
    """A discrete signal's code at each time: `first`, then each (time, code) from its time on."""
    code = np.full(t_s.size, first)
    for at, value in changes:
        code[t_s >= at] = value
    return code


def interlock_bypass(seed: int, registry: Registry) -> Built:
    """Interlocks bypassed for maintenance (a shift: quiet) and one left bypassed overnight (alarm
    after 8 h); a feed valve reported closed while the flow behind it comes back (a mismatch)."""
    rng = np.random.default_rng(seed)
    site = "xinhui-sis-01"
    start, end = T0_S, T0_S + 3 * DAY_S
    t5 = np.arange(start, end, 5 * MIN_S)
    t1 = np.arange(start, end, MIN_S)
    day = DAY_S
    maint = (start + 9 * HOUR_S, start + 13 * HOUR_S)  # day 1: SIS-101 bypassed 09:00-13:00, restored
    forgotten = start + day + 10 * HOUR_S  # day 2 10:00: SIS-102 bypassed ... until day 3 10:00
    restored = start + 2 * day + 10 * HOUR_S
    shut = start + 2 * day + 14 * HOUR_S  # day 3 14:00: the feed valve closes, the flow stops ...
    passing = shut + 30 * MIN_S  # ... and from 14:30 the valve passes: flow back at ~3 m3/h/10 min
    valve = _steps(t5, [(shut, 0.0)], 1.0)  # open, then closed
    flow = 32.0 + 1.5 * np.sin(2 * np.pi * t1 / (6 * HOUR_S)) + rng.normal(0, 0.3, t1.size)
    after = t1 >= shut
    flow[after] = np.fmax(0.0, rng.normal(0, 0.05, int(after.sum())))
    leak = t1 >= passing
    flow[leak] += np.minimum(12.0, 0.3 * (t1[leak] - passing) / MIN_S)
    rec = Recording(registry)
    rec.series["SIS-101"] = Series(
        site, "SIS-101", t5, _steps(t5, [(maint[0], 1.0), (maint[1], 0.0)], 0.0), 0
    )
    rec.series["SIS-102"] = Series(
        site, "SIS-102", t5, _steps(t5, [(forgotten, 1.0), (restored, 0.0)], 0.0), 0
    )
    rec.series["XV-101"] = Series(site, "XV-101", t5, valve, 0)
    rec.series["FT-101"] = Series(site, "FT-101", t1, np.round(flow, 2), 2)
    rises_at = float(t1[np.flatnonzero(leak & (flow >= 2.0 + flow[after & ~leak].min()))[0]])
    return Built(
        rec,
        {
            "title": "Interlocks bypassed: a shift's maintenance, and one left bypassed overnight",
            "description": (
                "Day 1 SIS-101 is bypassed 09:00-13:00 for maintenance and restored: quiet (8 h allowed). "
                "Day 2 at 10:00 SIS-102 is bypassed and left so until day 3 10:00: a state alarm BYPASSED at "
                "18:00. Day 3 at 14:00 the feed valve XV-101 closes and the flow stops; from 14:30 the valve "
                "passes and the flow behind it rises 0.3 m3/h per minute: a MISMATCH alarm once it has risen "
                "2 m3/h while the valve says closed. Discrete signals every 5 min, the flow every minute."
            ),
            "incidents": [
                {
                    "id": "SIS-102-left-bypassed",
                    "site": site,
                    "sensors": ["SIS-102"],
                    "what": "SIS-102 bypassed for more than 8 h",
                    "starts": iso(forgotten),
                    "happens": iso(forgotten + 8 * HOUR_S),
                    "deadline": iso(forgotten + 8 * HOUR_S + 5 * MIN_S),
                    "accept": [{"type": "alarm", "level": ["BYPASSED"]}],
                },
                {
                    "id": "XV-101-closed-but-flowing",
                    "site": site,
                    "sensors": ["XV-101"],
                    "what": "the flow behind the closed valve has risen 2 m3/h",
                    "starts": iso(shut),
                    "happens": iso(rises_at),
                    "deadline": iso(rises_at + MIN_S),
                    "accept": [{"type": "alarm", "level": ["MISMATCH"]}],
                },
            ],
            "quiet": [
                {
                    "from": iso(start),
                    "to": iso(forgotten + 8 * HOUR_S),
                    "site": site,
                    "why": "a 4-hour maintenance bypass and the forgotten one's first 8 hours are allowed",
                },
                {
                    "from": iso(restored),
                    "to": iso(passing),
                    "site": site,
                    "sensors": ["SIS-101", "SIS-102", "XV-101"],
                    "allow": [{"type": "return_to_normal"}],
                    "why": "the bypass ended; the valve closed and the flow stopped: no contradiction",
                },
            ],
        },
    )


def h2s_exposure(seed: int, registry: Registry) -> Built:
    """Two quiet days, then a small H2S release that never reaches the 7.2 ppm MAC but whose 8-hour
    mean passes the site's 1 ppm: the TWA alarms, the detector's instantaneous limits never do."""
    rng = np.random.default_rng(seed)
    site = "dayawan-sws-01"
    start, end = T0_S, T0_S + 3 * DAY_S
    t = np.arange(start, end, MIN_S)
    onset = start + 2 * DAY_S + 6 * HOUR_S  # day 3 06:00, for 12 hours
    stop = onset + 12 * HOUR_S
    h2s = np.fmax(0.0, 0.15 + 0.08 * rng.standard_normal(t.size))
    on = (t >= onset) & (t < stop)
    ramp = np.clip((t - onset) / (20 * MIN_S), 0.0, 1.0)  # the release grows over 20 minutes
    plume = 3.0 + 1.2 * np.sin(2 * np.pi * (t - onset) / (47 * MIN_S)) + rng.normal(0, 0.5, t.size)
    h2s = np.where(on, h2s + ramp * np.clip(plume, 0.5, 6.0), h2s)
    rec = Recording(registry)
    rec.series["GT-H2S-01"] = Series(site, "GT-H2S-01", t, np.round(h2s, 2), 2)
    twa = np.convolve(h2s, np.ones(480) / 480.0)[: t.size]  # the 8-hour mean, one reading a minute
    crosses = float(t[np.flatnonzero((t >= onset) & (twa >= 1.0))[0]])
    assert h2s.max() < 7.2, "the scenario must stay under the instantaneous limit"
    return Built(
        rec,
        {
            "title": "H2S under its ceiling for hours: the 8-hour TWA alarms",
            "description": (
                "Two days of background (0.15 ppm), then from day 3 06:00 a small release at the stripper: "
                "2-5 ppm for 12 hours, peaks under 6 ppm, never the 7.2 ppm MAC (GBZ 2.1: 10 mg/m3). The "
                "rolling 8-hour mean passes the site's 1 ppm TWA limit about 2.5 hours in. Expected: an H "
                "alarm of GT-H2S-01-TWA, and no event at all of the detector itself."
            ),
            "incidents": [
                {
                    "id": "GT-H2S-01-TWA-exceeded",
                    "site": site,
                    "sensors": ["GT-H2S-01-TWA"],
                    "what": "the rolling 8-hour mean of GT-H2S-01 reaches 1 ppm",
                    "starts": iso(onset),
                    "happens": iso(crosses),
                    "deadline": iso(crosses + 5 * MIN_S),
                    "accept": [{"type": "alarm", "level": ["H"]}],
                }
            ],
            "quiet": [
                {
                    "from": iso(start),
                    "to": iso(onset),
                    "site": site,
                    "why": "two days of background",
                },
                {
                    "from": iso(start),
                    "to": iso(end),
                    "site": site,
                    "sensors": ["GT-H2S-01"],
                    "why": "the detector never reaches its instantaneous limits and is never faulty",
                },
            ],
        },
    )


def phreatic_section(seed: int, registry: Registry) -> Built:
    """The phreatic line of one section rises at its three piezometers to yellow, none to orange:
    by the count rule (3 points at yellow) the section, and so the pond, is orange."""
    rng = np.random.default_rng(seed)
    site = "chenzhou-tsf-01"
    start, end = T0_S, T0_S + 6 * DAY_S
    t = np.arange(start, end, 10 * MIN_S)
    rise_from = start + 2 * DAY_S  # after a wet spell the line rises over ~2 days, then holds
    rec = Recording(registry)
    for k, (sid, depth0, lift) in enumerate((("PZ-A1", 6.4, 2.1), ("PZ-A2", 6.8, 2.5), ("PZ-A3", 6.2, 1.9))):
        lag = k * 3 * HOUR_S  # the upper points follow the lower with a lag
        frac = 1.0 / (1.0 + np.exp(-(t - rise_from - DAY_S - lag) / (6 * HOUR_S)))
        depth = depth0 - lift * frac + rng.normal(0, 0.02, t.size)
        rec.series[sid] = Series(site, sid, t, np.round(depth, 3), 3)
    level = 306.2 + 0.05 * np.sin(2 * np.pi * t / DAY_S) + rng.normal(0, 0.005, t.size)
    rec.series["PL-01"] = Series(site, "PL-01", t, np.round(level, 3), 3)

    def first_at(sid: str, threshold: float) -> float:
        """Start of the first run of three readings at the threshold (20 min: the on-delay held)."""
        s = rec.series[sid]
        at = s.value <= threshold
        held = at[:-2] & at[1:-1] & at[2:]
        return float(s.t_s[np.flatnonzero(held)[0]])

    third_yellow = max(first_at(p, 4.5) for p in ("PZ-A1", "PZ-A2", "PZ-A3"))
    assert all(rec.series[p].value.min() > 3.85 for p in ("PZ-A1", "PZ-A2", "PZ-A3")), (
        "no point may be orange"
    )
    return Built(
        rec,
        {
            "title": "The phreatic line of a section rises at three points: the pond is orange by the count",
            "description": (
                "Two quiet days, then the phreatic line of the main section rises over about two days at its "
                "three piezometers (the upper ones 3 and 6 hours behind), each to yellow (depth under 4.5 m) "
                "and none to orange (3.85 m). GB 39496-2020 5.5.4: three points at yellow make the item "
                "orange, so the pond's one alarm goes blue, yellow, then orange when the third point is "
                "yellow; no point alarm."
            ),
            "incidents": [
                {
                    "id": "section-A-orange-by-count",
                    "site": site,
                    "sensors": [site],
                    "what": "the third piezometer of the section steadily at yellow: item and pond orange",
                    "starts": iso(rise_from),
                    "happens": iso(third_yellow),
                    "deadline": iso(third_yellow + 20 * MIN_S + 10 * MIN_S),
                    "accept": [{"type": "alarm", "level": ["ORANGE"]}],
                    "at_most": {
                        "count": 3,
                        "type": ["alarm"],
                        "sensors": [site, "PL-01", "PZ-A1", "PZ-A2", "PZ-A3"],
                    },
                }
            ],
            "quiet": [
                {"from": iso(start), "to": iso(rise_from), "site": site, "why": "two quiet days"},
                {
                    "from": iso(start),
                    "to": iso(end),
                    "site": site,
                    "sensors": ["PL-01", "PZ-A1", "PZ-A2", "PZ-A3"],
                    "why": "no point alarm: the pond's colour is the one incident",
                },
            ],
        },
    )


def gas_leak_2oo3(seed: int, registry: Registry) -> Built:
    """A pump-seal leak growing over ~55 min, seen by three detectors of a 2oo3 group."""
    start, end = T0_S, T0_S + 6 * HOUR_S
    onset = start + 4 * HOUR_S
    isolate = onset + 55 * MIN_S  # ESD valve closed by the operator after the alarms
    rate_per_s = 0.8 / MIN_S  # %LEL/s at detector A (mean): a slowly opening seal
    # detector: (gain relative to A, transport lag s); B downwind, C across the wind
    geometry = {"GT-111": (1.0, 0.0), "GT-112": (0.7, 20.0), "GT-113": (0.45, 35.0)}
    clear_tau_s, t90_tau_s = 90.0, 13.0  # outdoor dispersion after isolation; T90 = 30 s (GB 15322.1)
    rec = simulate(registry, start, end, seed)
    rng = np.random.default_rng([seed, 0x1EA4])
    t_any = rec.series["GT-111"].t_s
    shared = _ou(rng, t_any, 45.0, 0.25)  # wind meander common to the three heads (log-concentration)

    def mean_at(sid: str, t: np.ndarray) -> np.ndarray:
        gain, lag = geometry[sid]
        s = t - lag
        grow = rate_per_s * gain * (np.clip(s, onset, isolate) - onset)
        return np.where(s > isolate, grow * np.exp(-(s - isolate) / clear_tau_s), grow)

    for sid in geometry:
        s = rec.series[sid]
        own = _ou(rng, s.t_s, 45.0, 0.2)
        meander = np.exp(np.interp(s.t_s, t_any, shared) + own - 0.5 * (0.25**2 + 0.2**2))
        gas = _first_lag(s.t_s, mean_at(sid, s.t_s) * meander, t90_tau_s)
        s.value = np.round(np.clip(s.value + gas, 0.0, 100.0), s.decimals)
    a_h = onset + 25.0 / rate_per_s
    gain_b, lag_b = geometry["GT-112"]
    b_h = onset + lag_b + 25.0 / (rate_per_s * gain_b)
    members = list(geometry)
    return Built(
        rec,
        {
            "title": "Slow gas leak at a pump seal, seen by a 2oo3 detector group",
            "description": (
                "Three catalytic detectors around methanol pump P-101 vote 2-out-of-3 (group P101-gas). "
                "After "
                "four quiet hours a seal starts to leak at 04:00 and opens slowly: the mean concentration at "
                "detector A grows by 0.8 %LEL/min; B (downwind) sees 70 % of it 20 s later, C (across the "
                "wind) "
                "45 % after 35 s. Wind meander modulates each head (log-normal, 45 s correlation, shared and "
                "own parts), detectors respond with T90 = 30 s (GB 15322.1) and read with ~1 %LEL noise "
                "(simulator baseline). The pump is isolated at 04:55 and the gas clears in a few minutes. "
                "A reaches H 25 %LEL (mean) at 04:31; B, making the 2oo3 vote physically true, at 04:45."
            ),
            "incidents": [
                {
                    "id": "P101-leak-first-detector",
                    "site": "jianghai-tf-01",
                    "sensors": [*members, "P101-gas"],
                    "what": "mean concentration at detector A reaches H 25 %LEL",
                    "starts": iso(onset),
                    "happens": iso(a_h),
                    "deadline": iso(a_h + 30.0),
                    "accept": [{"type": "early_warning"}, {"type": "alarm", "level": ["H", "HH", "VOTE"]}],
                    "notes": {
                        "deadline_why": "GB 15322.1-2019: alarm response ≤ 30 s",
                        "isolated": iso(isolate),
                    },
                },
                {
                    "id": "P101-leak-2oo3-vote",
                    "site": "jianghai-tf-01",
                    "sensors": ["P101-gas"],
                    "what": "mean at the second detector (B) reaches H: the 2oo3 vote is physically met",
                    "starts": iso(onset),
                    "happens": iso(b_h),
                    "deadline": iso(b_h + 3 * MIN_S),
                    "accept": [{"type": "alarm", "level": ["VOTE"]}],
                    "notes": {
                        "deadline_why": "B's mean rises only 0.56 %LEL/min past H: wind lulls may hold the "
                        "reading under 25 %LEL for a while after the mean crosses"
                    },
                },
                {
                    "id": "P101-leak-trend-warning",
                    "required": False,
                    "site": "jianghai-tf-01",
                    "sensors": members,
                    "what": "ideally the slow rise is warned (30-min forecast) before A reaches H",
                    "starts": iso(onset),
                    "happens": iso(a_h),
                    "deadline": iso(a_h),
                    "accept": [{"type": "early_warning"}],
                },
            ],
            "quiet": [
                {
                    "from": iso(start),
                    "to": iso(onset),
                    "site": "jianghai-tf-01",
                    "why": "four quiet hours: zero drift and noise only",
                },
                {
                    "from": iso(isolate + 20 * MIN_S),
                    "to": iso(end),
                    "site": "jianghai-tf-01",
                    "allow": [{"type": "return_to_normal"}],
                    "why": "after the gas has cleared only returns to normal may appear",
                },
            ],
        },
    )


SCENARIOS: dict[str, Callable[[int, Registry], Built]] = {
    "gas_leak_2oo3": gas_leak_2oo3,
    "tank_overfill": tank_overfill,
    "stuck_gauge_fill": stuck_gauge_fill,
    "spike": spike,
    "gateway_outage": gateway_outage,
    "lpg_daily_cycle": lpg_daily_cycle,
    "tailings_creep": tailings_creep,
    "pond_storm": pond_storm,
    "pond_storm_levels": pond_storm_levels,
    "interlock_bypass": interlock_bypass,
    "h2s_exposure": h2s_exposure,
    "phreatic_section": phreatic_section,
    **field_scenarios.SCENARIOS,
}


def build(name: str, seed: int = SEED) -> dict[str, bytes]:
    """Return {file name: content} of one scenario folder's generated files."""
    registry = load_registry(HERE / name / "registry.yaml")
    built = SCENARIOS[name](seed, registry)
    expected = {
        "scenario": name,
        **built.expected,
        "registry": "registry.yaml",
        "readings": "readings.csv",
        "seed": seed,
    }
    header = (
        f"# Generated by `python tests/scenarios/generate.py --seed {seed}`: do not edit by hand.\n"
        "# Format: tests/scenarios/README.md. Times are local ISO 8601 with offset.\n"
    )
    text = header + yaml.safe_dump(expected, allow_unicode=True, sort_keys=False, width=110)
    return {"readings.csv": built.recording.csv_bytes(), "expected.yaml": text.encode()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="scenarios to (re)generate")
    parser.add_argument("--out", type=Path, default=HERE, help="library root (default: this folder)")
    parser.add_argument("--check", action="store_true", help="compare with the files on disk, write nothing")
    args = parser.parse_args(argv)
    status = 0
    for name in args.only or SCENARIOS:
        for fname, data in build(name, args.seed).items():
            path = args.out / name / fname
            if args.check:
                same = path.exists() and path.read_bytes() == data
                sys.stdout.write(f"{'ok  ' if same else 'DIFF'} {path}\n")
                status |= not same
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                sys.stdout.write(f"wrote {path} ({len(data) / 1e6:.2f} MB)\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
