"""State alarms of discrete signals (sensors/discrete.py): an abnormal state held for its on-delay.

Each discrete sensor with `state_alarms` is one alarm point (kind STATE): active while its state
is one of the alarmed states and has been for that state's `after_s`, the level being the state's
name. An interlock bypassed at 08:00 with `after_s: 28800` alarms at 16:00 even if the signal
sends nothing in between (the clock's `advance` runs the timers); a return to an unalarmed state
clears it at once. A reading of bad quality says nothing about the state and is ignored; a code
outside the states is the engine's out-of-range fault, not a state.

Arrays over the discrete sensors with alarms and their states (at most 16), no loop per reading.
"""

from __future__ import annotations

import numpy as np

from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from sensors.discrete import MAX_STATES
from sensors.index import SensorIndex
from sensors.kinds import STATE_NAMES_ZH

NO_TIME = np.iinfo(np.int64).max


class StateAlarms:
    """Current state, since when, and the alarm of every discrete sensor that has state alarms."""

    def __init__(self, index: SensorIndex):
        self.index = index
        rows = [slot for slot, s in enumerate(index.sensors) if s.state_alarms]
        self.slots = np.array(rows, dtype=np.int64)
        self.row_of_slot = np.full(len(index.sensors), -1, dtype=np.int64)
        self.row_of_slot[self.slots] = np.arange(len(rows))
        n = len(rows)
        self.alarmed = np.zeros((n, MAX_STATES), dtype=bool)
        self.after_ms = np.zeros((n, MAX_STATES), dtype=np.int64)
        self.priority = np.zeros((n, MAX_STATES), dtype=np.int8)
        for r, slot in enumerate(rows):
            sensor = index.sensors[slot]
            for alarm in sensor.state_alarms:
                code = sensor.states.index(alarm.state)
                self.alarmed[r, code] = True
                self.after_ms[r, code] = int(alarm.after_s * 1000)
                self.priority[r, code] = int(Priority[alarm.priority.upper()])
        self.n_states = np.array([len(index.sensors[s].states) for s in rows], dtype=np.int64)
        # ---- state
        self.state = np.full(n, -1, dtype=np.int64)
        self.since = np.full(n, -1, dtype=np.int64)  # when the current state began
        self.active = np.zeros(n, dtype=bool)
        self.active_state = np.full(n, -1, dtype=np.int64)
        self._next_due = NO_TIME  # the earliest on-delay that may run out in silence

    def __bool__(self) -> bool:
        return bool(self.slots.size)

    def update(self, slot: np.ndarray, t: np.ndarray, x: np.ndarray, q: np.ndarray, changes: list) -> None:
        """One round's readings (each sensor at most once)."""
        row = self.row_of_slot[slot]
        pick = np.flatnonzero((row >= 0) & (q < 2) & np.isfinite(x))
        if pick.size == 0:
            return
        r, tr = row[pick], t[pick]
        code = np.rint(x[pick]).astype(np.int64)
        valid = (code >= 0) & (code < self.n_states[r])
        r, tr, code = r[valid], tr[valid], code[valid]
        moved = code != self.state[r]
        self.state[r[moved]] = code[moved]
        self.since[r[moved]] = tr[moved]
        self._judge(r, tr, changes)

    def advance(self, now_ms: int, changes: list) -> None:
        """The clock: on-delays that ran out while the signal sent nothing new."""
        if now_ms < self._next_due:
            return
        r = np.flatnonzero(self.state >= 0)
        self._judge(r, np.full(r.size, now_ms, dtype=np.int64), changes)

    def restore(self, site: str, source: str) -> None:
        """The journal holds this point's alarm active: no second raise when the state is seen again."""
        slot = self.index.by_site.get(site, {}).get(source)
        if slot is not None and self.row_of_slot[slot] >= 0:
            self.active[self.row_of_slot[slot]] = True

    def _judge(self, r: np.ndarray, now: np.ndarray, changes: list) -> None:
        state = np.clip(self.state[r], 0, None)
        alarmed = self.alarmed[r, state] & (self.state[r] >= 0)
        due_at = self.since[r] + self.after_ms[r, state]
        on = alarmed & (now >= due_at)
        moved = (on != self.active[r]) | (on & (self.state[r] != self.active_state[r]))
        for i in np.flatnonzero(moved).tolist():
            row = int(r[i])
            changes.append(self._change(row, bool(on[i]), int(due_at[i]) if on[i] else int(now[i])))
        self.active[r] = on
        self.active_state[r] = np.where(on, self.state[r], -1)
        waiting = np.flatnonzero(self.alarmed[np.arange(self.state.size), np.clip(self.state, 0, None)]
                                 & (self.state >= 0) & ~self.active)  # fmt: skip
        self._next_due = int(self._due_times(waiting).min()) if waiting.size else NO_TIME

    def _due_times(self, rows: np.ndarray) -> np.ndarray:
        return self.since[rows] + self.after_ms[rows, self.state[rows]]

    def _change(self, row: int, on: bool, t_ms: int) -> ConditionChange:
        sensor = self.index.sensors[int(self.slots[row])]
        code = int(self.state[row])
        name = sensor.states[code]
        zh = STATE_NAMES_ZH.get(name, name)
        after_s = int(self.after_ms[row, code]) / 1000
        held = f"已持续 {_duration_zh(after_s)}" if after_s else ""
        if on:
            priority, level = Priority(int(self.priority[row, code])), name.upper()
            message = f"{sensor.name} 状态{zh}{held}".rstrip()
        else:
            priority, level = Priority.LOW, name.upper()
            message = f"{sensor.name} 状态恢复: {zh}"
        return ConditionChange(
            sensor.site,
            sensor.id,
            ConditionKind.STATE,
            on,
            t_ms,
            priority,
            level,
            value=float(code),
            message=message,
        )


def _duration_zh(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} 小时"
    if seconds >= 60:
        return f"{seconds / 60:g} 分钟"
    return f"{seconds:g} 秒"


class Contradictions:
    """Discrete signals whose state a measurement contradicts (registry `contradicts`): an alarm
    point (kind MISMATCH) per signal, active while the signal is in the state and the measurement
    has risen by `rises_by` above its lowest reading since the state began."""

    def __init__(self, index: SensorIndex):
        self.index = index
        rules = [(slot, s) for slot, s in enumerate(index.sensors) if s.contradicts is not None]
        self.signal = np.array([slot for slot, _ in rules], dtype=np.int64)
        self.measure = np.array(
            [index.by_site[s.site][s.contradicts.sensor] for _, s in rules],  # type: ignore[union-attr]
            dtype=np.int64,
        )
        self.code = np.array([s.states.index(s.contradicts.state) for _, s in rules], dtype=np.int64)  # type: ignore[union-attr]
        self.rise = np.array([s.contradicts.rises_by for _, s in rules], dtype=np.float64)  # type: ignore[union-attr]
        self.priority = [Priority[s.contradicts.priority.upper()] for _, s in rules]  # type: ignore[union-attr]
        self.rule_of_signal = np.full(len(index.sensors), -1, dtype=np.int64)
        self.rule_of_signal[self.signal] = np.arange(len(rules))
        self.watched = np.zeros(len(index.sensors), dtype=bool)
        self.watched[self.measure] = True
        # ---- state
        self.in_state = np.zeros(len(rules), dtype=bool)
        self.lowest = np.full(len(rules), np.nan)  # the measurement's lowest since the state began
        self.risen = np.full(len(rules), np.nan)  # its latest reading above that lowest
        self.active = np.zeros(len(rules), dtype=bool)

    def __bool__(self) -> bool:
        return bool(self.signal.size)

    def update(self, slot: np.ndarray, t: np.ndarray, x: np.ndarray, q: np.ndarray, changes: list) -> None:
        good = (q < 2) & np.isfinite(x)
        rule = self.rule_of_signal[slot]
        sig = np.flatnonzero((rule >= 0) & good)
        if sig.size:
            r = rule[sig]
            now_in = np.rint(x[sig]).astype(np.int64) == self.code[r]
            changed = now_in != self.in_state[r]
            self.lowest[r[changed]] = np.nan
            self.risen[r[changed]] = np.nan
            self.in_state[r] = now_in
        meas = np.flatnonzero(self.watched[slot] & good)
        if meas.size == 0 and sig.size == 0:
            return
        # the measurement's readings of this round, for every rule watching it (few rules: a dict)
        value_of_slot = dict(zip(slot[meas].tolist(), x[meas].tolist(), strict=True))
        rules = np.flatnonzero(np.isin(self.measure, slot[meas]))
        fresh = np.array([value_of_slot[int(m)] for m in self.measure[rules]], dtype=np.float64)
        inside = self.in_state[rules]
        self.lowest[rules] = np.where(inside, np.fmin(self.lowest[rules], fresh), np.nan)
        self.risen[rules] = np.where(inside, fresh - self.lowest[rules], np.nan)
        on = self.in_state & (np.nan_to_num(self.risen, nan=-np.inf) >= self.rise)
        when = int(t.max())
        for r in np.flatnonzero(on != self.active).tolist():
            changes.append(self._change(r, bool(on[r]), when))
        self.active = on

    def restore(self, site: str, source: str) -> None:
        slot = self.index.by_site.get(site, {}).get(source)
        if slot is not None and self.rule_of_signal[slot] >= 0:
            self.active[self.rule_of_signal[slot]] = True

    def _change(self, r: int, on: bool, t_ms: int) -> ConditionChange:
        signal = self.index.sensors[int(self.signal[r])]
        measure = self.index.sensors[int(self.measure[r])]
        rule = signal.contradicts
        assert rule is not None
        zh = STATE_NAMES_ZH.get(rule.state, rule.state)
        rise = None if np.isnan(self.risen[r]) else float(self.risen[r])
        message = (
            f"{signal.name} 状态{zh}, 但{measure.name}上升 ≥ {rule.rises_by:g} {measure.unit}: 状态与测量矛盾"
            if on
            else f"{signal.name} 状态与{measure.name}不再矛盾"
        )
        return ConditionChange(
            signal.site,
            signal.id,
            ConditionKind.MISMATCH,
            on,
            t_ms,
            self.priority[r],
            "MISMATCH",
            value=rise,
            limit=rule.rises_by,
            message=message,
        )
