"""Tailings warning levels (GB 39496-2020 5.5.4, GB 51108-2015 8.3; docs/contracts.md §2): the
registry's model of them and its validation.

A monitored point (a sensor) carries thresholds for the four colours, low to high blue, yellow,
orange and red, each from the design (freeboard and beach-length minima by dam class, phreatic
depth by section, pond control levels, displacement rates). A point is at the highest colour whose
threshold its reading has reached: upwards for a rising quantity (pond level, displacement), downwards
for a falling one (freeboard, dry beach length, phreatic depth). Points of one type form a monitored
*item* (e.g. "phreatic line of section A"); items make up the pond. An item rises one colour when
`k` of its points are one colour below it (the standard: 4 blue -> yellow, 3 yellow -> orange,
2 orange -> red), and the pond likewise from its items. Pure data and validation: the engine's
arrays are in alerts/engine/pond_warnings.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sensors.numbers import finite_number

COLOURS: tuple[str, ...] = ("BLUE", "YELLOW", "ORANGE", "RED")  # level 1..4; 0 is none
COLOURS_ZH: tuple[str, ...] = ("蓝色", "黄色", "橙色", "红色")
COLOUR_KEYS: tuple[str, ...] = tuple(c.lower() for c in COLOURS)
DIRECTIONS = ("rising", "falling")
#: GB 39496-2020 5.5.4 for an item's points: 4 at blue make yellow, 3 at yellow orange, 2 at orange
#: red. The standard's text for the pond is cut off after "4 blue items -> yellow" (DOMAIN §4.5):
#: the same counts are used, a configurable default.
DEFAULT_COUNTS: tuple[int, int, int] = (4, 3, 2)


def colour_rank(level: str) -> int:
    """1..4 for BLUE..RED, 0 for anything else (a level name of another kind of alarm)."""
    return COLOURS.index(level) + 1 if level in COLOURS else 0


@dataclass(frozen=True, slots=True)
class WarningLevels:
    """A point's thresholds, blue to red (None where the design gives none), and its direction."""

    thresholds: tuple[float | None, float | None, float | None, float | None]
    rising: bool

    def document(self) -> dict[str, Any]:
        pairs = zip(COLOUR_KEYS, self.thresholds, strict=True)
        doc: dict[str, Any] = {k: v for k, v in pairs if v is not None}
        if len(doc) == 1:
            doc["direction"] = "rising" if self.rising else "falling"
        return doc


@dataclass(frozen=True, slots=True)
class Escalation:
    """How many members one colour below raise their whole: to yellow, orange, red."""

    item: tuple[int, int, int] = DEFAULT_COUNTS
    pond: tuple[int, int, int] = DEFAULT_COUNTS

    def document(self) -> dict[str, Any]:
        def part(counts: tuple[int, int, int]) -> dict[str, int]:
            return dict(zip(COLOUR_KEYS[1:], counts, strict=True))

        return {"item": part(self.item), "pond": part(self.pond)}


@dataclass(frozen=True, slots=True)
class WarningItem:
    """A monitored item of a pond: points of one type (e.g. the piezometers of one section)."""

    id: str
    name: str
    points: tuple[str, ...]

    def document(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "points": list(self.points)}


Bad = Callable[[str, str], None]  # (message, key)


def parse_warning_levels(raw: Any, lo: float | None, hi: float | None, bad: Bad) -> WarningLevels | None:
    """The sensor key `warning_levels`: `{blue, yellow, orange, red}` (any non-empty subset, in
    order), plus `direction` (rising or falling) when only one is given."""
    key = "warning_levels"
    if not isinstance(raw, Mapping):
        bad("warning_levels must be a mapping of blue/yellow/orange/red (and direction)", key)
        return None
    values: dict[str, float] = {}
    for k, v in raw.items():
        if k == "direction":
            continue
        if k not in COLOUR_KEYS:
            bad("unknown warning level (use blue, yellow, orange, red, direction)", f"{key}.{k}")
            continue
        number = finite_number(v)
        if number is None:
            bad("a warning threshold must be a finite number", f"{key}.{k}")
            continue
        v = number
        if lo is not None and hi is not None and not lo <= v <= hi:
            bad(f"threshold {v} is outside the instrument range [{lo}, {hi}]", f"{key}.{k}")
        values[k] = float(v)
    direction = raw.get("direction")
    if direction is not None and direction not in DIRECTIONS:
        bad("direction must be rising or falling", f"{key}.direction")
        return None
    if not values:
        bad("warning_levels needs at least one of blue, yellow, orange, red", key)
        return None
    ordered = [values[k] for k in COLOUR_KEYS if k in values]
    steps = [b - a for a, b in itertools.pairwise(ordered)]
    if steps and not (all(s > 0 for s in steps) or all(s < 0 for s in steps)):
        bad("thresholds must rise (or all fall) strictly from blue to red", key)
        return None
    inferred = None if not steps else ("rising" if steps[0] > 0 else "falling")
    if inferred is None and direction is None:
        bad("with a single threshold, say its direction: rising or falling", f"{key}.direction")
        return None
    if inferred is not None and direction is not None and direction != inferred:
        bad(f"direction {direction} contradicts the thresholds, which are {inferred}", f"{key}.direction")
        return None
    thresholds = tuple(values.get(k) for k in COLOUR_KEYS)
    return WarningLevels(thresholds, (direction or inferred) == "rising")  # type: ignore[arg-type]


def parse_escalation(raw: Any, bad: Bad) -> Escalation:
    """The site key `warning_escalation`: `{item: {yellow, orange, red}, pond: {...}}`, each count
    a positive integer (the members one colour below that raise the whole); defaults DEFAULT_COUNTS."""
    key = "warning_escalation"
    if raw is None:
        return Escalation()
    if not isinstance(raw, Mapping):
        bad("warning_escalation must be a mapping with item and/or pond", key)
        return Escalation()
    parts: dict[str, tuple[int, int, int]] = {}
    for scope in raw:
        if scope not in ("item", "pond"):
            bad("unknown key (use item, pond)", f"{key}.{scope}")
    for scope in ("item", "pond"):
        counts = list(DEFAULT_COUNTS)
        given = raw.get(scope)
        if given is not None and not isinstance(given, Mapping):
            bad("must be a mapping of yellow/orange/red to a count", f"{key}.{scope}")
            given = None
        for k, v in (given or {}).items():
            if k not in COLOUR_KEYS[1:]:
                bad("unknown level (use yellow, orange, red)", f"{key}.{scope}.{k}")
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad("the count must be a positive integer", f"{key}.{scope}.{k}")
                continue
            counts[COLOUR_KEYS.index(k) - 1] = v
        parts[scope] = (counts[0], counts[1], counts[2])
    return Escalation(parts["item"], parts["pond"])


def parse_items(raw: Any, bad: Bad, id_ok: Callable[[str], bool]) -> list[WarningItem]:
    """The site key `warning_items`: a list of `{id, name, points: [sensor ids]}`."""
    key = "warning_items"
    if raw is None:
        return []
    if not isinstance(raw, list):
        bad("warning_items must be a list of {id, name, points}", key)
        return []
    items = []
    for n, entry in enumerate(raw):
        where = f"{key}[{n}]"
        if not isinstance(entry, Mapping):
            bad("each item must be a mapping {id, name, points}", where)
            continue
        for k in entry:
            if k not in ("id", "name", "points"):
                bad("unknown key (use id, name, points)", f"{where}.{k}")
        item_id, name, points = entry.get("id"), entry.get("name"), entry.get("points")
        ok = True
        if not isinstance(item_id, str) or not id_ok(item_id):
            bad("item id must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}", f"{where}.id")
            ok = False
        if not isinstance(name, str) or not name.strip():
            bad("name is required", f"{where}.name")
            ok = False
        if not isinstance(points, list) or not points or not all(isinstance(p, str) for p in points):
            bad("points must be a non-empty list of sensor ids", f"{where}.points")
            ok = False
        elif len(set(points)) != len(points):
            bad("a point is listed twice", f"{where}.points")
            ok = False
        if ok:
            items.append(WarningItem(item_id, name, tuple(points)))
    return items
