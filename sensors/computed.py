"""Readings of computed sensors (sensors/formula.py), derived from each batch of their inputs.

Computed sensors of one formula shape (e.g. every `crest - pond`) evaluate together as arrays: one
numpy pass per shape and batch, whatever their number. A computed sensor gets a reading when a
reading of one of its inputs arrives, at that input's time, from the latest value of each input;
a formula over computed sensors is evaluated after them (levels in dependency order). A reading
older than its sensor's latest (a backfill) changes nothing and derives nothing. Quality
comes from the inputs: any input uncertain, bad or stale makes the result uncertain (suspect). No
result while an input has no value yet, nor where the formula gives no finite number.

A window term (`sum_over(rain, 3600)`, sensors/windows.py) keeps its own ring of buckets per
computed sensor; a reading of its input newer than the latest feeds it, in the same pass. The
result is uncertain while a window is not covered (since the start, or across a gap) or holds an
uncertain reading. `seed` feeds stored history into the windows at start, so a restart does not
begin with empty ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensors.formula import Window, evaluate
from sensors.index import SensorIndex
from sensors.model import Quality
from sensors.readings import ReadingBatch
from sensors.windows import WindowState

MAX_ROUNDS = 256  # rounds of one batch (readings of one sensor in it) evaluated one by one
MIN_STALE_S = 30.0  # as the engine's default stale time: 3 reporting intervals, at least 30 s


@dataclass(frozen=True, slots=True)
class _Shape:
    """Computed sensors of one level and one expression: their slots and their inputs' slots."""

    expr: str
    slots: np.ndarray  # (m,) the computed sensors
    inputs: dict[str, np.ndarray]  # name -> (m,) input slots
    constants: dict[str, np.ndarray]  # name -> (m,) values
    windows: tuple[tuple[Window, WindowState], ...] = ()  # the window terms and their state

    @property
    def input_matrix(self) -> np.ndarray:
        return np.stack(list(self.inputs.values()), axis=1)


class ComputedSensors:
    """Keeps the latest value of every sensor and derives computed readings batch by batch."""

    def __init__(self, index: SensorIndex):
        n = len(index.sensors)
        self.is_computed = np.array([s.formula is not None for s in index.sensors], dtype=bool)
        self._value = np.full(n, np.nan)
        self._ts = np.full(n, -1, dtype=np.int64)
        self._quality = np.zeros(n, dtype=np.int8)
        self._stale_ms = np.array(
            [1000 * (s.stale_after_s or max(3 * s.interval_s, MIN_STALE_S)) for s in index.sensors],
            dtype=np.int64,
        )
        self.levels = _levels(index)

    def __bool__(self) -> bool:
        return bool(self.levels)

    def derive(self, batch: ReadingBatch) -> ReadingBatch:
        """The computed readings this batch of measured readings gives (possibly none).

        A batch may hold several readings of one sensor (a gateway's buffered minutes): they are
        taken in rounds, each sensor's oldest first, so each gives its computed readings at its own
        time. Past MAX_ROUNDS the rest of a sensor's readings count as one round (its newest)."""
        if not self.levels or len(batch) == 0:
            return ReadingBatch.empty()
        if np.bincount(batch.slot, minlength=1).max() == 1:  # the usual batch: one reading a sensor
            return self._derive_round(batch)
        order = np.lexsort((batch.ts_ms, batch.slot))
        rank = np.minimum(_ranks(batch.slot[order]), MAX_ROUNDS - 1)
        return ReadingBatch.concat(
            [self._derive_round(batch.take(order[rank == r])) for r in range(rank.max() + 1)]
        )

    def window_inputs(self) -> dict[int, int]:
        """The slots that feed a window -> the longest window they feed, ms (what `seed` wants)."""
        longest: dict[int, int] = {}
        for level in self.levels:
            for shape in level:
                for window, state in shape.windows:
                    for slot in np.unique(shape.inputs[window.input]).tolist():
                        longest[slot] = max(longest.get(slot, 0), state.window_ms)
        return longest

    def seed(self, batch: ReadingBatch) -> int:
        """Feed stored readings (of the windows' inputs, over their windows) into the windows and
        the inputs' latest values, deriving nothing: every reading of a sensor, in time order.
        Returns how many readings it was given (0: no window to seed)."""
        if len(batch) == 0 or not any(shape.windows for level in self.levels for shape in level):
            return 0
        order = np.lexsort((batch.ts_ms, batch.slot))
        rank = _ranks(batch.slot[order])
        for r in range(int(rank.max()) + 1):
            touched = np.zeros(self._value.shape[0], dtype=bool)
            touched[self._remember(batch.take(order[rank == r]))] = True
            for level in self.levels:
                for shape in level:
                    for window, state in shape.windows:
                        slots = shape.inputs[window.input]
                        fed = np.flatnonzero(touched[slots])
                        self._feed(state, fed, slots[fed])
        return len(batch)

    def _feed(self, state: WindowState, rows: np.ndarray, slots: np.ndarray) -> None:
        """The latest reading of each input slot into the window rows it feeds (if newer)."""
        if rows.size:
            state.add(rows, self._ts[slots], self._value[slots], self._quality[slots], self._stale_ms[slots])

    def _derive_round(self, batch: ReadingBatch) -> ReadingBatch:
        """One round: each sensor at most once in ``batch``."""
        touched = np.zeros(self._value.shape[0], dtype=bool)
        touched[self._remember(batch)] = True
        parts = []
        for level in self.levels:
            for shape in level:
                derived = self._derive_shape(shape, touched)
                if len(derived):
                    touched[self._remember(derived)] = True  # for the formulas over computed sensors
                    parts.append(derived)
        return ReadingBatch.concat(parts)

    def _derive_shape(self, shape: _Shape, touched: np.ndarray) -> ReadingBatch:
        inputs = shape.input_matrix  # (m, k)
        rows = np.flatnonzero(touched[inputs].any(axis=1))
        if rows.size == 0:
            return ReadingBatch.empty()
        mine = inputs[rows]
        names = {name: self._value[slots[rows]] for name, slots in shape.inputs.items()}
        names.update({name: values[rows] for name, values in shape.constants.items()})
        input_ts = self._ts[mine]
        ts = input_ts.max(axis=1)
        stale = (ts[:, None] - input_ts) > self._stale_ms[mine]
        suspect = ((self._quality[mine] != Quality.GOOD) | stale).any(axis=1)
        for window, state in shape.windows:
            slots = shape.inputs[window.input][rows]
            fed = touched[slots]
            self._feed(state, rows[fed], slots[fed])
            names[window.key], covered = state.value(rows, ts)
            suspect |= ~covered
        value = evaluate(shape.expr, names)
        ok = (input_ts >= 0).all(axis=1) & np.isfinite(value)
        quality = np.where(suspect, Quality.UNCERTAIN, Quality.GOOD).astype(np.int8)
        return ReadingBatch(shape.slots[rows][ok].astype(np.int32), ts[ok], value[ok], quality[ok])

    def _remember(self, batch: ReadingBatch) -> np.ndarray:
        """Each reading of the batch (one per sensor: a round) becomes its sensor's latest, unless
        older (a backfill); returns the slots whose latest changed."""
        rows = np.flatnonzero(batch.ts_ms >= self._ts[batch.slot])
        s = batch.slot[rows]
        self._value[s] = batch.value[rows]
        self._ts[s] = batch.ts_ms[rows]
        self._quality[s] = batch.quality[rows]
        return s


def _ranks(slot: np.ndarray) -> np.ndarray:
    """Each reading's rank among its sensor's, for slots sorted (then by time): 0 the oldest."""
    starts = np.r_[0, np.flatnonzero(slot[1:] != slot[:-1]) + 1]
    return np.arange(slot.shape[0]) - np.repeat(starts, np.diff(np.r_[starts, slot.shape[0]]))


def _levels(index: SensorIndex) -> list[list[_Shape]]:
    """Computed sensors grouped by dependency level (level 0: inputs all measured), then by shape.
    The registry has refused cycles and inputs outside the site."""
    formulas = {slot: s.formula for slot, s in enumerate(index.sensors) if s.formula is not None}
    level: dict[int, int] = {}

    def depth(slot: int) -> int:
        if slot not in formulas:
            return -1
        if slot not in level:
            site = index.sensors[slot].site
            level[slot] = 1 + max(depth(index.by_site[site][i]) for i in formulas[slot].input_ids)
        return level[slot]

    grouped: dict[int, dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[int]]] = {}
    for slot, f in formulas.items():
        key = (f.expr, tuple(n for n, _ in f.inputs), tuple(n for n, _ in f.constants))
        grouped.setdefault(depth(slot), {}).setdefault(key, []).append(slot)
    levels = []
    for d in sorted(grouped):
        shapes = []
        for (expr, input_names, constant_names), slots in grouped[d].items():
            site_of = [index.sensors[s].site for s in slots]
            shapes.append(
                _Shape(
                    expr,
                    np.array(slots, dtype=np.int64),
                    {
                        name: np.array(
                            [
                                index.by_site[site][dict(formulas[s].inputs)[name]]
                                for s, site in zip(slots, site_of, strict=True)
                            ],
                            dtype=np.int64,
                        )
                        for name in input_names
                    },
                    {
                        name: np.array([dict(formulas[s].constants)[name] for s in slots])
                        for name in constant_names
                    },
                    tuple(
                        (w, WindowState(w.kind, w.window_s, len(slots)))  # type: ignore[arg-type]
                        for w in formulas[slots[0]].windows
                    ),
                )
            )
        levels.append(shapes)
    return levels
