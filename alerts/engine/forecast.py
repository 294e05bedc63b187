"""Vectorised early warnings: streaming trends, forecast limit crossings and inverse-velocity failure times.

Everything here is a pure numpy kernel over arrays with one element per sensor slot (slots come from
sensors/index.py). NaN means "missing". Streaming state lives in small dataclasses of arrays that are
passed in and returned; the hot path is a fixed number of numpy passes (~60 per update, ~120 per
forecast) over the slots of one round, never a Python loop per sensor. The trend update also has a
compiled one-pass form (alerts/engine/jit.py, numba) that the tick uses when numba is there.

Method
------
**Trend.** Each sensor keeps an exponentially weighted (EW) least-squares fit of its value against time
with a time-constant ``tau_s`` per sensor (a kind-dependent memory, :data:`TREND_WINDOW_S`). A sample
``(t, y)`` arriving ``d`` seconds after the previous one first decays the old sums by ``a = exp(-d/tau)``
(the real gap, so irregular sampling is fine; a NaN sample is skipped and its gap is charged to the next
one), then adds weight 1. The sums ``S_w, S_t, S_x, S_tt, S_tx, S_xx`` (plus ``S_ttt`` and the squared-weight
sums ``Q_0, Q_1, Q_2``, see below) are kept relative to the sensor's *last* sample ``(t_ref, x_ref)``:
every update re-centres them on the new sample with the exact binomial shift, so all stored times are
``<= 0`` and of the order of ``tau``, and no sum suffers the cancellation that absolute epoch seconds or
raw pond elevations (~500 m) would cause. The new sample then sits at the origin and only adds to
``S_w`` and ``Q_0``. From the sums (`trend_stats`):

- slope ``b = C_tx / C_tt`` and the fitted line, with ``C`` the weighted (co)variances;
- residual variance ``s² = (C_xx - b C_tx) · n_eff / (n_eff - 2)``;
- effective sample count ``n_eff = S_w² / Q_0`` (Kish), where ``Q_k = Σ w² t^k`` decays with ``a²``;
- slope standard error from the weighted-LS sandwich ``var b = s² Σw²(t - t̄)² / (Σw (t - t̄)²)²``, exact
  for white residuals and any weights (autocorrelated residuals, e.g. a random walk, make it optimistic:
  such trends often pass test (a) below, and (b) is what keeps them from warning);
- an effective time span ``sqrt(12 C_tt)`` (the span of an evenly sampled window with the same spread);
- ``t_rate``: the time at which the slope equals the instantaneous rate when the rate varies linearly,
  ``t̄ + μ3 / (2 C_tt)`` (``2 tau`` before the last sample in steady state). Inverse velocity uses it.

**Forecast** (`forecast_crossing`). The line is projected in its direction of travel to the nearest limit
*beyond the current fitted level*: rising -> the lowest upper limit above it (H before HH), falling -> the
highest lower limit below it (L before LL). The band comes from the prediction standard deviation
``σ(u)² = s² (1 + 1/n_eff) + se_b² u²`` (``u`` = time from the weighted mean time): ``eta_low`` / ``eta_high``
are where ``line ± z_band σ`` reach the limit, both roots of one quadratic; ``eta_high`` is ``+inf`` when the
pessimistic line never gets there. A warning is raised only when

a. the trend is significant: ``|b| > z_slope · se_b``, ``n_eff >= min_n_eff`` and an effective span of at
   least ``min_span_frac · tau``;
b. the *late* end of the band crosses inside the horizon: ``eta_high - now <= horizon``. This is the
   conservative reading of "the band still crosses inside the horizon": a warning means "will cross
   within the horizon" with ~``Φ(z_band)`` confidence rather than "might cross". It is still useful
   because the band narrows as evidence accumulates (0.25 m/h tank fill with a 24 h horizon: warned
   20-24 h before H, about an hour after the fill starts);
c. the last raw value is not already beyond that limit (then it is an alarm, not a warning).

Warnings are graded by the central lead time ``eta - now`` (:class:`WarningGrade`, bounds
:data:`GRADE_BOUNDS_S`: red < 2 h, orange < 6 h, yellow < 12 h, blue otherwise), the colours of
GB 39496-2020 5.5.4 and the national risk warning system (DOMAIN §4.5, §5). Times are absolute seconds
on the clock of ``t_s`` (``eta_s`` is a time, the lead is ``eta_s - now_s``).

**Daily cycles.** LPG sphere pressure follows the liquid temperature (DOMAIN §7.2) and tank temperatures
follow the weather. Over a window of a few hours a daily sinusoid *is* a trend: a 6 h EW fit of
``A sin(ωt)`` tracks it almost fully, and extrapolated 24 h its line overshoots by up to ``6.4 A``. Two
facts decide the design: (1) a trend and a 24-hour cycle are not identifiable from less than a day of data,
so no method can tell them apart on the first day; (2) a linear extrapolation of a sinusoid over a lead
``L`` overshoots its own peak by at most ``sqrt(1 + (ωL)²)``, i.e. 13 % of the amplitude for ``L = 2 h``.
Hence, for sensors flagged ``daily`` (kinds in :data:`DAILY_CYCLE_KINDS`; O(1) per sample, arrays):

- *de-seasonalise*: keep an EW harmonic model ``p(t) = Σ_k α_k cos kφ + β_k sin kφ`` (``φ`` = time of
  day, ``K = 2`` harmonics, memory ``season_tau_s`` = 3 days). It is fitted by EW least squares to the
  deviation of the raw value from its 12-hour EW mean (which removes the level and most of a trend), with
  the same filter applied to the basis functions, so the regression is exact for any sampling and during
  warm-up (the ``2K x 2K`` normal equations are solved by an unrolled Cholesky with a 1 % ridge). The
  model is updated at most once per ``season_step_s`` (10 min), so its cost is negligible at 1-s
  sampling; every sample is de-seasonalised and the trend is fitted to ``y = x - p(t)``, whose short
  window keeps it responsive to real changes;
- the forecast rides the daily peaks on the trend: the line is shifted by the cycle's amplitude bound
  ``Σ_k |α_k + iβ_k|`` in the direction of travel before it is projected (the limit is first reached at a
  daily peak);
- *warm-up*: until a daily sensor has a full day of data (``warmup_s``), its horizon is capped at
  ``warmup_horizon_s`` = 2 h, by fact (2) no further than the cycle's own peak.

Tests (tests/unit/test_forecast.py) show no warnings over 5 days for LPG pressure and tank temperature
with daily cycles, even with a 24-hour horizon for the spheres (the same temperatures without the model
all warn), while a real 0.5 °C/h rise on top of the cycle is warned 13-20 h before H, and slow rises
without cycles (tank fill, pond level, phreatic depth) 8-24 h ahead.

**Inverse velocity** (`update_inverse_velocity`, `failure_time`; DOMAIN §7.4). Fukuzono: in tertiary creep
``1/v`` falls linearly in time and reaches 0 at failure ``Tf``. Per sensor, the velocity is the slope of a
short EW trend of displacement (the smoothing that noise needs before fitting); it is stamped at its
``t_rate`` (removing the ``2 tau_v`` lag of the smoother) and, when significantly non-zero, fed as
``(t_rate, 1/|v|)`` at most once per ``step_s`` (so successive velocity estimates barely overlap and the
second fit's white-noise error model is not fooled) into a second EW trend. When ``1/v`` falls
significantly, ``Tf`` is where its line reaches 0, with a band from the line's confidence band. Steady
creep (flat ``1/v``) and noise (no significant velocity) do not warn. The defaults (velocity window 6 h,
``1/v`` fit window 1 day, a ``1/v`` sample every 3 h) suit tertiary phases of ~5-20 days seen through
30-min GNSS solutions (σ ~0.7 mm): warned ~20 h ahead with ``Tf`` 0-18 % early relative to the time left.
The smoother's curvature bias makes ``Tf`` err early (the safe side); tertiary phases much shorter than
a few days need shorter windows (per-sensor arrays in `InverseVelocityState.empty`).

State updates are in place: only the columns of the given slots change, and the same object is
returned, because copying 10^6-sensor state every round would cost more than the update. Use
``state.copy()`` to keep an old state.

Performance notes: selects with a random mask (``np.where``, masked ``copyto``) are ~10x slower than an
arithmetic pass, and rising/falling is random over a fleet of flat sensors, so the forecast blends
arithmetically where it can (`_inf_unless`). With glibc's default malloc every large temporary is
returned to the OS and page-faulted back; ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` set
high in the service's environment make the kernels ~1.5x faster.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from alerts.engine import jit
from alerts.engine.behaviour import SCORE_CAP, norm_cdf, reach_probability
from alerts.engine.conditions import ConditionKind
from sensors.kinds import DEFAULT_HORIZON_S, DEFAULT_TREND_WINDOW_S, KINDS, names_where
from sensors.model import Sensor

MINUTE_S = 60.0
HOUR_S = 3600.0
DAY_S = 86400.0
OMEGA_DAY = 2.0 * math.pi / DAY_S  # rad/s

#: Trend memory (EW time-constant, s) per kind (sensors/kinds.py): how much history one trend describes.
TREND_WINDOW_S: MappingProxyType[str, float] = MappingProxyType(
    {k.name: k.trend_window_s for k in KINDS.values()}
)

#: Forecast horizon (s) per sensor kind (sensors/kinds.py); a kind without a profile uses DEFAULT_HORIZON_S.
HORIZON_S: MappingProxyType[str, float] = MappingProxyType({k.name: k.horizon_s for k in KINDS.values()})

#: Kinds whose value follows the weather's daily cycle (DOMAIN §7.2): they get a harmonic daily model.
DAILY_CYCLE_KINDS: frozenset[str] = names_where(lambda k: k.daily_cycle)

#: Lead-time bounds (s) of the grades red, orange, yellow, blue; beyond the last one a warning is blue.
GRADE_BOUNDS_S: tuple[float, float, float, float] = (2 * HOUR_S, 6 * HOUR_S, 12 * HOUR_S, 24 * HOUR_S)

#: Columns of ``limits_hi`` (H, HH) and ``limits_lo`` (L, LL) as condition kinds.
HI_KINDS = np.array([ConditionKind.H, ConditionKind.HH], dtype=np.int8)
LO_KINDS = np.array([ConditionKind.L, ConditionKind.LL], dtype=np.int8)
NO_LIMIT = np.int8(-1)


class WarningGrade(IntEnum):
    """Early-warning colour, low to high (GB 39496-2020 5.5.4: 蓝 -> 黄 -> 橙 -> 红)."""

    NONE = 0
    BLUE = 1
    YELLOW = 2
    ORANGE = 3
    RED = 4


# ---- State

# Rows of TrendState.sums: EW sums of w, t, x, t², t·x, x², t³, w², w²·t, w²·t², relative to (t_ref, x_ref).
_W, _T, _X, _TT, _TX, _XX, _TTT, _Q0, _Q1, _Q2 = range(10)
N_SUMS = 10
# Rows of TrendState.season, with the daily basis f = (cos φ, sin φ, cos 2φ, sin 2φ, ...) of p = 2K
# functions: EW mean weight and value, EW means of the p basis functions, the packed upper triangle of
# the EW Gram matrix of the filtered basis (p(p+1)/2 rows) and its EW products with the filtered value (p).
_MW, _M, _MF = 0, 1, 2


def _season_layout(harmonics: int) -> tuple[int, int, int]:
    """Return (first Gram row, first right-hand-side row, number of rows) of TrendState.season."""
    p = 2 * harmonics
    g0 = _MF + p
    r0 = g0 + p * (p + 1) // 2
    return g0, r0, r0 + p


def _basis(t_s: np.ndarray, harmonics: int) -> list[np.ndarray]:
    """Daily basis functions at ``t_s``: [cos φ, sin φ, cos 2φ, sin 2φ, ...], each shaped like ``t_s``."""
    phase = np.mod(t_s, DAY_S)
    phase *= OMEGA_DAY
    c1, s1 = np.cos(phase), np.sin(phase)
    out = [c1, s1]
    for _ in range(1, harmonics):  # angle addition: cheaper than more cos/sin
        ck, sk = out[-2], out[-1]
        out += [ck * c1 - sk * s1, sk * c1 + ck * s1]
    return out


@dataclass(slots=True, eq=False)
class TrendState:
    """Streaming EW least-squares trends of ``n`` sensors, with daily-cycle models for the ``daily`` ones.

    Attributes
    ----------
    tau_s : (n,) float64
        EW time-constant per sensor, s.
    sums : (10, n) float64
        EW sums relative to ``(t_ref, x_ref)``, one row per sum (``_W .. _Q2``).
    t_ref : (n,) float64
        Time of the last accepted sample, s; NaN = no data since creation or reset.
    x_ref : (n,) float64
        De-seasonalised value of the last accepted sample.
    x_last : (n,) float64
        Raw value of the last accepted sample.
    t_first : (n,) float64
        Time of the first sample since creation or reset.
    season_row : (n,) int64
        Column of ``season`` / ``season_coef`` for sensors with a daily model, -1 otherwise.
    season : (2 + 2p + p(p+1)/2 + p, n_daily) float64, p = 2 * harmonics
        Daily models: EW means of the value and the basis, and the normal equations of the fit.
    season_t : (n_daily,) float64
        Time of the sample that last updated each daily model; NaN = none.
    season_coef : (p, n_daily) float64
        Daily-model coefficients solved after that update.
    season_amp : (n,) float64
        Amplitude bound ``Σ_k |α_k + iβ_k|`` of each daily model; 0 without one.
    harmonics, season_tau_s, mean_tau_s, season_step_s
        Daily model: number of harmonics, memory of its fit, time-constant of the EW mean it detrends with,
        and the minimum spacing of the samples that update it (the model is slow; every sample is
        de-seasonalised with the latest coefficients, only one per ``season_step_s`` updates them).
    """

    tau_s: np.ndarray
    sums: np.ndarray
    t_ref: np.ndarray
    x_ref: np.ndarray
    x_last: np.ndarray
    t_first: np.ndarray
    season_row: np.ndarray
    season: np.ndarray
    season_t: np.ndarray
    season_coef: np.ndarray
    season_amp: np.ndarray
    harmonics: int = 2
    season_tau_s: float = 3 * DAY_S
    mean_tau_s: float = 12 * HOUR_S
    season_step_s: float = 10 * MINUTE_S

    @classmethod
    def empty(
        cls,
        tau_s: np.ndarray | Iterable[float],
        daily: np.ndarray | None = None,
        *,
        harmonics: int = 2,
        season_tau_s: float = 3 * DAY_S,
        mean_tau_s: float = 12 * HOUR_S,
        season_step_s: float = 10 * MINUTE_S,
    ) -> TrendState:
        """Create the state of ``len(tau_s)`` sensors with no data; ``daily`` (n,) bool marks daily cycles."""
        tau = np.array(tau_s, dtype=np.float64).reshape(-1)
        if not np.all(tau > 0):
            raise ValueError("every trend time-constant tau_s must be > 0")
        if harmonics < 1 or season_tau_s <= 0 or mean_tau_s <= 0 or season_step_s < 0:
            raise ValueError("harmonics, season_tau_s, mean_tau_s must be positive, season_step_s >= 0")
        n = tau.size
        flags = np.zeros(n, dtype=bool) if daily is None else np.asarray(daily, dtype=bool).reshape(-1)
        if flags.size != n:
            raise ValueError(f"daily has {flags.size} flags for {n} sensors")
        n_daily = int(flags.sum())
        row = np.full(n, -1, dtype=np.int64)
        row[flags] = np.arange(n_daily)
        return cls(
            tau_s=tau,
            sums=np.zeros((N_SUMS, n)),
            t_ref=np.full(n, np.nan),
            x_ref=np.full(n, np.nan),
            x_last=np.full(n, np.nan),
            t_first=np.full(n, np.nan),
            season_row=row,
            season=np.zeros((_season_layout(harmonics)[2], n_daily)),
            season_t=np.full(n_daily, np.nan),
            season_coef=np.zeros((2 * harmonics, n_daily)),
            season_amp=np.zeros(n),
            harmonics=harmonics,
            season_tau_s=float(season_tau_s),
            mean_tau_s=float(mean_tau_s),
            season_step_s=float(season_step_s),
        )

    def __len__(self) -> int:
        return self.tau_s.size

    @property
    def daily(self) -> np.ndarray:
        """(n,) bool: sensors with a daily-cycle model."""
        return self.season_row >= 0

    def copy(self) -> TrendState:
        """Return an independent copy (updates are in place)."""
        return TrendState(
            self.tau_s.copy(),
            self.sums.copy(),
            self.t_ref.copy(),
            self.x_ref.copy(),
            self.x_last.copy(),
            self.t_first.copy(),
            self.season_row.copy(),
            self.season.copy(),
            self.season_t.copy(),
            self.season_coef.copy(),
            self.season_amp.copy(),
            self.harmonics,
            self.season_tau_s,
            self.mean_tau_s,
            self.season_step_s,
        )

    def take(self, rows: np.ndarray) -> TrendState:
        """The trends of ``rows`` as a state of their own, for forecasts over a few sensors.

        A copy of the per-sensor arrays (``forecast_crossing`` reads it, nothing writes it back); the
        daily models are shared, ``season_row`` still points into them.
        """
        return TrendState(
            self.tau_s[rows],
            self.sums[:, rows],
            self.t_ref[rows],
            self.x_ref[rows],
            self.x_last[rows],
            self.t_first[rows],
            self.season_row[rows],
            self.season,
            self.season_t,
            self.season_coef,
            self.season_amp[rows],
            self.harmonics,
            self.season_tau_s,
            self.mean_tau_s,
            self.season_step_s,
        )

    def reset(self, slots: np.ndarray | Iterable[int]) -> TrendState:
        """Forget everything about ``slots`` (e.g. after maintenance or recalibration); returns self."""
        idx = np.asarray(slots, dtype=np.intp)
        self.sums[:, idx] = 0.0
        for a in (self.t_ref, self.x_ref, self.x_last, self.t_first):
            a[idx] = np.nan
        self.season_amp[idx] = 0.0
        rows = self.season_row[idx]
        rows = rows[rows >= 0]
        self.season[:, rows] = 0.0
        self.season_t[rows] = np.nan
        self.season_coef[:, rows] = 0.0
        return self


@functools.lru_cache(maxsize=8)
def _arange(n: int) -> np.ndarray:
    """0..n-1 (cached: full rounds need it only for the rare daily-model updates)."""
    a = np.arange(n)
    a.flags.writeable = False
    return a


def _full_round(slots: np.ndarray, n: int) -> bool:
    """True when ``slots`` is 0..n-1 in order, so rows can be updated without gather and scatter."""
    return slots.size == n and (
        n == 0 or (slots[0] == 0 and slots[-1] == n - 1 and bool(np.all(slots[1:] > slots[:-1])))
    )


# ---- Daily model


def _season_solve(season: np.ndarray, harmonics: int, ridge: float = 0.01) -> np.ndarray:
    """Solve the EW normal equations of daily models (columns of ``season``); return (2K, m) float64.

    A Cholesky factorisation unrolled over the ``2K x 2K`` matrix (a Python loop over matrix entries, each
    step vectorised over the ``m`` models). A small ridge (relative to the mean diagonal) keeps a model
    that has seen only part of a day from inventing a large cycle; empty models give 0.
    """
    p = 2 * harmonics
    g0, r0, _ = _season_layout(harmonics)
    g: list[list[np.ndarray]] = [[season[0]] * p for _ in range(p)]
    row = g0
    for i in range(p):
        for j in range(i, p):
            g[i][j] = g[j][i] = season[row]
            row += 1
    lam = g[0][0] + g[1][1]
    for i in range(2, p):
        lam = lam + g[i][i]
    lam *= ridge / p
    ok = lam > 0
    chol: list[list[np.ndarray]] = [[lam] * p for _ in range(p)]
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(p):
            d = g[j][j] + lam
            for k in range(j):
                d -= chol[j][k] * chol[j][k]
            d[~(ok & (d > 0))] = 1.0
            chol[j][j] = np.sqrt(d, out=d)
            for i in range(j + 1, p):
                acc = g[i][j].copy()
                for k in range(j):
                    acc -= chol[i][k] * chol[j][k]
                acc /= chol[j][j]
                chol[i][j] = acc
        z: list[np.ndarray] = []
        for i in range(p):  # L z = r
            acc = season[r0 + i].copy()
            for k in range(i):
                acc -= chol[i][k] * z[k]
            acc /= chol[i][i]
            z.append(acc)
        coef: list[np.ndarray] = [lam] * p
        for i in reversed(range(p)):  # Lᵀ c = z
            acc = z[i]
            for k in range(i + 1, p):
                acc -= chol[k][i] * coef[k]
            acc /= chol[i][i]
            coef[i] = acc
    return np.where(ok, np.array(coef), 0.0)


def _season_value(coef: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Daily model at times ``t_s`` (m,) for coefficient columns (2K, m); returns (m,) float64."""
    out = np.zeros(t_s.shape)
    for j, f in enumerate(_basis(t_s, coef.shape[0] // 2)):
        out += coef[j] * f
    return out


def _season_step(
    state: TrendState, slots: np.ndarray, rows: np.ndarray, t: np.ndarray, x: np.ndarray
) -> None:
    """Update the daily models ``rows`` (of sensors ``slots``) with one valid sample each, in place.

    The model is fitted to the value's deviation from its EW mean (time-constant ``mean_tau_s``), which
    removes the level and most of any trend. The same linear filter is applied to the basis functions
    (deviation from *their* EW means), so the regression is exact for any sampling pattern and during
    warm-up, with no steady-state gain correction.
    """
    k = state.harmonics
    p = 2 * k
    g0, r0, _ = _season_layout(k)
    s = np.take(state.season, rows, axis=1)  # (width, m) copy
    last = state.season_t[rows]
    fresh = np.isnan(last)
    d = np.where(fresh, 0.0, t - last)
    w = (~fresh).astype(np.float64)  # the first sample has no mean to deviate from
    a_s = np.exp(-d / state.season_tau_s)
    wm = np.exp(-d / state.mean_tau_s) * s[_MW] + 1.0
    new = np.empty_like(s)
    new[_MW] = wm
    r = w * (x - s[_M])  # deviation from the EW mean before this sample
    new[_M] = s[_M] + (x - s[_M]) / wm  # West's weighted running mean; fresh models start at x
    filtered = []
    for i, f in enumerate(_basis(t, k)):
        mf = s[_MF + i]
        filtered.append(w * (f - mf))
        new[_MF + i] = mf + (f - mf) / wm
    row = g0
    for i in range(p):
        for j in range(i, p):
            new[row] = a_s * s[row] + filtered[i] * filtered[j]
            row += 1
        new[r0 + i] = a_s * s[r0 + i] + r * filtered[i]
    coef = _season_solve(new, k)
    state.season[:, rows] = new
    state.season_t[rows] = t
    state.season_coef[:, rows] = coef
    state.season_amp[slots] = np.hypot(coef[0::2], coef[1::2]).sum(axis=0)


def season_profile(
    state: TrendState, t_s: np.ndarray | float, slots: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return the daily model's value at ``t_s`` and its amplitude bound, each (m,) float64.

    Parameters
    ----------
    state : TrendState
    t_s : float or (m,) float64
        Times (s) at which to evaluate the model.
    slots : (m,) int, optional
        Sensors; all by default. Sensors without a daily model give 0.

    Returns
    -------
    value : (m,) float64
        ``p(t_s)``, the learnt daily deviation from the mean.
    amplitude : (m,) float64
        ``Σ_k |α_k + iβ_k|``, an upper bound of ``|p|`` over the day.
    """
    idx = np.arange(len(state)) if slots is None else np.asarray(slots, dtype=np.intp).reshape(-1)
    t = np.broadcast_to(np.asarray(t_s, dtype=np.float64), idx.shape)
    value = np.zeros(idx.shape)
    rows = state.season_row[idx]
    has = rows >= 0
    if has.any():
        value[has] = _season_value(np.take(state.season_coef, rows[has], axis=1), t[has])
    return value, state.season_amp[idx]


# ---- Trend update


def _accepted(t: np.ndarray, x: np.ndarray, t_ref: np.ndarray) -> np.ndarray:
    """Samples a trend takes: finite, and not older than its last one (out of order is skipped)."""
    with np.errstate(invalid="ignore", over="ignore"):
        good = np.isfinite(t + x)  # both finite
        good &= (t - t_ref >= 0) | np.isnan(t_ref)
    return good


def _deseasonalise(state: TrendState, idx: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x`` less the daily model of its sensor (for those with one), after updating the models due.

    Returns ``x`` itself when no sample of the round belongs to a daily model.
    """
    sel = np.flatnonzero(state.season_row[idx] >= 0)
    if sel.size:
        sel = sel[_accepted(t[sel], x[sel], state.t_ref[idx[sel]])]
    if not sel.size:
        return x
    # de-seasonalise with the current model, then update the models that are due
    rows, ts, xs = state.season_row[idx[sel]], t[sel], x[sel]
    y = x.copy()
    y[sel] -= _season_value(np.take(state.season_coef, rows, axis=1), ts)
    with np.errstate(invalid="ignore"):
        due = ~(ts - state.season_t[rows] < state.season_step_s)  # NaN (never) is due
    if due.any():
        _season_step(state, idx[sel[due]], rows[due], ts[due], xs[due])
    return y


def update_trend(state: TrendState, slots: np.ndarray | None, t_s: np.ndarray, x: np.ndarray) -> TrendState:
    """Add one sample per slot to the EW trends (in place) and return the state.

    Parameters
    ----------
    state : TrendState
        State of all ``n`` sensors; the columns of ``slots`` are updated in place.
    slots : (m,) int or None
        Sensor slots, unique within one call (at most one sample per sensor and round); None = all
        ``n`` in order (a full round, which skips the gather and scatter).
    t_s : (m,) float64
        Sample times, s. A time earlier than the slot's last sample is skipped (out of order).
    x : (m,) float64
        Values; NaN (or non-finite) = missing, skipped: the gap is charged to the next sample.

    Returns
    -------
    TrendState
        The same object.
    """
    n = len(state)
    t = np.asarray(t_s, dtype=np.float64).reshape(-1)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    idx = _arange(n) if slots is None else np.asarray(slots, dtype=np.intp).reshape(-1)
    y = _deseasonalise(state, idx, t, x) if state.season_t.size else x
    if jit.ENABLED:  # one compiled pass, in place: no gather, no scatter, no temporaries
        st = state
        jit.trend_step(st.sums, st.t_ref, st.t_first, st.x_ref, st.x_last, st.tau_s, idx, t, y, x)
        return state
    full = slots is None or _full_round(idx, n)

    def get(a: np.ndarray) -> np.ndarray:
        return a if full else np.take(a, idx, axis=-1)

    t_ref = get(state.t_ref)
    with np.errstate(invalid="ignore", over="ignore"):
        d = t - t_ref  # NaN for a fresh trend
        fresh = np.isnan(t_ref)
        good = _accepted(t, x, t_ref)
    keep = fresh | ~good  # trends that do not decay: fresh ones and those whose sample is skipped
    np.copyto(d, 0.0, where=keep)

    e = y - get(state.x_ref)
    np.copyto(e, 0.0, where=keep)
    inc = good.astype(np.float64)
    a = np.divide(d, get(state.tau_s))
    np.negative(a, out=a)
    np.exp(a, out=a)
    a2 = a * a
    sums = get(state.sums)  # (10, m): the state itself in a full round, else a copy to scatter back
    w, st, sx, stt, stx, sxx, sttt, q0, q1, q2 = sums
    # Move the origin to the new sample (t -> t - d, x -> x - e), decay, then add the sample at (0, 0).
    # A fresh trend has all sums 0; a skipped sample has d = e = inc = 0 and leaves its sums unchanged.
    # In place, each row before the rows its new value depends on; b1, b2 are scratch buffers.
    dw = d * w
    ew = e * w
    b1 = np.multiply(st, 3.0)
    b2 = np.multiply(stt, 3.0)
    b1 -= dw
    b1 *= d
    b2 -= b1
    b2 *= d
    sttt -= b2  # Σ(t-d)³ = Σt³ - d(3Σt² - d(3Σt - dW))
    np.multiply(st, 2.0, out=b1)
    b1 -= dw
    b1 *= d
    stt -= b1  # Σ(t-d)² = Σt² - d(2Σt - dW)
    np.subtract(sx, ew, out=b1)
    b1 *= d
    np.multiply(e, st, out=b2)
    stx -= b2
    stx -= b1  # Σ(t-d)(x-e) = Σtx - eΣt - d(Σx - eW)
    np.multiply(sx, 2.0, out=b1)
    b1 -= ew
    b1 *= e
    sxx -= b1  # Σ(x-e)² = Σx² - e(2Σx - eW)
    st -= dw
    sx -= ew
    sums[:_Q0] *= a
    w += inc
    np.multiply(d, q0, out=b2)
    np.multiply(q1, 2.0, out=b1)
    b1 -= b2
    b1 *= d
    q2 -= b1  # Σw²(t-d)² = Σw²t² - d(2Σw²t - dΣw²)
    q1 -= b2
    sums[_Q0:] *= a2
    q0 += inc
    if full:
        np.copyto(state.t_ref, t, where=good)
        np.copyto(state.t_first, t, where=good & fresh)
        np.copyto(state.x_ref, y, where=good)
        np.copyto(state.x_last, x, where=good)
    else:
        state.sums[:, idx] = sums
        state.t_ref[idx] = np.where(good, t, t_ref)
        state.t_first[idx] = np.where(good & fresh, t, state.t_first[idx])
        state.x_ref[idx] = np.where(good, y, state.x_ref[idx])
        state.x_last[idx] = np.where(good, x, state.x_last[idx])
    return state


# ---- Trend statistics


class TrendStats(NamedTuple):
    """Per-sensor fit of a TrendState; every field is (m,) float64, NaN where undefined."""

    slope: np.ndarray  # per second
    intercept: np.ndarray  # fitted (de-seasonalised) value at t_ref, the last sample's time
    resid_sd: np.ndarray  # residual standard deviation s
    n_eff: np.ndarray  # Kish effective sample count
    slope_se: np.ndarray  # standard error of the slope
    t_mean_s: np.ndarray  # weighted mean time t̄
    level_mean: np.ndarray  # fitted value at t̄ (the weighted mean of y)
    span_s: np.ndarray  # effective span sqrt(12 C_tt)
    t_rate_s: np.ndarray  # time at which the slope is the instantaneous rate (linear-rate model)
    t_ref_s: np.ndarray  # last sample time


def trend_stats(state: TrendState, slots: np.ndarray | None = None) -> TrendStats:
    """Return slope, intercept, residual sd, n_eff and slope standard error of each trend.

    Parameters
    ----------
    state : TrendState
    slots : (m,) int, optional
        Sensors to evaluate; all by default.

    Returns
    -------
    TrendStats
        (m,) float64 fields. Sensors with no data, or all samples at one time, have NaN slope; with
        ``n_eff <= 2`` the residual sd and slope error are NaN.
    """
    if slots is None:
        sums, t_ref, x_ref = state.sums, state.t_ref, state.x_ref
    else:
        idx = np.asarray(slots, dtype=np.intp).reshape(-1)
        sums, t_ref, x_ref = np.take(state.sums, idx, axis=1), state.t_ref[idx], state.x_ref[idx]
    return _stats(sums, t_ref, x_ref, rate=True)


def _stats(sums: np.ndarray, t_ref: np.ndarray, x_ref: np.ndarray, rate: bool) -> TrendStats:
    """`trend_stats` on raw columns; in-place arithmetic (few temporaries: this is the forecast's hot path).

    With ``rate=False`` the ``t_rate_s`` field is left NaN.
    """
    w, st, sx, stt, stx, sxx, sttt, q0, q1, q2 = sums
    nan = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_w = np.divide(1.0, w)
        mt = st * inv_w
        mx = sx * inv_w
        tmp = mt * mt
        ctt = stt * inv_w
        ctt -= tmp  # weighted variance of t
        np.copyto(ctt, nan, where=~(ctt > 0))
        np.multiply(mt, mx, out=tmp)
        ctx = stx * inv_w
        ctx -= tmp
        np.multiply(mx, mx, out=tmp)
        s2 = sxx * inv_w
        s2 -= tmp  # C_xx
        b = ctx / ctt
        np.multiply(b, ctx, out=tmp)
        s2 -= tmp  # weighted residual variance per unit weight
        np.maximum(s2, 0.0, out=s2)
        n_eff = w * w
        n_eff /= q0
        np.subtract(n_eff, 2.0, out=tmp)
        s2 *= n_eff
        s2 /= tmp
        np.copyto(s2, nan, where=~(tmp > 0))
        v2 = mt * q0
        np.multiply(q1, 2.0, out=tmp)
        tmp -= v2
        tmp *= mt
        np.subtract(q2, tmp, out=v2)
        np.maximum(v2, 0.0, out=v2)  # Σ w² (t - t̄)²
        v2 *= s2
        se = np.sqrt(v2, out=v2)
        np.multiply(w, ctt, out=tmp)
        se /= tmp
        level_mean = x_ref + mx
        intercept = b * mt
        np.subtract(level_mean, intercept, out=intercept)
        t_mean = t_ref + mt
        span = np.multiply(ctt, 12.0)
        np.sqrt(span, out=span)
        if rate:
            # third central moment of t: Σw t³/W - 3 t̄ C_tt - t̄³
            mu3 = sttt * inv_w
            np.multiply(mt, ctt, out=tmp)
            tmp *= 3.0
            mu3 -= tmp
            np.multiply(mt, mt, out=tmp)
            tmp *= mt
            mu3 -= tmp
            mu3 /= ctt
            mu3 *= 0.5
            t_rate = np.add(t_mean, mu3, out=mu3)
        else:
            t_rate = np.full(t_ref.shape, nan)
        return TrendStats(
            slope=b,
            intercept=intercept,
            resid_sd=np.sqrt(s2, out=s2),
            n_eff=n_eff,
            slope_se=se,
            t_mean_s=t_mean,
            level_mean=level_mean,
            span_s=span,
            t_rate_s=t_rate,
            t_ref_s=t_ref,
        )


# ---- Forecast


def _inf_unless(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Return ``x`` where ``ok``, +inf elsewhere, in place. Branch-free: a masked copy (``np.where``,
    ``copyto(where=)``) with a random mask costs ~10x an arithmetic pass on this hot path.
    NaN stays NaN where ``ok``."""
    penalty = ok.astype(np.float64)
    penalty -= 0.5
    penalty *= -np.inf  # -inf where ok, +inf elsewhere
    return np.fmax(x, penalty, out=x)


def _band_roots(
    b: np.ndarray, dist: np.ndarray, se: np.ndarray, sigma0: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times (from t̄) where ``m + b u`` and ``m + b u ± z sqrt(sigma0² + se² u²)`` reach ``m + dist``.

    All inputs (m,) float64 in travel coordinates: ``b >= 0`` the speed towards the limit, ``dist`` the
    distance to it from the line at t̄. Returns (central, early, late): ``central`` +inf when ``b = 0``,
    ``late`` +inf when the pessimistic line never arrives, ``early`` -inf when the optimistic band is
    already there at t̄. Both band ends are roots of ``(b² - z² se²) u² - 2 b dist u + dist² - z² sigma0²
    = 0``; the early one is written in the cancellation-free form ``c / (b dist + z sqrt(Δ/4))``.
    Call under ``np.errstate(all="ignore")``.
    """
    central = _inf_unless(dist / b, b > 0)
    zse2 = se * z
    zse2 *= zse2
    a = b * b
    a -= zse2
    c = sigma0 * z
    c *= c
    np.subtract(dist * dist, c, out=c)
    q = se * dist
    q *= q
    tmp = sigma0 * sigma0
    tmp *= a
    q += tmp  # Δ / (4 z²)
    root = np.maximum(q, 0.0)
    np.sqrt(root, out=root)
    root *= z
    den = b * dist
    den += root
    late = _inf_unless(den / a, a > 0)
    ok = (q >= 0) & (den > 0)
    early = _inf_unless(c / den, ok)
    already = (c <= 0) & ~ok  # no early root because the optimistic band is already beyond the limit
    penalty = already.astype(np.float64)
    penalty -= 0.5
    penalty *= -np.inf  # -inf where already, +inf elsewhere
    np.fmin(early, penalty, out=early)
    return central, early, late


class Crossing(NamedTuple):
    """Forecast of each sensor's next limit crossing; all fields (n,) arrays."""

    eta_s: np.ndarray  # float64: central crossing time (absolute s), +inf = none
    eta_low_s: np.ndarray  # float64: earliest plausible crossing (>= now), +inf = none
    eta_high_s: np.ndarray  # float64: latest plausible crossing, +inf = not sure to cross
    limit_value: np.ndarray  # float64: the limit in the direction of travel, NaN = none
    limit_kind: np.ndarray  # int8: ConditionKind (LL, L, H, HH) of that limit, -1 = none
    significant: np.ndarray  # bool: condition (a), the trend is significant
    warn: np.ndarray  # bool: (a) and (b) and (c): raise an early warning
    grade: np.ndarray  # int8: WarningGrade by lead time, 0 where no warning
    prob: np.ndarray  # float64: chance the line (with its uncertainty) is at the limit by the horizon;
    #                   0 where the trend is not significant, there is no limit, or it is already beyond
    slope: np.ndarray  # float64: the trend's slope, units per s (de-seasonalised for daily models)
    # for `trend_reach`, in travel coordinates (towards the limit):
    dist_now: np.ndarray  # float64: from the fitted line now to the limit (the cycle's peak bound added)
    resid_now: np.ndarray  # float64: the last sample's deviation from the line
    noise_sd: np.ndarray  # float64: residual sd of the samples about the line
    level_sd: np.ndarray  # float64: uncertainty of the line's level now
    slope_se: np.ndarray  # float64: standard error of the slope
    horizon_s: np.ndarray  # float64: the horizon used (capped for young daily models)
    lag_s: np.ndarray  # float64: now - t̄, how far behind the present the slope's estimate stands


def _grade(lead_s: np.ndarray, warn: np.ndarray, bounds_s: tuple[float, ...]) -> np.ndarray:
    """Grade (int8) of warnings by lead time: the number of bounds above the lead, at least blue."""
    grade = np.zeros(lead_s.shape, dtype=np.int8)
    with np.errstate(invalid="ignore"):
        for bound in bounds_s:
            grade += lead_s < bound
    np.maximum(grade, np.int8(WarningGrade.BLUE), out=grade)
    grade *= warn
    return grade


def forecast_crossing(
    state: TrendState,
    now_s: float,
    limits_lo: np.ndarray,
    limits_hi: np.ndarray,
    horizon_s: np.ndarray | float,
    *,
    z_slope: float = 3.0,
    z_band: float = 2.0,
    min_n_eff: float = 10.0,
    min_span_frac: float = 0.5,
    warmup_s: float = DAY_S,
    warmup_horizon_s: float = 2 * HOUR_S,
    grade_bounds_s: tuple[float, ...] = GRADE_BOUNDS_S,
) -> Crossing:
    """Project every trend to its next limit in the direction of travel and decide early warnings.

    Parameters
    ----------
    state : TrendState
        Trends of ``n`` sensors.
    now_s : float
        Current time, s (same clock as the samples).
    limits_lo : (n, 2) float64
        Lower limits ``[L, LL]`` per sensor, NaN = not configured (see `limit_arrays`); ordered
        ``ll <= l < h <= hh`` as the registry enforces.
    limits_hi : (n, 2) float64
        Upper limits ``[H, HH]``, NaN = not configured.
    horizon_s : float or (n,) float64
        Warning horizon per sensor (see `sensor_params`).
    z_slope : float
        Significance of the slope: ``|b| > z_slope · se``.
    z_band : float
        Half-width of the band in prediction standard deviations.
    min_n_eff : float
        Minimum effective sample count.
    min_span_frac : float
        Minimum effective time span, as a fraction of each sensor's ``tau_s``.
    warmup_s, warmup_horizon_s : float
        Daily-cycle sensors with less than ``warmup_s`` of data use ``min(horizon, warmup_horizon_s)``.
    grade_bounds_s : tuple of float
        Ascending lead-time bounds of red, orange, yellow, blue.

    Returns
    -------
    Crossing
        (n,) arrays; see the class. ``eta_s - now_s`` is the lead time.
    """
    n = len(state)
    lo = np.asarray(limits_lo, dtype=np.float64).reshape(n, -1)
    hi = np.asarray(limits_hi, dtype=np.float64).reshape(n, -1)
    if lo.shape[1] > 2 or hi.shape[1] > 2:
        raise ValueError("limits_lo must be (n, 2) [L, LL] and limits_hi (n, 2) [H, HH]")
    horizon = np.broadcast_to(np.asarray(horizon_s, dtype=np.float64), (n,))
    st = _stats(state.sums, state.t_ref, state.x_ref, rate=False)
    env = state.season_amp  # 0 without a daily model
    # Branch-free on purpose: rising/falling is a random mask over a fleet of flat sensors, and masked
    # selects with a random mask are ~10x slower than arithmetic (see _inf_unless).
    with np.errstate(all="ignore"):
        rising = st.slope > 0
        r = rising.astype(np.float64)
        direction = 2.0 * r - 1.0
        # the daily peaks (troughs) ride on the trend: shift the line by the cycle's amplitude bound
        level_now = st.slope * (now_s - st.t_ref_s)
        level_now += st.intercept
        level_now += direction * env
        # nearest limit beyond the level in the direction of travel: H before HH, L before LL (limits
        # are ordered ll <= l < h <= hh, sensors/registry.py enforces it). Which of H/HH (L/LL) is a
        # structured choice, cheap to select; rising/falling is the random one, blended arithmetically.
        h, hh, lw, ll = hi[:, 0], hi[:, -1], lo[:, 0], lo[:, -1]
        h_next = h > level_now
        l_next = lw < level_now
        up = np.where(h_next, h, hh)
        down = np.where(l_next, lw, ll)
        has_limit = (rising & (up > level_now)) | (~rising & (down < level_now))
        up_kind = np.where(h_next, float(ConditionKind.H), float(ConditionKind.HH))
        down_kind = np.where(l_next, float(ConditionKind.L), float(ConditionKind.LL))
        np.nan_to_num(up, copy=False, nan=0.0)  # NaN (not configured) only where the config says so
        np.nan_to_num(down, copy=False, nan=0.0)
        limit = up * r
        limit += down * (1.0 - r)  # exact: one of the terms is multiplied by 0
        kind_f = up_kind * r
        kind_f += down_kind * (1.0 - r)
        has_f = has_limit.astype(np.float64)
        kind_f += 1.0
        kind_f *= has_f
        kind_f -= 1.0  # -1 where there is no limit
        kind = kind_f.astype(np.int8)
        limit *= has_f / has_f  # x 1, or x NaN (0/0) where there is no limit

        speed = np.abs(st.slope)
        dist = direction * (limit - st.level_mean)
        dist -= env
        sigma0 = np.divide(1.0, st.n_eff)
        sigma0 += 1.0
        np.sqrt(sigma0, out=sigma0)
        sigma0 *= st.resid_sd
        central, early, late = _band_roots(speed, dist, st.slope_se, sigma0, z_band)
        eta = _inf_unless(np.add(st.t_mean_s, central, out=central), has_limit)
        eta_low = _inf_unless(np.add(st.t_mean_s, early, out=early), has_limit)
        np.fmax(eta_low, now_s, out=eta_low)  # undefined band (n_eff <= 2): cannot rule out now
        eta_high = _inf_unless(np.add(st.t_mean_s, late, out=late), has_limit)
        np.nan_to_num(eta_high, copy=False, nan=np.inf, posinf=np.inf, neginf=-np.inf)

        significant = speed > z_slope * st.slope_se
        significant &= st.n_eff >= min_n_eff
        significant &= st.span_s >= min_span_frac * state.tau_s
        young = state.daily & ~(st.t_ref_s - state.t_first >= warmup_s)
        horizon_eff = np.minimum(horizon, np.where(young, warmup_horizon_s, np.inf))
        warn = significant & (eta_high - now_s <= horizon_eff)
        before = direction * (state.x_last - limit) < 0  # not already beyond: then it is an alarm
        warn &= before
        # P(at the limit by the horizon) = Φ((b u - dist) / σ(u)), u from t̄ to the horizon's end; the
        # line moves towards the limit, so the chance grows with u and the horizon's end is its maximum
        u = now_s + horizon_eff - st.t_mean_s
        sd_u = np.sqrt(sigma0 * sigma0 + (st.slope_se * u) ** 2)
        prob = norm_cdf((speed * u - dist) / sd_u)
        prob = np.where(significant & before & has_limit, np.nan_to_num(prob, nan=0.0), 0.0)
        u_now = now_s - st.t_mean_s
        dist_now = dist - speed * u_now
        resid_now = direction * (state.x_ref - st.intercept)
        level_sd = np.sqrt(st.resid_sd**2 / st.n_eff + (st.slope_se * u_now) ** 2)
    grade = _grade(eta - now_s, warn, grade_bounds_s)
    return Crossing(
        eta, eta_low, eta_high, limit, kind, significant, warn, grade, prob, st.slope,
        dist_now, resid_now, st.resid_sd, level_sd, st.slope_se, horizon_eff, u_now,
    )  # fmt: skip


#: 3-point Gauss-Hermite nodes and weights for a standard normal: the line's uncertainty, integrated
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(9)
_GH_WEIGHTS = _GH_WEIGHTS / _GH_WEIGHTS.sum()
#: sd of the log of the rate a trend will really keep: a line fitted over hours lags an onset and
#: cannot see a storm build or a leak open, so the crossing time is uncertain by a factor, not a margin
RATE_UNCERTAINTY = 0.6


def trend_reach(
    c: Crossing,
    rows: np.ndarray,
    leads_s: np.ndarray,
    noise_theta: np.ndarray,
    accel: np.ndarray | None = None,
    kappa: float = RATE_UNCERTAINTY,
    noise_sd: np.ndarray | None = None,
    touches: np.ndarray | None = None,
) -> np.ndarray:
    """Cumulative chance that a reading reaches the limit by each lead, on a trend (k, G).

    From the last reading, the trend moves towards the limit at its slope, brought up to now if its
    slope has been growing (``accel``, units/s², only towards the limit: a leak that opens, a storm
    that builds; at most three times the slope; a slowing trend is not trusted to stop). The rate
    itself is uncertain (``kappa``: the sd of its log, RATE_UNCERTAINTY) and so is the line (its
    level and slope errors); both move together across 9 Gauss-Hermite nodes. About the line the
    readings wander as a mean-reverting noise of sd ``noise_sd`` (default: the residual sd; the caller
    may know better, a line across a bend has large residuals) and rate ``noise_theta`` (1/s), so a
    noisy reading may touch the limit before the line does (alerts/behaviour.reach_probability)
    where ``touches`` (k,) holds (a gusty signal: a plume's swings reach the limit first). Elsewhere
    the reading is there when the value about the line is (its law at each lead): reach_probability's
    touches err early by design (for a chance, high is the safe side), and a band built on them ended
    hours before real temperatures and loads that crept on to their limits.
    Rows ``rows`` of the crossing ``c``; ``leads_s`` (k, G).
    """
    speed = np.abs(c.slope[rows])[:, None]
    h = leads_s
    if accel is not None:  # the slope is the rate at t̄, which lags the present: bring it up to now
        towards = np.sign(np.nan_to_num(c.slope[rows]))
        a = np.maximum(np.nan_to_num(np.asarray(accel) * towards), 0.0)[:, None]
        speed = np.minimum(speed + a * c.lag_s[rows, None], 3.0 * speed)
    sd_line = np.sqrt(c.level_sd[rows, None] ** 2 + (c.slope_se[rows, None] * h) ** 2)
    noise = np.maximum(np.nan_to_num(c.noise_sd[rows] if noise_sd is None else noise_sd), 1e-12)[:, None]
    # from the last reading, not the line: a line fitted across a bend (the start of a fill) lags it
    start = (c.dist_now[rows] - np.nan_to_num(c.resid_now[rows]))[:, None]
    theta = np.broadcast_to(np.asarray(noise_theta, dtype=np.float64), (len(rows),))
    touch = np.ones(len(rows), dtype=bool) if touches is None else np.asarray(touches, dtype=bool)
    t, v = np.flatnonzero(touch), np.flatnonzero(~touch)
    z0 = np.zeros(len(t))
    # the sd of the noise about the line at each lead, in its own units (1 once its memory has passed)
    spread = np.sqrt(np.maximum(-np.expm1(-2.0 * theta[v, None] * h[v]), 1e-12))
    out = np.zeros(h.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        for g, w in zip(_GH_NODES, _GH_WEIGHTS, strict=True):
            # one node of the rate's log-normal uncertainty, with the line's own error beside it
            gap = start - speed * math.exp(g * kappa) * h - g * sd_line
            zb = np.nan_to_num(gap / noise, nan=SCORE_CAP)
            if len(t):
                out[t] += w * reach_probability(z0, zb[t], theta[t], h[t])
            if len(v):
                out[v] += w * np.maximum.accumulate(norm_cdf(-zb[v] / spread), axis=1)
    return np.clip(out, 0.0, 1.0)


# ---- Inverse velocity (Fukuzono)


@dataclass(slots=True, eq=False)
class InverseVelocityState:
    """Streaming inverse-velocity fits of ``n`` displacement sensors.

    Attributes
    ----------
    disp : TrendState
        Short EW trend of displacement; its slope is the smoothed velocity.
    inv : TrendState
        EW trend of ``1/|v|`` (s per unit) against the velocity's effective time.
    step_s : (n,) float64
        Minimum spacing of the ``1/v`` samples.
    t_fed : (n,) float64
        Time of the displacement sample that last fed ``inv`` (freshness of the fit).
    """

    disp: TrendState
    inv: TrendState
    step_s: np.ndarray
    t_fed: np.ndarray

    @classmethod
    def empty(
        cls,
        n: int,
        *,
        velocity_window_s: np.ndarray | float = 6 * HOUR_S,
        fit_window_s: np.ndarray | float = DAY_S,
        step_s: np.ndarray | float | None = None,
    ) -> InverseVelocityState:
        """Create ``n`` empty fits; ``step_s`` defaults to half the velocity window."""
        v = np.broadcast_to(np.asarray(velocity_window_s, dtype=np.float64), (n,)).copy()
        f = np.broadcast_to(np.asarray(fit_window_s, dtype=np.float64), (n,)).copy()
        step = 0.5 * v if step_s is None else np.broadcast_to(np.asarray(step_s, np.float64), (n,)).copy()
        return cls(TrendState.empty(v), TrendState.empty(f), step, np.full(n, np.nan))

    def __len__(self) -> int:
        return self.step_s.size

    def copy(self) -> InverseVelocityState:
        """Return an independent copy (updates are in place)."""
        return InverseVelocityState(self.disp.copy(), self.inv.copy(), self.step_s.copy(), self.t_fed.copy())

    def take(self, rows: np.ndarray) -> InverseVelocityState:
        """The fits of ``rows`` as a state of their own (what ``failure_time`` reads)."""
        return InverseVelocityState(
            self.disp.take(rows), self.inv.take(rows), self.step_s[rows], self.t_fed[rows]
        )

    def reset(self, slots: np.ndarray | Iterable[int]) -> InverseVelocityState:
        """Forget everything about ``slots``; returns self."""
        idx = np.asarray(slots, dtype=np.intp)
        self.disp.reset(idx)
        self.inv.reset(idx)
        self.t_fed[idx] = np.nan
        return self


def update_inverse_velocity(
    state: InverseVelocityState,
    slots: np.ndarray | None,
    t_s: np.ndarray,
    x: np.ndarray,
    *,
    z_velocity: float = 3.0,
    min_n_eff: float = 8.0,
    min_span_frac: float = 0.5,
) -> InverseVelocityState:
    """Add one displacement sample per slot (in place) and feed ``1/v`` when due; return the state.

    Parameters
    ----------
    state : InverseVelocityState
    slots : (m,) int or None
        Unique sensor slots; None = all in order.
    t_s : (m,) float64
        Sample times, s.
    x : (m,) float64
        Cumulative displacement; NaN = missing (skipped).
    z_velocity : float
        ``1/v`` is fed only while the velocity is significant: ``|v| > z_velocity · se``.
    min_n_eff, min_span_frac : float
        Minimum effective samples and span (fraction of the velocity window) of a velocity estimate.

    Returns
    -------
    InverseVelocityState
        The same object.
    """
    idx = np.arange(len(state)) if slots is None else np.asarray(slots, dtype=np.intp).reshape(-1)
    t = np.asarray(t_s, dtype=np.float64).reshape(-1)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    update_trend(state.disp, slots, t, x)
    st = trend_stats(state.disp, slots)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.abs(st.slope)
        last = state.inv.t_ref[idx]
        due = np.isnan(last) | (st.t_rate_s - last >= state.step_s[idx])
        feed = (
            np.isfinite(x)
            & (v > z_velocity * st.slope_se)
            & (st.n_eff >= min_n_eff)
            & (st.span_s >= min_span_frac * state.disp.tau_s[idx])
            & due
        )
    if feed.any():
        update_trend(state.inv, idx[feed], st.t_rate_s[feed], 1.0 / v[feed])
        state.t_fed[idx[feed]] = t[feed]
    return state


class FailureForecast(NamedTuple):
    """Inverse-velocity failure time of each sensor; all fields (n,) arrays."""

    tf_s: np.ndarray  # float64: time at which the 1/v line reaches 0 (absolute s), +inf = none
    tf_low_s: np.ndarray  # float64: earliest plausible failure time
    tf_high_s: np.ndarray  # float64: latest plausible failure time, +inf = not sure
    significant: np.ndarray  # bool: 1/v falls significantly and the fit is fresh and well supported
    warn: np.ndarray  # bool: significant and tf_high within the horizon
    grade: np.ndarray  # int8: WarningGrade by lead time tf - now, 0 where no warning


def failure_time(
    state: InverseVelocityState,
    now_s: float,
    *,
    horizon_s: np.ndarray | float = DAY_S,
    z_slope: float = 3.0,
    z_band: float = 2.0,
    min_n_eff: float = 6.0,
    min_span_frac: float = 0.25,
    max_age_s: np.ndarray | float | None = None,
    grade_bounds_s: tuple[float, ...] = GRADE_BOUNDS_S,
) -> FailureForecast:
    """Forecast failure times where ``1/v`` falls linearly to 0 (Fukuzono 1985) and decide warnings.

    Parameters
    ----------
    state : InverseVelocityState
    now_s : float
        Current time, s.
    horizon_s : float or (n,) float64
        Warn when the late end of the band is within this lead.
    z_slope, z_band : float
        Significance of the falling slope of ``1/v``; half-width of the band in standard errors of the
        fitted line (a confidence band: ``Tf`` is a property of the line, not of one noisy ``1/v``).
    min_n_eff, min_span_frac : float
        Minimum effective ``1/v`` samples and span (fraction of the fit window).
    max_age_s : float or (n,) float64, optional
        The fit must have been fed within this time (default: 2 steps + the velocity window); a creep
        that stops (insignificant velocity) stops feeding and its warning lapses.
    grade_bounds_s : tuple of float
        Ascending lead-time bounds of red, orange, yellow, blue.

    Returns
    -------
    FailureForecast
        (n,) arrays; a failure time already past (line at 0 before now) is kept and graded red.
    """
    n = len(state)
    st = trend_stats(state.inv)
    age = 2.0 * state.step_s + state.disp.tau_s if max_age_s is None else max_age_s
    horizon = np.broadcast_to(np.asarray(horizon_s, dtype=np.float64), (n,))
    with np.errstate(all="ignore"):
        speed = -st.slope  # 1/v falling: positive speed towards 0
        sigma0 = st.resid_sd / np.sqrt(st.n_eff)
        central, early, late = _band_roots(np.maximum(speed, 0.0), st.level_mean, st.slope_se, sigma0, z_band)
        falling = speed > 0
        tf = np.where(falling, st.t_mean_s + central, np.inf)
        tf_low = np.where(falling, st.t_mean_s + early, np.inf)
        tf_high = np.where(falling & ~np.isnan(late), st.t_mean_s + late, np.inf)
        significant = (
            falling
            & (speed > z_slope * st.slope_se)
            & (st.n_eff >= min_n_eff)
            & (st.span_s >= min_span_frac * state.inv.tau_s)
            & (now_s - state.t_fed <= age)
        )
        warn = significant & (tf_high - now_s <= horizon)
    lead = np.maximum(tf - now_s, 0.0)
    return FailureForecast(tf, tf_low, tf_high, significant, warn, _grade(lead, warn, grade_bounds_s))


# ---- Registry helpers (once at start; not on the hot path)


def sensor_params(
    sensors: Iterable[Sensor],
    *,
    windows_s: Mapping[str, float] = TREND_WINDOW_S,
    horizons_s: Mapping[str, float] = HORIZON_S,
    daily_kinds: Iterable[str] = DAILY_CYCLE_KINDS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return per-sensor trend window tau_s (n,) float64, horizon_s (n,) float64 and daily (n,) bool."""
    kinds = [s.kind for s in sensors]
    daily_set = frozenset(daily_kinds)
    tau = np.array([windows_s.get(k, DEFAULT_TREND_WINDOW_S) for k in kinds], dtype=np.float64)
    horizon = np.array([horizons_s.get(k, DEFAULT_HORIZON_S) for k in kinds], dtype=np.float64)
    daily = np.array([k in daily_set for k in kinds], dtype=bool)
    return tau, horizon, daily


def limit_arrays(sensors: Iterable[Sensor]) -> tuple[np.ndarray, np.ndarray]:
    """Return ``limits_lo`` (n, 2) = [L, LL] and ``limits_hi`` (n, 2) = [H, HH], float64, NaN = not set."""

    def val(v: float | None) -> float:
        return np.nan if v is None else float(v)

    rows = [(val(s.limits.l), val(s.limits.ll), val(s.limits.h), val(s.limits.hh)) for s in sensors]
    a = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return a[:, :2].copy(), a[:, 2:].copy()
