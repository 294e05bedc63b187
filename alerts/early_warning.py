"""Early warnings as alarm conditions: the engine's forecaster, built on alerts/forecast.py's kernels.

The engine feeds every accepted sample of a sensor with ``forecast: true`` (docs/contracts.md §2) into a
streaming trend (O(1) per sample). Each sensor's forecast is judged on its *own* event time, once per
``eval_every_s`` (tau/30: 30 s for gas, 4 min for tank level, at most 10 min; under 1 % of the
horizon), so the same readings give the
same warnings whether they arrive one by one or as one backtest batch. Displacement of tailings dams
also feeds an inverse-velocity (Fukuzono) fit whose failure time is a warning of its own.

A warning is one alarm point per sensor (ConditionKind.EARLY_WARNING): raised when the forecast says
the sensor will cross a limit inside its horizon, re-sent (an update, not a new alarm) when its grade
or target limit changes, and cleared only after it has stopped holding for ``clear_after_s``, so a
trend hovering at the horizon's edge does not chatter. Priority follows the grade (lead time).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from alerts import forecast as fc
from alerts.conditions import ConditionChange, ConditionKind, Priority
from sensors.index import SensorIndex

K = ConditionKind
#: Kinds whose displacement feeds the inverse-velocity failure forecast (DOMAIN §7.4).
CREEP_KINDS = frozenset({"displacement"})
FAILURE_LEVEL = "FAILURE"  # docs/contracts.md §3 level of an inverse-velocity failure forecast
NO_KIND = -1

_LEVEL_ZH = {K.LL: "低低限", K.L: "低限", K.H: "高限", K.HH: "高高限"}
_GRADE_ZH = {
    fc.WarningGrade.RED: "红色",
    fc.WarningGrade.ORANGE: "橙色",
    fc.WarningGrade.YELLOW: "黄色",
    fc.WarningGrade.BLUE: "蓝色",
}
#: (trend memory s, horizon s) per sensor kind where the defaults (alerts/forecast.py: one channel,
#: TREND_WINDOW_S and HORIZON_S) do not fit the physics:
#: - tank level moves by operator-driven transfers that start and stop within hours; a straight line
#:   through a routine fill meets H within a day, so the horizon is the operator's response window;
#: - a tailings pond rises slowly with the seasons and fast after a rainstorm: a 12 h memory sees
#:   the first, a 1 h memory with a 6 h horizon the second (the flood routing reacts in hours).
Channels = tuple[tuple[float, float], ...]
FORECAST_CHANNELS: dict[str, Channels] = {
    "level": ((2 * fc.HOUR_S, 2 * fc.HOUR_S),),
    "pond_level": ((12 * fc.HOUR_S, fc.DAY_S), (1 * fc.HOUR_S, 6 * fc.HOUR_S)),
}
#: Priority of a limit-crossing warning, by grade; a forecast is less certain than a crossing.
TREND_PRIORITY = {
    fc.WarningGrade.RED: Priority.HIGH,
    fc.WarningGrade.ORANGE: Priority.MEDIUM,
    fc.WarningGrade.YELLOW: Priority.LOW,
    fc.WarningGrade.BLUE: Priority.LOW,
}
#: A forecast failure of a dam is worse than any limit: one grade up.
FAILURE_PRIORITY = {
    fc.WarningGrade.RED: Priority.CRITICAL,
    fc.WarningGrade.ORANGE: Priority.HIGH,
    fc.WarningGrade.YELLOW: Priority.MEDIUM,
    fc.WarningGrade.BLUE: Priority.MEDIUM,
}


@dataclass(frozen=True, slots=True)
class EarlyWarningConfig:
    """Tuning of the early warnings; the per-kind tables default to alerts/forecast.py's."""

    windows_s: Mapping[str, float] = field(default_factory=lambda: dict(fc.TREND_WINDOW_S))
    horizons_s: Mapping[str, float] = field(default_factory=lambda: dict(fc.HORIZON_S))
    daily_kinds: frozenset[str] = fc.DAILY_CYCLE_KINDS
    creep_kinds: frozenset[str] = CREEP_KINDS
    channels: Mapping[str, Channels] = field(default_factory=lambda: dict(FORECAST_CHANNELS))
    max_eval_every_s: float = 600.0  # each sensor's forecast is judged at least this often ...
    eval_every_tau_frac: float = 1 / 30  # ... and every tau/30 if sooner (gas 30 s, tank level 4 min)
    max_clear_after_s: float = 900.0  # a warning clears after not holding this long ...
    clear_after_horizon_frac: float = 0.25  # ... or a quarter of its horizon, if shorter
    lapse_after_tau: float = 1.0  # a trend whose last sample is older than this many tau says nothing
    z_slope: float = 3.0
    z_band: float = 2.0
    min_n_eff: float = 10.0


def _ms(t_s: float) -> int:
    """Seconds (float) to integer epoch milliseconds."""
    return int(np.rint(t_s * 1000.0))


@dataclass(slots=True, eq=False)
class _Channel:
    """One trend memory and horizon over some rows (a sensor kind may watch on two timescales)."""

    rows: np.ndarray  # (k,) EW rows in this channel
    pos: np.ndarray  # (m,) position of each EW row in this channel, -1 = not in it
    trend: fc.TrendState
    horizon_s: np.ndarray  # (k,)


class EarlyWarnings:
    """The engine's forecaster (see AlarmEngine.attach_forecaster): trends in, EARLY_WARNING changes out.

    Rows are the forecast-enabled sensors only; ``row_of[slot]`` is -1 for the others, so a fleet
    where few sensors forecast pays for few. Each row is watched by one or two channels (trend memory
    + horizon, :data:`FORECAST_CHANNELS`); it warns when any channel does, with the earliest ETA.
    """

    FAILURE_CODE = 100

    def __init__(
        self,
        index: SensorIndex,
        config: EarlyWarningConfig | None = None,
        *,
        site_timezones: Mapping[str, str] | None = None,
        healthy: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        self.index = index
        self.config = cfg = config or EarlyWarningConfig()
        self.healthy = healthy
        self._tz = {site: ZoneInfo(tz) for site, tz in (site_timezones or {}).items()}
        sensors = index.sensors
        lo, hi = fc.limit_arrays(sensors) if sensors else (np.zeros((0, 2)), np.zeros((0, 2)))
        has_limit = ~np.isnan(np.hstack([lo, hi])).all(axis=1)
        enabled = np.array([s.forecast for s in sensors], dtype=bool) & has_limit
        self.slots = np.flatnonzero(enabled)
        self.row_of = np.full(len(sensors), -1, dtype=np.intp)
        self.row_of[self.slots] = np.arange(len(self.slots))
        chosen = [sensors[s] for s in self.slots.tolist()]
        m = len(chosen)
        self.limits_lo, self.limits_hi = lo[self.slots], hi[self.slots]
        self.channels = self._channels(chosen)
        self.max_tau_s = np.zeros(m)
        max_horizon = np.zeros(m)
        self.eval_every_s = np.full(m, cfg.max_eval_every_s)
        for ch in self.channels:
            np.maximum.at(self.max_tau_s, ch.rows, ch.trend.tau_s)
            np.maximum.at(max_horizon, ch.rows, ch.horizon_s)
            np.minimum.at(self.eval_every_s, ch.rows, ch.trend.tau_s * cfg.eval_every_tau_frac)
        self.clear_after_s = np.minimum(cfg.max_clear_after_s, max_horizon * cfg.clear_after_horizon_frac)
        self.x_last = np.full(m, np.nan)
        self.t_first = np.full(m, np.nan)
        self.next_eval_s = np.full(m, -np.inf)
        self.active = np.zeros(m, dtype=bool)
        self.level = np.full(m, NO_KIND, dtype=np.int16)  # limit kind, or FAILURE_CODE
        self.grade = np.zeros(m, dtype=np.int8)
        self.miss_since_s = np.full(m, np.nan)  # when an active warning stopped holding
        # inverse velocity for creep sensors: creep rows index into iv's own arrays
        creep = np.array([s.kind in cfg.creep_kinds for s in chosen], dtype=bool)
        self.creep_rows = np.flatnonzero(creep)
        self.iv_of = np.full(m, -1, dtype=np.intp)
        self.iv_of[self.creep_rows] = np.arange(len(self.creep_rows))
        self.iv = fc.InverseVelocityState.empty(len(self.creep_rows))
        self.horizon_iv_s = max_horizon[self.creep_rows]

    def _channels(self, chosen: list) -> list[_Channel]:
        cfg = self.config
        m = len(chosen)
        daily = np.array([s.kind in cfg.daily_kinds for s in chosen], dtype=bool)
        per_row = [
            cfg.channels.get(s.kind)
            or ((cfg.windows_s.get(s.kind, fc.DEFAULT_TREND_WINDOW_S),
                 cfg.horizons_s.get(s.kind, fc.DEFAULT_HORIZON_S)),)
            for s in chosen
        ]  # fmt: skip
        out = []
        for c in range(max((len(p) for p in per_row), default=0)):
            rows = np.array([i for i, p in enumerate(per_row) if len(p) > c], dtype=np.intp)
            pos = np.full(m, -1, dtype=np.intp)
            pos[rows] = np.arange(len(rows))
            tau = np.array([per_row[i][c][0] for i in rows.tolist()], dtype=np.float64)
            horizon = np.array([per_row[i][c][1] for i in rows.tolist()], dtype=np.float64)
            out.append(_Channel(rows, pos, fc.TrendState.empty(tau, daily[rows]), horizon))
        return out

    # ---- engine hooks

    def on_round(self, slot: np.ndarray, t_ms: np.ndarray, x: np.ndarray, changes: list) -> None:
        """Add this round's samples (each slot once) to the trends; judge the sensors that are due."""
        if not len(self.slots):
            return
        rows = self.row_of[slot]
        sel = rows >= 0
        if not sel.any():
            return
        r = rows[sel]
        t_s = t_ms[sel] / 1000.0
        xv = np.asarray(x, dtype=np.float64)[sel]
        if self.healthy is not None:
            xv = np.where(self.healthy(slot[sel]), xv, np.nan)  # a faulty instrument has no trend
        ok = ~np.isnan(xv)
        self.x_last[r[ok]] = xv[ok]
        self.t_first[r[ok]] = np.fmin(self.t_first[r[ok]], t_s[ok])
        for ch in self.channels:
            p = ch.pos[r]
            inside = p >= 0
            if inside.all():
                fc.update_trend(ch.trend, p, t_s, xv)
            elif inside.any():
                fc.update_trend(ch.trend, p[inside], t_s[inside], xv[inside])
        iv = self.iv_of[r]
        creeping = iv >= 0
        if creeping.any():
            fc.update_inverse_velocity(self.iv, iv[creeping], t_s[creeping], xv[creeping])
        due = t_s >= self.next_eval_s[r]
        due &= ok
        if due.any():
            rd = r[due]
            self.next_eval_s[rd] = t_s[due] + self.eval_every_s[rd]
            self._judge(rd, t_s[due], changes)

    def on_batch_end(self, now_ms: int, changes: list) -> None:
        """Nothing waits for the end of a batch: each sensor was judged on its own time in its round."""

    def refresh(self, now_ms: int, changes: list) -> None:
        """Clock-driven pass over active warnings: regrade as the crossing nears, lapse silent trends."""
        rows = np.flatnonzero(self.active)
        if len(rows):
            self._judge(rows, np.full(len(rows), now_ms / 1000.0), changes)

    def restore_active(self, slot: int) -> None:
        """After a restart the journal says this sensor's warning is active: do not raise it again."""
        row = self.row_of[slot]
        if row >= 0:
            self.active[row] = True

    # ---- judging

    def _judge(self, rows: np.ndarray, now_s: np.ndarray, changes: list) -> None:
        cfg = self.config
        n = len(rows)
        want = np.zeros(n, dtype=bool)
        level = np.full(n, NO_KIND, dtype=np.int16)
        grade = np.zeros(n, dtype=np.int8)
        eta, low, high = np.full(n, np.inf), np.full(n, np.inf), np.full(n, np.inf)
        limit = np.full(n, np.nan)
        fresh = np.zeros(n, dtype=bool)
        for ch in self.channels:
            p = ch.pos[rows]
            at = np.flatnonzero(p >= 0)
            if not len(at):
                continue
            pc, r = p[at], rows[at]
            c = fc.forecast_crossing(
                ch.trend.take(pc), now_s[at], self.limits_lo[r], self.limits_hi[r], ch.horizon_s[pc],
                z_slope=cfg.z_slope, z_band=cfg.z_band, min_n_eff=cfg.min_n_eff,
            )  # fmt: skip
            ch_fresh = now_s[at] - ch.trend.t_ref[pc] <= cfg.lapse_after_tau * ch.trend.tau_s[pc]
            fresh[at] |= ch_fresh
            better = c.warn & ch_fresh & (c.eta_s < eta[at])  # the earliest crossing any channel sees
            w = at[better]
            want[w] = True
            level[w] = c.limit_kind[better]
            grade[w] = c.grade[better]
            eta[w], low[w], high[w] = c.eta_s[better], c.eta_low_s[better], c.eta_high_s[better]
            limit[w] = c.limit_value[better]
        iv = self.iv_of[rows]
        creeping = iv >= 0
        if creeping.any():
            cr = np.flatnonzero(creeping)
            f = fc.failure_time(self.iv.take(iv[cr]), now_s[cr], horizon_s=self.horizon_iv_s[iv[cr]])
            fail = f.warn & fresh[cr]
            if fail.any():  # a failure forecast outranks a limit forecast of the same sensor
                w = cr[fail]
                want[w] = True
                level[w] = self.FAILURE_CODE
                grade[w] = f.grade[fail]
                eta[w], low[w], high[w] = f.tf_s[fail], f.tf_low_s[fail], f.tf_high_s[fail]
                limit[w] = np.nan
        was = self.active[rows]
        raise_ = want & ~was
        moved = want & was & ((level != self.level[rows]) | (grade != self.grade[rows]))
        self.miss_since_s[rows[want]] = np.nan
        # a young trend (after a restart or a gap) cannot tell yet: it may not clear a warning it inherited
        mature = now_s - self.t_first[rows] >= self.max_tau_s[rows]
        lapsing = ~want & was & (mature | ~fresh)
        if lapsing.any():
            lr = rows[lapsing]
            since = np.fmin(self.miss_since_s[lr], now_s[lapsing])
            self.miss_since_s[lr] = since
            cleared = now_s[lapsing] - since >= self.clear_after_s[lr]
            clear_at = np.flatnonzero(lapsing)[cleared]
        else:
            clear_at = np.zeros(0, dtype=np.intp)
        for i in np.flatnonzero(raise_ | moved).tolist():
            row = int(rows[i])
            self.active[row] = True
            self.level[row], self.grade[row] = level[i], grade[i]
            args = (int(level[i]), int(grade[i]), eta[i], low[i], high[i], limit[i])
            changes.append(self._change(row, True, now_s[i], *args))
        for i in clear_at.tolist():
            row = int(rows[i])
            changes.append(
                self._change(row, False, now_s[i], int(self.level[row]), 0, np.nan, np.nan, np.nan, np.nan)
            )
            self.active[row] = False
            self.level[row], self.grade[row] = NO_KIND, 0
            self.miss_since_s[row] = np.nan

    # ---- rendering

    def _local(self, site: str, t_s: float) -> str:
        tz = self._tz.get(site) or self._tz.setdefault(site, ZoneInfo("Asia/Shanghai"))
        return datetime.fromtimestamp(t_s, UTC).astimezone(tz).strftime("%m-%d %H:%M")

    def _change(
        self,
        row: int,
        on: bool,
        now_s: float,
        level: int,
        grade: int,
        eta: float,
        low: float,
        high: float,
        limit: float,
    ) -> ConditionChange:
        s = self.index.sensors[int(self.slots[row])]
        x = float(self.x_last[row])
        value = None if np.isnan(x) else x
        if not on:
            code = FAILURE_LEVEL if level == self.FAILURE_CODE else K(level).name if level >= 0 else "EW"
            return ConditionChange(
                s.site, s.id, K.EARLY_WARNING, False, _ms(now_s), Priority.LOW,
                code, value=value, message=f"{s.name}趋势预警解除",
            )  # fmt: skip
        g = fc.WarningGrade(grade)
        when = self._local(s.site, eta)
        band = f"{self._local(s.site, low)} ~ {self._local(s.site, high) if np.isfinite(high) else '—'}"
        if level == self.FAILURE_CODE:
            code, prio, lim = FAILURE_LEVEL, FAILURE_PRIORITY[g], None
            msg = f"{_GRADE_ZH[g]}预警: {s.name}位移加速, 反速度法预测失稳时间 {when} (区间 {band})"
        else:
            kind = K(level)
            code, prio, lim = kind.name, TREND_PRIORITY[g], float(limit)
            msg = (
                f"{_GRADE_ZH[g]}预警: {s.name}预计 {when} 达到{_LEVEL_ZH[kind]} {lim:g} {s.unit} "
                f"(区间 {band}), 当前 {x:.4g} {s.unit}"
            )
        return ConditionChange(
            s.site,
            s.id,
            K.EARLY_WARNING,
            True,
            _ms(now_s),
            prio,
            code,
            value=value,
            limit=lim,
            message=msg,
            eta_ms=_ms(eta),
            eta_low_ms=_ms(low),
            eta_high_ms=_ms(high) if np.isfinite(high) else None,
        )


def attach_early_warnings(engine, site_timezones: Mapping[str, str] | None = None,
                          config: EarlyWarningConfig | None = None) -> EarlyWarnings:  # fmt: skip
    """Plug early warnings into `engine`; trends skip samples of sensors the engine finds faulty."""
    ew = EarlyWarnings(
        engine.index, config, site_timezones=site_timezones, healthy=lambda s: engine.fault_code[s] == 0
    )
    engine.attach_forecaster(ew)
    return ew
