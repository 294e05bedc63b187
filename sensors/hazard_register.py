"""The hazard-source register (issue 13): each unit's dangerous substances, its R value and grade
(GB 18218-2018; grading R = α Σ βᵢ qᵢ/Qᵢ after Order 40 Annex 1), and a tailings pond's class
(等别) from its dam height and storage.

A unit (a storage unit such as a tank farm, or a production unit) is a major hazard source when
S = Σ qᵢ/Qᵢ ≥ 1; its grade is 一级 (1) for R ≥ 100, 二级 50-100, 三级 10-50, 四级 below 10. A site's
grade is the highest grade (lowest number) of its units. Q, β and α come from the table in
sensors/data/gb18218_2018.yaml, where each value says how sure it is; the registry may give a
substance's `critical_t` or `beta` itself, with its `basis`. Every number carries the line that
explains it, for `hazmon registry check` and the API. Pure: no I/O but reading the table once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from sensors.numbers import finite_number

TABLE = Path(__file__).parent / "data" / "gb18218_2018.yaml"
GRADE_NAMES = {1: "一级", 2: "二级", 3: "三级", 4: "四级"}
CLASS_NAMES = {1: "一等", 2: "二等", 3: "三等", 4: "四等", 5: "五等"}
HAZARDS = ("toxic_gas", "highly_toxic_gas", "explosive", "flammable_gas", "other")
UNIT_KINDS = ("storage", "production")
#: how close to a boundary (S = 1, R = 10, 50, 100) a figure counts as on it: quantities are given to a
#: few digits, and binary fractions must not move a unit that sits on a boundary below it
#: (7/10 + 2/10 + 1/10 is 0.9999999999999999 in floating point, not 1)
AT_BOUNDARY = 1e-9

Bad = Callable[[str, str], None]  # (message, key)


@dataclass(frozen=True, slots=True)
class Substance:
    """One dangerous substance of a unit, its quantities resolved, each with where it came from."""

    name: str
    q_t: float  # the maximum quantity present, t
    critical_t: float  # Q, t
    beta: float
    q_basis: str  # where Q came from
    beta_basis: str
    cas: str | None = None
    given: tuple[tuple[str, Any], ...] = ()  # the registry's own keys, written back as they were

    def document(self) -> dict[str, Any]:
        return dict(self.given)


@dataclass(frozen=True, slots=True)
class HazardSource:
    """A unit of a chemical site: its substances and the people living within 500 m outside."""

    id: str
    name: str
    kind: str  # storage | production
    exposed_people: int
    substances: tuple[Substance, ...]

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "exposed_people": self.exposed_people,
            "substances": [s.document() for s in self.substances],
        }


@dataclass(frozen=True, slots=True)
class Dam:
    """A tailings pond's dam height (m) and total storage (10⁴ m³, 万 m³)."""

    height_m: float
    storage_10k_m3: float

    def document(self) -> dict[str, Any]:
        return {"height_m": self.height_m, "storage_10k_m3": self.storage_10k_m3}


@dataclass(frozen=True, slots=True)
class Grading:
    """A unit's identification and grade, and the lines that explain them."""

    source: str
    s: float  # Σ q/Q
    alpha: float
    r: float  # α Σ β q/Q
    grade: int | None  # 1..4, None when not a major hazard source (S < 1)
    lines: tuple[str, ...]

    @property
    def major(self) -> bool:
        return self.grade is not None


# ---- the table


@dataclass(frozen=True, slots=True)
class _Table:
    named: Mapping[str, Mapping[str, Any]]  # by name, alias and CAS
    categories: Mapping[str, Mapping[str, Any]]
    beta_by_hazard: Mapping[str, float]
    beta_of_toxic_gas: Mapping[str, float]
    alpha: tuple[tuple[int, float], ...]
    grades: tuple[tuple[float, int], ...]


@lru_cache(maxsize=1)
def table() -> _Table:
    raw = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    named: dict[str, Mapping[str, Any]] = {}
    for entry in raw["named"]:
        for key in (entry["name"], *entry.get("aliases", ()), entry.get("cas")):
            if key:
                named[str(key).lower()] = entry
    return _Table(
        named,
        {c["code"]: c for c in raw["categories"]},
        {k: float(v) for k, v in raw["beta_by_hazard"].items()},
        {k: float(v) for k, v in raw["beta_of_toxic_gas"].items()},
        tuple((int(a["people"]), float(a["alpha"])) for a in raw["alpha"]),
        tuple((float(g["r_at_least"]), int(g["grade"])) for g in raw["grades"]),
    )


def alpha_of(people: int) -> float:
    """α from the people living within 500 m of the boundary."""
    return next(a for at_least, a in table().alpha if people >= at_least)


def grade_of(r: float) -> int:
    """The grade of R; a figure within AT_BOUNDARY of a boundary is on it (the higher grade)."""
    return next(g for at_least, g in table().grades if r >= at_least * (1.0 - AT_BOUNDARY))


def is_major(s: float) -> bool:
    """S = Σ q/Q ≥ 1: a major hazard source (GB 18218-2018 4.2), a boundary sum counting as reached."""
    return s >= 1.0 - AT_BOUNDARY


# ---- grading


def grade_source(source: HazardSource) -> Grading:
    """S, R and the grade of one unit, each step written out."""
    lines = []
    ratios, weighted = [], []
    for sub in source.substances:
        ratio = sub.q_t / sub.critical_t
        ratios.append(ratio)
        weighted.append(sub.beta * ratio)
        lines.append(
            f"{sub.name}: q = {sub.q_t:g} t, Q = {sub.critical_t:g} t ({sub.q_basis}), q/Q = {ratio:.3g}; "
            f"β = {sub.beta:g} ({sub.beta_basis})"
        )
    s, r_sum = math.fsum(ratios), math.fsum(weighted)  # exact sums: no drift from the order of terms
    alpha = alpha_of(source.exposed_people)
    r = alpha * r_sum
    major = is_major(s)
    verdict_s = "≥ 1, a major hazard source" if major else "< 1, not a major hazard source"
    lines.append(f"S = Σ q/Q = {s:.3g}: {verdict_s}")
    lines.append(f"α = {alpha:g} ({source.exposed_people} people within 500 m)")
    grade = grade_of(r) if major else None
    verdict = f"{GRADE_NAMES[grade]}" if grade is not None else "no grade"
    lines.append(f"R = α Σ β q/Q = {alpha:g} × {r_sum:.4g} = {r:.4g}: {verdict}")
    return Grading(source.id, s, alpha, r, grade, tuple(lines))


def site_grade(gradings: tuple[Grading, ...]) -> int | None:
    """The highest grade of a site's units (一级 = 1), None when none is a major hazard source."""
    grades = [g.grade for g in gradings if g.grade is not None]
    return min(grades) if grades else None


#: (class, storage at least, height at least) for classes 2..5 (AQ 2006-2005 table, DOMAIN §4.6; class 1
#: has its own numbers in GB 50863-2013, whose table is not available here)
_POND_CLASSES = ((2, 10000.0, 100.0), (3, 1000.0, 60.0), (4, 100.0, 30.0), (5, 0.0, 0.0))


def pond_class(dam: Dam) -> tuple[int, tuple[str, ...]]:
    """A pond's class (等别) from its storage and dam height: if they give classes one apart the
    higher class counts, if more than one apart the higher one less one (GB 50863 3.3.1)."""
    by_storage = next(c for c, v, _ in _POND_CLASSES if dam.storage_10k_m3 >= v)
    by_height = next(c for c, _, h in _POND_CLASSES if dam.height_m >= h)
    high, low = min(by_storage, by_height), max(by_storage, by_height)
    cls = high if low - high <= 1 else high + 1
    lines = (
        f"storage {dam.storage_10k_m3:g} 万 m³: {CLASS_NAMES[by_storage]}; dam height {dam.height_m:g} m: "
        f"{CLASS_NAMES[by_height]}",
        f"{'the higher' if low - high <= 1 else 'more than one class apart: the higher one less one'}: "
        f"{CLASS_NAMES[cls]} (classes 2-5 only; 一等 needs GB 50863's own figures)",
    )
    return cls, lines


# ---- registry parsing


def parse_hazard_sources(raw: Any, bad: Bad, id_ok: Callable[[str], bool]) -> tuple[HazardSource, ...]:
    """The site key `hazard_sources`: `[{id, name, kind, exposed_people, substances: [...]}]`."""
    key = "hazard_sources"
    if raw is None:
        return ()
    if not isinstance(raw, list):
        bad("hazard_sources must be a list of units", key)
        return ()
    out, ids = [], set()
    for n, entry in enumerate(raw):
        where = f"{key}[{n}]"
        if not isinstance(entry, Mapping):
            bad("each unit must be a mapping {id, name, kind, exposed_people, substances}", where)
            continue
        for k in entry:
            if k not in ("id", "name", "kind", "exposed_people", "substances"):
                bad("unknown key (use id, name, kind, exposed_people, substances)", f"{where}.{k}")
        unit_id, name, kind = entry.get("id"), entry.get("name"), entry.get("kind", "storage")
        people = entry.get("exposed_people")
        ok = True
        if not isinstance(unit_id, str) or not id_ok(unit_id) or unit_id in ids:
            bad("unit id must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63} and be unique in the site", f"{where}.id")
            ok = False
        if not isinstance(name, str) or not name.strip():
            bad("name is required", f"{where}.name")
            ok = False
        if kind not in UNIT_KINDS:
            bad("kind must be storage or production", f"{where}.kind")
            ok = False
        if isinstance(people, bool) or not isinstance(people, int) or people < 0:
            bad(
                "exposed_people (living within 500 m outside the boundary) must be a count >= 0",
                f"{where}.exposed_people",
            )
            ok = False
        raw_subs = entry.get("substances")
        if not isinstance(raw_subs, list) or not raw_subs:
            bad("substances must be a non-empty list", f"{where}.substances")
            continue
        subs = [
            s for i, rs in enumerate(raw_subs) if (s := _parse_substance(rs, bad, f"{where}.substances[{i}]"))
        ]
        if ok and len(subs) == len(raw_subs):
            ids.add(unit_id)
            out.append(HazardSource(unit_id, name, kind, people, tuple(subs)))
    return tuple(out)


_number = finite_number


def _parse_substance(raw: Any, bad: Bad, where: str) -> Substance | None:
    keys = (
        "name",
        "cas",
        "q",
        "critical_t",
        "basis",
        "category",
        "hazard",
        "toxic_gas",
        "beta",
        "beta_basis",
    )
    if not isinstance(raw, Mapping):
        bad("each substance must be a mapping {name, q, ...}", where)
        return None
    for k in raw:
        if k not in keys:
            bad(f"unknown key (use {', '.join(keys)})", f"{where}.{k}")
            return None
    t = table()
    name, cas = raw.get("name"), raw.get("cas")
    q = _number(raw.get("q"))
    if not isinstance(name, str) or not name.strip():
        bad("name is required", f"{where}.name")
        return None
    if q is None or q < 0:
        bad("q (the maximum quantity present, t) must be a number >= 0", f"{where}.q")
        return None
    named = t.named.get(name.lower()) or (t.named.get(str(cas).lower()) if cas else None)
    category = t.categories.get(raw["category"]) if raw.get("category") is not None else None
    if raw.get("category") is not None and category is None:
        bad(f"unknown category {raw['category']!r} (one of {', '.join(t.categories)})", f"{where}.category")
        return None
    given_q = _number(raw.get("critical_t"))
    if raw.get("critical_t") is not None:
        if (
            given_q is None
            or given_q <= 0
            or not isinstance(raw.get("basis"), str)
            or not raw["basis"].strip()
        ):
            bad(
                "critical_t must be a positive number of tonnes, with its basis (where it comes from)",
                f"{where}.critical_t",
            )
            return None
        critical, q_basis = given_q, f"registry: {raw['basis']}"
    elif named is not None:
        status = "" if named.get("status") == "confirmed" else ", UNCONFIRMED"
        critical, q_basis = float(named["critical_t"]), f"GB 18218-2018 Table 1, {named['name']}{status}"
    elif category is not None:
        critical, q_basis = (
            float(category["critical_t"]),
            f"GB 18218-2018 Table 2, {category['code']} {category['name']}",
        )
    else:
        bad(
            f"{name!r} is not in hazmon's Table 1: give its category (Table 2) or critical_t and basis",
            f"{where}.name",
        )
        return None
    beta = _beta(raw, named, category, bad, where)
    if beta is None:
        return None
    given = tuple((k, raw[k]) for k in keys if raw.get(k) is not None)
    return Substance(name, q, critical, beta[0], q_basis, beta[1], str(cas) if cas else None, given)


def _beta(
    raw: Mapping[str, Any], named: Any, category: Any, bad: Bad, where: str
) -> tuple[float, str] | None:
    t = table()
    if raw.get("beta") is not None:
        beta = _number(raw.get("beta"))
        basis = raw.get("beta_basis")
        if beta is None or beta <= 0 or not isinstance(basis, str) or not basis.strip():
            bad("beta must be a positive number, with its beta_basis", f"{where}.beta")
            return None
        return beta, f"registry: {basis}"
    gas = raw.get("toxic_gas") or (named or {}).get("toxic_gas")
    if gas is not None:
        if gas not in t.beta_of_toxic_gas:
            bad(f"toxic_gas must be one of {', '.join(t.beta_of_toxic_gas)}", f"{where}.toxic_gas")
            return None
        return t.beta_of_toxic_gas[gas], f"toxic gas {gas}, Order 40 Annex 1 Table 2"
    hazard = raw.get("hazard") or (named or category or {}).get("hazard") or "other"
    if hazard not in t.beta_by_hazard:
        bad(f"hazard must be one of {', '.join(HAZARDS)}", f"{where}.hazard")
        return None
    return t.beta_by_hazard[hazard], f"{hazard}, Order 40 Annex 1 Table 1"


def parse_dam(raw: Any, bad: Bad) -> Dam | None:
    """The site key `dam`: `{height_m, storage_10k_m3}` of a tailings pond."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) - {"height_m", "storage_10k_m3"}:
        bad("dam must be a mapping {height_m, storage_10k_m3}", "dam")
        return None
    h, v = _number(raw.get("height_m")), _number(raw.get("storage_10k_m3"))
    if h is None or h <= 0 or v is None or v <= 0:
        bad("dam needs a positive height_m (m) and storage_10k_m3 (万 m³)", "dam")
        return None
    return Dam(h, v)


# ---- a site's register, as the API and `hazmon registry check` show it


def site_register(site: Any) -> dict[str, Any]:
    """A site's computed grade (chemical: from its units) or class (tailings: from its dam), beside the
    registry's hand-typed `grade`, with every line of the computation. `computed` is None when the
    registry gives nothing to compute from (no units, no dam), or no unit is a major hazard source."""
    out: dict[str, Any] = {"site": site.id, "name": site.name, "kind": site.kind, "declared": site.grade}
    if site.kind == "tailings":
        if site.dam is None:
            out.update(
                computed=None,
                units=[],
                lines=["no dam: give height_m and storage_10k_m3 to compute the class"],
            )
        else:
            cls, lines = pond_class(site.dam)
            out.update(computed=cls, units=[], lines=list(lines))
    else:
        gradings = tuple(grade_source(u) for u in site.hazard_sources)
        units = [
            {
                "id": u.id,
                "name": u.name,
                "kind": u.kind,
                "s": round(g.s, 4),
                "alpha": g.alpha,
                "r": round(g.r, 4),
                "grade": g.grade,
                "lines": list(g.lines),
            }
            for u, g in zip(site.hazard_sources, gradings, strict=True)
        ]
        grade = site_grade(gradings)
        if not site.hazard_sources:
            lines = ["no hazard_sources: the grade is the registry's, not computed"]
        elif grade is None:
            lines = ["no unit reaches S >= 1: not a major hazard source by GB 18218-2018"]
        else:
            lines = [f"the highest grade of its units: {GRADE_NAMES[grade]}"]
        out.update(computed=grade, units=units, lines=lines)
    out["agrees"] = out["computed"] is None or out["computed"] == site.grade
    return out
