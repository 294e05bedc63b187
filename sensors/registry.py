"""Load and validate registry files (docs/contracts.md §2) into the immutable model.

Every mistake is collected (not just the first) and named by file, site, sensor and key, so a
site engineer fixing a registry of a thousand sensors sees all problems in one run.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import yaml

from sensors.discrete import parse_contradiction, parse_state_alarms, parse_states
from sensors.exposure import EXPOSURE_KINDS, ExposureError, exposure_sensors, parse_exposure
from sensors.formula import FormulaError, parse_formula
from sensors.hazard_register import parse_dam, parse_hazard_sources
from sensors.kinds import KINDS
from sensors.model import (
    LIMIT_KEYS,
    SENSOR_KINDS,
    UNITS_BY_KIND,
    Limits,
    Location,
    Registry,
    Sensor,
    Site,
)
from sensors.numbers import finite_number
from sensors.warning_levels import WarningItem, parse_escalation, parse_items, parse_warning_levels


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe loader (libyaml's parser when available) that refuses duplicate keys.

    PyYAML silently keeps the last of two equal keys, so a second `limits:` under a sensor would
    quietly replace the first; in a safety registry that must be an error.
    """

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (line {key_node.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


SITE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # also the MQTT topic level (docs/contracts.md §1)
DEVICE_ID_RE = SITE_ID_RE
SENSOR_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

SITE_KEYS = frozenset(
    {
        "id",
        "name",
        "kind",
        "grade",
        "timezone",
        "location",
        "roster",
        "sensors",
        "district",
        "city",
        "province",
        "park",
        "warning_items",
        "warning_escalation",
        "hazard_sources",
        "dam",
        "names_en",
    }
)
SENSOR_KEYS = frozenset(
    {
        "id",
        "name",
        "kind",
        "unit",
        "range",
        "interval_s",
        "limits",
        "roc_per_min",
        "roc_window_s",
        "stale_after_s",
        "stuck_after_s",
        "resolution",
        "compute",
        "exposure",
        "deadband",
        "on_delay_s",
        "off_delay_s",
        "forecast",
        "group",
        "device",
        "warning_levels",
        "states",
        "state_alarms",
        "contradicts",
    }
)
GRADE_RANGE = {"chemical": (1, 4), "tailings": (1, 5)}


@dataclass(frozen=True, slots=True)
class RegistryIssue:
    """One problem in a registry file, located as precisely as we can."""

    file: str
    site: str | None
    sensor: str | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.site is not None:
            where.append(f"site {self.site}")
        if self.sensor is not None:
            where.append(f"sensor {self.sensor}")
        if self.key is not None:
            where.append(f"key {self.key!r}")
        return f"{': '.join(where)}: {self.message}"


class RegistryError(ValueError):
    """The registry has one or more problems; `issues` lists them all."""

    def __init__(self, issues: list[RegistryIssue]):
        self.issues = issues
        super().__init__("invalid registry:\n  " + "\n  ".join(str(i) for i in issues))


class _Collector:
    """Accumulates issues while parsing one file."""

    def __init__(self, file: str):
        self.file = file
        self.issues: list[RegistryIssue] = []

    def add(
        self, message: str, site: str | None = None, sensor: str | None = None, key: str | None = None
    ) -> None:
        self.issues.append(RegistryIssue(self.file, site, sensor, key, message))


_number = finite_number


def registry_files(path: str | Path) -> list[Path]:
    """A registry is one YAML file or a folder of them (read in name order)."""
    p = Path(path)
    if p.is_dir():
        files = sorted([*p.glob("*.yaml"), *p.glob("*.yml"), *p.glob("*.json")])
        if not files:
            issue = RegistryIssue(str(p), None, None, None, "no *.yaml or *.json files in folder")
            raise RegistryError([issue])
        return files
    if not p.exists():
        raise RegistryError([RegistryIssue(str(p), None, None, None, "file not found")])
    return [p]


def load_registry(path: str | Path) -> Registry:
    """Load a registry file or folder; raise RegistryError naming every problem."""
    files = registry_files(path)
    sites: list[Site] = []
    site_files: list[str] = []  # the file each site came from, parallel to `sites`
    issues: list[RegistryIssue] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            issues.append(RegistryIssue(str(f), None, None, None, f"cannot read: {e}"))
            continue
        file_sites, file_issues = parse_registry_text(text, str(f))
        sites.extend(file_sites)
        site_files.extend([str(f)] * len(file_sites))
        issues.extend(file_issues)
    seen: dict[str, str] = {}  # site id -> file of its first definition
    for site, file in zip(sites, site_files, strict=True):
        if site.id in seen:
            issues.append(
                RegistryIssue(file, site.id, None, "id", f"duplicate site id (also in {seen[site.id]})")
            )
        else:
            seen[site.id] = file
    if issues:
        raise RegistryError(issues)
    return Registry(sites=tuple(sites), sources=tuple(str(f) for f in files))


def sensor_document(s: Sensor) -> dict[str, Any]:
    """A sensor as its docs/contracts.md §2 mapping: the required keys, then every optional key not at its
    default."""
    doc: dict[str, Any] = {
        "id": s.id,
        "name": s.name,
        "kind": s.kind,
        "unit": s.unit,
        "range": [s.range[0], s.range[1]],
        "interval_s": s.interval_s,
    }
    if s.limits.configured():
        doc["limits"] = s.limits.configured()
    if s.formula is not None:
        doc["compute"] = s.formula.document()
    if s.warning is not None:
        doc["warning_levels"] = s.warning.document()
    if s.states:
        doc["states"] = list(s.states)
    if s.state_alarms:
        doc["state_alarms"] = {a.state: a.document() for a in s.state_alarms}
    if s.contradicts is not None:
        doc["contradicts"] = s.contradicts.document()
    if s.exposure is not None:
        doc["exposure"] = {"substance": s.exposure}
    skip = ("site", "limits", "formula", "warning", "states", "state_alarms", "contradicts")
    skip += ("exposure", "made_by")
    for f in fields(Sensor):
        if f.name in doc or f.name in skip:
            continue
        value = getattr(s, f.name)
        if value != f.default:
            doc[f.name] = value
    return doc


def site_document(site: Site) -> dict[str, Any]:
    """A site as its docs/contracts.md §2 mapping, without its sensors."""
    doc: dict[str, Any] = {
        "id": site.id,
        "name": site.name,
        "kind": site.kind,
        "grade": site.grade,
        "timezone": site.timezone,
    }
    if site.location is not None:
        doc["location"] = {"lat": site.location.lat, "lon": site.location.lon}
    places = ("roster", "district", "city", "province", "park")
    doc.update({k: v for k in places if (v := getattr(site, k)) is not None})
    if site.warning_items:
        doc["warning_items"] = [item.document() for item in site.warning_items]
    if any(s.warning is not None for s in site.sensors):
        doc["warning_escalation"] = site.warning_escalation.document()
    if site.hazard_sources:
        doc["hazard_sources"] = [h.document() for h in site.hazard_sources]
    if site.dam is not None:
        doc["dam"] = site.dam.document()
    if site.names_en:
        doc["names_en"] = dict(site.names_en)
    return doc


def registry_to_json(registry: Registry) -> bytes:
    """Serialise a registry as JSON (valid YAML too) that load_registry reads back equal, fast."""
    sites = [
        {**site_document(site), "sensors": [sensor_document(s) for s in site.sensors if s.made_by is None]}
        for site in registry.sites
    ]
    return orjson.dumps({"sites": sites})


def parse_registry_text(text: str, file: str = "<string>") -> tuple[list[Site], list[RegistryIssue]]:
    """Parse one registry document; return the valid sites and every issue found."""
    c = _Collector(file)
    try:
        # JSON is YAML too, and orjson reads a 60 000-sensor registry ~50x faster than PyYAML
        is_json = text.lstrip().startswith("{")
        doc = orjson.loads(text) if is_json else yaml.load(text, Loader=_UniqueKeyLoader)
    except (yaml.YAMLError, orjson.JSONDecodeError) as e:
        c.add(f"not valid YAML: {e}")
        return [], c.issues
    if not isinstance(doc, Mapping) or not isinstance(doc.get("sites"), list):
        c.add("the document must be a mapping with a 'sites' list", key="sites")
        return [], c.issues
    for k in doc:
        if k != "sites":
            c.add("unknown key", key=str(k))
    sites = [s for raw in doc["sites"] if (s := _parse_site(raw, c)) is not None]
    return sites, c.issues


def _parse_site(raw: Any, c: _Collector) -> Site | None:
    if not isinstance(raw, Mapping):
        c.add("each site must be a mapping")
        return None
    sid = raw.get("id")
    label = str(sid) if sid is not None else "<no id>"
    before = len(c.issues)
    for k in raw:
        if k not in SITE_KEYS:
            c.add("unknown key", site=label, key=str(k))
    if not isinstance(sid, str) or not SITE_ID_RE.match(sid):
        c.add("site id must match [a-z0-9][a-z0-9_-]{0,63}", site=label, key="id")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        c.add("name is required", site=label, key="name")
    kind = raw.get("kind")
    if kind not in GRADE_RANGE:
        c.add("kind must be 'chemical' or 'tailings'", site=label, key="kind")
    grade = raw.get("grade")
    if isinstance(grade, bool) or not isinstance(grade, int):
        c.add("grade must be an integer", site=label, key="grade")
    elif kind in GRADE_RANGE:
        lo, hi = GRADE_RANGE[kind]
        if not lo <= grade <= hi:
            c.add(f"grade of a {kind} site must be {lo}..{hi}", site=label, key="grade")
    tz = raw.get("timezone", "Asia/Shanghai")
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        c.add(f"unknown time zone {tz!r}", site=label, key="timezone")
    location = None
    loc = raw.get("location")
    if loc is not None:
        lat = _number(loc.get("lat")) if isinstance(loc, Mapping) else None
        lon = _number(loc.get("lon")) if isinstance(loc, Mapping) else None
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            c.add("location needs lat in [-90, 90] and lon in [-180, 180]", site=label, key="location")
        else:
            location = Location(lat, lon)
    for key in ("roster", "district", "city", "province", "park"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > 64):
            c.add("must be a non-blank string of at most 64 characters", site=label, key=key)
    raw_sensors = raw.get("sensors")
    sensors: list[Sensor] = []
    if not isinstance(raw_sensors, list) or not raw_sensors:
        c.add("sensors must be a non-empty list", site=label, key="sensors")
    else:
        ids: set[str] = set()
        for rs in raw_sensors:
            s = _parse_sensor(rs, label, c)
            if s is None:
                continue
            try:
                made = exposure_sensors(s)
            except ExposureError as e:
                c.add(str(e), site=label, sensor=s.id, key="exposure")
                continue
            for one in (s, *made):
                if one.id in ids:
                    c.add("duplicate sensor id", site=label, sensor=one.id, key="id")
                ids.add(one.id)
                sensors.append(one)
        _check_formulas(sensors, label, c)
        _check_contradictions(sensors, label, c)

    def bad_site(message: str, key: str) -> None:
        c.add(message, site=label, key=key)

    items = parse_items(raw.get("warning_items"), bad_site, lambda i: bool(SENSOR_ID_RE.match(i)))
    escalation = parse_escalation(raw.get("warning_escalation"), bad_site)
    _check_warning_items(kind, sensors, items, bad_site)
    sources = parse_hazard_sources(raw.get("hazard_sources"), bad_site, lambda i: bool(SENSOR_ID_RE.match(i)))
    dam = parse_dam(raw.get("dam"), bad_site)
    names_en = parse_names_en(raw.get("names_en"), bad_site)
    if sources and kind != "chemical":
        bad_site(
            "hazard_sources (GB 18218-2018 units) are for chemical sites; a tailings pond has its dam",
            "hazard_sources",
        )
    if dam is not None and kind != "tailings":
        bad_site("dam is for tailings sites", "dam")
    if len(c.issues) > before:
        return None
    return Site(
        id=sid,
        name=name,
        kind=kind,
        grade=grade,
        sensors=tuple(sensors),
        timezone=str(tz),
        location=location,
        roster=raw.get("roster"),
        district=raw.get("district"),
        city=raw.get("city"),
        province=raw.get("province"),
        park=raw.get("park"),
        warning_items=tuple(items),
        warning_escalation=escalation,
        hazard_sources=sources,
        dam=dam,
        names_en=names_en,
    )


MAX_NAMES = 5000
MAX_NAME_CHARS = 200


def parse_names_en(raw: Any, bad: Any) -> tuple[tuple[str, str], ...]:
    """`names_en`: the English of the site's own names (its name, places, sensors, items, states),
    {中文: English}; the console shows them in English mode. Text only, short, at most 5 000."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        bad("names_en must be a mapping of a name to its English", "names_en")
        return ()
    if len(raw) > MAX_NAMES:
        bad(f"names_en has {len(raw)} entries; at most {MAX_NAMES}", "names_en")
        return ()
    out: list[tuple[str, str]] = []
    for k, v in raw.items():
        ok = all(isinstance(x, str) and 0 < len(x) <= MAX_NAME_CHARS and x.isprintable() for x in (k, v))
        if not ok:
            bad(
                f"names_en: {str(k)[:40]!r} must map text to text of 1-{MAX_NAME_CHARS} printable characters",
                "names_en",
            )
            return ()
        out.append((k, v))
    return tuple(out)


def _check_warning_items(kind: Any, sensors: list[Sensor], items: list[WarningItem], bad: Any) -> None:
    """Warning levels belong to tailings ponds; an item's points are sensors of the site with
    warning levels, each in one item only, and item ids are not sensor ids of another point."""
    with_levels = {s.id for s in sensors if s.warning is not None}
    if kind != "tailings" and (with_levels or items):
        bad("warning levels (blue..red) are for tailings sites (GB 39496-2020 5.5.4)", "warning_items")
        return
    ids = {s.id for s in sensors}
    owner: dict[str, str] = {}
    seen_items: set[str] = set()
    for item in items:
        if item.id in seen_items:
            bad(f"duplicate item id {item.id!r}", "warning_items")
        seen_items.add(item.id)
        for p in item.points:
            if p not in ids:
                bad(f"item {item.id}: {p!r} is not a sensor of this site", "warning_items")
            elif p not in with_levels:
                bad(f"item {item.id}: sensor {p} has no warning_levels", "warning_items")
            elif p in owner:
                bad(f"sensor {p} is in two items ({owner[p]} and {item.id})", "warning_items")
            else:
                owner[p] = item.id
    for item in items:
        if item.id in ids and item.points != (item.id,):
            bad(f"item id {item.id!r} is the id of a sensor that is not its only point", "warning_items")


def _parse_sensor(raw: Any, site: str, c: _Collector) -> Sensor | None:
    if not isinstance(raw, Mapping):
        c.add("each sensor must be a mapping", site=site)
        return None
    sid = raw.get("id")
    label = str(sid) if sid is not None else "<no id>"
    before = len(c.issues)

    def bad(message: str, key: str) -> None:
        c.add(message, site=site, sensor=label, key=key)

    for k in raw:
        if k not in SENSOR_KEYS:
            bad("unknown key", str(k))
    if not isinstance(sid, str) or not SENSOR_ID_RE.match(sid):
        bad("sensor id must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}", "id")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        bad("name is required", "name")
    kind = raw.get("kind")
    if kind not in SENSOR_KINDS:
        bad(f"unknown kind {kind!r} (one of {', '.join(sorted(SENSOR_KINDS))})", "kind")
    discrete = kind in SENSOR_KINDS and KINDS[kind].discrete
    states: tuple[str, ...] = ()
    if discrete:
        states = parse_states(raw.get("states"), KINDS[kind].states, bad)
    elif raw.get("states") is not None or raw.get("state_alarms") is not None:
        bad(
            "states and state_alarms are for discrete kinds (interlock, esd, valve, controller, power)",
            "states",
        )
    unit = raw.get("unit", "state" if discrete else None)
    if kind in SENSOR_KINDS and unit not in UNITS_BY_KIND[kind]:
        bad(f"unit {unit!r} is not valid for {kind} (one of {', '.join(UNITS_BY_KIND[kind])})", "unit")
    rng = raw.get("range", [0, len(states) - 1] if discrete else None)
    lo = hi = None
    if discrete and rng != [0, len(states) - 1]:
        bad(f"a discrete signal's range is its codes: [0, {len(states) - 1}] (or leave it out)", "range")
    if not (isinstance(rng, list) and len(rng) == 2 and all(_number(x) is not None for x in rng)):
        bad("range must be [min, max] with finite numbers", "range")
    else:
        lo, hi = float(rng[0]), float(rng[1])
        if not lo < hi:
            bad("range min must be below max", "range")
    interval = _number(raw.get("interval_s"))
    if interval is None or interval <= 0:
        bad("interval_s must be a positive number", "interval_s")
    limits = _parse_limits(raw.get("limits"), lo, hi, bad)
    numbers: dict[str, float] = {}
    for key in ("deadband", "on_delay_s", "off_delay_s", "resolution"):
        val = raw.get(key, 0)
        num = _number(val)
        if num is None or num < 0:
            bad(f"{key} must be a non-negative number", key)
        else:
            numbers[key] = num
    for key in ("deadband", "resolution"):
        if lo is not None and hi is not None and numbers.get(key, 0) >= hi - lo:
            bad(f"{key} must be smaller than the instrument range", key)
    optional: dict[str, float | None] = {}
    for key, default in (
        ("roc_per_min", None),
        ("roc_window_s", 60.0),
        ("stale_after_s", None),
        ("stuck_after_s", None),
    ):
        val = raw.get(key, default)
        num = None if val is None else _number(val)
        if val is not None and (num is None or num <= 0):
            bad(f"{key} must be a positive number", key)
        optional[key] = num
    forecast = raw.get("forecast", False)
    if not isinstance(forecast, bool):
        bad("forecast must be true or false", "forecast")
    group = raw.get("group")
    if group is not None and (not isinstance(group, str) or not SENSOR_ID_RE.match(group)):
        bad("group must be an id like [A-Za-z0-9][A-Za-z0-9_.-]*", "group")
    device = raw.get("device")
    if device is not None and (not isinstance(device, str) or not DEVICE_ID_RE.match(device)):
        bad("device must match [a-z0-9][a-z0-9_-]{0,63}", "device")
    formula = None
    if raw.get("compute") is not None:
        try:
            formula = parse_formula(raw["compute"])
        except FormulaError as e:
            bad(str(e), "compute")
        if device is not None:
            bad("a computed sensor has no device: hazmon derives its readings", "device")
    warning = None
    if raw.get("warning_levels") is not None:
        warning = parse_warning_levels(raw["warning_levels"], lo, hi, bad)
    state_alarms = parse_state_alarms(raw.get("state_alarms"), states, bad) if discrete else ()
    contradicts = parse_contradiction(raw.get("contradicts"), states, bad) if discrete else None
    if not discrete and raw.get("contradicts") is not None:
        bad("contradicts is for discrete kinds (interlock, esd, valve, ...)", "contradicts")
    if discrete:
        for key in ("limits", "roc_per_min", "compute", "warning_levels", "group"):
            if raw.get(key) is not None:
                bad(f"a discrete signal has no {key}: its alarms are state_alarms", key)
        if forecast:
            bad("a discrete signal has no forecast", "forecast")
    exposure = None
    if raw.get("exposure") is not None:
        try:
            exposure = parse_exposure(raw["exposure"])
        except ExposureError as e:
            bad(str(e), "exposure")
        if kind not in EXPOSURE_KINDS or unit not in ("ppm", "mg/m3", "mg/m³"):
            bad(
                f"exposure needs a toxic-gas detector ({' or '.join(EXPOSURE_KINDS)}) in ppm or mg/m3",
                "exposure",
            )
        if formula is not None:
            bad("exposure is for a measuring detector, not a computed sensor", "exposure")
    if len(c.issues) > before:
        return None
    return Sensor(
        id=sid,
        site=site,
        name=name,
        kind=kind,
        unit=unit,
        range=(lo, hi),
        interval_s=interval,
        limits=limits,
        deadband=numbers["deadband"],
        on_delay_s=numbers["on_delay_s"],
        off_delay_s=numbers["off_delay_s"],
        forecast=forecast,
        group=group,
        device=device,
        roc_per_min=optional["roc_per_min"],
        roc_window_s=optional["roc_window_s"] or 60.0,
        stale_after_s=optional["stale_after_s"],
        stuck_after_s=optional["stuck_after_s"],
        resolution=numbers["resolution"],
        formula=formula,
        warning=warning,
        states=states,
        state_alarms=state_alarms,
        contradicts=contradicts,
        exposure=exposure,
    )


def _check_contradictions(sensors: list[Sensor], site: str, c: _Collector) -> None:
    """A discrete signal's `contradicts.sensor` is a measurement (not discrete) of the same site."""
    by_id = {s.id: s for s in sensors}
    for s in sensors:
        if s.contradicts is None:
            continue
        other = by_id.get(s.contradicts.sensor)
        if other is None or other.discrete:
            c.add(
                f"contradicts.sensor {s.contradicts.sensor!r} is not a measurement of this site",
                site=site,
                sensor=s.id,
                key="contradicts.sensor",
            )


def _check_formulas(sensors: list[Sensor], site: str, c: _Collector) -> None:
    """Every input of a computed sensor is another sensor of the site, and no formula depends on
    itself, directly or through other computed sensors."""
    by_id = {s.id: s for s in sensors}
    for s in sensors:
        if s.formula is None:
            continue
        for name, input_id in s.formula.inputs:
            if input_id not in by_id:
                c.add(
                    f"input {name} = {input_id!r} is not a sensor of this site",
                    site=site,
                    sensor=s.id,
                    key="compute",
                )
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(sid: str, path: list[str]) -> None:
        if state.get(sid) == 2 or sid not in by_id or by_id[sid].formula is None:
            return
        if state.get(sid) == 1:
            cycle = " -> ".join([*path[path.index(sid) :], sid])
            c.add(f"computed sensors depend on themselves: {cycle}", site=site, sensor=sid, key="compute")
            return
        state[sid] = 1
        for input_id in by_id[sid].formula.input_ids:
            visit(input_id, [*path, sid])
        state[sid] = 2

    for s in sensors:
        visit(s.id, [])


def _parse_limits(raw: Any, lo: float | None, hi: float | None, bad: Any) -> Limits:
    if raw is None:
        return Limits()
    if not isinstance(raw, Mapping):
        bad("limits must be a mapping of ll/l/h/hh", "limits")
        return Limits()
    values: dict[str, float] = {}
    for k, v in raw.items():
        if k not in LIMIT_KEYS:
            bad("unknown limit (use ll, l, h, hh)", f"limits.{k}")
            continue
        num = _number(v)
        if num is None:
            bad("limit must be a finite number", f"limits.{k}")
            continue
        if lo is not None and hi is not None and not lo <= num <= hi:
            bad(f"limit {num} is outside the instrument range [{lo}, {hi}]", f"limits.{k}")
        values[k] = num
    _check_order(values, bad)
    return Limits(**values)


def _check_order(values: dict[str, float], bad: Any) -> None:
    """Enforce ll <= l < h <= hh over whichever limits are set."""
    ordered = [(k, values[k]) for k in LIMIT_KEYS if k in values]
    for (k1, v1), (k2, v2) in itertools.pairwise(ordered):
        strict = k1 in ("ll", "l") and k2 in ("h", "hh")
        if v1 > v2 or (strict and v1 == v2):
            bad(f"limits out of order: {k1}={v1} must be {'<' if strict else '<='} {k2}={v2}", f"limits.{k2}")
