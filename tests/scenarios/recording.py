"""Simulator runs recorded as scenario files: the helpers generate.py and field_scenarios.py share.

`simulate` runs simulators/stream.py's `Simulation` and reads its readings back from the MQTT payloads
it would publish (CONTRACTS §1), so a recording is exactly what the field would have sent; `Recording`
writes them as `readings.csv` (CONTRACTS §4).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from sensors.model import Registry
from simulators.field import FieldEvent
from simulators.incidents import parse_incident
from simulators.realism import CLASSIC, Realism
from simulators.stream import Simulation

TZ = ZoneInfo("Asia/Shanghai")
#: Every scenario starts at local midnight on a summer Monday (storms, LPG afternoon peaks).
T0_S = datetime(2026, 7, 6, tzinfo=TZ).timestamp()
MIN_S, HOUR_S, DAY_S = 60.0, 3600.0, 86400.0


def iso(t_s: float) -> str:
    """Local ISO 8601 with offset, seconds (milliseconds when there are some)."""
    ms = round(t_s * 1000)
    dt = datetime.fromtimestamp(ms // 1000, TZ).replace(microsecond=(ms % 1000) * 1000)
    return dt.isoformat(timespec="seconds" if ms % 1000 == 0 else "milliseconds")


# ---- simulator runs


@dataclass
class Series:
    """One sensor's recorded readings: times (s) and values, plus its print resolution."""

    site: str
    sensor: str
    t_s: np.ndarray
    value: np.ndarray
    decimals: int


@dataclass
class Recording:
    registry: Registry
    series: dict[str, Series] = field(default_factory=dict)  # by sensor id (one site per scenario)
    events: list[FieldEvent] = field(default_factory=list)  # what the realism features did

    def csv_bytes(self) -> bytes:
        """`time,site,sensor,value`, time in integer ms, sorted by time then registry order."""
        order = {s.id: i for i, s in enumerate(self.registry.sensors())}
        cols_t, cols_k, lines = [], [], []
        for sid, s in self.series.items():
            ms = np.round(s.t_s * 1000).astype(np.int64)
            cols_t.append(ms)
            cols_k.append(np.full(ms.size, order[sid], dtype=np.int64))
            fmt = f"{{:.{s.decimals}f}}"
            lines.extend(
                f"{m},{s.site},{sid},{fmt.format(v)}"
                for m, v in zip(ms.tolist(), s.value.tolist(), strict=True)
            )
        t = np.concatenate(cols_t)
        k = np.concatenate(cols_k)
        idx = np.lexsort((k, t))
        buf = io.StringIO()
        buf.write("time,site,sensor,value\n")
        for i in idx.tolist():
            buf.write(lines[i])
            buf.write("\n")
        return buf.getvalue().encode()


def simulate(
    registry: Registry,
    start_s: float,
    end_s: float,
    seed: int,
    incidents: tuple[str, ...] = (),
    realism: Realism = CLASSIC,
) -> Recording:
    """Run the simulator from `start_s` to before `end_s`; decode its readings payloads per sensor."""
    sim = Simulation(
        registry,
        start_s=start_s,
        seed=seed,
        incidents=[parse_incident(i) for i in incidents],
        realism=realism,
    )
    sensors = sim.model.sensors
    site_of = {s.id: s.site for s in sensors}
    decimals = {s.id: round(math.log10(sc)) for s, sc in zip(sensors, sim.model.scale.tolist(), strict=True)}
    acc: dict[str, tuple[list[float], list[float]]] = {s.id: ([], []) for s in sensors}
    k = 0
    while (t := sim.tick_time(k)) < end_s:
        for msg in sim.tick(t):
            if not msg.readings:
                continue  # a retained status message
            body = orjson.loads(msg.payload)
            ts = body["ts"] / 1000.0
            for item in body["readings"]:
                times, values = acc[item["sensor"]]
                times.append(item["ts"] / 1000.0 if "ts" in item else ts)
                values.append(float(item["v"]))
        k += 1
    rec = Recording(registry, events=list(sim.model.field.log) if sim.model.field else [])
    for sid, (times, values) in acc.items():
        rec.series[sid] = Series(site_of[sid], sid, np.array(times), np.array(values), decimals[sid])
    return rec


@dataclass
class Built:
    recording: Recording
    expected: dict
