"""The alarm engine: per-sensor state in arrays, kernels applied to whole batches, condition changes out.

Struct of arrays (docs/design.md decision 5): slot i of every array is sensor i of the SensorIndex.
A batch is split into *rounds* so that each sensor appears at most once per round, in event
time order; each round is a handful of vectorised kernel calls. Only the conditions that change
become Python objects (ConditionChange), and there are few of those.

Event time (decision 3): conditions are stamped with the reading's own time. A reading older
than or equal to the sensor's latest one is a duplicate or out of order: it is stored by ingest
but changes no engine state (counted in `late_or_duplicate`).

Shortcuts (EngineConfig.shortcuts, on by default) skip work that cannot change a condition, so a
tick of a large, mostly healthy fleet costs a few passes over its arrays: a batch with each sensor
once in slot order is one round without a sort; a round of every sensor uses the state arrays
whole; limits and delays are evaluated only for *hot* sensors (some raw, pending or active
condition) and readings outside the sensor's quiet band; stuck checks only after frozen samples;
votes only after a voter changed; the stale roll-up only once some sensor can be overdue. With
shortcuts off every rule runs on every reading; tests/unit/test_engine.py holds the two to the
same condition changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from alerts.engine import jit, kernels
from alerts.engine.conditions import FAULT_NAMES, FAULT_NAMES_ZH, ConditionChange, ConditionKind, Priority
from alerts.engine.pond_warnings import PondWarnings
from alerts.engine.state_alarms import Contradictions, StateAlarms
from sensors.index import SensorIndex
from sensors.kinds import names_where
from sensors.readings import ReadingBatch

logger = logging.getLogger(__name__)

K = ConditionKind
N_KINDS = len(ConditionKind)
LIMIT_COLS = [K.LL, K.L, K.H, K.HH]
DELAYED_COLS = [K.LL, K.L, K.H, K.HH, K.ROC]  # conditions debounced by on/off delays ...
N_DELAYED = len(DELAYED_COLS)  # ... the first columns of `active`: a slice [:, :N_DELAYED], not a list
assert all(int(k) == c for c, k in enumerate(DELAYED_COLS))
VOTING_KINDS = (K.H, K.HH)
_NO_ROWS = np.zeros(0, dtype=bool)  # jit.instrument_moves' "every sensor heard before"
RANGE_TOLERANCE = kernels.RANGE_TOLERANCE
LEVEL_NAMES_ZH = {K.LL: "低低", K.L: "低", K.H: "高", K.HH: "高高"}
FLATLINE_KINDS = names_where(lambda k: k.may_flatline)  # a dry rain gauge reads 0 for days: not stuck
CRITICAL_KINDS = names_where(lambda k: k.critical)  # people die within minutes
FLAT_MEMORY_MS = 7 * 86_400_000  # a learned flat stretch counts half after a week ...
FLAT_CAP_MS = 86_400_000  # ... and counts at most a day
JUMP_MEMORY_MS = 30 * 86_400_000  # a learned jump counts half after a month (bursts recur slowly) ...
JUMP_FACTOR = 3.0  # ... and only a jump this many times as large is unusual again


@dataclass(slots=True)
class EngineConfig:
    stale_intervals: float = 3.0  # stale after this many missed intervals ...
    stale_min_s: float = 30.0  # ... but never sooner than this
    spike_k: float = 10.0
    # a jump past a critical limit (HH, LL) is held as a possible spike only on a sensor that reports
    # at least this often: the hold lasts one reporting interval, and a tailings dam's piezometer that
    # reports every 10 min must not annunciate a real HH 10 min late. A slower sensor alarms at once;
    # if it was a spike, the alarm returns with the next reading (docs/design.md decision 6)
    spike_hold_max_s: float = 30.0
    # a sensor is judged stuck only after its reading has been frozen this long (the registry's
    # `stuck_after_s` overrides it per sensor): minutes, so a steady reading at a detector's
    # resolution is not a fault after six samples
    stuck_after_s: float = 300.0
    # live: a sensor never heard since start goes stale; a backtest only judges sensors in its data
    stale_if_never_heard: bool = True
    groups_k: dict[str, int] = field(default_factory=dict)  # votes needed per group (default majority)
    # skip work that cannot change a condition: readings inside their quiet band, votes while no voter
    # changed, the stale roll-up before any sensor can be overdue, sorting a batch already in order.
    # False evaluates every rule on every reading: the reference the unit tests hold the shortcuts to.
    shortcuts: bool = True


class _Round:
    """One round's readings (each sensor at most once) and what its rule steps found so far."""

    __slots__ = (
        "any_bad_q", "bad_q", "d", "diff", "full", "heard", "held", "held_slots", "last_t", "last_x", "live",
        "q", "slot", "t", "x",
    )  # fmt: skip

    def __init__(self, engine: AlarmEngine, slot: np.ndarray, t: np.ndarray, x: np.ndarray, q, full: bool):
        self.slot, self.t, self.x, self.q, self.full = slot, t, x, q, full
        self.last_x: np.ndarray = self.g(engine.last_x)  # the sensors' previous readings
        self.last_t: np.ndarray = self.g(engine.last_t)
        self.diff: np.ndarray = x - self.last_x
        self.d: np.ndarray = np.abs(self.diff)
        self.bad_q: np.ndarray = q >= 2
        self.any_bad_q = bool(self.bad_q.any())
        # rows of sensors heard before; None when every sensor of the fleet has been (the usual case)
        self.heard: np.ndarray | None = None if engine._n_heard == engine.n else self.last_t >= 0
        self.held: np.ndarray | None = None  # rows held as possible spikes: they change nothing else
        self.held_slots: np.ndarray | None = None  # ... and their slots
        self.live: np.ndarray | None = None  # (m,) bool of the other rows, when some are held

    def g(self, a: np.ndarray) -> np.ndarray:
        """This round's rows of a per-sensor array (the array itself when the round is every sensor)."""
        return a if self.full else a.take(self.slot)


class AlarmEngine:
    """Evaluates limits, rate of change, faults, staleness and votes for every sensor."""

    def __init__(self, index: SensorIndex, config: EngineConfig | None = None, start_ms: int = 0):
        self.index = index
        self.config = config or EngineConfig()
        sensors = index.sensors
        n = len(sensors)
        self.n = n
        nan = np.nan
        self.limits = np.array(
            [
                [
                    s.limits.ll if s.limits.ll is not None else nan,
                    s.limits.l if s.limits.l is not None else nan,
                    s.limits.h if s.limits.h is not None else nan,
                    s.limits.hh if s.limits.hh is not None else nan,
                ]
                for s in sensors
            ],
            dtype=np.float64,
        ).reshape(n, 4)
        self.deadband = np.array([s.deadband for s in sensors], dtype=np.float64)
        self.on_delay_ms = np.array([s.on_delay_s * 1000 for s in sensors], dtype=np.int64)
        self.off_delay_ms = np.array([s.off_delay_s * 1000 for s in sensors], dtype=np.int64)
        self.lo, self.hi = index.range_lo, index.range_hi
        self.span = self.hi - self.lo
        self.roc_limit = np.array(
            [s.roc_per_min if s.roc_per_min else nan for s in sensors], dtype=np.float64
        )
        self.roc_window_ms = np.array([s.roc_window_s * 1000 for s in sensors], dtype=np.int64)
        cfg = self.config
        self.stale_after_ms = np.array(
            [
                1000 * (s.stale_after_s or max(cfg.stale_intervals * s.interval_s, cfg.stale_min_s))
                for s in sensors
            ],
            dtype=np.int64,
        )
        # a rolling window (a TWA, a 24 h rainfall) plateaus by construction; its input's own
        # flat-line check speaks for the instrument
        self.may_flatline = np.array(
            [
                s.kind in FLATLINE_KINDS or (s.formula is not None and bool(s.formula.windows))
                for s in sensors
            ],
            dtype=bool,
        )
        self.stuck_after_ms = np.array(
            [1000 * (s.stuck_after_s or cfg.stuck_after_s) for s in sensors], dtype=np.int64
        )
        self.resolution = np.array([s.resolution for s in sensors], dtype=np.float64)

        devices = sorted({(s.site, s.device) for s in sensors if s.device})
        self.devices = devices
        dev_pos = {d: i for i, d in enumerate(devices)}
        self.device_of = np.array([dev_pos.get((s.site, s.device), -1) for s in sensors], dtype=np.int64)
        groups = sorted({(s.site, s.group) for s in sensors if s.group})
        self.groups = groups
        grp_pos = {g: i for i, g in enumerate(groups)}
        self.group_of = np.array([grp_pos.get((s.site, s.group), -1) for s in sensors], dtype=np.int64)
        sizes = np.bincount(self.group_of[self.group_of >= 0], minlength=len(groups))
        self.group_k = np.array(
            [cfg.groups_k.get(g[1], int(sizes[i]) // 2 + 1) for i, g in enumerate(groups)], dtype=np.int64
        )
        self.group_members = np.flatnonzero(self.group_of >= 0)
        self.member_group = self.group_of[self.group_members]  # each voter's group
        # tailings ponds' warning colours (point -> item -> pond), None without warning points
        pond_warnings = PondWarnings(index, start_ms, self.stale_after_ms)
        self.pond_warnings = pond_warnings if pond_warnings else None
        # discrete signals: never a spike (a state change is a full-span jump), state alarms
        self.discrete = np.array([s.discrete for s in sensors], dtype=bool)
        self._any_discrete = bool(self.discrete.any())
        state_alarms = StateAlarms(index)
        self.state_alarms = state_alarms if state_alarms else None
        contradictions = Contradictions(index)
        self.contradictions = contradictions if contradictions else None
        # the steps of _step_derived_alarms, only those with something to watch
        self._derived_alarms = [d for d in (self.pond_warnings, self.state_alarms, self.contradictions) if d]

        # ---- precomputed per sensor for the shortcuts (same arithmetic as the kernels)
        # quiet band: with no raw, pending or active condition, a value strictly between the highest
        # low limit and the lowest high limit raises nothing (the deadband only delays a clear)
        self.quiet_lo = np.nan_to_num(np.fmax(self.limits[:, 0], self.limits[:, 1]), nan=-np.inf)
        self.quiet_hi = np.nan_to_num(np.fmin(self.limits[:, 2], self.limits[:, 3]), nan=np.inf)
        margin = self.span * RANGE_TOLERANCE  # kernels.outside
        self.range_lo_tol, self.range_hi_tol = self.lo - margin, self.hi + margin
        self.spike_floor = kernels.SPIKE_MIN_FRACTION * self.span  # kernels.jump_beyond
        interval_ms = np.array([1000.0 * s.interval_s for s in sensors], dtype=np.float64)
        self.slow_to_hold = interval_ms > 1000.0 * cfg.spike_hold_max_s  # _release_critical_jumps
        self._any_slow_to_hold = bool(self.slow_to_hold.any())
        self.roc_slots = np.flatnonzero(~np.isnan(self.roc_limit))
        self.has_roc = ~np.isnan(self.roc_limit)
        self.all_slots = np.arange(n, dtype=np.intp)
        self.all_slots.flags.writeable = False

        # ---- state
        self.last_x = np.full(n, nan)
        self.last_t = np.full(n, -1, dtype=np.int64)
        self.seen_since = np.full(n, start_ms, dtype=np.int64)  # stale clock for sensors never heard
        self.anchor_x = np.full(n, nan)
        self.anchor_t = np.full(n, -1, dtype=np.int64)
        self.raw = np.zeros((n, N_DELAYED), dtype=bool)  # undelayed LL, L, H, HH, ROC
        self.pending = np.full((n, N_DELAYED), -1, dtype=np.int64)
        self.active = np.zeros((n, N_KINDS), dtype=bool)  # effective conditions, sensor scope
        self.hot = np.zeros(n, dtype=bool)  # some raw, pending or active LL..ROC: outside the quiet band
        self.fault_code = np.zeros(n, dtype=np.int8)
        self.mad = np.full(n, nan)
        self.n_seen = np.zeros(n, dtype=np.int64)
        self.n_changes = np.zeros(n, dtype=np.int64)
        self.frozen_samples = np.zeros(n, dtype=np.int64)
        self.last_change_t = np.full(n, -1, dtype=np.int64)
        self.rate_at_change = np.zeros(n)  # units per ms, EW over recent changes
        # learned flat stretches: the longest one the sensor came out of by itself (decaying), and
        # the value it rested at (a bursty signal's zero); see kernels.stuck_condition
        self._spare_moves: tuple | None = None  # _moves_buffers' double buffers ...
        self._oor_spare: np.ndarray | None = None  # ... and the out-of-range mask the last full round used
        self.step_min = np.full(n, np.inf)  # the smallest change seen: the learned resolution
        self.jump_peak = np.zeros(n)  # the largest unusual jump lately (decaying), see _unusual_jumps
        self.jump_peak_t = np.full(n, -1, dtype=np.int64)
        self.flat_norm_ms = np.zeros(n)
        self.flat_norm_t = np.full(n, -1, dtype=np.int64)
        self.rest_x = np.full(n, nan)
        self.last_run_x = np.full(n, nan)  # the value of the last flat stretch that ended by itself
        self.spike_pending = np.zeros(n, dtype=bool)
        self.spike_x = np.full(n, nan)
        self.spike_t = np.full(n, -1, dtype=np.int64)
        self.device_active = np.zeros(len(devices), dtype=bool)
        self.group_active = np.zeros(len(groups), dtype=bool)
        self.group_degraded = np.zeros(len(groups), dtype=bool)
        self.late_or_duplicate = 0
        self.forecaster = None  # set by attach_forecaster(); early warnings
        # bookkeeping of the shortcuts: what could need work, over the whole fleet
        self._n_heard = 0  # sensors with a reading
        self._n_faulty = 0  # sensors with fault_code > 0
        self._n_spikes_held = 0  # sensors with spike_pending
        self._warm = n == 0  # every sensor past the spike warm-up
        self._votes_due = True  # a voter's H/HH or fault changed since the last vote
        self._stale_clear = False  # the last stale check found nothing stale (and nothing was restored)
        self._next_overdue = np.iinfo(np.int64).min  # no sensor can be stale at or before this time
        self._stale_marked = False  # some sensor may have its STALE condition active
        self._fault_restored: set[int] = set()  # FAULT restored active while fault_code is 0

    # ---- public API

    def process(self, batch: ReadingBatch) -> list[ConditionChange]:
        """Apply a batch of accepted readings (any order); return the condition changes."""
        m = len(batch)
        if m == 0:
            return []
        slot, ts, x, q = batch.slot, batch.ts_ms, batch.value, batch.quality
        short = self.config.shortcuts
        changes: list[ConditionChange] = []
        if short and (m == 1 or bool(np.all(slot[1:] > slot[:-1]))):
            # each sensor at most once and in slot order (a tick as gateways deliver it): one round,
            # no sort; a round of every sensor needs no gather or scatter either
            full = m == self.n and int(slot[0]) == 0 and int(slot[-1]) == m - 1
            idx = self.all_slots if full else slot.astype(np.intp)
            keep = ts > (self.last_t if full else self.last_t.take(idx))
            if not keep.all():
                self.late_or_duplicate += int(np.count_nonzero(~keep))
                kept = np.flatnonzero(keep)
                if len(kept) == 0:
                    return []
                idx, ts, x, q, full = idx[kept], ts[kept], x[kept], q[kept], False
            self._round(idx, ts, x, q, changes, full, time_order=True)
        else:
            ts = self._rounds(slot, ts, x, q, changes)
            if ts is None:
                return []
        if self.forecaster is not None:
            self.forecaster.on_batch_end(int(ts.max()), changes)
        changes.sort(key=lambda c: c.time_ms)
        return changes

    def _rounds(self, slot, ts, x, q, changes) -> np.ndarray | None:
        """Split a batch into rounds (each sensor at most once, in time order) and run them.

        Returns the times of the readings applied, None when every reading was late or a duplicate.
        """
        short = self.config.shortcuts
        if short and bool(np.all(ts[1:] >= ts[:-1])):
            # time-sorted (a replay): a stable sort by slot is the lexsort; small fleets sort by radix
            key = slot.astype(np.uint16) if self.n <= 1 << 16 else slot
            order = np.argsort(key, kind="stable")
        else:
            order = self._slot_order_if_unique(slot) if short and 8 * len(slot) > self.n else None
            if order is None:
                order = np.lexsort((ts, slot))  # by slot, then time
        slot, ts, x, q = slot[order].astype(np.intp), ts[order], x[order], q[order]
        # drop out-of-order and duplicate readings (same or older time than what the engine saw)
        first = np.r_[True, slot[1:] != slot[:-1]]
        keep = (ts > self.last_t[slot]) & (first | (ts > np.r_[0, ts[:-1]]))
        if not keep.all():
            self.late_or_duplicate += int(np.count_nonzero(~keep))
            slot, ts, x, q = slot[keep], ts[keep], x[keep], q[keep]
            if len(slot) == 0:
                return None
            first = np.r_[True, slot[1:] != slot[:-1]]
        # rank of each reading within its slot = its round
        starts = np.flatnonzero(first)
        rank = np.arange(len(slot)) - np.repeat(starts, np.diff(np.r_[starts, len(slot)]))
        n_rounds = int(rank.max(initial=0)) + 1
        if n_rounds == 1:
            if short:
                self._round(slot, ts, x, q, changes, len(slot) == self.n, time_order=True)
            else:
                by_time = np.argsort(ts, kind="stable")
                self._round(slot[by_time], ts[by_time], x[by_time], q[by_time], changes, False, True)
        elif short:
            # rounds made contiguous by one stable sort on the rank (slot order kept within a round)
            by_round = np.argsort(rank.astype(np.int16) if n_rounds < 1 << 15 else rank, kind="stable")
            ends = np.cumsum(np.bincount(rank, minlength=n_rounds)).tolist()
            r_slot, r_ts, r_x, r_q = slot[by_round], ts[by_round], x[by_round], q[by_round]
            lo = 0
            for hi in ends:
                sel = slice(lo, hi)
                self._round(r_slot[sel], r_ts[sel], r_x[sel], r_q[sel], changes, hi - lo == self.n, False)
                lo = hi
        else:
            for r in range(n_rounds):
                sel = np.flatnonzero(rank == r)
                self._round(slot[sel], ts[sel], x[sel], q[sel], changes, False, False)
        return ts

    def _slot_order_if_unique(self, slot: np.ndarray) -> np.ndarray | None:
        """Slot order of a batch holding each sensor at most once, by one scatter and one gather
        over the fleet (linear, where a sort of an unordered batch is n log n: readings merged from
        many gateways, or computed readings appended after their inputs); None if a sensor repeats."""
        position = np.full(self.n, -1, dtype=np.intp)
        position[slot] = np.arange(len(slot))
        order = position[position >= 0]
        return order if order.shape[0] == len(slot) else None

    def attach_forecaster(self, forecaster) -> None:
        """Plug in early warnings (alerts/engine/early_warning.py): fed every round, judged once per batch."""
        self.forecaster = forecaster

    def refresh_forecasts(self, now_ms: int) -> list[ConditionChange]:
        """Time-driven forecast pass over every sensor (warnings that lapse in silence, regrading)."""
        changes: list[ConditionChange] = []
        if self.forecaster is not None:
            self.forecaster.refresh(now_ms, changes)
        changes.sort(key=lambda c: c.time_ms)
        return changes

    def advance(self, now_ms: int) -> list[ConditionChange]:
        """Time-driven work: staleness (rolled up by device) and on/off delays that expire in silence."""
        changes: list[ConditionChange] = []
        short = self.config.shortcuts
        if short:  # pending delays exist only on hot sensors
            hot = np.flatnonzero(self.hot)
            pend = hot[(self.pending.take(hot, axis=0) >= 0).any(axis=1)]
        else:
            pend = np.flatnonzero((self.pending >= 0).any(axis=1))
        if len(pend):
            t = np.full(len(pend), now_ms, dtype=np.int64)
            self._settle(pend, t, self.raw.take(pend, axis=0), self.last_x.take(pend), changes)
        if self.pond_warnings is not None:
            self.pond_warnings.advance(now_ms, changes)
        if self.state_alarms is not None:
            self.state_alarms.advance(now_ms, changes)
        if short and self._stale_clear and now_ms <= self._next_overdue:
            # nothing was stale at the last check and no sensor can be overdue yet: nothing can flip
            changes.sort(key=lambda c: c.time_ms)
            return changes
        ref = np.where(self.last_t >= 0, self.last_t, self.seen_since)
        stale = kernels.stale_sensors(now_ms, ref, self.stale_after_ms)
        device_of = self.device_of
        if not self.config.stale_if_never_heard:
            heard = self.last_t >= 0
            stale &= heard
            device_of = np.where(heard, device_of, -1)  # judge a device by the sensors it has sent
        overdue_at = ref + self.stale_after_ms  # the event time at which each sensor became stale
        device_stale, sensor_stale, silent_at = kernels.device_rollup(
            now_ms, stale, ref, self.stale_after_ms, device_of, len(self.devices)
        )
        flipped = np.flatnonzero(device_stale != self.device_active)
        if len(flipped):
            # a device is back with its first reading
            has = device_of >= 0
            first_back = np.full(len(self.devices), np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(first_back, device_of[has], np.where(stale[has], first_back.max(), ref[has]))
            for d in flipped.tolist():
                site, device = self.devices[d]
                on = bool(device_stale[d])
                when = int(silent_at[d]) if on else min(int(first_back[d]), now_ms)
                changes.append(
                    ConditionChange(
                        site,
                        device,
                        K.STALE,
                        on,
                        when,
                        Priority.HIGH,
                        "STALE",
                        scope="device",
                        message=f"设备 {device} 通信中断, 其全部测点无数据"
                        if on
                        else f"设备 {device} 通信恢复",
                    )
                )
        self.device_active = device_stale
        moved = np.flatnonzero(sensor_stale != self.active[:, K.STALE])
        when = np.where(sensor_stale[moved], overdue_at[moved], np.minimum(ref[moved], now_ms))
        self._emit(moved, K.STALE, sensor_stale, when, changes)
        self.active[:, K.STALE] = sensor_stale
        self._stale_marked = bool(sensor_stale.any())
        self._stale_clear = not stale.any()
        if self._stale_clear:
            judged = overdue_at if self.config.stale_if_never_heard else overdue_at[heard]
            self._next_overdue = int(judged.min()) if len(judged) else np.iinfo(np.int64).max
        changes.sort(key=lambda c: c.time_ms)
        return changes

    def restore_active(self, keys: set[tuple[str, str, str, str]]) -> None:
        """After a restart, mark the journal's active conditions so nothing is raised twice."""
        for site, scope, source, kind_name in keys:
            kind = K[kind_name]
            if scope == "sensor":
                slot = self.index.by_site.get(site, {}).get(source)
                if slot is not None:
                    self.active[slot, kind] = True
                    if kind == K.EARLY_WARNING and self.forecaster is not None:
                        self.forecaster.restore_active(slot)
                    if kind in DELAYED_COLS:
                        self.raw[slot, DELAYED_COLS.index(kind)] = True
                        self.hot[slot] = True
                    elif kind == K.FAULT and self.fault_code[slot] == 0:
                        self._fault_restored.add(slot)
                    elif kind == K.STALE:
                        self._stale_marked = True
                        self._stale_clear = False
                    elif kind == K.STATE and self.state_alarms is not None:
                        self.state_alarms.restore(site, source)
                    elif kind == K.MISMATCH and self.contradictions is not None:
                        self.contradictions.restore(site, source)
            elif scope == "device" and (site, source) in self.devices:
                self.device_active[self.devices.index((site, source))] = True
                self._stale_clear = False
            elif scope == "group" and (site, source) in self.groups:
                self.group_active[self.groups.index((site, source))] = True
                self._votes_due = True
            elif scope == "pond" and self.pond_warnings is not None:
                self.pond_warnings.restore(site)

    # ---- one round: each slot at most once

    def _round(self, slot, t, x, q, changes, full: bool, time_order: bool) -> None:
        """Apply one reading per sensor of `slot` (intp, ascending unless the round is in time order).

        full: `slot` is every sensor in order, so state arrays are used whole, without gather or
        scatter. time_order: the round came as one batch, whose changes are listed in time order.
        """
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            self._round_inner(slot, t, x, q, changes, full, time_order)

    def _round_inner(self, slot, t, x, q, changes, full, time_order) -> None:
        """The rule steps of one round, in order; each calls its kernels and leaves what it found in `rd`."""
        rd = _Round(self, slot, t, x, q, full)
        if not self._step_spikes(rd, changes, time_order):
            return  # every reading is held as a possible spike
        self._step_health(rd, changes)
        self._step_limits(rd, changes)
        if self._derived_alarms:
            self._step_derived_alarms(rd, changes)
        self._step_last_reading(rd, changes)
        self._step_votes_and_forecast(rd, changes)

    def _step_spikes(self, rd: _Round, changes, time_order: bool) -> bool:
        """Spikes: a suspicious jump is held for one sample; a return proves it was a spike.

        Held rows change nothing else this round. Returns False when every row is held.
        """
        cfg = self.config
        short = cfg.shortcuts
        g = rd.g
        pend = None
        if self._n_spikes_held or not short:
            pend = g(self.spike_pending)
            if pend.any():
                pend = pend.copy()
                self._resolve_spikes(rd.slot, rd.t, rd.x, rd.last_x, pend, changes, time_order)
            else:
                pend = None
        mad, n_seen = g(self.mad), g(self.n_seen)
        if short:
            jump = kernels.jump_beyond(rd.d, mad, g(self.spike_floor), cfg.spike_k)
            if not self._warm:
                jump &= n_seen >= kernels.SPIKE_WARMUP
        else:
            jump = kernels.robust_jump(rd.x, rd.last_x, mad, g(self.span), n_seen, k=cfg.spike_k)
        if pend is not None:
            jump &= ~pend
        if self._any_discrete:
            jump &= ~g(self.discrete)
        if rd.any_bad_q:
            jump &= ~rd.bad_q
        if jump.any():
            jump = self._unusual_jumps(jump, rd.slot, rd.t, rd.d)
        if self._any_slow_to_hold and jump.any():
            jump = self._release_critical_jumps(jump, rd.slot, rd.x)
        if jump.any():
            held = np.flatnonzero(jump)
            hs = rd.slot[held]
            self.spike_pending[hs] = True
            self.spike_x[hs] = rd.x[held]
            self.spike_t[hs] = rd.t[held]
            self._n_spikes_held += len(held)
            rd.held, rd.held_slots = held, hs
            if len(held) == len(rd.slot):
                return False
            rd.live = ~jump
        return True

    def _step_health(self, rd: _Round, changes) -> None:
        """Instrument health: how each reading moves (rate, frozen stretch, noise), then the faults
        stuck (kernels.stuck_condition), out of range (kernels.outside / out_of_range) and bad quality."""
        short = self.config.shortcuts
        slot, t, x, held = rd.slot, rd.t, rd.x, rd.held
        moves = self._moves_compiled(rd) if short and jit.ENABLED else self._moves_numpy(rd)
        rate, frozen, change_t, n_changes, new_mad, new_seen, oor, any_oor, stuck = moves
        if held is not None:  # held rows keep their state
            src = held if rd.full else rd.held_slots
            for new, old in (
                (rate, self.rate_at_change),
                (frozen, self.frozen_samples),
                (change_t, self.last_change_t),
                (n_changes, self.n_changes),
                (new_mad, self.mad),
                (new_seen, self.n_seen),
            ):
                new[held] = old[src]
        if rd.full:  # fresh arrays: bind them; the ones they replace are the next full round's buffers
            if short and jit.ENABLED:
                self._spare_moves = (
                    self.rate_at_change, self.frozen_samples, self.last_change_t, self.n_changes, self.mad,
                    self.n_seen, self._oor_spare if self._oor_spare is not None else np.empty(len(oor), bool),
                )  # fmt: skip
                self._oor_spare = oor
            self.rate_at_change, self.frozen_samples, self.last_change_t = rate, frozen, change_t
            self.n_changes, self.mad, self.n_seen = n_changes, new_mad, new_seen
        else:
            self.rate_at_change[slot] = rate
            self.frozen_samples[slot] = frozen
            self.last_change_t[slot] = change_t
            self.n_changes[slot] = n_changes
            self.mad[slot] = new_mad
            self.n_seen[slot] = new_seen
        if not self._warm and rd.full:
            self._warm = bool(new_seen.min() >= kernels.SPIKE_WARMUP)
        if not short or rd.any_bad_q or stuck is not None or self._n_faulty or any_oor:
            fault = np.where(rd.bad_q, 4, np.where(oor, 1, 0 if stuck is None else np.where(stuck, 2, 0)))
            self._set_fault(slot, fault.astype(np.int8), held, t, x, changes, rd.full)
        if self._fault_restored:
            self._unrestore_faults(slot, rd.live, rd.full, t, x, changes)

    def _moves_compiled(self, rd: _Round) -> tuple:
        """`_moves_numpy` with the shortcuts, as one compiled pass (jit.instrument_moves)."""
        g = rd.g
        lct, frozen_before = g(self.last_change_t), g(self.frozen_samples)
        out = self._moves_buffers(len(rd.slot), rd.full)
        rate, frozen, change_t, n_changes, new_mad, new_seen, oor = out
        n_oor, n_frozen, n_ended = jit.instrument_moves(
            rd.t, rd.x, rd.last_x, rd.last_t, rd.diff, rd.d,
            _NO_ROWS if rd.heard is None else rd.heard,
            g(self.rate_at_change), lct, frozen_before, g(self.n_changes), g(self.mad), g(self.n_seen),
            self.step_min, rd.slot, rd.full, g(self.range_lo_tol), g(self.range_hi_tol),
            kernels.CHANGE_RATE_ALPHA, kernels.MAD_ALPHA, kernels.STUCK_QUICK_SAMPLES, *out,
        )  # fmt: skip
        if n_ended:
            changed = frozen == 0
            ended = np.flatnonzero(changed & (frozen_before >= kernels.STUCK_QUICK_SAMPLES))
            self._learn_flat_runs(rd.slot[ended], rd.t[ended], rd.last_t[ended], lct[ended], rd.last_x[ended])
        stuck = self._stuck(rd, frozen, change_t, rate, new_mad, n_changes) if n_frozen else None
        return rate, frozen, change_t, n_changes, new_mad, new_seen, oor, n_oor > 0, stuck

    def _moves_buffers(self, m: int, full: bool) -> tuple:
        """Arrays for the new health state of m rows. A full round reuses the ones its previous full
        round replaced (double buffering): fresh 8 MB arrays per tick cost a 1 M fleet its page faults."""
        spare, self._spare_moves = self._spare_moves, None
        if full and spare is not None and len(spare[0]) == m:
            return spare
        i8, f8 = np.int64, np.float64
        return (np.empty(m, f8), np.empty(m, i8), np.empty(m, i8), np.empty(m, i8), np.empty(m, f8),
                np.empty(m, i8), np.empty(m, bool))  # fmt: skip

    def _moves_numpy(self, rd: _Round) -> tuple:
        """How each reading moves: (rate, frozen, change time, changes, mad, seen, out of range, any out
        of range, stuck or None), new arrays of the round's rows; lowers `step_min` in place."""
        short = self.config.shortcuts
        g, slot, t, x = rd.g, rd.slot, rd.t, rd.x
        last_x, last_t = rd.last_x, rd.last_t
        heard = rd.heard
        changed = x != last_x  # NaN never equals: a change
        if heard is None:
            step_ok = changed
        else:
            changed |= ~heard
            step_ok = changed & heard
        all_changed = short and bool(changed.all())
        lct = g(self.last_change_t)
        rate = kernels.change_rate(
            g(self.rate_at_change),
            rd.diff,
            t,
            lct,
            last_t,
            None if all_changed and heard is None else step_ok,
        )
        ended = np.flatnonzero(changed & (g(self.frozen_samples) >= kernels.STUCK_QUICK_SAMPLES))
        if len(ended):
            self._learn_flat_runs(slot[ended], t[ended], last_t[ended], lct[ended], last_x[ended])
        if all_changed:
            frozen = np.zeros(len(slot), dtype=np.int64)
            change_t = t.copy()
            n_changes = g(self.n_changes) + 1 if heard is None else g(self.n_changes) + step_ok
        else:
            frozen = np.where(changed, 0, g(self.frozen_samples) + 1)
            change_t = np.where(changed, t, lct)
            n_changes = g(self.n_changes) + step_ok
        moved = np.where(step_ok & (rd.d > 0), rd.d, np.inf)
        if rd.full:
            np.minimum(self.step_min, moved, out=self.step_min)
        else:
            self.step_min[slot] = np.minimum(self.step_min.take(slot), moved)
        mad = g(self.mad)
        new_mad = kernels.update_mad_abs(mad, rd.d) if short else kernels.update_mad(mad, x, last_x)
        if heard is not None:
            new_mad = np.where(heard, new_mad, mad)
        new_seen = g(self.n_seen) + 1
        stuck = None if all_changed else self._stuck(rd, frozen, change_t, rate, new_mad, n_changes)
        if short:
            oor = kernels.outside(x, g(self.range_lo_tol), g(self.range_hi_tol))
        else:
            oor = kernels.out_of_range(x, g(self.lo), g(self.hi))
        return rate, frozen, change_t, n_changes, new_mad, new_seen, oor, bool(oor.any()), stuck

    def _stuck(self, rd: _Round, frozen, change_t, rate, mad, n_changes) -> np.ndarray | None:
        """(m,) bool of the rows judged stuck (kernels.stuck_condition), None when there is none.

        A verdict needs some frozen samples: with the shortcuts only those rows are judged.
        """
        slot, t, x = rd.slot, rd.t, rd.x
        cand = np.flatnonzero(frozen >= kernels.STUCK_QUICK_SAMPLES) if self.config.shortcuts else None
        if cand is None:
            cand = np.arange(len(slot))
        if not len(cand):
            return None
        frozen_ms = t[cand] - change_t[cand]
        sc = slot[cand]
        verdict = kernels.stuck_condition(
            frozen[cand],
            frozen_ms,
            np.abs(rate[cand]) * frozen_ms,
            np.nan_to_num(mad[cand]),
            n_changes[cand] >= 10,
            # a value pinned at the range floor is clamped (a gas detector's zero suppression in clean
            # air, an empty tank), not frozen: the out-of-range check owns the ends
            self.may_flatline[sc] | (x[cand] <= self.lo[sc]),
            self.stuck_after_ms[sc],
            np.fmax(self.resolution[sc], np.where(np.isinf(self.step_min[sc]), 0.0, self.step_min[sc])),
            self._flat_norm(sc, t[cand]),
            x[cand] == self.rest_x[sc],
        )
        if not verdict.any():
            return None
        stuck = np.zeros(len(slot), dtype=bool)
        stuck[cand] = verdict
        return stuck

    def _step_limits(self, rd: _Round, changes) -> None:
        """Process conditions: rate of change (kernels.rate_of_change) and limits with their deadband
        (kernels.limit_conditions), debounced by the on/off delays (kernels.apply_delays, in _settle).

        Evaluated even while faulted: the lifecycle suppresses them.
        """
        short = self.config.shortcuts
        g, slot, t, x, live = rd.g, rd.slot, rd.t, rd.x, rd.live
        roc_rows = roc = None
        if len(self.roc_slots) or not short:
            if short:
                roc_rows = np.flatnonzero(g(self.has_roc) if live is None else g(self.has_roc) & live)
            else:
                roc_rows = np.arange(len(slot)) if live is None else np.flatnonzero(live)
            rs = slot[roc_rows]
            roc, self.anchor_x[rs], self.anchor_t[rs] = kernels.rate_of_change(
                x[roc_rows],
                t[roc_rows],
                self.anchor_x[rs],
                self.anchor_t[rs],
                rd.last_x[roc_rows],
                rd.last_t[roc_rows],
                self.roc_window_ms[rs],
            )
        if short:
            # hot rows and rows outside their quiet band; rows with a rate limit always
            quiet = x > g(self.quiet_lo)
            quiet &= x < g(self.quiet_hi)
            quiet &= ~g(self.hot)
            if roc_rows is not None:
                quiet[roc_rows] = False
            if rd.held is not None:
                quiet[rd.held] = True
            rows = np.flatnonzero(~quiet)
        else:
            rows = np.arange(len(slot)) if live is None else np.flatnonzero(live)
        if len(rows):
            rs = slot[rows]
            xr = x[rows]
            raw = np.zeros((len(rows), N_DELAYED), dtype=bool)
            raw[:, :4] = kernels.limit_conditions(
                xr, self.limits.take(rs, axis=0), self.deadband.take(rs), self.raw.take(rs, axis=0)[:, :4]
            )
            if roc_rows is not None and len(roc_rows):
                at = np.searchsorted(rows, roc_rows)  # roc_rows are among rows
                raw[at, 4] = np.abs(roc) > self.roc_limit[slot[roc_rows]]
            self._settle(rs, t[rows], raw, xr, changes)

    def _step_derived_alarms(self, rd: _Round, changes) -> None:
        """Alarms of other shapes than limits: tailings ponds' colours (alerts/engine/pond_warnings.py)
        and discrete signals' states (alerts/engine/state_alarms.py); held rows left out."""
        slot, t, x, q, live = rd.slot, rd.t, rd.x, rd.q, rd.live
        if live is not None:
            slot, t, x, q = slot[live], t[live], x[live], q[live]
        for derived in self._derived_alarms:
            derived.update(slot, t, x, q, changes)

    def _step_last_reading(self, rd: _Round, changes) -> None:
        """The reading becomes the sensor's latest (held rows keep theirs); fresh data ends staleness."""
        slot, t, x, held, live = rd.slot, rd.t, rd.x, rd.held, rd.live
        if rd.full:
            new_x, new_t = x.copy(), t.copy()
            if held is not None:
                new_x[held], new_t[held] = rd.last_x[held], rd.last_t[held]
            self.last_x, self.last_t = new_x, new_t
        else:
            self.last_x[slot], self.last_t[slot] = x, t
            if held is not None:
                hs = rd.held_slots
                self.last_x[hs], self.last_t[hs] = rd.last_x[held], rd.last_t[held]
        if rd.heard is not None:  # first readings: the stale clock of those sensors restarts earlier maybe
            new = ~rd.heard if live is None else ~rd.heard & live
            if new.any():
                self._n_heard += int(np.count_nonzero(new))
                first = np.flatnonzero(new)
                due = t[first] + self.stale_after_ms[slot[first]]
                self._next_overdue = min(self._next_overdue, int(due.min()))
        if self._stale_marked or not self.config.shortcuts:
            was_stale = self.active[slot, K.STALE] if not rd.full else self.active[:, K.STALE].copy()
            if held is not None:
                was_stale[held] = False
            if was_stale.any():
                back = np.flatnonzero(was_stale)
                self._emit(slot[back], K.STALE, np.zeros(self.n, dtype=bool), t[back], changes)
                self.active[slot[back], K.STALE] = False

    def _step_votes_and_forecast(self, rd: _Round, changes) -> None:
        """Votes of the groups whose voters changed (kernels.group_votes); the round's samples to the
        forecaster (early warnings), held rows as missing samples."""
        slot, t, x, live = rd.slot, rd.t, rd.x, rd.live
        if len(self.group_members) and (self._votes_due or not self.config.shortcuts):
            self._votes(int(t.max() if live is None else t[live].max()), changes)
            self._votes_due = False
        if self.forecaster is not None:
            # a held row is a missing sample to the forecaster (NaN is skipped, its gap charged to the
            # next): one pass instead of compressing the round, which also keeps a full round full
            if live is not None:
                x = np.where(live, x, np.nan)
            self.forecaster.on_round(self.all_slots if rd.full else slot, t, x, changes)

    def _unusual_jumps(self, jump: np.ndarray, slot, t, d) -> np.ndarray:
        """Of the jumps beyond the noise, those also beyond JUMP_FACTOR times the largest jump the sensor
        made lately (JUMP_MEMORY_MS).

        A bursty signal (a batch that starts every day, a pump that kicks in) jumps as far every time;
        only its first such jump, and a later one JUMP_FACTOR times as big, is held as a possible spike.
        """
        rows = np.flatnonzero(jump)
        s_, t_, d_ = slot[rows], t[rows], d[rows]
        age = np.maximum(t_ - self.jump_peak_t[s_], 0)
        usual = self.jump_peak[s_] * np.exp2(-age / JUMP_MEMORY_MS)
        self.jump_peak[s_] = np.maximum(usual, d_)
        self.jump_peak_t[s_] = t_
        jump = jump.copy()
        jump[rows] = d_ > JUMP_FACTOR * usual
        return jump

    def _release_critical_jumps(self, jump: np.ndarray, slot: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Unhold the jumps that land past a critical limit (x >= HH or x <= LL) on a sensor slower
        than ``spike_hold_max_s``: holding them would delay a critical alarm by a whole interval."""
        rows = np.flatnonzero(jump)
        s_ = slot[rows]
        slow = self.slow_to_hold[s_]
        if not slow.any():
            return jump
        xr = x[rows]
        lim = self.limits.take(s_, axis=0)
        critical = (xr >= lim[:, 3]) | (xr <= lim[:, 0])  # NaN limit: never
        release = slow & critical
        if not release.any():
            return jump
        jump = jump.copy()
        jump[rows[release]] = False
        return jump

    def _flat_norm(self, slot: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The longest normal flat stretch of each sensor (ms), halved for every FLAT_MEMORY_MS since."""
        age = np.maximum(t - self.flat_norm_t[slot], 0)
        return self.flat_norm_ms[slot] * np.exp2(-age / FLAT_MEMORY_MS)

    def _learn_flat_runs(self, slot, t, last_t, began_t, frozen_x) -> None:
        """Flat stretches that ended by the reading moving on its own: what is normal for the sensor.

        A stretch judged stuck teaches only when the sensor sat at the same value as in its previous
        flat stretch (a bursty signal back at its zero, a pump's off state), not an instrument that
        froze wherever it was; stretches count at most a day, so no history makes a sensor immune to
        the slow stuck check.
        """
        repeated = frozen_x == self.last_run_x[slot]
        self.last_run_x[slot] = frozen_x
        ok = ((self.fault_code[slot] != 2) | repeated) & (began_t >= 0)
        if not ok.all():
            slot, t, last_t, began_t, frozen_x = slot[ok], t[ok], last_t[ok], began_t[ok], frozen_x[ok]
        run = np.minimum(last_t - began_t, FLAT_CAP_MS).astype(np.float64)
        before = self._flat_norm(slot, t)
        longer = run >= before
        self.flat_norm_ms[slot] = np.maximum(run, before)
        self.flat_norm_t[slot] = t
        self.rest_x[slot[longer]] = frozen_x[longer]

    def _resolve_spikes(self, slot, t, x, last_x, pend, changes, time_order) -> None:
        """Readings after held jumps: a return to the old level makes the jump a spike (a fault)."""
        rows = np.flatnonzero(pend)
        ps = slot[rows]
        returned = ~kernels.robust_jump(
            x[rows], last_x[rows], self.mad[ps], self.span[ps], self.n_seen[ps], k=self.config.spike_k
        )
        back = rows[returned]
        if time_order and len(back) > 1:
            back = back[np.argsort(t[back], kind="stable")]
        spk = slot[back]
        for s_, t_on, t_off in zip(spk.tolist(), self.spike_t[spk].tolist(), t[back].tolist(), strict=True):
            for on, when in ((True, t_on), (False, t_off)):
                changes.append(self._change(s_, K.FAULT, on, when, value=float(self.spike_x[s_]), fault=3))
        self.spike_pending[ps] = False
        self._n_spikes_held -= len(ps)

    def _settle(self, slot, t, raw, x, changes) -> None:
        """Debounce raw conditions and emit what changed."""
        self.raw[slot] = raw
        block = self.active.take(slot, axis=0)
        old = block[:, :N_DELAYED]
        was_pending = self.pending.take(slot, axis=0)
        on_delay, off_delay = self.on_delay_ms.take(slot), self.off_delay_ms.take(slot)
        new, pending = kernels.apply_delays(raw, old, was_pending, t, on_delay, off_delay)
        rows, cols = np.nonzero(new != old)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            kind = DELAYED_COLS[c]
            on = bool(new[r, c])
            # a delayed change took effect when its delay ran out, whichever sample or tick noticed it,
            # so the stamp does not depend on how readings were batched or how often the clock ticks
            since = int(was_pending[r, c])
            delay = int(on_delay[r] if on else off_delay[r])
            when = int(t[r]) if since < 0 else min(int(t[r]), since + delay)
            changes.append(self._change(int(slot[r]), kind, on, when, value=float(x[r])))
            if kind in VOTING_KINDS:
                self._votes_due = True
        self.pending[slot] = pending
        block[:, :N_DELAYED] = new
        self.active[slot] = block
        self.hot[slot] = raw.any(axis=1) | (pending >= 0).any(axis=1) | new.any(axis=1)

    def _set_fault(self, slot, fault, held, t, x, changes, full) -> None:
        old = self.fault_code if full else self.fault_code.take(slot)
        if held is not None:
            fault[held] = old[held]
        moved = np.flatnonzero(fault != old)
        for r in moved.tolist():
            s_, f_old, f_new = int(slot[r]), int(old[r]), int(fault[r])
            if f_old:
                changes.append(self._change(s_, K.FAULT, False, int(t[r]), value=float(x[r]), fault=f_old))
            if f_new:
                changes.append(self._change(s_, K.FAULT, True, int(t[r]), value=float(x[r]), fault=f_new))
        if self.config.shortcuts:
            # only a fault that starts or ends changes the FAULT column and the votes
            flips = moved[(fault[moved] > 0) != (old[moved] > 0)]
            if len(flips):
                on = fault[flips] > 0
                self.active[slot[flips], K.FAULT] = on
                self._n_faulty += 2 * int(np.count_nonzero(on)) - len(flips)
                self._votes_due = True
        else:
            rows = np.arange(len(slot)) if held is None else np.delete(np.arange(len(slot)), held)
            self.active[slot[rows], K.FAULT] = fault[rows] > 0
        if full:
            self.fault_code = fault
        else:
            self.fault_code[slot] = fault
        if not self.config.shortcuts:
            self._n_faulty = int(np.count_nonzero(self.fault_code))

    def _unrestore_faults(self, slot, live, full, t, x, changes) -> None:
        """FAULT restored from the journal holds until the sensor's next reading; a healthy one ends it.

        The journal's fault alarm is only cleared by a change, so a sensor that recovered while the
        service was down gets an explicit FAULT-inactive change with that reading.
        """
        for s_ in list(self._fault_restored):
            if full:
                r = s_
            else:  # rounds are in slot order or in time order: look it up (few restored faults)
                hit = np.flatnonzero(slot == s_)
                r = int(hit[0]) if len(hit) else len(slot)
            if r < len(slot) and (live is None or live[r]):
                faulty = bool(self.fault_code[s_] > 0)
                self.active[s_, K.FAULT] = faulty
                if not faulty:
                    changes.append(self._change(s_, K.FAULT, False, int(t[r]), value=float(x[r])))
                self._fault_restored.discard(s_)

    def _votes(self, now_ms: int, changes) -> None:
        m = self.group_members
        if jit.ENABLED:
            voted, degraded, votes = jit.member_votes(
                self.active, int(K.H), int(K.HH), self.fault_code, m, self.member_group, self.group_k
            )
        else:
            voted, degraded, votes = kernels.group_votes(
                self.active[m, K.H] | self.active[m, K.HH],
                self.fault_code[m] > 0,
                self.group_of[m],
                len(self.groups),
                self.group_k,
            )
        for g in np.flatnonzero(voted != self.group_active).tolist():
            site, group = self.groups[g]
            on = bool(voted[g])
            mode = "(降级表决: 有探测器故障)" if degraded[g] else ""
            changes.append(
                ConditionChange(
                    site,
                    group,
                    K.VOTE,
                    on,
                    now_ms,
                    Priority.CRITICAL if on else Priority.HIGH,
                    "VOTE",
                    value=float(votes[g]),
                    limit=float(max(int(self.group_k[g]) - int(degraded[g]), 1)),
                    scope="group",
                    message=(
                        f"探测器组 {group} 表决报警: {votes[g]} 台报警{mode}"
                        if on
                        else f"探测器组 {group} 表决恢复"
                    ),
                )
            )
        self.group_active, self.group_degraded = voted, degraded

    def _emit(self, slots: np.ndarray, kind: ConditionKind, new: np.ndarray, t, changes) -> None:
        times = np.broadcast_to(np.asarray(t, dtype=np.int64), slots.shape)
        for s_, when in zip(slots.tolist(), times.tolist(), strict=True):
            changes.append(self._change(s_, kind, bool(new[s_]), int(when)))

    # ---- rendering one change

    def _change(
        self, slot: int, kind: ConditionKind, on: bool, t_ms: int, value: float | None = None, fault: int = 0
    ) -> ConditionChange:
        s = self.index.sensors[slot]
        limit = None
        if kind in LIMIT_COLS:
            level = kind.name
            limit = float(self.limits[slot, LIMIT_COLS.index(kind)])
            prio = _limit_priority(s.kind, kind)
            sign = "≥" if kind in (K.H, K.HH) else "≤"
            msg = (
                f"{s.name}{LEVEL_NAMES_ZH[kind]}报警 {value:.6g} {s.unit} {sign} {limit:g} {s.unit}"
                if on
                else f"{s.name}{LEVEL_NAMES_ZH[kind]}报警恢复 {value:.6g} {s.unit}"
            )
        elif kind == K.ROC:
            level, limit, prio = "ROC", float(self.roc_limit[slot]), Priority.HIGH
            msg = f"{s.name}变化速率超限 (> {limit:g} {s.unit}/min)" if on else f"{s.name}变化速率恢复正常"
        elif kind == K.FAULT:
            level = FAULT_NAMES.get(fault, "fault")  # 0: a restored fault whose kind the engine never saw
            prio = Priority.HIGH if s.kind in CRITICAL_KINDS else Priority.MEDIUM
            msg = f"{s.name}仪表故障: {FAULT_NAMES_ZH[fault]}" if on else f"{s.name}仪表故障恢复"
        elif kind == K.STALE:
            level, prio = "STALE", Priority.MEDIUM
            msg = (
                f"{s.name}无数据 (超过 {self.stale_after_ms[slot] / 1000:g} s)" if on else f"{s.name}数据恢复"
            )
        else:
            level, prio, msg = kind.name, Priority.MEDIUM, f"{s.name} {kind.name}"
        return ConditionChange(
            s.site,
            s.id,
            kind,
            on,
            int(t_ms),
            prio,
            level,
            value=None if value is None or np.isnan(value) else value,
            limit=limit,
            message=msg,
        )


def _limit_priority(sensor_kind: str, kind: ConditionKind) -> Priority:
    outer = kind in (K.HH, K.LL)
    if sensor_kind in CRITICAL_KINDS:
        return Priority.CRITICAL if outer else Priority.HIGH
    return Priority.HIGH if outer else Priority.MEDIUM
