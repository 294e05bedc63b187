"""One replay scores every candidate: each sensor's settings become virtual sensors of one engine.

Sensor T101-LT with 40 candidate settings becomes T101-LT#0 .. T101-LT#39 in one SensorIndex
(candidate 0 = its current setting); each of its readings is fed to all 40, so a single pass of
the service's own AlarmEngine over the history says what every setting would have raised. Early
warnings, votes and device roll-ups are left out: tuning is about one sensor's limit alarms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from alerts.engine.alarm_engine import DELAYED_COLS, AlarmEngine, EngineConfig
from alerts.engine.conditions import ConditionChange, ConditionKind
from alerts.replay import replay
from alerts.tune_settings import Setting
from sensors.index import SensorIndex
from sensors.model import Registry, Site
from sensors.readings import ReadingBatch

CHUNK_MS = 60_000  # clock-driven checks every minute of event time, as `hazmon backtest`
MAX_EXPANDED = 2_000_000  # readings per engine call after expansion: bounds memory, not results
FAULT_COL = len(DELAYED_COLS)  # the FAULT column in a ChangeLog, after LL, L, H, HH, ROC
_COL_OF = {kind: c for c, kind in enumerate(DELAYED_COLS)} | {ConditionKind.FAULT: FAULT_COL}


@dataclass(frozen=True, slots=True)
class Fleet:
    """Every candidate of every real sensor as a virtual sensor; a real sensor's candidates are contiguous."""

    real: SensorIndex
    index: SensorIndex  # the virtual sensors
    settings: tuple[Setting, ...]  # (V,) the setting of each virtual slot
    real_of: np.ndarray  # (V,) intp: real slot of each virtual slot
    first: np.ndarray  # (R,) intp: first virtual slot of each real sensor (its current setting)
    count: np.ndarray  # (R,) intp: candidates of each real sensor; 0 = nothing to tune

    @property
    def on_delay_ms(self) -> np.ndarray:
        return np.array([1000 * s.on_delay_s for s in self.settings], dtype=np.int64)


def build_fleet(real: SensorIndex, candidates: Sequence[Sequence[Setting]]) -> Fleet:
    """A virtual sensor per (real sensor, candidate setting); `candidates[slot][0]` is the current one."""
    settings: list[Setting] = []
    real_of: list[int] = []
    by_site: dict[str, list] = {site: [] for site in real.site_ids}
    for slot, sensor in enumerate(real.sensors):
        for k, st in enumerate(candidates[slot]):
            by_site[sensor.site].append(
                dataclasses.replace(
                    sensor,
                    id=f"{sensor.id}#{k}",
                    deadband=st.deadband,
                    on_delay_s=st.on_delay_s,
                    off_delay_s=st.off_delay_s,
                    forecast=False,
                    group=None,
                    device=None,
                )
            )
            settings.append(st)
            real_of.append(slot)
    # only a site's id reaches the engine
    sites = tuple(Site(site_id, site_id, "chemical", 1, tuple(by_site[site_id])) for site_id in real.site_ids)
    count = np.array([len(c) for c in candidates], dtype=np.intp)
    first = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.intp) if len(count) else count
    index = SensorIndex.build(Registry(sites))
    # registry order is site order, then sensor order: the virtual slots follow the real ones
    assert [s.id.rsplit("#", 1)[0] for s in index.sensors] == [real.sensors[r].id for r in real_of]
    return Fleet(real, index, tuple(settings), np.asarray(real_of, dtype=np.intp), first, count)


def expand(fleet: Fleet, batch: ReadingBatch) -> ReadingBatch:
    """Each reading of a real sensor repeated for all its virtual sensors (time order kept)."""
    n_each = fleet.count[batch.slot]  # (m,)
    keep = n_each > 0
    if not keep.all():
        batch, n_each = batch.take(keep), n_each[keep]
    total = int(n_each.sum())
    starts = np.repeat(np.cumsum(n_each) - n_each, n_each)  # position of each copy's first sibling
    offset = np.arange(total, dtype=np.intp) - starts
    slot = np.repeat(fleet.first[batch.slot], n_each) + offset
    return ReadingBatch(
        slot.astype(np.int32),
        np.repeat(batch.ts_ms, n_each),
        np.repeat(batch.value, n_each),
        np.repeat(batch.quality, n_each),
    )


def minute_slices(batch: ReadingBatch, weight: np.ndarray, budget: int) -> list[slice]:
    """Split a time-sorted batch at minute boundaries into slices of at most ~`budget` weight.

    A minute is never split (the replay's clock ticks fall on minute boundaries), so one busy
    minute may exceed the budget on its own.
    """
    n = len(batch)
    if n == 0:
        return []
    minute = batch.ts_ms // CHUNK_MS
    bounds = np.r_[np.flatnonzero(np.r_[True, minute[1:] != minute[:-1]]), n]  # minute starts, then n
    weight_before = np.r_[0, np.cumsum(weight)][bounds]  # (b,) nondecreasing
    out, j = [], 0
    while bounds[j] < n:
        k = max(int(np.searchsorted(weight_before, weight_before[j] + budget, side="right")) - 1, j + 1)
        out.append(slice(int(bounds[j]), int(bounds[k])))
        j = k
    return out


@dataclass(slots=True)
class ChangeLog:
    """The condition changes of the virtual sensors as columns (LL..ROC and FAULT only)."""

    vslot: list[int] = dataclasses.field(default_factory=list)
    col: list[int] = dataclasses.field(default_factory=list)  # 0..4 DELAYED_COLS, FAULT_COL
    on: list[bool] = dataclasses.field(default_factory=list)
    t_ms: list[int] = dataclasses.field(default_factory=list)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.asarray(self.vslot, dtype=np.intp),
            np.asarray(self.col, dtype=np.intp),
            np.asarray(self.on, dtype=bool),
            np.asarray(self.t_ms, dtype=np.int64),
        )


@dataclass(slots=True)
class Coverage:
    """How long each real sensor was observed: gaps longer than its stale time do not count."""

    gap_cap_ms: np.ndarray  # (R,) int64
    interval_ms: np.ndarray  # (R,) int64
    observed_ms: np.ndarray  # (R,) int64
    first_ms: np.ndarray  # (R,) int64, -1 = never heard
    last_ms: np.ndarray  # (R,) int64

    @classmethod
    def empty(cls, real: SensorIndex, resolution_s: float = 0.0) -> Coverage:
        """Nothing observed yet; a gap counts up to the engine's own stale time (at least 3 x resolution)."""
        n = len(real)
        stale_ms = AlarmEngine(real, EngineConfig()).stale_after_ms  # one definition of "silent"
        return cls(
            np.maximum(stale_ms, int(3000 * resolution_s)),
            (np.maximum(real.interval_s, resolution_s) * 1000).astype(np.int64),
            np.zeros(n, np.int64),
            np.full(n, -1, np.int64),
            np.full(n, -1, np.int64),
        )

    def add(self, batch: ReadingBatch) -> None:
        """Count a time-sorted batch of real readings."""
        if not len(batch):
            return
        order = np.argsort(batch.slot, kind="stable")  # by sensor, in time within each
        slot, t = batch.slot[order].astype(np.intp), batch.ts_ms[order]
        first = np.r_[True, slot[1:] != slot[:-1]]
        prev = np.where(first, self.last_ms[slot], np.r_[-1, t[:-1]])
        # each reading stands for the time since the one before, its very first for one interval
        gap = np.minimum(np.where(prev >= 0, t - prev, self.interval_ms[slot]), self.gap_cap_ms[slot])
        np.add.at(self.observed_ms, slot, np.maximum(gap, 0))
        heads = slot[first]
        self.first_ms[heads] = np.where(self.first_ms[heads] < 0, t[first], self.first_ms[heads])
        last = np.r_[slot[1:] != slot[:-1], True]
        self.last_ms[slot[last]] = t[last]


def run(
    fleet: Fleet,
    chunks: Iterable[ReadingBatch],
    start_ms: int,
    end_ms: int,
    coverage: Coverage,
    progress: Callable[[int], None] | None = None,
) -> ChangeLog:
    """Replay real readings in [start_ms, end_ms) through one engine of all virtual sensors.

    `chunks` are time-sorted batches of real slots, each later than the one before (the CSV sliced,
    or InfluxDB read window by window); they are expanded a few minutes at a time, so memory stays
    bounded by MAX_EXPANDED whatever the history's length.
    """
    engine = AlarmEngine(fleet.index, EngineConfig(stale_if_never_heard=False), start_ms=start_ms)
    log = ChangeLog()
    by_site = fleet.index.by_site

    def collect(changes: list[ConditionChange], _now: int) -> None:
        for c in changes:
            col = _COL_OF.get(c.kind)
            if col is None or c.scope != "sensor":
                continue
            log.vslot.append(by_site[c.site][c.source])
            log.col.append(col)
            log.on.append(c.active)
            log.t_ms.append(c.time_ms)

    for chunk in chunks:
        t = chunk.ts_ms
        inside = chunk.take(slice(int(np.searchsorted(t, start_ms)), int(np.searchsorted(t, end_ms))))
        if not len(inside):
            continue
        coverage.add(inside)
        for sl in minute_slices(inside, fleet.count[inside.slot], MAX_EXPANDED):
            part = inside.take(sl)
            replay(engine, expand(fleet, part), collect, CHUNK_MS)
            if progress is not None:
                progress(len(part))
    return log
