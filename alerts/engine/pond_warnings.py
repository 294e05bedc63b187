"""Tailings warning levels in the engine: point -> item -> pond (GB 39496-2020 5.5.4).

Each point with `warning_levels` (sensors/warning_levels.py) has a colour from its readings: the
highest threshold reached, held down to the threshold minus the sensor's deadband (so a reading
hovering at a threshold does not flicker), raised only after the sensor's `on_delay_s` (one wet
sample is not a warning); a reading of bad quality takes the point out of the count (level 0). An
item is at the highest colour of its points, and one colour higher when `k` of its points are one
colour below that (4 blue -> yellow, 3 yellow -> orange, 2 orange -> red); the pond likewise from
its items. The pond is ONE alarm point (scope `pond`, source = the site, kind WARNING_LEVEL)
whose level is its colour and whose message names the evidence, so an officer sees one incident
rising blue -> red, not a dozen point alarms.

After a start, a pond says nothing until every point has reported or its stale time has passed:
a partial picture would lower (and then raise again) a colour that the journal holds.

Arrays over the points, items and ponds; the work per batch is a few numpy passes over the
points, and none when no point changed colour.
"""

from __future__ import annotations

import numpy as np

from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from sensors.index import SensorIndex
from sensors.warning_levels import COLOURS, COLOURS_ZH

PRIORITY_BY_LEVEL = (Priority.LOW, Priority.LOW, Priority.MEDIUM, Priority.HIGH, Priority.CRITICAL)
MAX_EVIDENCE = 6  # items named in a pond's message; the API lists them all


class PondWarnings:
    """Colours of every warning point, item and pond of the fleet; emits the ponds' changes."""

    def __init__(self, index: SensorIndex, start_ms: int, stale_after_ms: np.ndarray):
        self.index = index
        points: list[int] = []
        item_of_point: list[int] = []
        self.items: list[tuple[int, str, str]] = []  # (pond, item id, item name)
        self.ponds: list[str] = []  # site ids
        item_counts: list[tuple[int, int, int]] = []
        pond_counts: list[tuple[int, int, int]] = []
        for site in index.sites:
            site_items = site.warning_item_list()
            if not site_items:
                continue
            pond = len(self.ponds)
            self.ponds.append(site.id)
            pond_counts.append(site.warning_escalation.pond)
            for item in site_items:
                for sensor_id in item.points:
                    points.append(index.by_site[site.id][sensor_id])
                    item_of_point.append(len(self.items))
                self.items.append((pond, item.id, item.name))
                item_counts.append(site.warning_escalation.item)
        n_points = len(points)
        self.slots = np.array(points, dtype=np.int64)
        self.point_of_slot = np.full(len(index.sensors), -1, dtype=np.int64)
        self.point_of_slot[self.slots] = np.arange(n_points)
        sensors = [index.sensors[s] for s in points]
        # thresholds signed so that "higher is worse" for every point; NaN where none is set
        self.sign = np.array([1.0 if s.warning.rising else -1.0 for s in sensors])  # type: ignore[union-attr]
        thresholds = [[np.nan if v is None else v for v in s.warning.thresholds] for s in sensors]  # type: ignore[union-attr]
        self.threshold = np.array(thresholds, dtype=np.float64).reshape(n_points, 4) * self.sign[:, None]
        self.deadband = np.array([s.deadband for s in sensors], dtype=np.float64)
        self.on_delay_ms = np.array([int(s.on_delay_s * 1000) for s in sensors], dtype=np.int64)
        self.item_of_point = np.array(item_of_point, dtype=np.int64)
        self.pond_of_item = np.array([p for p, _, _ in self.items], dtype=np.int64)
        self.item_k = np.array(item_counts, dtype=np.int64).reshape(len(self.items), 3)
        self.pond_k = np.array(pond_counts, dtype=np.int64).reshape(len(self.ponds), 3)
        ready_at = np.full(len(self.ponds), start_ms, dtype=np.int64)
        if n_points:
            pond_of_point = self.pond_of_item[self.item_of_point]
            np.maximum.at(ready_at, pond_of_point, start_ms + stale_after_ms[self.slots])
        self.ready_at = ready_at
        # ---- state
        self.level = np.zeros(n_points, dtype=np.int8)
        self.value = np.full(n_points, np.nan)
        self.rise_since = np.full(n_points, -1, dtype=np.int64)  # first reading above the held colour
        self.heard = np.zeros(n_points, dtype=bool)
        self.item_level = np.zeros(len(self.items), dtype=np.int8)
        self.pond_level = np.zeros(len(self.ponds), dtype=np.int8)
        self.emitted = np.zeros(len(self.ponds), dtype=np.int8)  # what the alarm point says; -1 restored
        self.ready = np.zeros(len(self.ponds), dtype=bool)
        self._dirty = bool(len(self.ponds))

    def __bool__(self) -> bool:
        return bool(len(self.ponds))

    # ---- readings

    def update(self, slot: np.ndarray, t: np.ndarray, x: np.ndarray, q: np.ndarray, changes: list) -> None:
        """One round's readings (each sensor at most once): new point colours, then the ponds."""
        point = self.point_of_slot[slot]
        rows = np.flatnonzero(point >= 0)
        if rows.size == 0:
            return
        p = point[rows]
        tr = t[rows]
        sx = x[rows] * self.sign[p]
        thr = self.threshold[p]
        with np.errstate(invalid="ignore"):
            raw = _highest(sx[:, None] >= thr)
            hold = _highest(sx[:, None] >= thr - self.deadband[p, None])
        raw = np.where(q[rows] >= 2, 0, raw)  # a bad reading says nothing: the point leaves the count
        level = self.level[p]
        held = np.where(raw >= level, raw, np.minimum(level, np.where(q[rows] >= 2, 0, hold)))
        rising = raw > level
        since = np.where(rising, np.where(self.rise_since[p] >= 0, self.rise_since[p], tr), -1)
        promote = rising & (tr - since >= self.on_delay_ms[p])
        new = np.where(rising, np.where(promote, raw, level), held).astype(np.int8)
        self.rise_since[p] = np.where(promote, -1, since)
        self.value[p] = x[rows]
        self.heard[p] = True
        if (new != level).any():
            self.level[p] = new
            self._dirty = True
        self._settle(int(tr.max()), changes)

    def advance(self, now_ms: int, changes: list) -> None:
        """The clock: a pond whose silent points' stale time has passed may speak."""
        if not self.ready.all():
            self._settle(now_ms, changes)

    def restore(self, site: str) -> None:
        """The journal holds this pond's alarm active (at a colour the engine will re-derive)."""
        if site in self.ponds:
            self.emitted[self.ponds.index(site)] = -1

    # ---- aggregation

    def _settle(self, now_ms: int, changes: list) -> None:
        newly_ready = False
        if not self.ready.all():
            became = ~self.ready & (self._all_heard() | (now_ms >= self.ready_at))
            newly_ready = bool(became.any())
            self.ready |= became
        if not self._dirty and not newly_ready:
            return
        if self._dirty:
            self.item_level = _escalate(self.level, self.item_of_point, len(self.items), self.item_k)
            self.pond_level = _escalate(self.item_level, self.pond_of_item, len(self.ponds), self.pond_k)
            self._dirty = False
        for pond in np.flatnonzero(self.ready & (self.pond_level != self.emitted)).tolist():
            if self.emitted[pond] == 0 and self.pond_level[pond] == 0:
                continue
            changes.append(self._change(pond, now_ms))
            self.emitted[pond] = self.pond_level[pond]

    def _all_heard(self) -> np.ndarray:
        silent = np.zeros(len(self.ponds), dtype=np.int64)
        np.add.at(silent, self.pond_of_item[self.item_of_point], ~self.heard)
        return silent == 0

    def _change(self, pond: int, t_ms: int) -> ConditionChange:
        site = self.ponds[pond]
        level = int(self.pond_level[pond])
        on = level > 0
        name = self.index.sites[self.index.site_ids.index(site)].name
        colour = COLOURS[level - 1] if on else "NORMAL"
        if on:
            message = f"{name} {COLOURS_ZH[level - 1]}预警: {self.evidence_text(pond)}"
        else:
            message = f"{name} 预警解除"
        return ConditionChange(
            site,
            site,
            ConditionKind.WARNING_LEVEL,
            on,
            t_ms,
            PRIORITY_BY_LEVEL[level],
            colour,
            value=float(level),
            message=message,
            scope="pond",
        )

    # ---- what the console and the API show

    def evidence_text(self, pond: int) -> str:
        """The pond's items at a colour, worst first, each with its points at a colour."""
        parts = []
        for item, _item_id, item_name, points in self._items_of(pond)[:MAX_EVIDENCE]:
            level = int(self.item_level[item])
            named = ", ".join(f"{sid} {COLOURS_ZH[lv - 1]}" for sid, lv in points if lv > 0)
            parts.append(f"{item_name} {COLOURS_ZH[level - 1]} ({named})")
        return "; ".join(parts)

    def _items_of(self, pond: int) -> list[tuple[int, str, str, list[tuple[str, int]]]]:
        out = []
        for item in np.flatnonzero((self.pond_of_item == pond) & (self.item_level > 0)).tolist():
            members = np.flatnonzero(self.item_of_point == item)
            points = [(self.index.sensors[self.slots[m]].id, int(self.level[m])) for m in members.tolist()]
            points.sort(key=lambda pl: -pl[1])
            out.append((item, self.items[item][1], self.items[item][2], points))
        out.sort(key=lambda it: -int(self.item_level[it[0]]))
        return out

    def snapshot(self, site: str) -> dict | None:
        """The pond's colours now: the pond, each item, each point (the API's warning-levels)."""
        if site not in self.ponds:
            return None
        pond = self.ponds.index(site)

        def name(level: int) -> str | None:
            return COLOURS[level - 1] if level > 0 else None

        items = []
        for item in np.flatnonzero(self.pond_of_item == pond).tolist():
            members = np.flatnonzero(self.item_of_point == item).tolist()
            items.append(
                {
                    "id": self.items[item][1],
                    "name": self.items[item][2],
                    "level": name(int(self.item_level[item])),
                    "points": [
                        {
                            "sensor": self.index.sensors[self.slots[m]].id,
                            "level": name(int(self.level[m])),
                            "value": None if np.isnan(self.value[m]) else float(self.value[m]),
                            "heard": bool(self.heard[m]),
                        }
                        for m in members
                    ],
                }
            )
        return {
            "site": site,
            "level": name(int(self.pond_level[pond])),
            "ready": bool(self.ready[pond]),
            "items": items,
        }


def _highest(reached: np.ndarray) -> np.ndarray:
    """(m, 4) thresholds reached -> the highest colour reached, 0 for none (thresholds ordered)."""
    any_reached = reached.any(axis=1)
    top = 4 - np.argmax(reached[:, ::-1], axis=1)
    return np.where(any_reached, top, 0).astype(np.int8)


def _escalate(member_level: np.ndarray, whole_of: np.ndarray, n_wholes: int, k: np.ndarray) -> np.ndarray:
    """Each whole's colour: its worst member's, raised to L when k[L] members are at L - 1 or above."""
    level = np.zeros(n_wholes, dtype=np.int8)
    if member_level.size == 0:
        return level
    np.maximum.at(level, whole_of, member_level)
    at_least = np.zeros((n_wholes, 3), dtype=np.int64)  # members at >= blue, >= yellow, >= orange
    np.add.at(at_least, whole_of, member_level[:, None] >= np.arange(1, 4)[None, :])
    for target in (2, 3, 4):  # yellow, orange, red
        reached = at_least[:, target - 2] >= k[:, target - 2]
        level = np.where(reached, np.maximum(level, target), level).astype(np.int8)
    return level
