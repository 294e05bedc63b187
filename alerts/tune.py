"""Alarm rationalisation from history (`hazmon tune`, issue 9): what each sensor's alarms would have
done, and the smallest deadband and delays that bring them to a target rate. Pure: no I/O.

Every candidate setting (alerts/tune_settings.py) runs as a virtual sensor through one replay of
the service's own engine (alerts/tune_replay.py); a candidate is acceptable when, over the window:

- its activations (LL, L, H, HH and ROC together) are at most `target_per_day` per observed day.
  Default 1: EEMUA 191's manageable steady state is 1 alarm per 10 min per operator (144 a day,
  ISA-18.2 calls ~150 a day per console "very likely acceptable"), and a console watches a site
  of the order of 100-150 points, so one activation per point per day keeps a console there;
- no point chatters (alerts/lifecycle.ChatterPolicy: 3 activations within 60 s, PAS);
- it adds no standing alarm (active >= 24 h, alerts/metrics) to those of the current setting;
- it alarms every real excursion by its on-delay plus one reporting interval after it began.
  An excursion is the raw crossings (no deadband, no delay) of one limit merged when less than
  the chatter window apart. It is real for an H, L or ROC limit when it stayed beyond the limit for
  at least the candidate's on-delay; at HH and LL every excursion the current setting alarms is
  real, so a suggestion never hides an HH/LL crossing the service shows today.

The suggestion is the acceptable candidate that changes least, in the order of Setting: the
shortest on-delay (it postpones every real alarm), then the smallest deadband, then off-delay.
If the current setting is acceptable the answer is "no change"; with less than `min_days` of
data there is no suggestion at all. When no candidate meets the target because the process
itself stays beyond a limit for `sustained_ms` or more many times, the target becomes one
activation per such excursion, and the candidate with the fewest activations is taken: those
alarms are the process, a question for the limit, not for the deadband.

Activations that begin while the instrument is faulty are not counted: the alarm lifecycle
suppresses a sensor's process alarms during a fault (README, Alarms).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from alerts.engine.alarm_engine import DELAYED_COLS
from alerts.engine.lifecycle import DEFAULT_CHATTER, ChatterPolicy
from alerts.metrics import DAY_MS, chattering_points
from alerts.tune_replay import FAULT_COL, Coverage, Fleet, build_fleet, run
from alerts.tune_score import (
    active_between,
    daily_counts,
    episodes,
    merge,
    per_key,
    standing,
    state_at,
)
from alerts.tune_settings import (
    CAPS,
    DEADBAND_LADDER_PCT,
    DEFAULT_CAP,
    DELAY_LADDER_S,
    RAW,
    Cap,
    Setting,
    candidate_settings,
)
from sensors.index import SensorIndex
from sensors.model import Sensor
from sensors.readings import ReadingBatch

N_COLS = len(DELAYED_COLS)
LEVELS = tuple(k.name for k in DELAYED_COLS)  # LL, L, H, HH, ROC
OUTER = (LEVELS.index("LL"), LEVELS.index("HH"))


class Status(StrEnum):
    NO_LIMITS = "no_limits"  # no limit and no rate-of-change alarm: nothing to tune
    TOO_LITTLE_DATA = "too_little_data"
    NO_CHANGE = "no_change"  # the current setting meets the target
    SUGGEST = "suggest"
    UNREACHABLE = "unreachable"  # no candidate within the caps meets the target


@dataclass(frozen=True, slots=True)
class TuneConfig:
    target_per_day: float = 1.0
    min_days: float = 3.0  # less observed time than this: report, do not suggest
    sustained_ms: int = 60_000  # an excursion beyond its limit this long in all is the process, not noise
    chatter: ChatterPolicy = DEFAULT_CHATTER
    standing_ms: int = DAY_MS
    caps: Mapping[str, Cap] = field(default_factory=lambda: dict(CAPS))
    default_cap: Cap = DEFAULT_CAP
    deadbands_pct: tuple[float, ...] = DEADBAND_LADDER_PCT
    delays_s: tuple[float, ...] = DELAY_LADDER_S
    resolution_s: float = 0.0  # readings are at least this far apart (60 for 1-minute means)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one setting of one sensor would have raised over the window."""

    setting: Setting
    activations: dict[str, int]  # level -> activations (the sensor's configured levels)
    per_day: tuple[int, ...]  # activations per day, oldest first, days counted back from the end
    time_in_alarm_s: dict[str, float]
    chattering: tuple[str, ...]  # levels that chattered
    standing: tuple[str, ...]  # levels with an episode of >= 24 h
    late: int  # real excursions not alarmed within the on-delay plus one interval
    missed: int  # ... of which never alarmed at all

    @property
    def total(self) -> int:
        return sum(self.activations.values())


@dataclass(frozen=True, slots=True)
class SensorTuning:
    """The verdict for one sensor."""

    sensor: Sensor
    status: Status
    observed_days: float
    first_ms: int | None
    last_ms: int | None
    current: Outcome | None = None
    suggested: Outcome | None = None  # SUGGEST: the setting to apply
    closest: Outcome | None = None  # UNREACHABLE: the candidate nearest the target, for information
    real_excursions: int = 0  # raw limit excursions of the window (all levels)
    sustained_excursions: int = 0  # ... of which beyond the limit for at least `sustained_ms`
    excursion_spans_ms: tuple[tuple[int, int], ...] = ()  # their [start, end), for quiet-time questions
    message: str = ""

    def rate(self, outcome: Outcome | None) -> float | None:
        if outcome is None or self.observed_days <= 0:
            return None
        return outcome.total / self.observed_days


def levels_of(sensor: Sensor) -> tuple[int, ...]:
    """Columns of the alarm points this sensor has: its configured limits and ROC."""
    cols = [LEVELS.index(k.upper()) for k in sensor.limits.configured()]
    if sensor.roc_per_min:
        cols.append(LEVELS.index("ROC"))
    return tuple(sorted(cols))


def tune(
    index: SensorIndex,
    chunks: Iterable[ReadingBatch],
    start_ms: int,
    end_ms: int,
    config: TuneConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[SensorTuning]:
    """Replay `chunks` (time-sorted batches of `index` slots) in [start_ms, end_ms); a verdict per sensor."""
    cfg = config or TuneConfig()
    cands = [
        candidate_settings(s, cfg.caps, cfg.default_cap, cfg.deadbands_pct, cfg.delays_s)
        for s in index.sensors
    ]
    eligible = [len(c) for c in cands]  # the raw reference, appended below, is not a suggestion
    for c in cands:
        if c and RAW not in c:
            c.append(RAW)
    fleet = build_fleet(index, cands)
    coverage = Coverage.empty(index, cfg.resolution_s)
    log = run(fleet, chunks, start_ms, end_ms, coverage, progress)
    return _Verdicts(cfg, fleet, cands, eligible, coverage, log.arrays(), start_ms, end_ms).all()


class _Verdicts:
    """Scores every virtual sensor from the replay's condition changes, then picks per real sensor."""

    def __init__(
        self,
        cfg: TuneConfig,
        fleet: Fleet,
        cands: list[list[Setting]],
        eligible: list[int],
        coverage: Coverage,
        changes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
        start_ms: int,
        end_ms: int,
    ):
        self.cfg, self.fleet, self.coverage = cfg, fleet, coverage
        self.start_ms, self.end_ms, self.t0 = start_ms, end_ms, start_ms
        n_v = len(fleet.settings)
        self.n_keys = n_v * N_COLS
        real_of, first = fleet.real_of, fleet.first
        # the first `eligible[r]` candidates of sensor r may be suggested; the raw reference may not
        self.eligible = np.arange(n_v) - first[real_of] < np.asarray(eligible, np.intp)[real_of]
        ref = np.array([first[r] + c.index(RAW) for r, c in enumerate(cands) if c], dtype=np.intp)
        vslot, col, on, t = changes
        fault = col == FAULT_COL
        # fault toggles of each real sensor, read from its current-setting candidate (all agree)
        own = fault & (vslot == first[real_of[vslot]])
        lim = ~fault
        every = episodes(vslot[lim] * N_COLS + col[lim], on[lim], t[lim], end_ms, self.t0)
        ep_v = every.key // N_COLS
        # the lifecycle suppresses a sensor's process alarms while it is faulty: those do not count
        faulted = state_at(real_of[vslot[own]], t[own], on[own], real_of[ep_v], every.start_ms, self.t0)
        self.every = every
        self.ep = ep = every.take(np.flatnonzero(~faulted))
        self.acts = per_key(ep.key, self.n_keys).reshape(n_v, N_COLS)
        self.in_alarm_ms = per_key(ep.key, self.n_keys, ep.duration_ms.astype(np.float64)).reshape(
            n_v, N_COLS
        )
        self.standing = per_key(ep.key[standing(ep, cfg.standing_ms)], self.n_keys).reshape(n_v, N_COLS)
        self.chatter = np.zeros(self.n_keys, dtype=bool)
        chatty = chattering_points(ep.key.tolist(), ep.start_ms, cfg.chatter.count, cfg.chatter.window_ms)
        self.chatter[np.asarray(chatty, dtype=np.intp)] = True
        self.chatter = self.chatter.reshape(n_v, N_COLS)
        # the process's own excursions: the raw reference's episodes, merged within the chatter window
        is_ref = np.zeros(n_v, dtype=bool)
        is_ref[ref] = True
        self.excursions = merge(ep.take(np.flatnonzero(is_ref[ep.key // N_COLS])), cfg.chatter.window_ms)
        self.late, self.missed = self._excursion_checks()

    # ---- real excursions

    def _excursion_checks(self) -> tuple[np.ndarray, np.ndarray]:
        """Per virtual sensor: real excursions alarmed late (after delay + one interval), and never."""
        fleet, ex = self.fleet, self.excursions
        n_v = len(fleet.settings)
        ex_real = self.fleet.real_of[ex.key // N_COLS]
        ex_col = ex.key % N_COLS
        # each excursion against every candidate of its sensor
        n_c = fleet.count[ex_real]
        q_ex = np.repeat(np.arange(len(ex.key)), n_c)
        q_v = np.repeat(fleet.first[ex_real], n_c) + (
            np.arange(int(n_c.sum())) - np.repeat(np.cumsum(n_c) - n_c, n_c)
        )
        q_key = q_v * N_COLS + ex_col[q_ex]
        start, end, beyond = ex.start_ms[q_ex], ex.end_ms[q_ex], ex.beyond_ms[q_ex]
        interval_ms = np.array([1000 * s.interval_s for s in fleet.real.sensors], dtype=np.int64)
        on_delay = fleet.on_delay_ms[q_v]
        deadline = start + on_delay + interval_ms[ex_real[q_ex]]
        now_key = fleet.first[ex_real] * N_COLS + ex_col  # the current setting's point, per excursion
        shown_now = active_between(self.every, now_key, ex.start_ms, ex.end_ms, self.t0)
        outer = np.isin(ex_col[q_ex], OUTER)
        real = np.where(outer, shown_now[q_ex], beyond >= on_delay)
        in_time = active_between(self.every, q_key, start, deadline, self.t0)
        ever = active_between(self.every, q_key, start, np.maximum(end, deadline), self.t0)
        late = per_key(q_v[real & ~in_time], n_v)
        missed = per_key(q_v[real & ~ever], n_v)
        return late, missed

    # ---- verdicts

    def all(self) -> list[SensorTuning]:
        return [self._one(r) for r in range(len(self.fleet.real))]

    def _one(self, r: int) -> SensorTuning:
        cfg, fleet, cov = self.cfg, self.fleet, self.coverage
        sensor = fleet.real.sensors[r]
        heard = cov.first_ms[r] >= 0
        days = float(cov.observed_ms[r]) / DAY_MS
        base = dict(
            sensor=sensor,
            observed_days=days,
            first_ms=int(cov.first_ms[r]) if heard else None,
            last_ms=int(cov.last_ms[r]) if heard else None,
        )
        if fleet.count[r] == 0:
            return SensorTuning(status=Status.NO_LIMITS, message="no limit or rate alarm configured", **base)
        lo, n = int(fleet.first[r]), int(fleet.count[r])
        vs = np.arange(lo, lo + n)
        mine = self.fleet.real_of[self.excursions.key // N_COLS] == r
        spans = tuple(
            zip(self.excursions.start_ms[mine].tolist(), self.excursions.end_ms[mine].tolist(), strict=True)
        )
        sustained = int(np.count_nonzero(self.excursions.beyond_ms[mine] >= cfg.sustained_ms))
        base |= dict(
            current=self._outcome(lo, r),
            real_excursions=len(spans),
            sustained_excursions=sustained,
            excursion_spans_ms=spans,
        )
        if days < cfg.min_days:
            return SensorTuning(
                status=Status.TOO_LITTLE_DATA,
                message=f"{days:.1f} days of data; at least {cfg.min_days:g} are needed for a suggestion",
                **base,
            )
        total = self.acts[vs].sum(axis=1)
        chatter = self.chatter[vs].sum(axis=1)
        standing_n = self.standing[vs].sum(axis=1)
        clean = (chatter == 0) & (self.late[vs] == 0) & (standing_n <= standing_n[0]) & self.eligible[vs]
        target = cfg.target_per_day * days
        ok = clean & (total <= target)
        if ok[0]:
            return SensorTuning(
                status=Status.NO_CHANGE, message="the current setting meets the target", **base
            )
        if ok.any():  # candidates follow the current one in Setting order: the first changes least
            return SensorTuning(
                status=Status.SUGGEST, suggested=self._outcome(lo + int(np.argmax(ok)), r), **base
            )
        # out of reach: still worth taking, down to one activation per sustained excursion (those are
        # the process, which no deadband or delay should hide), the fewest activations on offer
        ok = clean & (total <= max(target, sustained))
        if ok.any():
            best = int(np.argmax(ok & (total == total[ok].min())))
            why = self._process_note(sustained, days)
            if best == 0:
                return SensorTuning(status=Status.NO_CHANGE, message=why, **base)
            return SensorTuning(
                status=Status.SUGGEST, suggested=self._outcome(lo + best, r), message=why, **base
            )
        pool = np.flatnonzero(self.eligible[vs])
        pick = pool[np.lexsort((pool, total[pool], chatter[pool], self.late[vs][pool]))[0]]
        return SensorTuning(
            status=Status.UNREACHABLE,
            closest=self._outcome(lo + int(pick), r),
            message=(
                f"no deadband or delay within the caps reaches {cfg.target_per_day:g}/day without "
                f"chattering, new standing alarms or late alarms ({len(spans) / days:.1f} raw excursions "
                "a day): review the limit, the process or the instrument"
            ),
            **base,
        )

    def _process_note(self, sustained: int, days: float) -> str:
        return (
            f"{self.cfg.target_per_day:g}/day is out of reach: {sustained} excursion(s) "
            f"({sustained / days:.1f}/day) stayed beyond the limit for {self.cfg.sustained_ms / 1000:g} s "
            "or more, which no deadband or delay should hide; review the limit if they are normal operation"
        )

    def _outcome(self, v: int, r: int) -> Outcome:
        sensor = self.fleet.real.sensors[r]
        cols = levels_of(sensor)
        names = [LEVELS[c] for c in cols]
        ep = self.ep
        mine = ep.key // N_COLS == v
        first = (
            max(self.start_ms, int(self.coverage.first_ms[r]))
            if self.coverage.first_ms[r] >= 0
            else self.end_ms
        )
        n_days = max(math.ceil((self.end_ms - first) / DAY_MS), 1)
        return Outcome(
            setting=self.fleet.settings[v],
            activations={LEVELS[c]: int(self.acts[v, c]) for c in cols},
            per_day=tuple(daily_counts(ep.start_ms[mine], self.end_ms, n_days).tolist()),
            time_in_alarm_s={LEVELS[c]: float(self.in_alarm_ms[v, c]) / 1000 for c in cols},
            chattering=tuple(n for c, n in zip(cols, names, strict=True) if self.chatter[v, c]),
            standing=tuple(n for c, n in zip(cols, names, strict=True) if self.standing[v, c]),
            late=int(self.late[v]),
            missed=int(self.missed[v]),
        )
