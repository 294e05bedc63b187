"""Early warnings as alarm conditions: the engine's forecaster, on forecast.py and behaviour.py beside it.

The engine feeds every accepted sample of a sensor with ``forecast: true`` (docs/contracts.md §2) into
streaming trends (O(1) per sample). Each sensor is judged on its *own* event time, once per
``eval_every_s`` (tau/30: 30 s for gas, 4 min for tank level, at most 10 min), so the same readings give
the same warnings whether they arrive one by one or as one backtest batch.

A warning is a **probability**: the chance that the sensor reaches its next limit within the horizon.
Two models give it, and the larger counts:

- *its own behaviour* (alerts/engine/behaviour.py, learned from the sensor's history by alerts/learning.py):
  level distribution, daily and weekly cycles and mean reversion; an excursion like the ones this
  sensor always came back from gives a small chance;
- *the trend* (alerts/engine/forecast.py: an EW line with its uncertainty), which is how a tank fills, a
  pond rises in a storm or a leak spreads. It counts in full while the sensor has no learned
  behaviour yet, and otherwise only as far as the present is **unlike its history**: a level beyond
  anything it showed, or a rate faster than it ever moved over the trend's memory (the *novelty*).

A warning is raised when the chance has stayed at or above the kind's threshold for its persistence
window (:data:`WARN_PROFILES`), re-sent (an update, not a new alarm) when its grade or target limit
changes, and cleared after the chance has stayed under half the threshold for ``clear_after_s``.
Priority follows the grade (lead time). Displacement of tailings dams also feeds an inverse-velocity
(Fukuzono) fit whose failure time is a warning of its own. Each raise carries its evidence
(docs/contracts.md §3 `forecast`): the probability, the horizon, the model, the trend per hour, the
sensor's normal range, and the band: the 10 % and 90 % points of the crossing time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from alerts.engine import behaviour as bh
from alerts.engine import forecast as fc
from alerts.engine import jit
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from sensors.index import SensorIndex
from sensors.kinds import DEFAULT_PROFILE, KINDS, Channels, WarnProfile, names_where

K = ConditionKind
#: Kinds whose displacement feeds the inverse-velocity failure forecast (DOMAIN §7.4).
CREEP_KINDS = names_where(lambda k: k.creep)
FAILURE_LEVEL = "FAILURE"  # docs/contracts.md §3 level of an inverse-velocity failure forecast
NO_KIND = -1

_LEVEL_ZH = {K.LL: "低低限", K.L: "低限", K.H: "高限", K.HH: "高高限"}
_GRADE_ZH = {
    fc.WarningGrade.RED: "红色",
    fc.WarningGrade.ORANGE: "橙色",
    fc.WarningGrade.YELLOW: "黄色",
    fc.WarningGrade.BLUE: "蓝色",
}
#: (trend memory s, horizon s) per sensor kind where the defaults (alerts/engine/forecast.py: one channel,
#: TREND_WINDOW_S and HORIZON_S) do not fit the physics (sensors/kinds.py `SensorKind.channels`, with why).
FORECAST_CHANNELS: dict[str, Channels] = {k.name: k.channels for k in KINDS.values() if k.channels}
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


#: Per sensor kind (sensors/kinds.py `SensorKind.warn`, with why); a kind without a profile uses
#: DEFAULT_PROFILE.
WARN_PROFILES: dict[str, WarnProfile] = {k.name: k.warn for k in KINDS.values()}
BAND_Z = 1.2815515655446004  # the band is the 10 % .. 90 % of the crossing time: Φ⁻¹(0.9)
LEAD_POINTS = 32  # lead-grid points across the horizon for the learned model
TREND_LEADS = (1 / 192) ** (1 - np.arange(64) / 63)  # a trend's crossing, in horizons: 1/192 .. 1
#: Kinds whose readings, during an excursion, swing about the trend in gusts (a gas plume meanders and
#: its concentration at a detector is intermittent): the trend's own residuals are the noise of its
#: band, decorrelating within GUST_TAU_FRAC of the trend's memory. Other kinds take the smaller of
#: the residuals and the sensor's usual noise (a line across a bend has large residuals that are not
#: noise) at the sensor's learned pace.
GUSTY_KINDS = names_where(lambda k: k.gusty)
GUST_TAU_FRAC = 0.05
SCREEN_LEADS = np.array([0.25, 0.5, 0.75, 1.0])  # a coarse grid (in horizons) that rules most sensors out
#: A trend's line remembers its whole memory: past the top of a fast V (a tank filled quickly, then
#: emptied) the line fitted across the bend still points up for half an hour while the level falls.
#: A trend toward a limit counts only while the sensor is not clearly moving away from that limit now:
#: its short mean since the last judgement (a few minutes) moved against the line by more than
#: TURN_Z noise sd of the difference of two readings' means. A fill that slows still moves toward
#: the limit and keeps its warning; gusty kinds (a plume swings about its trend) are not judged so.
TURN_Z = 3.0
MODEL_TREND, MODEL_REVERTING, MODEL_CREEP = "trend", "reverting", "creep"
_MODEL_ZH = {MODEL_TREND: "趋势外推", MODEL_REVERTING: "历史行为模型", MODEL_CREEP: "反速度法"}


@dataclass(frozen=True, slots=True)
class EarlyWarningConfig:
    """Tuning of the early warnings; the per-kind tables default to the kinds' profiles (sensors/kinds.py)."""

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
    z_band: float = BAND_Z
    min_n_eff: float = 10.0
    profiles: Mapping[str, WarnProfile] = field(default_factory=lambda: dict(WARN_PROFILES))
    default_profile: WarnProfile = DEFAULT_PROFILE
    keep_frac: float = 0.5  # an active warning holds while its chance is at least this share of p_warn
    # learned behaviour is trusted once it covers this many horizons (at least 2 h, at most 3 days)
    mature_horizons: float = 4.0
    creep_horizon_s: float = 48 * fc.HOUR_S  # a forecast dam failure is worth two days' notice

    def profile(self, kind: str) -> WarnProfile:
        """The warning threshold and persistence of a sensor kind."""
        return self.profiles.get(kind, self.default_profile)


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
    # acceleration: how the trend's slope changes from one judgement to the next, EW over tau
    slope_prev: np.ndarray = field(default_factory=lambda: np.zeros(0))
    slope_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    accel: np.ndarray = field(default_factory=lambda: np.zeros(0))
    identity: bool = False  # set in __post_init__

    def __post_init__(self) -> None:
        k = len(self.rows)
        self.slope_prev, self.slope_t, self.accel = np.full(k, np.nan), np.full(k, np.nan), np.zeros(k)
        # every EW row, each at its own position: a row is its position (no gather per round)
        self.identity = bool(len(self.pos) == k and np.array_equal(self.pos, np.arange(k)))

    def follow_slope(self, pc: np.ndarray, now_s: np.ndarray, slope: np.ndarray) -> None:
        """Update the acceleration of positions ``pc`` from their new slopes (units/s²)."""
        ok = np.isfinite(slope)
        pc, now_s, slope = pc[ok], now_s[ok], slope[ok]
        dt = now_s - self.slope_t[pc]
        seen = np.isfinite(dt) & (dt > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = (slope - self.slope_prev[pc]) / dt
            keep = np.exp(-np.where(seen, dt, 0.0) / self.trend.tau_s[pc])
        self.accel[pc] = np.where(seen, keep * self.accel[pc] + (1.0 - keep) * raw, self.accel[pc])
        self.slope_prev[pc], self.slope_t[pc] = slope, now_s


_ALL_HEALTHY = np.zeros(0, dtype=np.int8)  # jit.round_samples' "no fault codes"


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
        fault_codes: Callable[[], np.ndarray] | None = None,
        step_noise: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        self.index = index
        self.config = cfg = config or EarlyWarningConfig()
        self.fault_codes = fault_codes  # the engine's fault code per slot (0 = healthy), read each round
        # the engine's mean |Δx| of slots: the readings' own step-to-step noise, which a line fitted
        # across a bend (the start of a fill) overstates in its residuals
        self.step_noise = step_noise
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
        self.horizon_iv_s = np.full(len(self.creep_rows), cfg.creep_horizon_s)
        self.horizon_s = max_horizon
        # per-kind warning profiles
        profiles = [cfg.profile(s.kind) for s in chosen]
        self.p_warn = np.array([p.p_warn for p in profiles], dtype=np.float64)
        self.persist_s = np.array([p.persist_s for p in profiles], dtype=np.float64)
        self.above_since_s = np.full(m, np.nan)  # since when the chance has been at or above p_warn
        self.prob = np.zeros(m)  # the chance at the last judgement (for the API and calibration) ...
        self.prob_horizon_s = self.horizon_s.copy()  # ... and the horizon it is over
        # learned behaviour: the grid of its history, the trend memories whose rates it learns
        self.interval_s = np.array([s.interval_s for s in chosen], dtype=np.float64)
        self.gusty = np.array([s.kind in GUSTY_KINDS for s in chosen], dtype=bool)
        self.step_s = learning_step_s(self.interval_s, max_horizon)
        n_ch = max(len(self.channels), 1)
        self.rate_windows_s = np.full((m, n_ch), np.nan)
        for c, ch in enumerate(self.channels):
            self.rate_windows_s[ch.rows, c] = ch.trend.tau_s
        self.mature_span_s = np.clip(cfg.mature_horizons * max_horizon, 2 * fc.HOUR_S, 3 * fc.DAY_S)
        self.behaviour = bh.BehaviourModel.empty(m, n_ch)
        self.x_short = np.full(m, np.nan)  # EW mean over one grid step: the state the learned model sees
        self.t_short = np.full(m, np.nan)
        # x_short and its time at the last judgement that had a new sample: the present motion (TURN_Z)
        self.x_judged = np.full(m, np.nan)
        self.t_judged = np.full(m, np.nan)
        self.ids = [f"{s.site}/{s.id}" for s in chosen]
        #: called after each judgement with (rows, now_s, prob, level, eta, low, high, horizon_s), the
        #: last the horizon each chance is over: calibration, threshold tuning
        self.on_judged: Callable[..., None] | None = None

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
        faults = _ALL_HEALTHY if self.fault_codes is None else self.fault_codes()
        _, r, t_s, xv, due = jit.round_samples(
            self.row_of, np.asarray(slot, dtype=np.intp), t_ms, np.asarray(x, dtype=np.float64), faults,
            self.x_last, self.t_first, self.x_short, self.t_short, self.step_s, self.next_eval_s,
        )  # fmt: skip
        if not len(r):
            return
        for ch in self.channels:
            if ch.identity:
                fc.update_trend(ch.trend, r, t_s, xv)
                continue
            p = ch.pos[r]
            inside = p >= 0
            if inside.all():
                fc.update_trend(ch.trend, p, t_s, xv)
            elif inside.any():
                fc.update_trend(ch.trend, p[inside], t_s[inside], xv[inside])
        if len(self.creep_rows):
            iv = self.iv_of[r]
            creeping = iv >= 0
            if creeping.any():
                fc.update_inverse_velocity(self.iv, iv[creeping], t_s[creeping], xv[creeping])
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

    def install_behaviour(self, rows: np.ndarray, model: bh.BehaviourModel) -> None:
        """Take new fits for ``rows`` (alerts/learning.py); rows it could not fit keep what they had."""
        fitted = model.fitted_ms >= 0
        if fitted.any():
            self.behaviour.put(np.asarray(rows)[fitted], model.take(np.flatnonzero(fitted)))

    def mature(self, rows: np.ndarray) -> np.ndarray:
        """Rows whose learned behaviour covers enough history to judge an excursion by it."""
        b = self.behaviour
        return (b.fitted_ms[rows] >= 0) & (b.span_s[rows] >= self.mature_span_s[rows])

    def outlook(self, slot: int, now_ms: int) -> dict | None:
        """What the forecaster knows of a sensor now, for people (the API and the console's trend).

        Read from another thread than the engine's: a snapshot that may be one judgement old. None for
        a sensor without forecasts.
        """
        row = int(self.row_of[slot]) if 0 <= slot < len(self.row_of) else -1
        if row < 0:
            return None
        b = self.behaviour
        rows = np.array([row])
        fitted = bool(b.fitted_ms[row] >= 0)
        lo = hi = None
        if fitted:
            lo_a, hi_a = self._normal_range(rows, np.array([now_ms / 1000.0]))
            lo, hi = _finite(float(lo_a[0])), _finite(float(hi_a[0]))
        return {
            "probability": round(float(self.prob[row]), 3),
            "horizon_s": float(self.prob_horizon_s[row]),
            "threshold": float(self.p_warn[row]),
            "learned": "mature"
            if fitted and bool(self.mature(rows)[0])
            else "learning"
            if fitted
            else "none",
            "learned_at_ms": int(b.fitted_ms[row]) if fitted else None,
            "normal_lo": lo,
            "normal_hi": hi,
        }

    def restore_active(self, slot: int) -> None:
        """After a restart the journal says this sensor's warning is active: do not raise it again."""
        row = self.row_of[slot]
        if row >= 0:
            self.active[row] = True

    # ---- judging

    def _judge(self, rows: np.ndarray, now_s: np.ndarray, changes: list) -> None:
        cfg = self.config
        n = len(rows)
        level = np.full(n, NO_KIND, dtype=np.int16)
        eta, low, high = np.full(n, np.inf), np.full(n, np.inf), np.full(n, np.inf)
        limit = np.full(n, np.nan)
        prob = np.zeros(n)
        slope = np.zeros(n)
        chan = np.full(n, -1, dtype=np.intp)
        hz = self.horizon_s[rows].copy()  # the horizon the chance is over: the winning model's
        fresh = np.zeros(n, dtype=bool)
        crossings: list[tuple[fc.Crossing, np.ndarray, np.ndarray, np.ndarray]] = []
        step_sd = self._step_sd(rows)
        motion, turn_at = self._present_motion(rows, step_sd)
        for c, ch in enumerate(self.channels):
            p = ch.pos[rows]
            at = np.flatnonzero(p >= 0)
            if not len(at):
                continue
            pc, r = p[at], rows[at]
            x = fc.forecast_crossing(
                ch.trend.take(pc), now_s[at], self.limits_lo[r], self.limits_hi[r], ch.horizon_s[pc],
                z_slope=cfg.z_slope, z_band=cfg.z_band, min_n_eff=cfg.min_n_eff,
            )  # fmt: skip
            ch.follow_slope(pc, now_s[at], x.slope)
            ch_fresh = now_s[at] - ch.trend.t_ref[pc] <= cfg.lapse_after_tau * ch.trend.tau_s[pc]
            fresh[at] |= ch_fresh
            turned = np.sign(x.slope) * motion[at] < -turn_at[at]  # moving away from the line's limit
            pr = np.where(ch_fresh & ~turned, x.prob, 0.0)
            better = (pr > prob[at]) | ((pr == prob[at]) & (pr > 0) & (x.eta_s < eta[at]))
            w = at[better]
            prob[w], level[w], limit[w] = pr[better], x.limit_kind[better], x.limit_value[better]
            eta[w], low[w], high[w] = x.eta_s[better], x.eta_low_s[better], x.eta_high_s[better]
            slope[w], chan[w], hz[w] = np.nan_to_num(x.slope[better]), c, x.horizon_s[better]
            crossings.append((x, at, ch.accel[pc], ch.trend.tau_s[pc]))
        lo_n, hi_n = np.full(n, np.nan), np.full(n, np.nan)
        beyond = np.zeros(n)  # how far beyond the levels it has ever shown the sensor is
        known = (self.behaviour.fitted_ms[rows] >= 0) & fresh
        if known.any():  # a trend counts as far as the present is unlike the sensor's history
            i = np.flatnonzero(known)
            beyond[i], novelty = self._novelty(rows[i], now_s[i], slope[i], chan[i])
            prob[i] *= novelty
        mat = self.mature(rows) & fresh
        self._trend_reach(rows, now_s, crossings, chan, prob, eta, low, high, step_sd)
        model = np.where(prob > 0, MODEL_TREND, "").astype(object)
        if mat.any():
            i = np.flatnonzero(mat)
            rv = self._reverting(rows[i], now_s[i])
            # the learned model speaks for the levels it has seen; beyond them only a trend can
            rv = (rv[0] * (1.0 - beyond[i]), *rv[1:])
            take = rv[0] > prob[i]
            j = i[take]
            prob[j], level[j], limit[j] = rv[0][take], rv[1][take], rv[2][take]
            eta[j], low[j], high[j] = rv[3][take], rv[4][take], rv[5][take]
            model[j], hz[j] = MODEL_REVERTING, self.horizon_s[rows[j]]
            lo_n[i], hi_n[i] = self._normal_range(rows[i], now_s[i])
        iv = self.iv_of[rows]
        creeping = iv >= 0
        if creeping.any():
            cr = np.flatnonzero(creeping)
            f = fc.failure_time(self.iv.take(iv[cr]), now_s[cr], horizon_s=self.horizon_iv_s[iv[cr]])
            fail = f.warn & fresh[cr]
            if fail.any():  # a failure forecast outranks a limit forecast of the same sensor
                w = cr[fail]
                sd = np.where(np.isfinite(f.tf_high_s), f.tf_high_s - f.tf_s, f.tf_s - f.tf_low_s)[fail] / 2
                lead = now_s[w] + self.horizon_iv_s[iv[w]] - f.tf_s[fail]
                prob[w] = bh.norm_cdf(lead / np.maximum(sd, 1.0))
                level[w] = self.FAILURE_CODE
                eta[w], limit[w] = f.tf_s[fail], np.nan
                # the failure band is ±z_band of the fit; report its 10 %..90 % points
                low[w] = f.tf_s[fail] - BAND_Z * sd
                high[w] = np.where(np.isfinite(f.tf_high_s[fail]), f.tf_s[fail] + BAND_Z * sd, np.inf)
                model[w], hz[w] = MODEL_CREEP, self.horizon_iv_s[iv[w]]
        # a crossing is seen when a reading shows it: up to one reporting interval after the value
        # gets there (an hourly sensor shows it within the hour), so the band's late end allows that
        seen = level != self.FAILURE_CODE
        high[seen] += self.interval_s[rows[seen]]
        self.prob[rows], self.prob_horizon_s[rows] = prob, hz
        if self.on_judged is not None:
            self.on_judged(rows, now_s, prob, level, eta, low, high, hz)
        self._decide(
            rows, now_s, prob, level, eta, low, high, limit, model, slope, lo_n, hi_n, fresh, hz, changes
        )

    def _step_sd(self, rows: np.ndarray) -> np.ndarray | None:
        """The readings' own noise sd from the engine's mean step (white noise of sd σ steps by 2σ/√π
        on average); inf where unknown, None without the engine's step noise."""
        if self.step_noise is None:
            return None
        return np.nan_to_num(self.step_noise(self.slots[rows]), nan=np.inf) * math.sqrt(math.pi) / 2

    def _present_motion(self, rows: np.ndarray, step_sd: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """How far each row's short mean moved since its last judgement with new samples (NaN before
        the first), and how far it must move against a trend to say the sensor turned (inf: never, for
        gusty kinds or without the engine's step noise). Moves the judgement mark to the present."""
        xs, ts = self.x_short[rows], self.t_short[rows]
        motion = xs - self.x_judged[rows]
        turn_at = np.full(len(rows), np.inf)
        if step_sd is not None:
            turn_at = np.where(self.gusty[rows], np.inf, TURN_Z * math.sqrt(2.0) * step_sd)
        new = ~(ts <= self.t_judged[rows])  # a sample since the last mark (or no mark yet)
        self.x_judged[rows] = np.where(new, xs, self.x_judged[rows])
        self.t_judged[rows] = np.where(new, ts, self.t_judged[rows])
        return np.where(new, motion, 0.0), turn_at

    def _trend_reach(self, rows, now_s, crossings, chan, prob, eta, low, high, step_sd) -> None:
        """The band of the crossing time on a trend: when a *reading* would reach the limit if the
        trend goes on (the line's uncertainty, a rate that may change or grow, the noise about it:
        fc.trend_reach), in place of the line's own. The chance stays the line's: the trend's own
        figure, which the novelty then weighs."""
        for c, (x, at, accel, tau) in enumerate(crossings):
            pos = np.flatnonzero((chan[at] == c) & (prob[at] > 0))
            if not len(pos):
                continue
            i = at[pos]
            r = rows[i]
            b = self.behaviour
            theta = np.where(b.fitted_ms[r] >= 0, np.nan_to_num(b.theta[r], nan=0.0), 0.0)
            theta = np.where(theta > 0, theta, 1.0 / self.interval_s[r])
            gusty = self.gusty[r]
            # from 1/192 of the horizon to the horizon, spaced by a constant ratio so the band's ends are
            # placed to a few per cent wherever they fall
            leads = x.horizon_s[pos, None] * TREND_LEADS[None, :]
            noise = np.nan_to_num(x.noise_sd[pos], nan=0.0)
            if step_sd is not None:
                step = step_sd[i]
                q = b.quantiles[r]
                learned = np.where(b.fitted_ms[r] >= 0, (q[:, 7] - q[:, 3]) / 2.563, 0.0)  # 10..90 %
                noise = np.where(gusty, noise, np.minimum(noise, np.maximum(step, np.nan_to_num(learned))))
            # a plume's concentration swings about its trend within a minute or so, not at the slow
            # pace the detector's quiet baseline taught: the deviations about the line are that noise
            theta = np.where(gusty, np.maximum(theta, 1.0 / (GUST_TAU_FRAC * tau[pos])), theta)
            cum = fc.trend_reach(x, pos, leads, theta, accel[pos], noise_sd=noise, touches=gusty)
            q = conditional_band(cum, leads)  # the leads end at the horizon
            eta[i], low[i], high[i] = now_s[i] + q[:, 0], now_s[i] + q[:, 1], now_s[i] + q[:, 2]

    def _novelty(
        self, rows: np.ndarray, now_s: np.ndarray, slope: np.ndarray, chan: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """How unlike its history the sensor is now (0..1): (outside its levels on either side, beyond
        them or its rates in the trend's direction).

        A trend counts only as far as this: a sensor that always came back from excursions of this size
        and speed is judged by its learned behaviour, not by a line.
        """
        b = self.behaviour
        r = self.x_short[rows] - b.level[rows] - b.season_at(now_s, rows)
        q = b.quantiles[rows]
        top, bot, mid = q[:, -1], q[:, 0], q[:, bh.MID]
        up = slope >= 0
        with np.errstate(invalid="ignore", divide="ignore"):
            above, below = (r - top) / (top - mid), (bot - r) / (mid - bot)
            beyond = np.where(up, above, below)
            outside = np.clip(np.nan_to_num(np.maximum(above, below), nan=1.0), 0.0, 1.0)
            c = np.maximum(chan, 0)
            fast = np.where(up, b.rate_hi[rows, c], -b.rate_lo[rows, c])
            faster = (np.abs(slope) - fast) / (0.5 * np.abs(fast))
        faster = np.where(np.isnan(fast) | (chan < 0), 1.0, faster)
        beyond = np.clip(np.nan_to_num(beyond, nan=1.0), 0.0, 1.0)
        return outside, np.clip(np.nan_to_num(np.maximum(beyond, faster), nan=1.0), 0.0, 1.0)

    def _reverting(self, rows: np.ndarray, now_s: np.ndarray):
        """Chance, limit and crossing-time band under the learned behaviour, towards the likelier limit.

        Two views must agree, and the smaller chance counts: the readings' own levels with mean
        reversion (an on/off process or a batch is not a profile plus noise, and a profile plus a
        residual can add up to levels the sensor never reached), and the profile of the day and week
        with the residual's reversion, which also places the crossing in time. The first is cheap and
        rules out most sensors; the second is computed only where the first leaves a chance that
        matters. Returns (prob, limit kind, limit value, eta, eta_low, eta_high), each (k,), times in s.
        """
        b = self.behaviour
        k = len(rows)
        horizon = self.horizon_s[rows]
        # leads across the horizon: the chance is at its end, the band (given a crossing within it) inside
        leads = horizon[:, None] * (np.arange(1, LEAD_POINTS + 1) / LEAD_POINTS)[None, :]
        x = self.x_short[rows]
        theta = np.where(np.isnan(b.theta[rows]), 1.0 / horizon, b.theta[rows])
        matters = self.config.keep_frac * self.p_warn[rows]
        prob = np.zeros(k)
        level = np.full(k, NO_KIND, dtype=np.int16)
        limit = np.full(k, np.nan)
        band = np.full((k, 3), np.inf)
        for sign, lims, kinds in ((1.0, self.limits_hi, fc.HI_KINDS), (-1.0, self.limits_lo, fc.LO_KINDS)):
            near, far = lims[rows, 0], lims[rows, -1]
            use_near = sign * (near - x) > 0
            first = np.where(use_near, near, far)  # H before HH (L before LL), beyond the present
            i = np.flatnonzero(sign * (first - x) > 0)
            if not len(i):
                continue
            r = rows[i]
            zr = bh.raw_scores(b, r, np.column_stack([x[i], first[i]]))
            z0r, zbr = sign * zr[:, 0], sign * zr[:, 1:]
            coarse = horizon[i, None] * SCREEN_LEADS  # enough to rule a sensor out
            p_h = bh.reach_probability(z0r, np.repeat(zbr, len(SCREEN_LEADS), axis=1), theta[i], coarse)[
                :, -1
            ]
            p_h[z0r >= bh.SCORE_CAP - 0.5] = 0.0  # beyond anything its scores tell apart: outside the model
            keep = np.flatnonzero(p_h >= matters[i])
            dir_band = np.full((len(i), 3), np.inf)
            if len(keep):  # both views in full where the levels' view leaves a chance that matters
                j, rj = i[keep], r[keep]
                cum = bh.reach_probability(
                    z0r[keep], np.repeat(zbr[keep], leads.shape[1], axis=1), theta[j], leads[j]
                )
                z0 = bh.scores(b, rj, x[j] - b.level[rj] - b.season_at(now_s[j], rj))
                at = now_s[j, None] + leads[j]
                zb = bh.scores(b, rj, first[j, None] - b.level[rj, None] - b.season_at(at, rj))
                cum = np.minimum(cum, bh.reach_probability(sign * z0, sign * zb, theta[j], leads[j]))
                p_h[keep] = cum[:, -1]
                sure = p_h[keep] >= matters[j]
                dir_band[keep[sure]] = conditional_band(cum[sure], leads[j[sure]])
            better = p_h > prob[i]
            j = i[better]
            prob[j] = p_h[better]
            level[j] = np.where(use_near[j], kinds[0], kinds[-1])
            limit[j] = first[j]
            band[j] = dir_band[better]
        t = now_s[:, None] + band
        return prob, level, limit, t[:, 0], t[:, 1], t[:, 2]

    def _normal_range(self, rows: np.ndarray, now_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sensor's normal range now (its 0.1 % .. 99.9 % values at this time of day and week)."""
        b = self.behaviour
        centre = b.level[rows] + b.season_at(now_s, rows)
        return centre + b.quantiles[rows, 0], centre + b.quantiles[rows, -1]

    def _decide(
        self, rows, now_s, prob, level, eta, low, high, limit, model, slope, lo_n, hi_n, fresh, hz, changes
    ):
        """Persistence, hold and clearance: which judgements become raises, updates and clears."""
        cfg = self.config
        p_warn = self.p_warn[rows]
        above = prob >= p_warn
        since = np.where(above, np.fmin(self.above_since_s[rows], now_s), np.nan)
        self.above_since_s[rows] = since
        ready = above & (now_s - since >= self.persist_s[rows])
        holds = prob >= cfg.keep_frac * p_warn
        grade = fc._grade(eta - now_s, holds, fc.GRADE_BOUNDS_S)
        grade = np.where(level == self.FAILURE_CODE, np.maximum(grade, fc.WarningGrade.BLUE), grade)
        was = self.active[rows]
        raise_ = ready & ~was
        moved = holds & was & ((level != self.level[rows]) | (grade != self.grade[rows]))
        self.miss_since_s[rows[holds & was]] = np.nan
        # a young trend (after a restart or a gap) cannot tell yet: it may not clear a warning it inherited
        grown = now_s - self.t_first[rows] >= self.max_tau_s[rows]
        lapsing = ~holds & was & (grown | ~fresh)
        if lapsing.any():
            lr = rows[lapsing]
            miss = np.fmin(self.miss_since_s[lr], now_s[lapsing])
            self.miss_since_s[lr] = miss
            clear_at = np.flatnonzero(lapsing)[now_s[lapsing] - miss >= self.clear_after_s[lr]]
        else:
            clear_at = np.zeros(0, dtype=np.intp)
        for i in np.flatnonzero(raise_ | moved).tolist():
            row = int(rows[i])
            self.active[row] = True
            self.level[row], self.grade[row] = level[i], grade[i]
            evidence = {
                "probability": round(float(prob[i]), 3),
                "horizon_s": float(hz[i]),
                "model": str(model[i]),
                "trend_per_h": _finite(float(slope[i]) * 3600.0),
                "normal_lo": _finite(float(lo_n[i])),
                "normal_hi": _finite(float(hi_n[i])),
            }
            args = (int(level[i]), int(grade[i]), eta[i], low[i], high[i], limit[i])
            changes.append(self._change(row, True, now_s[i], *args, evidence=evidence))
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
        """Local month-day hour:minute of ``t_s``, or '—' for a time the forecast cannot place."""
        if not np.isfinite(t_s):
            return "—"
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
        evidence: Mapping[str, object] | None = None,
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
        ev = dict(evidence or {})
        g = fc.WarningGrade(grade)
        within = _duration_zh(float(ev.get("horizon_s") or self.horizon_s[row]))
        chance = f"{float(ev.get('probability') or 0.0):.0%}"
        band = (
            f"最早 {self._local(s.site, low)}，最晚 {self._local(s.site, high) if np.isfinite(high) else '—'}"
        )
        basis = _MODEL_ZH.get(str(ev.get("model")), "")
        if level == self.FAILURE_CODE:
            code, prio, lim = FAILURE_LEVEL, FAILURE_PRIORITY[g], None
            msg = (
                f"{_GRADE_ZH[g]}预警: {s.name}位移加速, 预计{within}内失稳的概率 {chance}"
                f"（预计 {self._local(s.site, eta)}，{band}）；依据: {basis}"
            )
        else:
            kind = K(level)
            code, prio, lim = kind.name, TREND_PRIORITY[g], float(limit)
            msg = (
                f"{_GRADE_ZH[g]}预警: {s.name}预计{within}内达到{_LEVEL_ZH[kind]} {lim:g} {s.unit} "
                f"的概率 {chance}"
                f"（预计 {self._local(s.site, eta)}，{band}），当前 {x:.4g} {s.unit}；依据: {basis}"
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
            eta_ms=_ms(eta) if np.isfinite(eta) else None,
            eta_low_ms=_ms(low) if np.isfinite(low) else None,
            eta_high_ms=_ms(high) if np.isfinite(high) else None,
            forecast=ev,
        )


def _finite(x: float) -> float | None:
    return x if np.isfinite(x) else None


def _duration_zh(seconds: float) -> str:
    """'30 分钟', '6 小时', '2 天': how a horizon is said in a warning."""
    if seconds < 2 * fc.HOUR_S:
        return f" {seconds / 60:.0f} 分钟"
    if seconds < 2 * fc.DAY_S:
        return f" {seconds / 3600:.0f} 小时"
    return f" {seconds / 86400:.0f} 天"


def conditional_band(cum: np.ndarray, leads_s: np.ndarray) -> np.ndarray:
    """(k, 3) leads of the median, 10 % and 90 % points of the crossing time *given that it comes
    within the horizon* (the last lead): when it will happen if the warning comes true (what
    calibration scores)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        given = np.nan_to_num(cum / cum[:, -1:], nan=0.0)
    return bh.lead_quantiles(np.clip(given, 0.0, 1.0), leads_s, (0.5, 0.1, 0.9))


def learning_step_s(interval_s: np.ndarray, horizon_s: np.ndarray) -> np.ndarray:
    """Grid step (s) on which a sensor's behaviour is learned: about 1/144 of its horizon (10 min for a
    day), never finer than its reporting interval, in whole minutes between 1 min and 1 h."""
    step = np.maximum(np.asarray(interval_s, dtype=np.float64), np.asarray(horizon_s, dtype=np.float64) / 144)
    return np.clip(np.ceil(step / 60.0) * 60.0, 60.0, 3600.0)


def attach_early_warnings(engine, site_timezones: Mapping[str, str] | None = None,
                          config: EarlyWarningConfig | None = None) -> EarlyWarnings:  # fmt: skip
    """Plug early warnings into `engine`; trends skip samples of sensors the engine finds faulty."""
    ew = EarlyWarnings(
        engine.index,
        config,
        site_timezones=site_timezones,
        fault_codes=lambda: engine.fault_code,
        step_noise=lambda s: engine.mad[s],
    )
    engine.attach_forecaster(ew)
    return ew
