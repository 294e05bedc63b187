"""alerts/engine/behaviour.py: the normal distribution, what `fit_behaviour` learns from a sensor's history,
and the chance of reaching a limit (`reach_probability`) against a Monte-Carlo simulation of the same process.

Series are synthetic on the learner's grid (10-minute bin means), seeded, a few days to a month long.
"""

from __future__ import annotations

import math
from dataclasses import fields
from statistics import NormalDist

import numpy as np
import pytest

from alerts.engine.behaviour import (
    DAY_BINS,
    DAY_S,
    PROBS,
    SCORE_CAP,
    SHRINK,
    Z_PROBS,
    BehaviourModel,
    fit_behaviour,
    lead_quantiles,
    norm_cdf,
    norm_ppf,
    raw_scores,
    reach_probability,
    scores,
)

T0 = 1_795_392_000.0  # 2026-11-23T00:00:00Z, a Monday, midnight UTC
STEP = 600.0  # the learner's grid for a day horizon: 10-minute bins
HOUR = 3600.0
TWO_HOURS = np.array([[2 * HOUR]])  # the tank-level trend memory, one channel


def grid(days: float) -> np.ndarray:
    """Bin centres of `days` of 10-minute bins from T0."""
    return T0 + (np.arange(round(days * DAY_S / STEP)) + 0.5) * STEP


def windows(m: int, w: float = 2 * HOUR) -> np.ndarray:
    return np.full((m, 1), w)


def profile_at_bins(model: BehaviourModel) -> np.ndarray:
    """(m, DAY_BINS) daily part of each row at the half-hour bin centres (UTC)."""
    t = T0 + (np.arange(DAY_BINS) + 0.5) * DAY_S / DAY_BINS
    return model.season_at(np.tile(t, (len(model), 1)))


def ou_paths(rng: np.random.Generator, m: int, n: int, theta: float, step: float = STEP) -> np.ndarray:
    """(m, n) stationary Ornstein-Uhlenbeck paths of unit variance, exact steps of `step` s."""
    a = math.exp(-theta * step)
    noise = rng.normal(0.0, math.sqrt(1 - a * a), (m, n))
    x = np.empty((m, n))
    x[:, 0] = rng.normal(0.0, 1.0, m)
    for i in range(1, n):
        x[:, i] = a * x[:, i - 1] + noise[:, i]
    return x


# ---- the normal distribution


def test_norm_cdf_matches_erfc_with_relative_accuracy_into_the_far_tails():
    z = np.array([-8.0, -6.0, -4.0, -1.96, -1.0, 0.0, 1.0, 1.96, 3.0, 5.0])
    exact = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in z])
    got = norm_cdf(z)
    np.testing.assert_allclose(got, exact, rtol=2e-7)
    assert got[-3] == pytest.approx(0.975, abs=1e-5)  # Φ(1.96)
    assert got[0] == pytest.approx(6.22096e-16, rel=1e-5)  # Φ(-8): a tail, not 0
    assert got[2] == pytest.approx(3.16712e-5, rel=1e-5)  # Φ(-4)
    assert norm_cdf(np.array([1.0])).shape == (1,)


def test_norm_ppf_matches_the_exact_inverse_and_inverts_norm_cdf():
    nd = NormalDist()
    p = np.concatenate([np.logspace(-300, -2, 60), np.linspace(0.01, 0.99, 99), 1 - np.logspace(-15, -2, 30)])
    exact = np.array([nd.inv_cdf(float(v)) for v in p])
    got = norm_ppf(p)
    np.testing.assert_allclose(got[p <= 0.5], exact[p <= 0.5], rtol=2e-9, atol=1e-12)
    # above 0.5 the input itself carries the error (1 - p rounds): absolute, not relative
    np.testing.assert_allclose(got[p > 0.5], exact[p > 0.5], atol=1e-8)
    assert norm_ppf(np.array([0.975]))[0] == pytest.approx(1.959964, abs=1e-6)
    # ppf inverts cdf over the range the scores use (|z| <= 6 keeps 1 - Φ(z) representable)
    z = np.linspace(-8.0, 6.0, 281)
    np.testing.assert_allclose(norm_ppf(norm_cdf(z)), z, atol=2e-7)
    lower = p[(p >= 1e-15) & (p <= 0.5)]  # z >= -8: further out ppf's error is multiplied by |z|
    np.testing.assert_allclose(norm_cdf(norm_ppf(lower)), lower, rtol=2e-7)


# ---- fitting: what is learned


def test_level_of_a_flat_noisy_series_and_the_fit_time_is_the_end_of_the_grid():
    rng = np.random.default_rng(1)
    t = grid(10)
    noise = rng.normal(0, 0.3, t.size)
    m = fit_behaviour(50.0 + noise[None], T0, STEP, TWO_HOURS)
    assert m.fitted_ms[0] == round((T0 + t.size * STEP) * 1000)
    assert m.level[0] == pytest.approx(50.0, abs=0.03)
    assert m.span_s[0] == (t.size - 1) * STEP
    # the residual's quantiles are the noise's (2 % .. 98 %; the outer ones rest on a few bins)
    inner = slice(2, -2)
    np.testing.assert_allclose(m.quantiles[0, inner], np.quantile(noise, PROBS[inner]), atol=0.04)
    # no cycle to learn: what the profile picks up is the noise of 30-value medians (σ ≈ 0.07)
    assert np.abs(profile_at_bins(m)).max() < 0.2


def test_a_square_wave_day_and_a_sine_day_are_learned_shrunk_by_the_days_behind_them():
    rng = np.random.default_rng(2)
    days = 10
    t = grid(days)
    hour = (t % DAY_S) / HOUR
    square = np.where((hour >= 8) & (hour < 20), 3.0, -3.0)  # a day shift and a night shift
    sine = 2.0 * np.sin(2 * np.pi * t / DAY_S)
    v = np.vstack([50 + square, 50 + sine]) + rng.normal(0, 0.2, (2, t.size))
    m = fit_behaviour(v, T0, STEP, windows(2))
    shrink = days / (days + SHRINK)  # each profile value counts n / (n + SHRINK) for its n days
    prof = profile_at_bins(m)
    bin_hour = (np.arange(DAY_BINS) + 0.5) / 2
    inside_day = (bin_hour > 9) & (bin_hour < 19)
    inside_night = (bin_hour < 7) | (bin_hour > 21)  # away from the switch, where bins interpolate
    np.testing.assert_allclose(prof[0, inside_day], 3.0 * shrink, atol=0.15)
    np.testing.assert_allclose(prof[0, inside_night], -3.0 * shrink, atol=0.15)
    truth = 2.0 * np.sin(2 * np.pi * bin_hour / 24) * shrink
    np.testing.assert_allclose(prof[1], truth, atol=0.15)
    assert m.level[1] == pytest.approx(50.0, abs=0.1)
    # the square wave's shrunk profile leaves ±3 (1 - shrink) by shift: two equal modes, and the median
    # that sets the level may fall anywhere between them
    assert m.level[0] == pytest.approx(50.0, abs=3.0 * (1 - shrink))
    # a profile is learned, not a weekly pattern (10 days < two weeks)
    assert (m.season[:, DAY_BINS:] == 0).all()


def test_a_weekday_offset_is_learned_only_from_two_weeks_of_history():
    rng = np.random.default_rng(3)

    def sundays_up(days: float) -> BehaviourModel:
        t = grid(days)
        sunday = ((np.floor(t / DAY_S).astype(int) + 3) % 7) == 6  # T0 is a Monday
        v = 20.0 + 2.0 * sunday + rng.normal(0, 0.2, t.size)
        return fit_behaviour(v[None], T0, STEP, TWO_HOURS)

    two_weeks = sundays_up(15)
    weekly = two_weeks.season[0, DAY_BINS:]
    assert weekly[6] - weekly[:6].mean() == pytest.approx(2.0, abs=0.15)
    assert np.ptp(weekly[:6]) < 0.1 and abs(weekly.sum()) < 1e-9  # offsets average to 0
    for days in (7, 13.5):  # one week, and just short of two: no weekly offsets at all
        assert (sundays_up(days).season[0, DAY_BINS:] == 0).all(), days


def test_the_mean_reversion_rate_of_a_simulated_ou_is_recovered_to_its_order_of_magnitude():
    """30 days at 10-min steps, 12 sensors at each of two time constants (2 h and 6 h), with the
    product's slow lag (3 h, a day horizon / 8). The fit's spread over sensors is the sampling error of
    an autocorrelation over ~60-360 correlation times; the median must be within a factor 1.5, each
    sensor within 2.5, and the two time constants must come out apart."""
    rng = np.random.default_rng(42)
    n = round(30 * DAY_S / STEP)
    taus = np.repeat([2 * HOUR, 6 * HOUR], 12)
    v = np.vstack([ou_paths(rng, 12, n, 1 / tau) for tau in (2 * HOUR, 6 * HOUR)])
    m = fit_behaviour(20.0 + v, T0, STEP, windows(24), slow_lag_s=3 * HOUR)
    ratio = m.theta * taus
    for group in (ratio[:12], ratio[12:]):
        assert 1 / 1.5 <= np.median(group) <= 1.5, group
        assert ((group > 1 / 2.5) & (group < 2.5)).all(), group
    assert np.median(m.theta[:12]) > 2 * np.median(m.theta[12:])
    assert (m.slow_share > 0.9).all()  # a pure OU: all of its variance is slow


def test_the_rate_envelope_is_the_fastest_ordinary_rise_and_fall_over_each_trend_memory():
    """A tank that fills at 0.5 m/h for 6 h and empties at 0.25 m/h for 12 h, for 10 days."""
    rng = np.random.default_rng(4)
    t = grid(10)
    phase = ((t - T0) / HOUR) % 18
    v = 10 + np.where(phase < 6, 0.5 * phase, 3 - 0.25 * (phase - 6)) + rng.normal(0, 0.01, t.size)
    w = np.array([[1 * HOUR, 2 * HOUR], [2 * HOUR, np.nan]])  # two channels; the second row has one
    m = fit_behaviour(np.vstack([v, v]), T0, STEP, w)
    np.testing.assert_allclose(m.rate_hi[0] * HOUR, 0.5, rtol=0.05)
    np.testing.assert_allclose(m.rate_lo[0] * HOUR, -0.25, rtol=0.08)
    assert m.rate_hi[1, 0] == m.rate_hi[0, 1]  # the same memory gives the same envelope
    assert np.isnan(m.rate_hi[1, 1]) and np.isnan(m.rate_lo[1, 1])  # no memory, no envelope


def test_rows_with_fewer_than_eight_valid_bins_stay_unfitted():
    rng = np.random.default_rng(5)
    v = np.full((4, 100), np.nan)
    v[0] = 5.0 + rng.normal(0, 0.1, 100)
    v[1, :7] = 5.0  # seven bins
    v[2, [3, 50, 60, 70, 80, 90, 95, 99]] = 5.0 + rng.normal(0, 0.1, 8)  # eight, scattered
    # row 3: nothing at all
    m = fit_behaviour(v, T0, STEP, windows(4))
    assert (m.fitted_ms[[0, 2]] > 0).all()
    assert (m.fitted_ms[[1, 3]] == -1).all()
    assert np.isnan(m.level[[1, 3]]).all() and np.isnan(m.quantiles[[1, 3]]).all()
    assert m.span_s[2] == 96 * STEP


def test_nan_gaps_are_tolerated_and_change_little():
    """30 % of the bins missing at random and a day and a half missing outright."""
    rng = np.random.default_rng(6)
    t = grid(10)
    full = 10 + 2 * np.sin(2 * np.pi * t / DAY_S) + rng.normal(0, 0.2, t.size)
    gappy = full.copy()
    gappy[rng.random(t.size) < 0.3] = np.nan
    gappy[round(3 * DAY_S / STEP) : round(4.5 * DAY_S / STEP)] = np.nan
    m = fit_behaviour(np.vstack([full, gappy]), T0, STEP, windows(2))
    assert (m.fitted_ms >= 0).all()
    for name in ("level", "season", "quantiles", "tail_lo", "tail_hi", "theta", "slow_share", "rate_hi"):
        assert np.isfinite(getattr(m, name)).all(), name
    assert m.level[1] == pytest.approx(m.level[0], abs=0.1)
    prof = profile_at_bins(m)
    assert np.abs(prof[1] - prof[0]).max() < 0.4  # of a cycle of ±2 (the gappy one is shrunk more)
    assert np.abs(m.quantiles[1] - m.quantiles[0]).max() < 0.4


def test_the_excursion_under_way_is_not_learned_as_normal():
    """Quiet for 10 days (σ 0.1), then a ramp of 1 m/h for the last 3 h (shorter than two 2-h trend
    memories): the learned quantiles and rate envelope are the quiet ones. With a 10-minute memory
    the same ramp is older than two memories, part of the history, and widens them: the exclusion is
    what keeps them narrow."""
    rng = np.random.default_rng(7)
    t = grid(10)
    quiet = 10 + rng.normal(0, 0.1, t.size)
    ramp = quiet.copy()
    ramp[-18:] += np.arange(1, 19) * STEP / HOUR  # +3 m over the last 3 h
    m = fit_behaviour(np.vstack([quiet, ramp]), T0, STEP, windows(2))
    np.testing.assert_allclose(m.quantiles[1], m.quantiles[0], atol=0.01)
    np.testing.assert_allclose(m.raw_quantiles[1], m.raw_quantiles[0], atol=0.01)
    assert m.rate_hi[1, 0] == pytest.approx(m.rate_hi[0, 0], rel=0.05)
    assert m.quantiles[1, -1] < 0.35 and m.rate_hi[1, 0] * HOUR < 0.1
    short = fit_behaviour(ramp[None], T0, STEP, np.array([[STEP]]))
    assert short.quantiles[0, -1] > 2.0 and short.rate_hi[0, 0] * HOUR > 1.0


# ---- normal scores and lead quantiles


def _model_with_quantiles(q: np.ndarray, tail: float) -> BehaviourModel:
    m = BehaviourModel.empty(1)
    m.quantiles[0] = q
    m.raw_quantiles[0] = q + 100.0
    m.tail_lo[0] = m.tail_hi[0] = m.raw_tail_lo[0] = m.raw_tail_hi[0] = tail
    return m


def test_scores_map_the_quantiles_to_their_normal_scores_and_extrapolate_with_exponential_tails():
    q = np.array([-5.0, -3.0, -2.0, -1.0, -0.4, 0.0, 0.5, 1.2, 2.5, 4.0, 7.0])  # skewed, heavy on top
    tail = 0.8
    m = _model_with_quantiles(q, tail)
    rows = np.array([0])
    np.testing.assert_allclose(scores(m, rows, q[None]), Z_PROBS[None], atol=1e-9)
    mid = 0.5 * (q[:-1] + q[1:])
    np.testing.assert_allclose(scores(m, rows, mid[None])[0], 0.5 * (Z_PROBS[:-1] + Z_PROBS[1:]), atol=1e-9)
    # one tail scale beyond the outer quantiles: the tail probability is e times smaller
    beyond = np.array([[q[-1] + tail, q[0] - tail, q[-1] + 10 * tail]])
    p_hi, p_lo = 1 - PROBS[-1], PROBS[0]
    expect = [-norm_ppf(np.array([p_hi / math.e]))[0], norm_ppf(np.array([p_lo / math.e]))[0]]
    np.testing.assert_allclose(scores(m, rows, beyond)[0, :2], expect, rtol=1e-6)
    assert scores(m, rows, beyond)[0, 2] == pytest.approx(-norm_ppf(np.array([p_hi * math.exp(-10)]))[0])
    # monotone everywhere, and capped far out
    r = np.linspace(-200, 200, 40001)
    z = scores(m, rows, r[None])[0]
    assert (np.diff(z) >= 0).all()
    assert z[0] == -SCORE_CAP and z[-1] == SCORE_CAP
    # the raw view uses its own quantiles
    np.testing.assert_allclose(raw_scores(m, rows, (q + 100.0)[None]), Z_PROBS[None], atol=1e-9)


def test_lead_quantiles_interpolate_a_known_cumulative_curve():
    leads = np.arange(1, 11) * 100.0
    cum = np.vstack([leads / 1000.0, np.minimum(leads / 500.0, 0.6)])  # straight; flat at 0.6 from 300 s
    out = lead_quantiles(cum, leads, (0.5, 0.05, 0.9))
    np.testing.assert_allclose(out[0], [500.0, 50.0, 900.0])  # 0.05 lies between 0 at lead 0 and 100 s
    np.testing.assert_allclose(out[1, :2], [250.0, 25.0])
    assert out[1, 2] == np.inf  # never reaches 0.9
    per_row = lead_quantiles(cum[:1], 2 * leads[None], (0.5,))  # leads given per row
    assert per_row[0, 0] == 1000.0


# ---- first passage against Monte Carlo


def first_passage_mc(
    z0: float, zb, theta: float, horizon: float, n_paths: int = 20_000, n_steps: int = 400, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative chance that an OU in normal scores (dz = -θz dt + √(2θ) dW) started at z0 has reached
    the boundary zb(t) by each time of a grid of n_steps; returns (times, cumulative chance).

    Exact OU steps; between steps a Brownian bridge gives the chance of a crossing unseen at the grid
    points (exp(-2 g0 g1 / (2θ dt)) for gaps g0, g1 to a boundary linear within the step). Without it
    400 steps would miss crossings: plain monitoring converges to the same value from below (checked
    against 4000 plain steps when these cases were chosen).
    """
    rng = np.random.default_rng(seed)
    dt = horizon / n_steps
    a = math.exp(-theta * dt)
    s = math.sqrt(1 - a * a)
    t = np.arange(n_steps + 1) * dt
    b = zb(t)
    z = np.full(n_paths, float(z0))
    alive = np.where(z < b[0], 1.0, 0.0)  # chance of not having crossed yet, per path
    cum = np.empty(n_steps + 1)
    cum[0] = 1 - alive.mean()
    for i in range(n_steps):
        zn = a * z + s * rng.standard_normal(n_paths)
        g0, g1 = b[i] - z, b[i + 1] - zn
        cross = np.where((g0 > 0) & (g1 > 0), np.exp(-g0 * g1 / (theta * dt)), 1.0)
        alive *= 1.0 - cross
        z = zn
        cum[i + 1] = 1 - alive.mean()
    return t, cum


THETA = 1 / HOUR


def _compare(z0: float, zb_top: float, theta_h: float, dip: float) -> tuple[np.ndarray, ...]:
    """(approximation, Monte Carlo, its standard error) at 8 leads over the horizon θH; the boundary
    dips by `dip` in the middle of the horizon (a daily peak brings the limit nearer)."""
    horizon = theta_h / THETA

    def zb(t):
        return zb_top - dip * np.sin(np.pi * np.clip(t / horizon, 0, 1)) ** 2

    t, cum = first_passage_mc(z0, zb, THETA, horizon)
    leads = horizon * np.arange(1, 9) / 8
    mc = np.interp(leads, t, cum)
    approx = reach_probability(np.array([z0]), zb(leads)[None], np.array([THETA]), leads)[0]
    return approx, mc, np.sqrt(np.maximum(mc * (1 - mc), 1e-6) / 20_000)


#: (z0, zb, θH, dip): limits near the present and far from it, horizons from half to eight
#: mean-reversion times, and moving boundaries (a daily peak brings the limit nearer). The formula
#: doubles the chance of being beyond the limit at a lead (reflection: exact for a diffusion, high
#: for OU), so 2·MC + 0.03 bounds how pessimistic it may be (a false warning); MC - 3 standard errors
#: is the simulation's own noise, and no case may fall below it (a missed warning).
CASES = [
    (0.0, 3.5, 2.0, 0.0),
    (1.0, 3.5, 2.0, 0.0),
    (2.0, 3.5, 2.0, 0.0),
    (1.0, 2.5, 8.0, 0.0),
    (2.0, 3.5, 8.0, 0.0),
    (2.0, 3.0, 0.5, 0.0),
    (1.5, 3.0, 2.0, 0.3),
    pytest.param(0.0, 0.5, 1.0, 0.0, id="close-limit-from-the-mean"),  # MC 0.765
    pytest.param(2.0, 2.25, 0.5, 0.0, id="close-limit-high-up"),  # MC 0.597
    pytest.param(0.0, 2.0, 2.0, 0.0, id="two-scores-away"),  # MC 0.164
    pytest.param(1.0, 3.0, 2.0, 1.0, id="dip-by-one-score"),  # MC 0.178
    pytest.param(2.0, 3.5, 1.0, 1.5, id="dip-to-the-present"),  # MC 0.362
]


@pytest.mark.parametrize(("z0", "zb", "theta_h", "dip"), CASES)
@pytest.mark.deep
def test_reach_probability_errs_high_but_within_bounds_of_monte_carlo(z0, zb, theta_h, dip):
    approx, mc, se = _compare(z0, zb, theta_h, dip)
    assert (approx >= mc - 3 * se).all(), (approx, mc)
    assert (approx <= 2.0 * mc + 0.03).all(), (approx, mc)


def test_reach_probability_grows_with_the_lead_the_present_and_a_lower_limit():
    leads = HOUR * np.arange(1, 17) / 4
    theta = np.full(1, THETA)
    # in the lead, for assorted starts and moving limits
    rng = np.random.default_rng(8)
    z0 = rng.uniform(-3, 3, 200)
    zb = z0[:, None] + rng.uniform(0.05, 4, (200, 1)) + 0.5 * np.sin(leads / HOUR)[None]
    p = reach_probability(z0, zb, np.full(200, THETA), leads)
    assert (np.diff(p, axis=1) >= 0).all() and ((p >= 0) & (p <= 1)).all()
    # in the present, the limit fixed
    for theta_h in (0.25, 1.0, 4.0):
        h = leads * theta_h / 4
        for limit in (0.5, 1.0, 2.0, 3.0, 5.0):
            start = np.linspace(-4.0, limit - 1e-3, 300)
            p = reach_probability(start, np.full((300, 16), limit), np.full(300, THETA), h)
            assert (np.diff(p, axis=0) >= -1e-12).all(), (theta_h, limit)
    # in the limit, above the mean (and above the present)
    for theta_h in (0.25, 1.0, 4.0):
        h = leads * theta_h / 4
        for start in (-3.0, -1.0, 0.0, 1.0, 2.5):
            limit = np.linspace(max(start, 0.0) + 0.05, 8.4, 300)
            p = reach_probability(np.full(300, start), np.repeat(limit[:, None], 16, 1), theta.repeat(300), h)
            assert (np.diff(p, axis=0) <= 1e-12).all(), (theta_h, start)
    assert reach_probability(np.array([2.0]), np.full((1, 16), 1.5), theta, leads)[0, 0] == 1.0  # beyond


def test_reach_probability_does_not_jump_when_the_limit_crosses_the_mean():
    leads = HOUR * np.arange(1, 17) / 16
    limit = np.array([-0.2, 0.0, 0.01, 0.2, 0.5])
    p = reach_probability(np.full(5, -1.0), np.repeat(limit[:, None], 16, 1), np.full(5, THETA), leads)[:, -1]
    assert (np.diff(p) <= 1e-12).all(), p


# ---- keeping the model


def test_save_and_load_round_trip_by_sensor_id(tmp_path):
    rng = np.random.default_rng(9)
    t = grid(3)
    v = np.vstack([10 + rng.normal(0, s, t.size) for s in (0.1, 0.2, 0.3)])
    model = fit_behaviour(v, T0, STEP, windows(3))
    path = tmp_path / "behaviour.npz"
    model.save(path, ["s1/A", "s1/B", "s1/C"])
    assert not (tmp_path / "behaviour.npz.tmp").exists()
    # B left the registry, NEW joined it, the order changed
    loaded = BehaviourModel.load(path, ["s1/C", "s1/NEW", "s1/A"])
    expect = model.take(np.array([2, 0]))
    for name in (f.name for f in fields(BehaviourModel)):
        got = getattr(loaded, name)[[0, 2]]
        np.testing.assert_array_equal(got, getattr(expect, name), err_msg=name)
    assert loaded.fitted_ms[1] == -1 and np.isnan(loaded.level[1]) and loaded.span_s[1] == 0
    # a second trend channel since: its rates are unknown, the first channel's kept
    wider = BehaviourModel.load(path, ["s1/A"], n_rates=2)
    assert wider.rate_hi[0, 0] == model.rate_hi[0, 0] and np.isnan(wider.rate_hi[0, 1])
    # nobody known: all rows empty
    assert (BehaviourModel.load(path, ["x/Y"]).fitted_ms == -1).all()
