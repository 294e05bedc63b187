"""Toxic exposure of a gas detector (issue 12, item 6): its 8 h TWA and 15 min STEL against the
occupational exposure limits of GBZ 2.1, and a daily compliance figure.

A toxic detector in the registry may say `exposure: {substance: NH3}`. hazmon then adds two computed
sensors of its site (sensors/computed.py): `<id>.TWA`, `mean_over(c, 28800)` of the detector, and
`<id>.STEL`, `mean_over(c, 900)`, each with limit H = the substance's PC-TWA or PC-STEL in the
detector's unit, so they are stored, shown and alarmed like any other sensor. The limits come from
the table shipped with the package (sensors/data/oel_gbz2_1.yaml: values, sources, conversion).
A substance with a MAC (ceiling) only has no TWA or STEL: the registry refuses `exposure` for it
and says to give the detector the MAC as its limit, which every reading is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import yaml

from sensors.formula import parse_formula
from sensors.model import Limits, Sensor

TWA_S = 8 * 3600  # GBZ 2.1 PC-TWA: the 8 h working day
STEL_S = 15 * 60  # GBZ 2.1 PC-STEL: 15 minutes
#: the id suffixes of the sensors hazmon adds ('.' is allowed in sensor ids, `-` and `_` are common in them)
SUFFIXES = {"twa": ".TWA", "stel": ".STEL"}
EXPOSURE_KINDS = ("gas_toxic", "h2s_ppm")


class ExposureError(ValueError):
    """An `exposure` the registry must refuse; the message says why."""


@dataclass(frozen=True, slots=True)
class Substance:
    """One row of the OEL table; limits in mg/m³ (None: not set for this substance)."""

    formula: str
    name: str
    molar_mass: float
    mac: float | None
    twa: float | None
    stel: float | None
    idlh: float | None

    def in_unit(self, mg_m3: float, unit: str, molar_volume_l: float) -> float:
        """A limit in mg/m³ in the detector's unit (ppm or mg/m³)."""
        return mg_m3 * molar_volume_l / self.molar_mass if unit == "ppm" else mg_m3


@dataclass(frozen=True, slots=True)
class OelTable:
    substances: dict[str, Substance]  # by upper-case formula
    molar_volume_l: float
    basis: str

    def get(self, name: str) -> Substance:
        try:
            return self.substances[name.upper()]
        except KeyError:
            known = ", ".join(s.formula for s in self.substances.values())
            raise ExposureError(f"unknown substance {name!r} (the OEL table has {known})") from None


@cache
def oel_table() -> OelTable:
    """The shipped table (sensors/data/oel_gbz2_1.yaml)."""
    text = resources.files("sensors").joinpath("data/oel_gbz2_1.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    substances = {
        formula.upper(): Substance(
            formula,
            row["name"],
            float(row["molar_mass"]),
            row.get("mac"),
            row.get("twa"),
            row.get("stel"),
            row.get("idlh"),
        )
        for formula, row in doc["substances"].items()
    }
    return OelTable(substances, float(doc["molar_volume_l"]), str(doc["basis"]))


def parse_exposure(raw: Any) -> str:
    """The registry's `exposure` mapping: the substance's formula as the table spells it."""
    if not isinstance(raw, dict) or set(raw) != {"substance"} or not isinstance(raw["substance"], str):
        raise ExposureError("exposure must be a mapping {substance: <formula>}, e.g. {substance: NH3}")
    table = oel_table()
    substance = table.get(raw["substance"])
    if substance.twa is None and substance.stel is None:
        mac = substance.mac or 0.0
        raise ExposureError(
            f"{substance.formula} has a MAC (ceiling) only in GBZ 2.1, no TWA or STEL: give the detector the "
            f"MAC as its limit h ({mac:g} mg/m³ = {substance.in_unit(mac, 'ppm', table.molar_volume_l):.3g} "
            f"ppm at {table.basis})"
        )
    return substance.formula


def exposure_sensors(detector: Sensor) -> list[Sensor]:
    """The computed sensors `exposure` adds for a detector: its TWA and STEL (those the table has).
    Raise ExposureError when a limit falls outside the detector's range or an id is too long."""
    if detector.exposure is None:
        return []
    table = oel_table()
    substance = table.get(detector.exposure)
    out = []
    for key, window_s, label in (("twa", TWA_S, "8 h TWA"), ("stel", STEL_S, "15 min STEL")):
        mg_m3 = getattr(substance, key)
        if mg_m3 is None:
            continue
        sid = detector.id + SUFFIXES[key]
        if len(sid) > 64:
            raise ExposureError(f"{sid!r} would be longer than 64 characters: shorten the detector's id")
        limit = round(substance.in_unit(mg_m3, detector.unit, table.molar_volume_l), 4)
        lo, hi = detector.range
        if not lo <= limit <= hi:
            raise ExposureError(
                f"the {label} limit of {substance.formula} ({limit:.4g} {detector.unit}) is outside the "
                f"detector's range [{lo:g}, {hi:g}]"
            )
        formula = parse_formula({"expr": f"mean_over(c, {window_s})", "inputs": {"c": detector.id}})
        out.append(
            replace(
                detector,
                id=sid,
                name=f"{detector.name} {label}",
                limits=Limits(h=limit),
                deadband=0.0,
                on_delay_s=0.0,
                off_delay_s=0.0,
                forecast=False,
                group=None,
                device=None,
                roc_per_min=None,
                formula=formula,
                exposure=None,
                made_by=detector.id,
            )
        )
    return out


# ---- the daily compliance figure


@dataclass(frozen=True, slots=True)
class DayCompliance:
    """One local day of an exposure series: its highest value, and whether it stayed at or under
    the limit (GBZ 2.1 compares the TWA of the working day, and each STEL, with the limit)."""

    day: date
    highest: float
    compliant: bool
    points: int  # points of the series in the day (readings, or minutes of a 1-minute rollup)


def daily_compliance(
    ts_ms: np.ndarray, values: np.ndarray, limit: float, timezone: str
) -> list[DayCompliance]:
    """Per local day of ``timezone`` (the site's), the highest value of an exposure series (e.g. a
    `<id>.TWA` sensor's readings, or its 1-minute maxima) and whether it stayed at or under
    ``limit``. Days without a point are left out, and so are NaN values. Vectorised over the
    points: a loop only over the days' boundaries."""
    keep = np.isfinite(values)
    if not keep.any():
        return []
    order = np.argsort(ts_ms[keep], kind="stable")
    ts, x = ts_ms[keep][order], values[keep][order]
    zone = ZoneInfo(timezone)
    first = datetime.fromtimestamp(int(ts[0]) / 1000, zone).date()
    last = datetime.fromtimestamp(int(ts[-1]) / 1000, zone).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 2)]
    edges = np.array([int(datetime(d.year, d.month, d.day, tzinfo=zone).timestamp() * 1000) for d in days])
    which = np.searchsorted(edges, ts, side="right") - 1  # (n,) the day of each reading
    count = np.bincount(which, minlength=len(days))
    highest = np.full(len(days), -np.inf)
    np.maximum.at(highest, which, x)
    return [
        DayCompliance(days[i], float(highest[i]), bool(highest[i] <= limit), int(count[i]))
        for i in np.flatnonzero(count).tolist()
    ]
