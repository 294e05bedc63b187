"""Generated fleets of any size (load tests, benchmarks) and registry YAML writing (docs/contracts.md §2).

Generated sites mix chemical tank farms (level, temperature, tank pressure, 2oo3 combustible gas
groups, toxic gas, oxygen, LPG sphere pressure, flow) and tailings ponds (pond level, rainfall,
phreatic depth, dry beach, GNSS displacement, seepage), with the limits of the example registry,
so a generated fleet is as quiet as the examples under simulators/signals.py.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from sensors.model import Limits, Location, Registry, Sensor, Site
from sensors.registry import sensor_document, site_document

#: Every 4th generated site is a tailings pond.
TAILINGS_EVERY = 4

# (suffix of the name, kind, unit, range, limits, deadband, on_delay_s, forecast, group role)
_Template = tuple[str, str, str, tuple[float, float], dict[str, float], float, float, bool, str | None]

CHEMICAL: tuple[_Template, ...] = (
    (
        "储罐液位",
        "level",
        "m",
        (0.0, 20.0),
        {"ll": 1.0, "l": 1.5, "h": 17.0, "hh": 18.0},
        0.3,
        30.0,
        True,
        None,
    ),
    ("储罐温度", "temperature", "°C", (-20.0, 80.0), {"h": 45.0, "hh": 55.0}, 1.0, 60.0, False, None),
    (
        "储罐气相压力",
        "pressure",
        "kPa",
        (-3.0, 5.0),
        {"ll": -0.4, "l": -0.2, "h": 1.6, "hh": 1.9},
        0.15,
        15.0,
        False,
        None,
    ),
    ("可燃气体检测器A", "gas_lel", "%LEL", (0.0, 100.0), {"h": 25.0, "hh": 50.0}, 3.0, 3.0, False, "lel"),
    ("可燃气体检测器B", "gas_lel", "%LEL", (0.0, 100.0), {"h": 25.0, "hh": 50.0}, 3.0, 3.0, False, "lel"),
    ("可燃气体检测器C", "gas_lel", "%LEL", (0.0, 100.0), {"h": 25.0, "hh": 50.0}, 3.0, 3.0, False, "lel"),
    ("硫化氢检测器", "gas_toxic", "mg/m3", (0.0, 30.0), {"h": 10.0, "hh": 20.0}, 1.0, 4.0, False, None),
    ("氧含量检测器", "oxygen", "%VOL", (0.0, 25.0), {"l": 19.5, "h": 23.5}, 0.3, 4.0, False, None),
    ("液化石油气球罐压力", "pressure", "MPa", (0.0, 2.5), {"h": 1.45, "hh": 1.6}, 0.05, 15.0, False, None),
    ("进料流量", "flow", "m3/h", (0.0, 800.0), {"h": 600.0, "hh": 700.0}, 20.0, 15.0, False, None),
)
TAILINGS: tuple[_Template, ...] = (
    ("库水位", "pond_level", "m", (0.0, 20.0), {"h": 14.5, "hh": 17.3}, 0.05, 600.0, True, None),  # + datum
    ("库区雨量计", "rainfall", "mm/h", (0.0, 240.0), {"h": 16.7, "hh": 33.3}, 1.0, 600.0, False, None),
    ("浸润线埋深", "phreatic_depth", "m", (0.0, 30.0), {"ll": 4.8, "l": 5.28}, 0.1, 1200.0, True, None),
    ("干滩长度", "dry_beach", "m", (0.0, 400.0), {"ll": 70.0, "l": 80.0}, 2.0, 1200.0, True, None),
    (
        "GNSS水平累计位移",
        "displacement",
        "mm",
        (-100.0, 300.0),
        {"h": 40.0, "hh": 50.0},
        2.0,
        1200.0,
        True,
        None,
    ),
    (
        "GNSS水平累计位移",
        "displacement",
        "mm",
        (-100.0, 300.0),
        {"h": 40.0, "hh": 50.0},
        2.0,
        1200.0,
        True,
        None,
    ),
    ("坝脚渗流量", "seepage", "L/s", (0.0, 30.0), {"h": 6.0, "hh": 8.0}, 0.2, 600.0, False, None),
)


def generate_registry(
    n_sites: int, sensors_per_site: int, seed: int = 0, sensors_per_device: int = 50, interval_s: float = 1.0
) -> Registry:
    """Build a plausible fleet: ids gen-0001/S0001, every sensor on a device of ≤ sensors_per_device."""
    if n_sites < 1 or sensors_per_site < 1 or sensors_per_device < 1 or interval_s <= 0:
        raise ValueError("n_sites, sensors_per_site, sensors_per_device and interval_s must be positive")
    rng = np.random.default_rng([seed, 0x6E4])
    site_w = max(4, len(str(n_sites)))
    sensor_w = max(4, len(str(sensors_per_site)))
    sites = []
    for i in range(1, n_sites + 1):
        site_id = f"gen-{i:0{site_w}d}"
        tailings = i % TAILINGS_EVERY == 0
        templates = TAILINGS if tailings else CHEMICAL
        datum = float(rng.integers(10, 60) * 10) if tailings else 0.0  # pond elevation datum, m
        sensors = []
        for j in range(sensors_per_site):
            name, kind, unit, rng_, limits, deadband, on_delay, forecast, role = templates[j % len(templates)]
            unit_no = j // len(templates) + 1
            offset = datum if kind == "pond_level" else 0.0
            sensors.append(
                Sensor(
                    id=f"S{j + 1:0{sensor_w}d}",
                    site=site_id,
                    name=f"{'尾矿库' if tailings else 'T'}{unit_no:03d}{name}",
                    kind=kind,
                    unit=unit,
                    range=(rng_[0] + offset, rng_[1] + offset),
                    interval_s=float(interval_s),
                    limits=Limits(**{k: v + offset for k, v in limits.items()}),
                    deadband=deadband,
                    on_delay_s=on_delay,
                    forecast=forecast,
                    group=f"U{unit_no:03d}-{role}" if role else None,
                    device=f"gw-{j // sensors_per_device + 1:03d}",
                )
            )
        sites.append(
            Site(
                id=site_id,
                name=f"生成{'尾矿库' if tailings else '化工储罐区'}{i:0{site_w}d}",
                kind="tailings" if tailings else "chemical",
                grade=int(rng.integers(2, 6)) if tailings else int(rng.integers(1, 5)),
                sensors=tuple(sensors),
                timezone="Asia/Shanghai",
                location=Location(
                    round(float(rng.uniform(21.5, 32.0)), 3), round(float(rng.uniform(108.0, 121.0)), 3)
                ),
            )
        )
    return Registry(sites=tuple(sites))


def _scalar(v: Any) -> str:
    """One YAML flow scalar or collection; floats always carry a dot so YAML 1.1 reads them as floats."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write a non-finite number {v!r} to a registry")
        text = repr(v)
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:  # PyYAML (YAML 1.1) reads 1e-05 as a string, 1.0e-05 as a float
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_scalar(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to a registry")


def registry_to_yaml(registry: Registry, header: str | None = None) -> str:
    """Render a registry as YAML that sensors.registry.load_registry reads back to an equal model.

    Written by hand, one flow mapping per sensor: 50 000 sensors in about a second, where
    yaml.dump needs tens of seconds, and the file stays one line per sensor for diffs and grep.
    """
    lines = [f"# {line}" for line in (header or "").splitlines()]
    lines.append("sites:")
    for site in registry.sites:
        doc = site_document(site)
        first = True
        for key, value in doc.items():
            lines.append(f"  {'- ' if first else '  '}{key}: {_scalar(value)}")
            first = False
        lines.append("    sensors:")
        lines.extend(f"      - {_scalar(sensor_document(s))}" for s in site.sensors if s.made_by is None)
    return "\n".join(lines) + "\n"
