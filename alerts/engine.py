"""The alarm engine: per-sensor state in arrays, kernels applied to whole batches, condition changes out.

Struct of arrays (DESIGN.md decision 5): slot i of every array is sensor i of the SensorIndex.
A batch is split into *rounds* so that each sensor appears at most once per round, in event
time order; each round is a handful of vectorised kernel calls. Only the conditions that change
become Python objects (ConditionChange), and there are few of those.

Event time (decision 3): conditions are stamped with the reading's own time. A reading older
than or equal to the sensor's latest one is a duplicate or out of order: it is stored by ingest
but changes no engine state (counted in `late_or_duplicate`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from alerts import kernels
from alerts.conditions import ConditionChange, ConditionKind, Priority
from ingest.payloads import ReadingBatch
from sensors.index import SensorIndex

logger = logging.getLogger(__name__)

K = ConditionKind
N_KINDS = len(ConditionKind)
LIMIT_COLS = [K.LL, K.L, K.H, K.HH]
DELAYED_COLS = [K.LL, K.L, K.H, K.HH, K.ROC]  # conditions debounced by on/off delays
LEVEL_NAMES_ZH = {K.LL: "低低", K.L: "低", K.H: "高", K.HH: "高高"}
FAULT_NAMES = {1: "out_of_range", 2: "stuck", 3: "spike", 4: "bad_quality"}
FAULT_NAMES_ZH = {1: "超量程", 2: "数值冻结(疑似卡死)", 3: "尖峰跳变", 4: "质量位坏"}
FLATLINE_KINDS = frozenset({"rainfall"})  # a dry rain gauge reads 0 for days: not stuck
CRITICAL_KINDS = frozenset({"gas_lel", "gas_toxic", "oxygen"})  # people die within minutes


@dataclass(slots=True)
class EngineConfig:
    stale_intervals: float = 3.0  # stale after this many missed intervals ...
    stale_min_s: float = 30.0  # ... but never sooner than this
    spike_k: float = 10.0
    # live: a sensor never heard since start goes stale; a backtest only judges sensors in its data
    stale_if_never_heard: bool = True
    groups_k: dict[str, int] = field(default_factory=dict)  # votes needed per group (default majority)


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
        self.may_flatline = np.array([s.kind in FLATLINE_KINDS for s in sensors], dtype=bool)

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

        # ---- state
        self.last_x = np.full(n, nan)
        self.last_t = np.full(n, -1, dtype=np.int64)
        self.seen_since = np.full(n, start_ms, dtype=np.int64)  # stale clock for sensors never heard
        self.anchor_x = np.full(n, nan)
        self.anchor_t = np.full(n, -1, dtype=np.int64)
        self.raw = np.zeros((n, 5), dtype=bool)  # undelayed LL, L, H, HH, ROC
        self.pending = np.full((n, 5), -1, dtype=np.int64)
        self.active = np.zeros((n, N_KINDS), dtype=bool)  # effective conditions, sensor scope
        self.fault_code = np.zeros(n, dtype=np.int8)
        self.mad = np.full(n, nan)
        self.n_seen = np.zeros(n, dtype=np.int64)
        self.n_changes = np.zeros(n, dtype=np.int64)
        self.frozen_samples = np.zeros(n, dtype=np.int64)
        self.last_change_t = np.full(n, -1, dtype=np.int64)
        self.rate_at_change = np.zeros(n)  # units per ms, EW over recent changes
        self.spike_pending = np.zeros(n, dtype=bool)
        self.spike_x = np.full(n, nan)
        self.spike_t = np.full(n, -1, dtype=np.int64)
        self.device_active = np.zeros(len(devices), dtype=bool)
        self.group_active = np.zeros(len(groups), dtype=bool)
        self.group_degraded = np.zeros(len(groups), dtype=bool)
        self.late_or_duplicate = 0
        self.forecaster = None  # set by attach_forecaster(); early warnings

    # ---- public API

    def process(self, batch: ReadingBatch) -> list[ConditionChange]:
        """Apply a batch of accepted readings (any order); return the condition changes."""
        if len(batch) == 0:
            return []
        order = np.lexsort((batch.ts_ms, batch.slot))  # by slot, then time
        slot, ts = batch.slot[order].astype(np.int64), batch.ts_ms[order]
        x, q = batch.value[order], batch.quality[order]
        # drop out-of-order and duplicate readings (same or older time than what the engine saw)
        first = np.r_[True, slot[1:] != slot[:-1]]
        keep = (ts > self.last_t[slot]) & (first | (ts > np.r_[0, ts[:-1]]))
        if not keep.all():
            self.late_or_duplicate += int(np.count_nonzero(~keep))
            slot, ts, x, q = slot[keep], ts[keep], x[keep], q[keep]
            if len(slot) == 0:
                return []
            first = np.r_[True, slot[1:] != slot[:-1]]
        # rank of each reading within its slot = its round
        starts = np.flatnonzero(first)
        rank = np.arange(len(slot)) - np.repeat(starts, np.diff(np.r_[starts, len(slot)]))
        changes: list[ConditionChange] = []
        if rank.max(initial=0) == 0:
            by_time = np.argsort(ts, kind="stable")
            self._round(slot[by_time], ts[by_time], x[by_time], q[by_time], changes)
        else:
            for r in range(int(rank.max()) + 1):
                sel = np.flatnonzero(rank == r)
                self._round(slot[sel], ts[sel], x[sel], q[sel], changes)
        if self.forecaster is not None:
            self.forecaster.on_batch_end(int(ts.max()), changes)
        changes.sort(key=lambda c: c.time_ms)
        return changes

    def attach_forecaster(self, forecaster) -> None:
        """Plug in early warnings (alerts/early_warning.py): fed every round, judged once per batch."""
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
        pend = np.flatnonzero((self.pending >= 0).any(axis=1))
        if len(pend):
            t = np.full(len(pend), now_ms, dtype=np.int64)
            self._settle(pend, t, self.raw[pend], self.last_x[pend], changes)
        ref = np.where(self.last_t >= 0, self.last_t, self.seen_since)
        stale = kernels.stale_sensors(now_ms, ref, self.stale_after_ms)
        device_of = self.device_of
        if not self.config.stale_if_never_heard:
            heard = self.last_t >= 0
            stale &= heard
            device_of = np.where(heard, device_of, -1)  # judge a device by the sensors it has sent
        overdue_at = ref + self.stale_after_ms  # the event time at which each sensor became stale
        device_stale, sensor_stale = kernels.device_rollup(stale, device_of, len(self.devices))
        flipped = np.flatnonzero(device_stale != self.device_active)
        if len(flipped):
            # a device goes silent when its last sensor does, and is back with its first reading
            has = device_of >= 0
            last_silent = np.full(len(self.devices), -1, dtype=np.int64)
            np.maximum.at(last_silent, device_of[has], overdue_at[has])
            first_back = np.full(len(self.devices), np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(first_back, device_of[has], np.where(stale[has], first_back.max(), ref[has]))
            for d in flipped.tolist():
                site, device = self.devices[d]
                on = bool(device_stale[d])
                when = int(last_silent[d]) if on else min(int(first_back[d]), now_ms)
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
            elif scope == "device" and (site, source) in self.devices:
                self.device_active[self.devices.index((site, source))] = True
            elif scope == "group" and (site, source) in self.groups:
                self.group_active[self.groups.index((site, source))] = True

    # ---- one round: each slot at most once

    def _round(
        self, slot: np.ndarray, t: np.ndarray, x: np.ndarray, q: np.ndarray, changes: list[ConditionChange]
    ) -> None:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            self._round_inner(slot, t, x, q, changes)

    def _round_inner(self, slot, t, x, q, changes) -> None:
        last_x = self.last_x[slot]
        # -- spikes: a suspicious jump is held for one sample; a return proves it was a spike
        pend = self.spike_pending[slot]
        if pend.any():
            ps = slot[pend]
            returned = ~kernels.robust_jump(
                x[pend], last_x[pend], self.mad[ps], self.span[ps], self.n_seen[ps], k=self.config.spike_k
            )
            spk = ps[returned]
            for s_, t_on, t_off in zip(
                spk.tolist(), self.spike_t[spk].tolist(), t[pend][returned].tolist(), strict=True
            ):
                for on, when in ((True, t_on), (False, t_off)):
                    changes.append(
                        self._change(s_, K.FAULT, on, when, value=float(self.spike_x[s_]), fault=3)
                    )
            self.spike_pending[ps] = False
        jump = (
            kernels.robust_jump(
                x, last_x, self.mad[slot], self.span[slot], self.n_seen[slot], k=self.config.spike_k
            )
            & ~pend
            & (q < 2)
        )
        if jump.any():
            js = slot[jump]
            self.spike_pending[js] = True
            self.spike_x[js] = x[jump]
            self.spike_t[js] = t[jump]
            keep = ~jump
            slot, t, x, q, last_x = slot[keep], t[keep], x[keep], q[keep], last_x[keep]
            if len(slot) == 0:
                return

        # -- instrument health
        last_t = self.last_t[slot]
        has_prev = last_t >= 0
        changed = (x != last_x) | ~has_prev
        dt = np.where(has_prev, t - last_t, 0)
        step_rate = np.where(has_prev & changed & (dt > 0), (x - last_x) / np.maximum(dt, 1), 0.0)
        self.rate_at_change[slot] = np.where(
            changed & has_prev, 0.7 * self.rate_at_change[slot] + 0.3 * step_rate, self.rate_at_change[slot]
        )
        self.frozen_samples[slot] = np.where(changed, 0, self.frozen_samples[slot] + 1)
        self.last_change_t[slot] = np.where(changed, t, self.last_change_t[slot])
        self.n_changes[slot] += changed & has_prev
        self.mad[slot] = np.where(has_prev, kernels.update_mad(self.mad[slot], x, last_x), self.mad[slot])
        self.n_seen[slot] += 1
        frozen_ms = t - self.last_change_t[slot]
        stuck = kernels.stuck_condition(
            self.frozen_samples[slot],
            frozen_ms,
            np.abs(self.rate_at_change[slot]) * frozen_ms,
            np.nan_to_num(self.mad[slot]),
            self.n_changes[slot] >= 10,
            self.may_flatline[slot],
        )
        oor = kernels.out_of_range(x, self.lo[slot], self.hi[slot])
        fault = np.where(q >= 2, 4, np.where(oor, 1, np.where(stuck, 2, 0))).astype(np.int8)
        self._set_fault(slot, fault, t, x, changes)

        # -- process conditions (evaluated even while faulted; the lifecycle suppresses them)
        roc, self.anchor_x[slot], self.anchor_t[slot] = kernels.rate_of_change(
            x, t, self.anchor_x[slot], self.anchor_t[slot], last_x, last_t, self.roc_window_ms[slot]
        )
        raw = np.empty((len(slot), 5), dtype=bool)
        raw[:, :4] = kernels.limit_conditions(x, self.limits[slot], self.deadband[slot], self.raw[slot, :4])
        raw[:, 4] = np.abs(roc) > self.roc_limit[slot]
        self.last_x[slot], self.last_t[slot] = x, t
        self._settle(slot, t, raw, x, changes)
        # fresh data ends staleness of the sensor
        was_stale = self.active[slot, K.STALE]
        if was_stale.any():
            self._emit(slot[was_stale], K.STALE, np.zeros(self.n, dtype=bool), t[was_stale], changes)
            self.active[slot[was_stale], K.STALE] = False
        if len(self.group_members):
            self._votes(int(t.max()), changes)
        if self.forecaster is not None:
            self.forecaster.on_round(slot, t, x, changes)

    def _settle(self, slot, t, raw, x, changes) -> None:
        """Debounce raw conditions and emit what changed."""
        self.raw[slot] = raw
        new, self.pending[slot] = kernels.apply_delays(
            raw,
            self.active[slot][:, DELAYED_COLS],
            self.pending[slot],
            t,
            self.on_delay_ms[slot],
            self.off_delay_ms[slot],
        )
        old = self.active[slot][:, DELAYED_COLS]
        rows, cols = np.nonzero(new != old)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            kind = DELAYED_COLS[c]
            changes.append(self._change(int(slot[r]), kind, bool(new[r, c]), int(t[r]), value=float(x[r])))
        block = self.active[slot]
        block[:, DELAYED_COLS] = new
        self.active[slot] = block

    def _set_fault(self, slot, fault, t, x, changes) -> None:
        old = self.fault_code[slot]
        for r in np.flatnonzero(fault != old).tolist():
            s_, f_old, f_new = int(slot[r]), int(old[r]), int(fault[r])
            if f_old:
                changes.append(self._change(s_, K.FAULT, False, int(t[r]), value=float(x[r]), fault=f_old))
            if f_new:
                changes.append(self._change(s_, K.FAULT, True, int(t[r]), value=float(x[r]), fault=f_new))
        self.fault_code[slot] = fault
        self.active[slot, K.FAULT] = fault > 0

    def _votes(self, now_ms: int, changes) -> None:
        m = self.group_members
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
            level, prio = FAULT_NAMES[fault], Priority.HIGH if s.kind in CRITICAL_KINDS else Priority.MEDIUM
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
