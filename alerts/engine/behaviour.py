"""Each sensor's learned normal behaviour, and the chance that it reaches a limit within a horizon.

Pure numpy over arrays with one row per forecast sensor; no I/O (alerts/learning.py feeds it history).

Why: a straight line through the last hours, extrapolated a day ahead, meets a limit on every ordinary
excursion of a real signal. Real signals revert to their mean, follow daily and weekly cycles and
have heavy tails; whether an excursion is dangerous depends on how this sensor has behaved before. So
every forecast sensor gets a model fitted to its own history (`fit_behaviour`), and a warning becomes
a *probability* of reaching the limit within the horizon under that model (`reach_probability`).

Model
-----
On a regular grid of bin means (step ``step_s``)::

    x(t) = level + daily(t) + weekly(t) + r(t)

- ``daily``: a profile of the day (half-hour values, by medians, shrunk while few days back them),
  and ``weekly``: an offset per day of the week; only where the history covers two days (two weeks);
- ``r``: the residual, whose *distribution* is kept as quantiles (:data:`PROBS`) with exponential
  tails beyond the outer ones, so skewed and heavy-tailed signals are described as they are;
- dynamics: ``r`` mapped to normal scores ``z = Φ⁻¹(F(r))`` is taken as an Ornstein-Uhlenbeck process
  of rate ``theta`` (1/s), fitted from the autocorrelation at one grid step and at a longer lag
  (``ρ(k) ≈ a e^{-θ k}``: ``a`` is the share of slow variance, the rest is noise that decorrelates
  within a step);
- rate envelope: the largest rises and falls over each trend memory of the sensor (the 0.2 % and
  99.8 % quantiles of the difference of consecutive window means), which says how fast the sensor
  ordinarily moves; the level envelope is the outer quantiles of ``r``.

First passage (`reach_probability`). For an OU process in normal scores started at ``z0``, with the
limit at ``zb(h)`` (a cycle moves it): the chance that the process is beyond the limit at some lead
(doubled by reflection); that the excursion under way climbs on to the limit before it returns to the
mean, ``S(z0)/S(zb)`` with ``S(z) = ∫₀ᶻ e^{u²/2} du`` (the scale function); and that new excursions
reach it, at the rate ``λ = θ / (√(2π) ∫₀^{zb} e^{u²/2} Φ(u) du)`` (the inverse of the mean first-passage
time from the mean). The three are combined as if independent. Against a Monte-Carlo simulation of
the same process (tests/unit/test_behaviour.py) the result lies between the simulated chance and
twice it plus 0.03: it errs high, the safe side for a warning.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S
DAY_BINS = 48  # the daily profile: one value per half hour of the day, linear between them
N_SEASON = DAY_BINS + 7  # ... then one offset per day of the week
CELL_S = DAY_S / DAY_BINS
FINE_COLS = 8192  # the distribution and the rates look at most this many grid columns, evenly spread
DYNAMICS_COLS = 8192  # the autocorrelation looks at this many newest grid columns
SHRINK = 2.0  # a profile value from n days counts n / (n + SHRINK): a few days make a timid profile
#: probability levels of the kept quantiles of the residual
PROBS = np.array([0.001, 0.005, 0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98, 0.995, 0.999])
MID = 5  # index of the median in PROBS
RATE_PROBS = (0.002, 0.998)  # the rate envelope: the fastest 0.2 % of falls and rises
SCORE_CAP = 8.5  # normal scores beyond this say "never" (P ~ 1e-17); keeps exp(z²/2) finite
ZB_FLOOR = 0.05  # a limit this close to the mean (in scores) is met as soon as a limit at the mean


def norm_cdf(z: np.ndarray) -> np.ndarray:
    """Φ(z), vectorised, with relative accuracy ~1e-7 in both tails (Numerical Recipes' erfc)."""
    x = np.abs(np.asarray(z, dtype=np.float64)) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * x)
    poly = -1.26551223 + t * (
        1.00002368
        + t
        * (
            0.37409196
            + t
            * (
                0.09678418
                + t
                * (
                    -0.18628806
                    + t
                    * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))
                )
            )
        )
    )
    tail = 0.5 * t * np.exp(-x * x + poly)  # Φ(-|z|)
    return np.where(np.asarray(z) >= 0, 1.0 - tail, tail)  # fmt: skip


def norm_ppf(p: np.ndarray) -> np.ndarray:
    """Φ⁻¹(p), vectorised (Acklam's rational approximation, relative error < 1.2e-9); p in (0, 1)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-300, 1.0 - 1e-16)
    a = (
        -3.969683028665376e01,
        2.209460984245205e02,
        -2.759285104469687e02,
        1.383577518672690e02,
        -3.066479806614716e01,
        2.506628277459239e00,
    )
    b = (
        -5.447609879822406e01,
        1.615858368580409e02,
        -1.556989798598866e02,
        6.680131188771972e01,
        -1.328068155288572e01,
    )
    c = (
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e00,
        -2.549732539343734e00,
        4.374664141464968e00,
        2.938163982698783e00,
    )
    d = (7.784695709041462e-03, 3.224671290700398e-01,
         2.445134137142996e00, 3.754408661907416e00)  # fmt: skip
    q = np.minimum(p, 1.0 - p)
    with np.errstate(divide="ignore", invalid="ignore"):
        # tails: q < 0.02425
        r = np.sqrt(-2.0 * np.log(q))
        tail = (((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) / (
            (((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1.0
        )
        # centre
        u = p - 0.5
        s = u * u
        centre = (
            (((((a[0] * s + a[1]) * s + a[2]) * s + a[3]) * s + a[4]) * s + a[5])
            * u
            / (((((b[0] * s + b[1]) * s + b[2]) * s + b[3]) * s + b[4]) * s + 1.0)
        )
    tail = np.where(p < 0.5, tail, -tail)
    return np.where(q < 0.02425, tail, centre)


Z_PROBS = norm_ppf(PROBS)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(32)


def _integrals_by_quadrature(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``e^{-z²/2}∫₀ᶻe^{u²/2}du`` and ``e^{-z²/2}∫₀ᶻe^{u²/2}Φ(u)du``, z >= 0 (Gauss-Legendre, 32 points)."""
    z = np.asarray(z, dtype=np.float64)[..., None]
    u = z * (1.0 + _GL_X) * 0.5
    e = np.exp((u * u - z * z) * 0.5) * _GL_W
    half = z[..., 0] * 0.5
    return half * e.sum(axis=-1), half * (e * norm_cdf(u)).sum(axis=-1)


# both are smooth in z: tabulated once, interpolated on the hot path (error < 1e-7)
_TABLE_Z = np.linspace(0.0, SCORE_CAP, 4097)
_TABLE_S, _TABLE_M = _integrals_by_quadrature(_TABLE_Z)


def _scaled_integrals(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_integrals_by_quadrature` by table (z in [0, SCORE_CAP])."""
    z = np.asarray(z, dtype=np.float64)
    return np.interp(z, _TABLE_Z, _TABLE_S), np.interp(z, _TABLE_Z, _TABLE_M)


# ---- the model


@dataclass(slots=True, eq=False)
class BehaviourModel:
    """Learned behaviour of ``m`` sensors (rows), all arrays with the row first.

    Attributes
    ----------
    fitted_ms : (m,) int64
        Event time of the history's end at the last fit; -1 = never fitted.
    span_s : (m,) float64
        Time between the first and last valid bins of the history used.
    step_s : (m,) float64
        Grid step of the fit (bin width), s.
    level : (m,) float64
        Mean level (the regression's intercept).
    season : (m, N_SEASON) float64
        The daily profile (DAY_BINS half-hour values, 0 mean) then the day-of-week offsets (7, 0
        mean); 0 where the history is too short to tell (under two days, two weeks).
    quantiles : (m, len(PROBS)) float64
        Quantiles of the residual at PROBS.
    tail_lo, tail_hi : (m,) float64
        Exponential tail scales below the lowest and above the highest quantile.
    raw_quantiles : (m, len(PROBS)) float64
        Quantiles of the readings themselves (no profile removed), with tails ``raw_tail_lo/hi``:
        the levels the sensor has shown, whatever the time of day.
    theta : (m,) float64
        Mean-reversion rate of the slow part, 1/s.
    slow_share : (m,) float64
        Share of the residual variance in the slow part (the rest is step-to-step noise).
    rate_lo, rate_hi : (m, C) float64
        Fastest ordinary fall and rise (units/s) over each of the row's trend memories; NaN if unknown.
    """

    fitted_ms: np.ndarray
    span_s: np.ndarray
    step_s: np.ndarray
    level: np.ndarray
    season: np.ndarray
    quantiles: np.ndarray
    tail_lo: np.ndarray
    tail_hi: np.ndarray
    raw_quantiles: np.ndarray
    raw_tail_lo: np.ndarray
    raw_tail_hi: np.ndarray
    theta: np.ndarray
    slow_share: np.ndarray
    rate_lo: np.ndarray
    rate_hi: np.ndarray

    @classmethod
    def empty(cls, m: int, n_rates: int = 1) -> BehaviourModel:
        """Rows that know nothing yet (never fitted)."""
        nan = np.full(m, np.nan)
        return cls(
            fitted_ms=np.full(m, -1, dtype=np.int64),
            span_s=np.zeros(m),
            step_s=nan.copy(),
            level=nan.copy(),
            season=np.zeros((m, N_SEASON)),
            quantiles=np.full((m, len(PROBS)), np.nan),
            tail_lo=nan.copy(),
            tail_hi=nan.copy(),
            raw_quantiles=np.full((m, len(PROBS)), np.nan),
            raw_tail_lo=nan.copy(),
            raw_tail_hi=nan.copy(),
            theta=nan.copy(),
            slow_share=nan.copy(),
            rate_lo=np.full((m, n_rates), np.nan),
            rate_hi=np.full((m, n_rates), np.nan),
        )

    def __len__(self) -> int:
        return self.level.size

    def take(self, rows: np.ndarray) -> BehaviourModel:
        """The models of ``rows``, copied."""
        return BehaviourModel(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def put(self, rows: np.ndarray, other: BehaviourModel) -> None:
        """Overwrite ``rows`` with ``other``'s rows (a refit of some sensors), in place."""
        for f in fields(self):
            getattr(self, f.name)[rows] = getattr(other, f.name)

    def season_at(self, t_s: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The daily + weekly part at times ``t_s`` ((k,) or (k, G)) of ``rows`` (k of them)."""
        prof = self.season if rows is None else self.season[rows]
        t = np.asarray(t_s, dtype=np.float64)
        pos = np.mod(t, DAY_S) / DAY_S * DAY_BINS - 0.5  # bin centres at half-bins
        i0 = np.floor(pos).astype(np.intp)
        frac = pos - i0
        i0 %= DAY_BINS
        i1 = (i0 + 1) % DAY_BINS
        dow = _weekday(t)
        k = prof.shape[0]
        r = np.arange(k).reshape((k,) + (1,) * (t.ndim - 1))
        daily = prof[r, i0] * (1.0 - frac) + prof[r, i1] * frac
        return daily + prof[r, DAY_BINS + dow]

    def save(self, path: str | Path, ids: list[str]) -> None:
        """Write the models with the sensor ids of their rows (``site/sensor``), atomically."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, ids=np.array(ids, dtype=str), **{k.name: getattr(self, k.name) for k in fields(self)})
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path, ids: list[str], n_rates: int = 1) -> BehaviourModel:
        """Read saved models for ``ids`` (rows in that order); unknown ids start empty."""
        out = cls.empty(len(ids), n_rates)
        with np.load(path, allow_pickle=False) as z:
            saved = {s: i for i, s in enumerate(z["ids"].tolist())}
            pairs = [(r, saved[s]) for r, s in enumerate(ids) if s in saved]
            if not pairs:
                return out
            dst, src = (np.array(p, dtype=np.intp) for p in zip(*pairs, strict=True))
            for f in fields(cls):
                a = z[f.name]
                if f.name in ("rate_lo", "rate_hi"):
                    k = min(a.shape[1], n_rates)
                    getattr(out, f.name)[dst, :k] = a[src, :k]
                else:
                    getattr(out, f.name)[dst] = a[src]
        return out


# ---- fitting


def fit_behaviour(
    values: np.ndarray,
    t0_s: float,
    step_s: float,
    rate_windows_s: np.ndarray,
    *,
    fitted_ms: int | None = None,
    slow_lag_s: np.ndarray | float = 3 * 3600.0,
) -> BehaviourModel:
    """Fit the behaviour of ``m`` sensors from bin means on one grid.

    Parameters
    ----------
    values : (m, T) float64
        Mean of each sensor's readings in bins ``[t0 + k step, t0 + (k+1) step)``; NaN = no reading.
    t0_s, step_s : float
        Start of the first bin and bin width, s.
    rate_windows_s : (m, C) float64
        Trend memories (s) at which to measure each sensor's ordinary rates; NaN = none.
    fitted_ms : int, optional
        Event time the fit stands for (default: the end of the grid).
    slow_lag_s : float or (m,) float64
        Lag of the second autocorrelation that sets the slow mean-reversion rate (a fraction of the
        forecast horizon: the dynamics that matter for it).

    Returns
    -------
    BehaviourModel
        Rows with fewer than 8 valid bins stay unfitted (``fitted_ms`` -1).
    """
    v = np.asarray(values, dtype=np.float64)
    m, n_bins = v.shape
    windows = np.asarray(rate_windows_s, dtype=np.float64).reshape(m, -1)
    recent_bins = np.ceil(2.0 * np.nan_to_num(np.nanmax(windows, axis=1, initial=0.0)) / step_s).astype(
        np.int64
    )
    out = BehaviourModel.empty(m, windows.shape[1])
    if m == 0 or n_bins == 0:
        return out
    ok = ~np.isnan(v)
    n_ok = ok.sum(axis=1)
    idx = np.arange(n_bins)
    first = np.where(n_ok > 0, np.argmax(ok, axis=1), 0)
    last = np.where(n_ok > 0, n_bins - 1 - np.argmax(ok[:, ::-1], axis=1), 0)
    span = (last - first) * step_s
    t = t0_s + (idx + 0.5) * step_s
    # the excursion under way is what is being judged, not part of what is normal: learn from the
    # history before it (a fill that has gone on for hours must not teach that filling is ordinary)
    past = ok
    for _ in range(3):
        level, season = _fit_season(np.where(past, v, np.nan), past, t, step_s, span)
        r = v - level[:, None] - _profile_rows(season[:, :DAY_BINS], t) - season[:, DAY_BINS + _weekday(t)]
        # ... but only its last couple of trend memories: a state that lasts (a full tank between
        # draws, a machine that runs for days) is the sensor's behaviour, not an excursion
        start = np.maximum(_excursion_start(r, ok), n_bins - recent_bins)
        past = ok & (idx[None, :] < start[:, None])
        # an "excursion" as long as the rest of the history is the sensor's present regime
        past = np.where((past.sum(axis=1) >= np.maximum(8, n_ok // 2))[:, None], past, ok)
    fit = n_ok >= 8
    r_all = r
    r = np.where(past, r, np.nan)
    v_past = np.where(past, v, np.nan)
    # distribution of the residual
    q, tail_lo, tail_hi = _distribution(r, fit)
    raw_q, raw_lo, raw_hi = _distribution(v_past, fit)
    # dynamics: autocorrelation at one step and at the slow lag, in normal scores, over the newest
    # DYNAMICS_COLS columns (a week of 1-minute bins says as much about them as a month)
    dyn = slice(max(0, n_bins - DYNAMICS_COLS), n_bins)
    z = np.where(past[:, dyn], _scores(q, tail_lo, tail_hi, r_all[:, dyn]), np.nan)
    n_dyn = z.shape[1]
    lag = np.clip(
        np.rint(np.broadcast_to(np.asarray(slow_lag_s, float), (m,)) / step_s), 2, max(2, n_dyn // 4)
    )
    rho1 = _autocorr(z, np.ones(m, dtype=np.int64))
    rhol = _autocorr(z, lag.astype(np.int64))
    # ρ(k) ≈ a e^{-θ k}: θ from the decay between the two lags, a (the slow share) from lag one; a
    # residual uncorrelated from one step to the next is all noise: θ of three steps, a at its floor
    white = rho1 < 0.05
    rho1 = np.clip(rho1, 0.05, 0.999)
    rhol = np.clip(rhol, 0.01 * rho1, rho1 * 0.999)
    theta = np.where(white, 3.0 / step_s, np.log(rho1 / rhol) / ((lag - 1) * step_s))
    slow = np.where(white, 0.05, np.clip(rho1 * np.exp(theta * step_s), 0.05, 1.0))
    # rate envelopes over each trend memory
    rate_lo = np.full(windows.shape, np.nan)
    rate_hi = np.full(windows.shape, np.nan)
    for c in range(windows.shape[1]):
        rate_lo[:, c], rate_hi[:, c] = _rate_envelope(v_past, past, step_s, windows[:, c])
    out.fitted_ms[fit] = int(fitted_ms if fitted_ms is not None else round((t0_s + n_bins * step_s) * 1000))
    out.span_s[fit] = span[fit]
    out.step_s[fit] = step_s
    out.level[fit] = level[fit]
    out.season[fit] = season[fit]
    out.quantiles[fit] = q[fit]
    out.tail_lo[fit], out.tail_hi[fit] = tail_lo[fit], tail_hi[fit]
    out.raw_quantiles[fit] = raw_q[fit]
    out.raw_tail_lo[fit], out.raw_tail_hi[fit] = raw_lo[fit], raw_hi[fit]
    out.theta[fit], out.slow_share[fit] = theta[fit], slow[fit]
    out.rate_lo[fit], out.rate_hi[fit] = rate_lo[fit], rate_hi[fit]
    return out


def _distribution(x: np.ndarray, fit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantiles at PROBS of each row of ``x`` (NaN = missing) and the exponential tail scales beyond."""
    m = x.shape[0]
    q = np.full((m, len(PROBS)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for rows, part in _thin_rows(x, fit):
            q[rows] = nanquantile_rows(part, PROBS)
        sd = np.nanstd(x, axis=1)
    floor = np.maximum(0.05 * np.nan_to_num(sd), 1e-9)
    tail_hi = np.maximum((q[:, -1] - q[:, -2]) / math.log((1 - PROBS[-2]) / (1 - PROBS[-1])), floor)
    tail_lo = np.maximum((q[:, 1] - q[:, 0]) / math.log(PROBS[1] / PROBS[0]), floor)
    return q, tail_lo, tail_hi


def _excursion_start(r: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Index at which each row's last excursion began: just after the last valid residual on the other
    side of the mean from the newest one (or 0 if there is none)."""
    n = r.shape[1]
    last = n - 1 - np.argmax(ok[:, ::-1], axis=1)
    side = np.sign(r[np.arange(r.shape[0]), last])
    other = ok & (r * side[:, None] <= 0)
    has = other.any(axis=1)
    return np.where(has, n - np.argmax(other[:, ::-1], axis=1), 0)


def _weekday(t_s: np.ndarray) -> np.ndarray:
    """Day of the week (Monday = 0) of epoch seconds, in UTC (1970-01-01 was a Thursday)."""
    return (np.floor(np.asarray(t_s) / DAY_S).astype(np.int64) + 3) % 7


def _profile_rows(daily: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(m, T): each row's daily profile (m, DAY_BINS) at the grid times ``t`` (T,), linear between bins."""
    pos = np.mod(t, DAY_S) / DAY_S * DAY_BINS - 0.5
    i0 = np.floor(pos).astype(np.intp)
    frac = pos - i0
    i0 %= DAY_BINS
    return daily[:, i0] * (1.0 - frac) + daily[:, (i0 + 1) % DAY_BINS] * frac


def _fill_circular(profile: np.ndarray) -> np.ndarray:
    """Fill NaN bins of each row's daily profile by linear interpolation around the clock (0 if all NaN)."""
    m, n = profile.shape
    good = ~np.isnan(profile)
    idx = np.arange(3 * n)
    good3 = np.tile(good, 3)
    prev = np.maximum.accumulate(np.where(good3, idx, -1), axis=1)[:, n : 2 * n]
    nxt = np.minimum.accumulate(np.where(good3, idx, 3 * n)[:, ::-1], axis=1)[:, ::-1][:, n : 2 * n]
    vals = np.nan_to_num(np.tile(profile, 3))
    rows = np.arange(m)[:, None]
    has = good.any(axis=1)[:, None]
    prev_c, nxt_c = np.clip(prev, 0, 3 * n - 1), np.clip(nxt, 0, 3 * n - 1)
    here = np.arange(n, 2 * n)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(nxt_c > prev_c, (here - prev_c) / (nxt_c - prev_c), 0.0)
    filled = vals[rows, prev_c] * (1.0 - frac) + vals[rows, nxt_c] * frac
    return np.where(good, profile, np.where(has, filled, 0.0))


def nanquantile_rows(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Quantiles (numpy's linear rule) of each row of ``x`` (m, n), NaN = missing; (m, len(probs)).

    One sort of the whole array: numpy's nanquantile loops over rows in Python.
    """
    probs = np.asarray(probs, dtype=np.float64)
    m = x.shape[0]
    if x.shape[1] == 0:
        return np.full((m, len(probs)), np.nan)
    srt = np.sort(x, axis=1)  # NaN last
    n = (~np.isnan(x)).sum(axis=1)
    pos = np.maximum(n - 1, 0)[:, None] * probs[None, :]
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0)[:, None])
    a, b = np.take_along_axis(srt, lo, axis=1), np.take_along_axis(srt, hi, axis=1)
    out = a + (b - a) * (pos - lo)
    out[n == 0] = np.nan
    return out


def _nanmedian_last(x: np.ndarray) -> np.ndarray:
    """Median over the last axis, NaN = missing (all NaN: NaN); vectorised over the other axes."""
    shape = x.shape
    flat = x.reshape(-1, shape[-1])
    return nanquantile_rows(flat, np.array([0.5]))[:, 0].reshape(shape[:-1])


def _thin_rows(x: np.ndarray, rows: np.ndarray, cols: int = FINE_COLS) -> list[tuple[np.ndarray, np.ndarray]]:
    """(row indices, columns) groups that keep at most ``cols`` columns of each chosen row's own span
    of data (first to last valid column), every k-th: a month-wide grid of a sensor that reported for
    two hours keeps all of its two hours, a month of 1-minute bins keeps every sixth."""
    ok = ~np.isnan(x)
    chosen = np.flatnonzero(rows & ok.any(axis=1))
    if not len(chosen):
        return []
    n = x.shape[1]
    first = np.argmax(ok[chosen], axis=1)
    last = n - 1 - np.argmax(ok[chosen, ::-1], axis=1)
    k = -(-(last - first + 1) // cols)
    out = []
    for step in np.unique(k).tolist():
        g = chosen[k == step]
        lo, hi = int(first[k == step].min()), int(last[k == step].max()) + 1
        out.append((g, x[g, lo:hi:step]))
    return out


def _day_cells(
    v: np.ndarray, ok: np.ndarray, t: np.ndarray, step_s: float, day0_s: float, n_days: int
) -> tuple[np.ndarray, np.ndarray]:
    """Means of each row's valid bins in every half-hour cell of whole UTC days: (m, n_days, DAY_BINS)
    means (NaN = empty) and counts. The profile is fitted on these: a month of 1-minute bins is 30 times
    more data than the profile can tell apart."""
    m, n = v.shape
    n_cells = n_days * DAY_BINS
    offset = (t[0] - 0.5 * step_s - day0_s) / step_s
    per_cell = CELL_S / step_s
    if per_cell == int(per_cell) and offset == int(offset):  # bins tile the cells: sum by reshaping
        per_cell, offset = int(per_cell), int(offset)
        width = n_cells * per_cell
        sums, counts = np.zeros((m, width)), np.zeros((m, width), dtype=np.int64)
        sums[:, offset : offset + n] = np.where(ok, v, 0.0)[:, : width - offset]
        counts[:, offset : offset + n] = ok[:, : width - offset]
        sums = sums.reshape(m, n_cells, per_cell).sum(axis=2)
        counts = counts.reshape(m, n_cells, per_cell).sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums / counts
        return means.reshape(m, n_days, DAY_BINS), counts.reshape(m, n_days, DAY_BINS)
    cell = np.clip(((t - day0_s) // CELL_S).astype(np.int64), 0, n_cells - 1)
    key = (np.arange(m)[:, None] * n_cells + cell[None, :]).ravel()
    okf = ok.ravel()
    sums = np.bincount(key[okf], weights=v.ravel()[okf], minlength=m * n_cells)
    counts = np.bincount(key[okf], minlength=m * n_cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return means.reshape(m, n_days, DAY_BINS), counts.reshape(m, n_days, DAY_BINS)


def _fit_season(
    v: np.ndarray, ok: np.ndarray, t: np.ndarray, step_s: float, span: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Level, daily profile and day-of-week offsets by medians (robust to excursions), backfitted twice.

    A profile captures any shape (the square wave of shifts, a plant that runs by day) where a few
    harmonics ring; medians keep excursions out of it. The medians are over half-hour cell means of
    whole days (one value per profile bin per day). Each value is shrunk by n / (n + SHRINK) for the n
    days behind it; the profile needs two days of history, the offsets two weeks.
    """
    m = v.shape[0]
    season = np.zeros((m, N_SEASON))
    day0 = math.floor(t[0] / DAY_S) * DAY_S
    n_days = max(1, math.ceil((t[-1] - day0) / DAY_S))
    cells, counts = _day_cells(v, ok, t, step_s, day0, n_days)  # (m, D, B)
    has = counts > 0
    dow = (np.floor(day0 / DAY_S).astype(np.int64) + 3 + np.arange(n_days)) % 7  # (D,)
    day_ok, week_ok = span >= 2 * DAY_S, span >= 2 * WEEK_S
    level = np.nan_to_num(_nanmedian_last(cells.reshape(m, -1)))
    if not day_ok.any():
        return level, season
    days = has.sum(axis=1)  # (m, B): days behind each profile bin
    daily = np.zeros((m, DAY_BINS))
    weekly = np.zeros((m, 7))
    for _ in range(2):
        rest = cells - level[:, None, None] - weekly[:, dow][:, :, None]
        daily = _nanmedian_last(np.swapaxes(rest, 1, 2)) * days / (days + SHRINK)
        daily = _fill_circular(daily)
        daily -= daily.mean(axis=1, keepdims=True)
        daily[~day_ok] = 0.0
        if week_ok.any():
            rest = cells - level[:, None, None] - daily[:, None, :]
            for d in range(7):
                on = dow == d
                if on.any():
                    weekly[:, d] = np.nan_to_num(_nanmedian_last(rest[:, on, :].reshape(m, -1)))
            weekly -= weekly.mean(axis=1, keepdims=True)
            weekly[~week_ok] = 0.0
        rest = cells - daily[:, None, :] - weekly[:, dow][:, :, None]
        level = np.nan_to_num(_nanmedian_last(rest.reshape(m, -1)))
    season[:, :DAY_BINS] = daily
    season[:, DAY_BINS:] = weekly
    return level, np.nan_to_num(season)


def _autocorr(z: np.ndarray, lag: np.ndarray) -> np.ndarray:
    """Autocorrelation of each row of ``z`` (NaN = missing) at its own integer ``lag`` (>= 1)."""
    m, n = z.shape
    out = np.full(m, np.nan)
    for k in np.unique(lag).tolist():
        rows = np.flatnonzero(lag == k)
        if k >= n:
            continue
        a, b = z[rows, :-k], z[rows, k:]
        both = ~(np.isnan(a) | np.isnan(b))
        a0, b0 = np.where(both, a, 0.0), np.where(both, b, 0.0)
        cnt = np.maximum(both.sum(axis=1), 1)
        ma, mb = a0.sum(axis=1) / cnt, b0.sum(axis=1) / cnt
        da, db = np.where(both, a - ma[:, None], 0.0), np.where(both, b - mb[:, None], 0.0)
        den = np.sqrt((da * da).sum(axis=1) * (db * db).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[rows] = (da * db).sum(axis=1) / den
    return np.nan_to_num(out, nan=0.0)


def _rate_envelope(
    v: np.ndarray, ok: np.ndarray, step_s: float, window_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fastest ordinary fall and rise over ``window_s``.

    The 0.2 % and 99.8 % quantiles of (mean of a window - mean of the window before) / window length.
    """
    m, n = v.shape
    lo, hi = np.full(m, np.nan), np.full(m, np.nan)
    k_all = np.rint(np.nan_to_num(window_s, nan=0.0) / step_s).astype(np.int64)
    cs = np.concatenate([np.zeros((m, 1)), np.cumsum(np.where(ok, v, 0.0), axis=1)], axis=1)
    cn = np.concatenate([np.zeros((m, 1)), np.cumsum(ok, axis=1)], axis=1)
    for k in np.unique(k_all).tolist():
        if k < 1 or 2 * k > n:
            continue
        rows = np.flatnonzero(k_all == k)
        # windows every `stride` columns: no more than FINE_COLS of them, and never a gap between two
        # (a stride up to the window length still sees every rise of that length)
        stride = max(1, min(k, -(-(n - 2 * k + 1) // FINE_COLS)))
        cs_r, cn_r = (cs, cn) if len(rows) == m else (cs[rows], cn[rows])
        end = n - 2 * k + 1
        s0, s1, s2 = (cs_r[:, o : o + end : stride] for o in (0, k, 2 * k))
        c0, c1, c2 = (cn_r[:, o : o + end : stride] for o in (0, k, 2 * k))
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = ((s2 - s1) / (c2 - c1) - (s1 - s0) / (c1 - c0)) / (k * step_s)
        enough = (c2 - c1 >= max(1, k // 2)) & (c1 - c0 >= max(1, k // 2))
        rate = np.where(enough, rate, np.nan)
        has = (~np.isnan(rate)).sum(axis=1) >= 4
        if has.any():
            qs = nanquantile_rows(rate[has], np.array(RATE_PROBS))
            lo[rows[has]], hi[rows[has]] = qs[:, 0], qs[:, 1]
    return lo, hi


# ---- normal scores


def _scores(q: np.ndarray, tail_lo: np.ndarray, tail_hi: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Normal score Φ⁻¹(F(r)) under each row's quantiles (piecewise linear in z) and exponential tails.

    ``q`` (m, Q), ``tail_*`` (m,), ``r`` (m,) or (m, T). Returns the shape of ``r``, within ±SCORE_CAP.
    """
    r = np.asarray(r, dtype=np.float64)
    shape = r.shape
    m = shape[0]
    r2 = r.reshape(m, -1)
    # the bracket, one quantile column at a time: no (m·T, Q) temporary
    k = np.zeros(r2.shape, dtype=np.intp)
    for j in range(len(PROBS)):
        k += r2 >= q[:, j : j + 1]
    k = np.clip(k - 1, 0, len(PROBS) - 2)
    q_k, q_k1 = np.take_along_axis(q, k, axis=1), np.take_along_axis(q, k + 1, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.clip((r2 - q_k) / np.maximum(q_k1 - q_k, 1e-12), 0.0, 1.0)
    z = Z_PROBS[k] + frac * (Z_PROBS[k + 1] - Z_PROBS[k])
    for sign, edge, p_edge, tails in ((1.0, -1, 1 - PROBS[-1], tail_hi), (-1.0, 0, PROBS[0], tail_lo)):
        out_r, out_c = np.nonzero(sign * (r2 - q[:, edge : edge + 1 if edge >= 0 else None]) > 0)
        if len(out_r):
            beyond = sign * (r2[out_r, out_c] - q[out_r, edge]) / tails[out_r]
            z[out_r, out_c] = -sign * norm_ppf(np.maximum(p_edge * np.exp(-beyond), 1e-300))
    return np.clip(np.nan_to_num(z, nan=0.0), -SCORE_CAP, SCORE_CAP).reshape(shape)


def scores(model: BehaviourModel, rows: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Normal scores of residuals ``r`` ((k,) or (k, G)) of ``rows`` of ``model``."""
    return _scores(model.quantiles[rows], model.tail_lo[rows], model.tail_hi[rows], r)


def raw_scores(model: BehaviourModel, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Normal scores of readings ``x`` ((k,) or (k, G)) among the levels ``rows`` have shown."""
    return _scores(model.raw_quantiles[rows], model.raw_tail_lo[rows], model.raw_tail_hi[rows], x)


# ---- first passage


def reach_probability(z0: np.ndarray, zb: np.ndarray, theta: np.ndarray, leads_s: np.ndarray) -> np.ndarray:
    """Chance that an OU process in normal scores, now at ``z0``, reaches ``zb`` by each lead.

    Three ways to reach it, combined as if independent (which errs high, the safe side):

    - *persistence*: at some lead the process is beyond the limit there; its law at lead ``h`` is
      ``N(z0 e^{-θh}, 1 - e^{-2θh})``, doubled by reflection (a path beyond at ``h`` touched the limit
      before, and about as many touched it and came back); a daily peak that brings the limit near
      is caught here;
    - *the excursion under way* climbs on to the limit before it comes back to the mean:
      ``S(z0)/S(zb)`` against the limit as it is now, once it had time to (a diffusion covers a gap
      ``g`` in about ``g²/(2θ)``, an excursion resolves in about ``1/(2θ)``);
    - *new excursions* reach the limit at the rate ``λ(zb)`` (the inverse mean first-passage time
      from the mean; from below the mean, once the start is forgotten), integrated over the leads.

    Against a Monte-Carlo simulation (tests/unit/test_behaviour.py) it stays between the simulated
    chance and twice it plus 0.03.

    Parameters
    ----------
    z0 : (k,) float64
        Current normal score (the limit lies above: ``zb > z0`` where it matters).
    zb : (k, G) float64
        The limit's normal score at each lead (a cycle moves it).
    theta : (k,) float64
        Mean-reversion rate, 1/s.
    leads_s : (G,) or (k, G) float64
        Ascending lead times, s (> 0), shared or per row.

    Returns
    -------
    (k, G) float64
        Cumulative probability of having reached the limit by each lead (non-decreasing along G).
    """
    z0 = np.asarray(z0, dtype=np.float64)[:, None]
    zb = np.minimum(np.asarray(zb, dtype=np.float64), SCORE_CAP)
    th = np.asarray(theta, dtype=np.float64)[:, None]
    h = np.asarray(leads_s, dtype=np.float64)
    h = h if h.ndim == 2 else h[None, :]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        decay = np.exp(-th * h)
        sd = np.sqrt(np.maximum(1.0 - decay * decay, 1e-12))
        # beyond the limit at some lead, doubled by reflection: a path that is beyond at h touched it
        # before, and as many touched it and came back (exact for a diffusion, high for OU)
        persist = np.maximum.accumulate(
            np.minimum(1.0, 2.0 * (1.0 - norm_cdf((zb - z0 * decay) / sd))), axis=1
        )
        # the excursion under way, against the limit as it is now (a cycle's dip is the persistence
        # term's: a transient dip counted for the whole excursion errs high many times over)
        zn = np.maximum(zb[:, :1], ZB_FLOOR)
        s_n, _ = _scaled_integrals(zn)
        z0p = np.clip(z0, 0.0, zn)
        s_0, _ = _scaled_integrals(z0p)
        direct = np.where(z0 > 0, s_0 / s_n * np.exp((z0p * z0p - zn * zn) * 0.5), 0.0)
        # it resolves within about 1/(2θ), and sooner for a limit near at hand (a diffusion covers a
        # gap g in about g²/(2θ))
        gap2 = np.clip((zn - z0p) ** 2, 1e-6, 1.0)
        direct = direct * (1.0 - np.exp(-2.0 * th * h / gap2))
        # new excursions: 1 / mean first-passage time from the mean (from below it, once the start is
        # forgotten); a
        # limit at or below the mean is met at once (the rate grows without bound as it comes down)
        zpos = np.maximum(zb, ZB_FLOOR)
        _, m_b = _scaled_integrals(zpos)
        rate = th / (math.sqrt(2.0 * math.pi) * m_b) * np.exp(-0.5 * zpos * zpos)
        forget = np.where(z0 < 0, 1.0 - decay, 1.0)  # from below the mean it must first come back
        lam = np.cumsum(rate * np.diff(h, axis=1, prepend=0.0) * forget, axis=1)
        p = 1.0 - (1.0 - persist) * (1.0 - direct) * np.exp(-lam)
    p = np.where(zb[:, :1] <= z0, 1.0, np.nan_to_num(p, nan=0.0))  # already at the limit
    return np.maximum.accumulate(np.clip(p, 0.0, 1.0), axis=1)


def lead_quantiles(cum: np.ndarray, leads_s: np.ndarray, probs: tuple[float, ...]) -> np.ndarray:
    """Lead times (s) at which each row's cumulative probability reaches each of ``probs``; inf if never.

    ``cum`` (k, G) non-decreasing, ``leads_s`` (G,) or (k, G); linear between grid points, from 0 at lead 0.
    """
    k = cum.shape[0]
    rows = np.arange(k)
    c = np.concatenate([np.zeros((k, 1)), cum], axis=1)
    h = np.asarray(leads_s, dtype=np.float64)
    h = np.broadcast_to(h if h.ndim == 2 else h[None, :], cum.shape)
    h = np.concatenate([np.zeros((k, 1)), h], axis=1)
    out = np.full((k, len(probs)), np.inf)
    for j, pr in enumerate(probs):
        reached = c >= pr
        i = np.argmax(reached, axis=1)
        i0 = np.maximum(i - 1, 0)
        c0, c1 = c[rows, i0], c[rows, i]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(c1 > c0, (pr - c0) / (c1 - c0), 1.0)
        h0, h1 = h[rows, i0], h[rows, i]
        out[:, j] = np.where(reached.any(axis=1), h0 + frac * (h1 - h0), np.inf)
    return out
