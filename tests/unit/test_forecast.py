"""alerts/engine/forecast.py: streaming EW trends, forecast limit crossings, daily cycles, inverse velocity.

Scenarios are simulated vectorised over many sensors at once (one `update_trend` call per round, as
the engine does), on the physics of DOMAIN §7: a tank filling at 0.25 m/h, LPG sphere pressure and tank
temperature with daily cycles, pond level after rain, phreatic depth falling, tertiary creep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from alerts.engine.conditions import ConditionKind
from alerts.engine.forecast import (
    DAY_S,
    HOUR_S,
    InverseVelocityState,
    TrendState,
    WarningGrade,
    failure_time,
    forecast_crossing,
    limit_arrays,
    season_profile,
    sensor_params,
    trend_reach,
    trend_stats,
    update_inverse_velocity,
    update_trend,
)
from sensors.model import Limits, Sensor

T0 = 1_795_392_000.0  # 2026-11-23T16:00:00Z = midnight in Asia/Shanghai
MIN_S = 60.0


def local_hour(t_s: float) -> float:
    return ((t_s + 8 * HOUR_S) % DAY_S) / HOUR_S


def nan_limits(n: int) -> np.ndarray:
    return np.full((n, 2), np.nan)


@dataclass
class Run:
    """What a simulated run saw: warning counts and the first warning of each sensor."""

    warnings: int  # warned (sensor, forecast) pairs over the run
    first_warn_s: np.ndarray  # (n,) time of the first warning, NaN = never
    first_eta_s: np.ndarray  # (n,) eta at that warning
    first_low_s: np.ndarray
    first_high_s: np.ndarray
    first_kind: np.ndarray  # (n,) int8
    first_grade: np.ndarray  # (n,) int8
    state: TrendState


def simulate(
    state: TrendState,
    values: Callable[[float], np.ndarray],
    t_end_s: float,
    dt_s: float,
    lo: np.ndarray,
    hi: np.ndarray,
    horizon_s: np.ndarray | float,
    forecast_every: int = 1,
    t_start_s: float = T0,
) -> Run:
    """Feed one sample per sensor per round (a full round) and forecast every few rounds."""
    n = len(state)
    first = np.full(n, np.nan)
    eta, low, high = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    kind = np.full(n, -1, dtype=np.int8)
    grade = np.zeros(n, dtype=np.int8)
    warnings = 0
    for i, t in enumerate(np.arange(t_start_s, t_end_s, dt_s)):
        update_trend(state, None, np.full(n, t), values(float(t)))
        if i % forecast_every:
            continue
        c = forecast_crossing(state, float(t), lo, hi, horizon_s)
        warnings += int(c.warn.sum())
        new = c.warn & np.isnan(first)
        first[new], eta[new], low[new], high[new] = t, c.eta_s[new], c.eta_low_s[new], c.eta_high_s[new]
        kind[new], grade[new] = c.limit_kind[new], c.grade[new]
    return Run(warnings, first, eta, low, high, kind, grade, state)


# ---- streaming equals batch


def _irregular_series(rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, m) times with irregular gaps and values with trend, daily cycle, noise and NaN holes."""
    gaps = rng.choice([30.0, 60.0, 60.0, 90.0, 600.0, 3600.0], size=(n, m))
    t = T0 + np.cumsum(gaps, axis=1)
    x = 500.0 + 1e-4 * (t - T0) + 2.0 * np.cos(2 * np.pi * (t % DAY_S) / DAY_S) + rng.normal(0, 0.05, (n, m))
    x[rng.random((n, m)) < 0.05] = np.nan
    return t, x


def _assert_states_equal(a: TrendState, b: TrendState) -> None:
    for name in (
        "sums",
        "t_ref",
        "x_ref",
        "x_last",
        "t_first",
        "season",
        "season_t",
        "season_coef",
        "season_amp",
    ):
        np.testing.assert_allclose(
            getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=name
        )


def test_streaming_in_any_chunking_equals_one_sample_per_call() -> None:
    rng = np.random.default_rng(7)
    n, m = 6, 60
    t, x = _irregular_series(rng, n, m)
    daily = np.arange(n) % 2 == 0
    tau = rng.uniform(0.5, 8.0, n) * HOUR_S

    # one call per sample, sensor after sensor
    one = TrendState.empty(tau, daily)
    for i in range(n):
        for k in range(m):
            update_trend(one, np.array([i]), t[i, k : k + 1], x[i, k : k + 1])

    # full rounds (the fast path without gather/scatter)
    full = TrendState.empty(tau, daily)
    for k in range(m):
        update_trend(full, None, t[:, k], x[:, k])

    # rounds of shuffled slots, each split into random chunks; sensors advance at different paces
    chunked = TrendState.empty(tau, daily)
    pos = np.zeros(n, dtype=int)
    while (pos < m).any():
        live = np.flatnonzero(pos < m)
        slots = rng.permutation(live)[: rng.integers(1, live.size + 1)]
        for part in np.array_split(slots, rng.integers(1, 4)):
            if part.size:
                update_trend(chunked, part, t[part, pos[part]], x[part, pos[part]])
        pos[slots] += 1

    _assert_states_equal(one, full)
    _assert_states_equal(one, chunked)


def test_streaming_equals_the_closed_form_weighted_fit() -> None:
    rng = np.random.default_rng(11)
    n, m = 5, 300
    t, x = _irregular_series(rng, n, m)
    tau = np.array([0.5, 1.0, 2.0, 6.0, 24.0]) * HOUR_S
    state = TrendState.empty(tau)
    for k in range(m):
        update_trend(state, None, t[:, k], x[:, k])
    st = trend_stats(state)
    for i in range(n):
        ok = np.isfinite(x[i])
        ti, xi = t[i, ok], x[i, ok]
        w = np.exp(-(ti[-1] - ti) / tau[i])  # EW weights by the real time gaps
        u = ti - ti[-1]
        W = w.sum()
        mu, mx = (w * u).sum() / W, (w * xi).sum() / W
        ctt, ctx = (w * (u - mu) ** 2).sum() / W, (w * (u - mu) * (xi - mx)).sum() / W
        b = ctx / ctt
        resid = xi - (mx + b * (u - mu))
        n_eff = W**2 / (w**2).sum()
        s2 = (w * resid**2).sum() / W * n_eff / (n_eff - 2)
        se = np.sqrt(s2 * (w**2 * (u - mu) ** 2).sum()) / (W * ctt)
        assert st.slope[i] == pytest.approx(b, rel=1e-9)
        assert st.intercept[i] == pytest.approx(mx - b * mu, rel=1e-9)
        assert st.n_eff[i] == pytest.approx(n_eff, rel=1e-9)
        assert st.resid_sd[i] == pytest.approx(np.sqrt(s2), rel=1e-7)
        assert st.slope_se[i] == pytest.approx(se, rel=1e-7)
        assert st.t_mean_s[i] == pytest.approx(ti[-1] + mu, rel=1e-12)


def test_nan_and_out_of_order_samples_are_skipped() -> None:
    rng = np.random.default_rng(3)
    n, m = 4, 100
    t, x = _irregular_series(rng, n, m)
    x[np.isnan(x)] = 500.0
    holes = rng.random((n, m)) < 0.2
    holes[:, 0] = False
    daily = np.array([True, False, True, False])

    with_holes = TrendState.empty(np.full(n, 2 * HOUR_S), daily)
    x_holes = np.where(holes, np.nan, x)
    x_holes[0, 5] = np.inf  # non-finite counts as missing
    holes[0, 5] = True
    for k in range(m):
        update_trend(with_holes, None, t[:, k], x_holes[:, k])
        if k == 50:  # a late sample (older than the last one) is ignored
            update_trend(with_holes, np.array([1]), t[1, 10:11], np.array([1e6]))

    without = TrendState.empty(np.full(n, 2 * HOUR_S), daily)
    for i in range(n):
        keep = ~holes[i]
        for tk, xk in zip(t[i, keep], x[i, keep], strict=True):
            update_trend(without, np.array([i]), np.array([tk]), np.array([xk]))
    _assert_states_equal(with_holes, without)


def test_reset_forgets_only_the_given_slots() -> None:
    state = TrendState.empty(np.full(3, HOUR_S), np.array([True, False, True]))
    for k in range(100):
        update_trend(state, None, np.full(3, T0 + 60.0 * k), np.array([1.0, 2.0, 3.0]) + 0.01 * k)
    before = state.copy()
    state.reset([0, 1])
    fresh = TrendState.empty(np.full(3, HOUR_S), np.array([True, False, True]))
    for name in ("t_ref", "x_ref", "x_last", "t_first"):
        assert np.isnan(getattr(state, name)[:2]).all()
        assert getattr(state, name)[2] == getattr(before, name)[2]
    np.testing.assert_array_equal(state.sums[:, :2], fresh.sums[:, :2])
    np.testing.assert_array_equal(state.sums[:, 2], before.sums[:, 2])
    np.testing.assert_array_equal(state.season[:, 0], fresh.season[:, 0])
    np.testing.assert_array_equal(state.season[:, 1], before.season[:, 1])
    # a reset slot starts again from its next sample
    update_trend(state, np.array([0]), np.array([T0 + 1e5]), np.array([7.0]))
    assert state.t_first[0] == T0 + 1e5 and state.sums[0, 0] == 1.0


# ---- forecast of a crossing


def test_linear_ramp_gives_eta_within_a_few_percent_and_a_band_holding_the_truth() -> None:
    rng = np.random.default_rng(1)
    n = 200
    rate = 0.25 / HOUR_S  # m/s: 500 m³/h into a 50 m tank (DOMAIN §7.1)
    state = TrendState.empty(np.full(n, 2 * HOUR_S))
    lo, hi = np.tile([1.5, 1.0], (n, 1)), np.tile([16.5, 18.0], (n, 1))
    for k in range(4 * 60):
        t = T0 + 60.0 * k
        update_trend(state, None, np.full(n, t), 10.0 + rate * (t - T0) + rng.normal(0, 0.01, n))
    now = T0 + 4 * HOUR_S - 60.0
    truth = T0 + 6.5 / rate
    c = forecast_crossing(state, now, lo, hi, 24 * HOUR_S)
    assert (c.limit_kind == ConditionKind.H).all() and (c.limit_value == 16.5).all()
    assert np.abs(c.eta_s - truth).max() < 0.03 * (truth - now)
    assert ((c.eta_low_s <= truth) & (truth <= c.eta_high_s)).mean() >= 0.95
    assert (c.eta_low_s <= c.eta_s).all() and (c.eta_s <= c.eta_high_s).all()
    assert c.significant.all() and c.warn.all()
    assert (c.grade == WarningGrade.BLUE).all()  # ~22 h ahead


def test_a_smooth_trend_band_centres_on_the_line_and_only_a_gusty_one_is_pulled_early_by_touches() -> None:
    """A noisy level about a steady fill reaches the limit about when the line does; counting every
    chance touch of the noise (right for a plume's gusts) would place the crossing hours early."""
    rng = np.random.default_rng(2)
    n = 50
    rate = 0.25 / HOUR_S
    state = TrendState.empty(np.full(n, 2 * HOUR_S))
    lo, hi = np.tile([1.5, 1.0], (n, 1)), np.tile([12.5, 18.0], (n, 1))
    for k in range(4 * 60):
        t = T0 + 60.0 * k
        update_trend(state, None, np.full(n, t), 10.0 + rate * (t - T0) + rng.normal(0, 0.15, n))
    now = T0 + 4 * HOUR_S - 60.0
    truth = T0 + 2.5 / rate  # 6 h ahead
    c = forecast_crossing(state, now, lo, hi, 24 * HOUR_S)
    rows = np.arange(n)
    leads = np.tile(np.linspace(0.25, 24.0, 96) * HOUR_S, (n, 1))
    theta = np.full(n, 1 / 60.0)  # the noise forgets itself within a minute

    def median_s(touches: bool) -> np.ndarray:
        cum = trend_reach(c, rows, leads, theta, noise_sd=np.full(n, 0.15), touches=np.full(n, touches))
        assert (np.diff(cum, axis=1) >= 0).all()
        return leads[rows, np.argmax(cum >= 0.5 * cum[:, -1:], axis=1)]

    line, gusts = median_s(False), median_s(True)
    assert np.abs(np.median(now + line) - truth) < 0.1 * (truth - now)
    assert np.median(gusts) < np.median(line) - 1 * HOUR_S  # 4.5 h against 6 h


def test_limit_in_the_direction_of_travel_and_no_warning_beyond_it() -> None:
    # rising below H -> H; rising between H and HH -> HH; falling -> L before LL; no limit that way -> none
    n = 5
    start = np.array([10.0, 17.0, 5.0, 10.0, 10.0])
    rate = np.array([1.0, 1.0, -1.0, -1.0, 1.0]) * 0.1 / HOUR_S
    lo = np.array([[2.0, 1.0], [2.0, 1.0], [2.0, 1.0], [np.nan, np.nan], [2.0, 1.0]])
    hi = np.array([[16.5, 18.0], [16.5, 18.0], [16.5, 18.0], [16.5, 18.0], [np.nan, np.nan]])
    state = TrendState.empty(np.full(n, HOUR_S))
    for k in range(180):
        t = T0 + 60.0 * k
        update_trend(state, None, np.full(n, t), start + rate * (t - T0))
    c = forecast_crossing(state, T0 + 179 * 60.0, lo, hi, 1000 * HOUR_S)
    np.testing.assert_array_equal(c.limit_kind, [ConditionKind.H, ConditionKind.HH, ConditionKind.L, -1, -1])
    np.testing.assert_array_equal(c.limit_value[:3], [16.5, 18.0, 2.0])
    assert np.isinf(c.eta_s[3:]).all() and not c.warn[3:].any()
    assert c.warn[:3].all()

    # the last raw value already beyond the limit the line is heading for: an alarm, not a warning
    state.x_last[0] = 16.6
    assert not forecast_crossing(state, T0 + 179 * 60.0, lo, hi, 1000 * HOUR_S).warn[0]


def test_warnings_are_graded_by_lead_time() -> None:
    # ramps that reach H in about 1, 4, 9, 18 and 40 h
    lead_h = np.array([1.0, 4.0, 9.0, 18.0, 40.0])
    n = lead_h.size
    rate = 1.0 / HOUR_S
    state = TrendState.empty(np.full(n, HOUR_S))
    now = T0 + 3 * HOUR_S
    for t in np.arange(T0, now + 1, 60.0):
        update_trend(state, None, np.full(n, t), 100.0 - lead_h + rate * (t - now))
    c = forecast_crossing(state, now, nan_limits(n), np.full((n, 2), 100.0), 48 * HOUR_S)
    np.testing.assert_allclose((c.eta_s - now) / HOUR_S, lead_h, rtol=1e-6)
    np.testing.assert_array_equal(
        c.grade,
        [WarningGrade.RED, WarningGrade.ORANGE, WarningGrade.YELLOW, WarningGrade.BLUE, WarningGrade.BLUE],
    )
    custom = forecast_crossing(
        state,
        now,
        nan_limits(n),
        np.full((n, 2), 100.0),
        48 * HOUR_S,
        grade_bounds_s=(0.5 * HOUR_S, 2 * HOUR_S, 5 * HOUR_S, 10 * HOUR_S),
    )
    np.testing.assert_array_equal(custom.grade, [3, 2, 1, 1, 1])
    # outside the horizon: no warning, no grade
    short = forecast_crossing(state, now, nan_limits(n), np.full((n, 2), 100.0), 5 * HOUR_S)
    np.testing.assert_array_equal(short.warn, [True, True, False, False, False])
    np.testing.assert_array_equal(short.grade, [4, 3, 0, 0, 0])


# ---- fleets: many sensors simulated together, shared by the tests below


def _sensor(kind: str, limits: Limits | None = None) -> Sensor:
    return Sensor(
        id="S1",
        site="s",
        name="n",
        kind=kind,
        unit="m",
        range=(0.0, 1.0),
        interval_s=60.0,
        limits=limits or Limits(),
    )


def _first_crossing(
    values: Callable[[float], np.ndarray],
    limit: np.ndarray,
    t_end_s: float,
    rising: bool = True,
    sl: slice = slice(None),
) -> np.ndarray:
    """Time at which each noise-free series ``values(t)[sl]`` first reaches its limit (10-min
    resolution), NaN = never."""
    t = np.arange(T0, t_end_s, 600.0)
    v = np.array([values(float(s))[sl] for s in t])  # (T, n)
    beyond = v >= limit if rising else v <= limit
    return np.where(beyond.any(axis=0), t[np.argmax(beyond, axis=0)], np.nan)


NOISE, WALK, TANK = slice(0, 1000), slice(1000, 2000), slice(2000, 2050)


@pytest.fixture(scope="module")
def level_fleet() -> tuple[Run, np.ndarray]:
    """Tank levels, 2 days of 1-min samples: 1000 flat with σ 5 cm noise, 1000 small random walks, and
    50 tanks filling at ~0.25 m/h (DOMAIN §7.1) from 10 m towards H = 16.5 m. Returns the run and the
    tanks' true crossing times."""
    rng = np.random.default_rng(2024)
    n = 2050
    tau, horizon, _ = sensor_params([_sensor("level")] * n)
    lo, hi = np.tile([1.5, 1.0], (n, 1)), np.tile([16.5, 18.0], (n, 1))
    rate = rng.uniform(0.2, 0.3, 50) / HOUR_S
    start = 10.0 + rng.uniform(-0.5, 0.5, 50)
    t = T0 + 60.0 * np.arange(2 * 24 * 60)
    x = np.empty((t.size, n))  # (n_rounds, n_sensors), generated up front
    x[:, NOISE] = 10.0 + rng.normal(0, 0.05, (t.size, 1000))
    x[:, WALK] = rng.normal(0, 0.005, (t.size, 1000))  # steps of 5 mm/min: ~0.27 m after 2 days
    np.cumsum(x[:, WALK], axis=0, out=x[:, WALK])
    x[:, WALK] += 10.0
    x[:, TANK] = np.minimum(start + rate * (t[:, None] - T0), 18.5) + rng.normal(0, 0.002, (t.size, 50))
    run = simulate(
        TrendState.empty(tau),
        lambda s: x[round((s - T0) / 60.0)],
        T0 + 2 * DAY_S,
        60.0,
        lo,
        hi,
        horizon,
        forecast_every=15,
    )
    return run, T0 + (16.5 - start) / rate


@pytest.mark.deep
def test_noise_and_small_random_walks_raise_no_warning(level_fleet: tuple[Run, np.ndarray]) -> None:
    """1000 flat noisy sensors and 1000 random walks, 2 days of 1-min samples: no warning at all."""
    run, _ = level_fleet
    assert np.isnan(run.first_warn_s[NOISE]).all()
    assert np.isnan(run.first_warn_s[WALK]).all()


@pytest.mark.deep
def test_tank_filling_at_a_quarter_metre_per_hour_is_warned_hours_before_h(
    level_fleet: tuple[Run, np.ndarray],
) -> None:
    run, crossing = level_fleet
    lead_h = (crossing - run.first_warn_s[TANK]) / HOUR_S
    assert (lead_h >= 6.0).all()  # the issue asks for 6 h; with a 24 h horizon the physics gives ~20 h
    assert (run.first_kind[TANK] == ConditionKind.H).all()
    # the first warning comes when the band's late end enters the horizon, so it is selected on the
    # early side of the band; the central eta is still within 2 % of the time left
    assert (np.abs(run.first_eta_s[TANK] - crossing) <= 0.02 * (crossing - run.first_warn_s[TANK])).all()


LPG, TEMP, LPG_24H, TEMP_24H, NAIVE, RISE, POND, PHREATIC = (slice(20 * i, 20 * i + 20) for i in range(8))
WEATHER = slice(0, 120)
DATUM = 510.0  # pond elevation datum (m): the sums must not lose precision at ~500 m elevations


def _slow_fleet_values(rng: np.random.Generator) -> tuple[Callable[[float], np.ndarray], np.ndarray]:
    """Clean values of 160 sensors and their noise σ.

    Weather-driven, each with a daily cycle plus a second harmonic (a real day is not a sinusoid):
    LPG sphere pressure (~0.8 ± 0.1..0.2 MPa, peak mid-afternoon, DOMAIN §7.2) and tank temperatures
    (25..30 ± 4..8 °C), each twice (two horizons); temperatures without a daily model (NAIVE); temperatures
    starting a real rise of 0.5 °C/h on day 3 (RISE). Tailings: pond levels rising 3-6 cm/h after rain
    from hour 12 (POND); phreatic depths falling 3-5 cm/h from 7 m (PHREATIC).
    """
    amp_p, amp_t = rng.uniform(0.1, 0.2, 20), rng.uniform(4.0, 8.0, 20)
    peak_p, peak_t = rng.uniform(14.5, 16.5, 20), rng.uniform(15.0, 18.0, 20)
    mean_p, mean_t = rng.uniform(0.75, 0.85, 20), rng.uniform(25.0, 30.0, 20)
    amp = np.r_[amp_p, amp_t, amp_p, amp_t, amp_t, amp_t]
    peak = np.r_[peak_p, peak_t, peak_p, peak_t, peak_t, peak_t]
    mean = np.r_[mean_p, mean_t, mean_p, mean_t, mean_t, mean_t]
    rise = rng.uniform(0.03, 0.06, 20) / HOUR_S
    fall = rng.uniform(0.03, 0.05, 20) / HOUR_S

    def clean(t: float) -> np.ndarray:
        phase = 2 * np.pi * (local_hour(t) - peak) / 24
        weather = mean + amp * np.cos(phase) + 0.25 * amp * np.cos(2 * phase + 0.5)
        weather[RISE] += 0.5 * max(0.0, (t - T0 - 3 * DAY_S) / HOUR_S)
        pond = DATUM + 3.5 + rise * max(t - T0 - 12 * HOUR_S, 0.0)
        return np.concatenate((weather, pond, 7.0 - fall * (t - T0)))

    weather_noise = np.tile(np.r_[np.full(20, 0.005), np.full(20, 0.05)], 3)
    return clean, np.r_[weather_noise, np.full(20, 0.005), np.full(20, 0.01)]


@pytest.fixture(scope="module")
def slow_fleet() -> tuple[Run, np.ndarray, Callable[[float], np.ndarray]]:
    """5 days of 15-min samples of `_slow_fleet_values`; returns the run, the true first crossing of
    each sensor's nearest limit (NaN = never) and the clean values."""
    rng = np.random.default_rng(5)
    clean, noise = _slow_fleet_values(rng)
    kinds = [
        "pressure",
        "temperature",
        "pressure",
        "temperature",
        "temperature",
        "temperature",
        "pond_level",
        "phreatic_depth",
    ]
    tau, horizon, daily = sensor_params([_sensor(k) for k in kinds for _ in range(20)])
    assert daily[WEATHER].all() and not daily[POND].any() and not daily[PHREATIC].any()
    daily[NAIVE] = False  # the control group
    horizon[LPG_24H] = 24 * HOUR_S
    lpg, temp = np.tile([1.45, 1.6], (20, 1)), np.tile([45.0, 55.0], (20, 1))
    hi = np.r_[lpg, temp, lpg, temp, temp, temp, np.tile([DATUM + 4.5, DATUM + 7.3], (20, 1)), nan_limits(20)]
    lo = np.r_[nan_limits(140), np.tile([5.28, 4.8], (20, 1))]  # phreatic orange = 1.1 x red (GB 51108 8.3)
    run = simulate(
        TrendState.empty(tau, daily),
        lambda t: clean(t) + rng.normal(0, noise),
        T0 + 5 * DAY_S,
        900.0,
        lo,
        hi,
        horizon,
    )
    crossing = np.r_[
        _first_crossing(clean, hi[:140, 0], T0 + 5 * DAY_S, sl=slice(0, 140)),
        _first_crossing(clean, lo[PHREATIC, 0], T0 + 5 * DAY_S, rising=False, sl=PHREATIC),
    ]
    return run, crossing, clean


@pytest.mark.deep
def test_daily_cycles_raise_no_warning_over_five_days(slow_fleet: tuple[Run, np.ndarray, Callable]) -> None:
    """LPG sphere pressure (H 1.45 / HH 1.6 MPa) and tank temperatures follow the weather: no warnings,
    with the kinds' horizons (pressure 2 h, temperature 24 h) and with 24 h for the spheres too."""
    run, crossing, clean = slow_fleet
    assert np.isnan(crossing[:80]).all()  # the cycles never reach H
    assert np.isnan(run.first_warn_s[:80]).all()
    # the daily model has learnt each cycle: its amplitude bound is between half the swing and the sum
    # of the two harmonics' amplitudes (1.25 x amp)
    t = T0 + 4 * DAY_S + np.arange(0.0, DAY_S, 900.0)
    half_swing = np.ptp([clean(float(s))[:80] for s in t], axis=0) / 2
    amp = run.state.season_amp[:80]
    assert (amp >= 0.95 * half_swing).all() and (amp <= 1.3 * half_swing).all()


@pytest.mark.deep
def test_without_the_daily_model_the_cycle_would_warn(slow_fleet: tuple[Run, np.ndarray, Callable]) -> None:
    """The control group: the same temperatures without a daily model: the afternoon rise projects
    across H within 24 h, which is why daily kinds get a model."""
    run, crossing, _ = slow_fleet
    assert np.isnan(crossing[NAIVE]).all() and np.isfinite(run.first_warn_s[NAIVE]).all()


@pytest.mark.deep
def test_real_temperature_rise_on_top_of_the_daily_cycle_is_warned(
    slow_fleet: tuple[Run, np.ndarray, Callable],
) -> None:
    run, crossing, _ = slow_fleet
    assert np.isfinite(crossing[RISE]).all()
    assert (run.first_warn_s[RISE] > T0 + 3 * DAY_S).all()  # nothing before the rise starts
    assert ((crossing[RISE] - run.first_warn_s[RISE]) / HOUR_S >= 6.0).all()
    assert (run.first_kind[RISE] == ConditionKind.H).all()


@pytest.mark.deep
def test_pond_level_rising_after_rain_is_warned(slow_fleet: tuple[Run, np.ndarray, Callable]) -> None:
    run, crossing, _ = slow_fleet
    assert np.isfinite(crossing[POND]).all()
    assert ((crossing[POND] - run.first_warn_s[POND]) / HOUR_S >= 6.0).all()
    assert (run.first_kind[POND] == ConditionKind.H).all()


def test_phreatic_depth_falling_towards_its_l_limit_is_warned(
    slow_fleet: tuple[Run, np.ndarray, Callable],
) -> None:
    run, crossing, _ = slow_fleet
    assert np.isfinite(crossing[PHREATIC]).all()
    assert ((crossing[PHREATIC] - run.first_warn_s[PHREATIC]) / HOUR_S >= 6.0).all()
    assert (run.first_kind[PHREATIC] == ConditionKind.L).all()


def test_season_profile_learns_the_cycle() -> None:
    state = TrendState.empty(np.full(1, 6 * HOUR_S), np.ones(1, bool))
    cycle = lambda t: 3.0 * np.cos(2 * np.pi * (local_hour(t) - 15) / 24)  # noqa: E731
    for t in np.arange(T0, T0 + 1.5 * DAY_S, 1200.0):
        update_trend(state, None, np.array([t]), np.array([20.0 + cycle(t)]))
    times = T0 + 1.5 * DAY_S + np.arange(0, DAY_S, HOUR_S)
    value, amplitude = season_profile(state, times, np.zeros(times.size, dtype=int))
    np.testing.assert_allclose(value, [cycle(t) for t in times], atol=0.05)
    np.testing.assert_allclose(amplitude, 3.0, rtol=0.02)


# ---- inverse velocity (Fukuzono)


def _creep(t: np.ndarray | float, v0: float, t_onset: float, tf: float) -> np.ndarray:
    """Cumulative displacement: constant rate v0, then 1/v falling linearly to 0 at tf (mm)."""
    t = np.asarray(t, dtype=np.float64)
    c = v0 * (tf - t_onset)
    tertiary = c * np.log((tf - t_onset) / np.maximum(tf - np.maximum(t, t_onset), 1.0))
    return v0 * (np.minimum(t, t_onset) - T0) + tertiary


def test_tertiary_creep_is_warned_with_a_failure_time_close_to_the_truth() -> None:
    """20 GNSS points in tertiary creep (5 days at 2 mm/day, then 1/v falling to 0 over 10 days), 20 in
    steady creep and 20 still, 30-min solutions with σ 0.7 mm (simulators/signals.py)."""
    rng = np.random.default_rng(13)
    n = 60
    acc, steady, still = slice(0, 20), slice(20, 40), slice(40, 60)
    v0 = 2.0 / DAY_S
    t_onset, tf = T0 + 5 * DAY_S, T0 + 15 * DAY_S
    state = InverseVelocityState.empty(n)
    first, tf_hat, low, high = (np.full(n, np.nan) for _ in range(4))
    for k, t in enumerate(np.arange(T0, tf - 1800.0, 1800.0)):
        x = np.r_[np.full(20, _creep(t, v0, t_onset, tf)), np.full(20, v0 * (t - T0)), np.zeros(20)]
        update_inverse_velocity(state, None, np.full(n, t), x + rng.normal(0, 0.7, n))
        if k % 2:
            continue
        f = failure_time(state, float(t))
        new = f.warn & np.isnan(first)
        first[new], tf_hat[new], low[new], high[new] = t, f.tf_s[new], f.tf_low_s[new], f.tf_high_s[new]
    assert np.isnan(first[steady]).all() and np.isnan(first[still]).all()
    assert np.isfinite(first[acc]).all() and (first[acc] > t_onset).all()
    lead = tf - first[acc]
    assert (lead >= 12 * HOUR_S).all()
    rel_err = np.abs(tf_hat[acc] - tf) / lead  # error relative to the time left when warned
    assert np.median(rel_err) <= 0.15 and rel_err.max() <= 0.2
    assert (low[acc] <= tf_hat[acc]).all() and (tf_hat[acc] <= high[acc]).all()


def test_inverse_velocity_ignores_missing_samples_and_lapses_when_creep_stops() -> None:
    n = 2
    state = InverseVelocityState.empty(n)
    v0 = 2.0 / DAY_S
    t_onset, tf = T0 + 5 * DAY_S, T0 + 10 * DAY_S
    for t in np.arange(T0, tf - 12 * HOUR_S, 1800.0):
        x = np.full(n, _creep(t, v0, t_onset, tf))
        x[1] = np.nan if int(t / 1800) % 3 == 0 else x[1]
        update_inverse_velocity(state, None, np.full(n, t), x)
    now = tf - 12 * HOUR_S
    assert failure_time(state, now).warn.all()
    # the creep stops: no more significant velocity, nothing fed, the warning lapses
    frozen = _creep(now, v0, t_onset, tf)
    for t in np.arange(now, now + 2 * DAY_S, 1800.0):
        update_inverse_velocity(state, None, np.full(n, t), np.full(n, frozen))
    assert not failure_time(state, now + 2 * DAY_S).warn.any()


# ---- registry helpers


def test_sensor_params_and_limit_arrays() -> None:
    sensors = [
        _sensor("gas_lel", Limits(h=25.0, hh=50.0)),
        _sensor("level", Limits(ll=1.0, l=1.5, h=16.5)),
        _sensor("temperature"),
        _sensor("displacement"),
    ]
    tau, horizon, daily = sensor_params(sensors, horizons_s={"level": 8 * HOUR_S})
    np.testing.assert_array_equal(tau, [15 * 60.0, 2 * HOUR_S, 6 * HOUR_S, 3 * DAY_S])
    np.testing.assert_array_equal(horizon, [24 * HOUR_S, 8 * HOUR_S, 24 * HOUR_S, 24 * HOUR_S])
    np.testing.assert_array_equal(daily, [False, False, True, False])
    lo, hi = limit_arrays(sensors)
    np.testing.assert_array_equal(lo, [[np.nan, np.nan], [1.5, 1.0], [np.nan, np.nan], [np.nan, np.nan]])
    np.testing.assert_array_equal(hi, [[25.0, 50.0], [16.5, np.nan], [np.nan, np.nan], [np.nan, np.nan]])


def test_one_round_over_many_sensors_is_vectorised() -> None:
    """Smoke: one update and one forecast over 100 000 sensors (timing is reported, not asserted)."""
    rng = np.random.default_rng(0)
    n = 100_000
    state = TrendState.empty(np.full(n, 2 * HOUR_S), rng.random(n) < 0.2)
    for k in range(3):
        update_trend(state, None, np.full(n, T0 + 60.0 * k), 10.0 + rng.normal(0, 0.01, n))
    c = forecast_crossing(
        state, T0 + 120.0, np.tile([1.5, 1.0], (n, 1)), np.tile([16.5, 18.0], (n, 1)), 24 * HOUR_S
    )
    assert c.eta_s.shape == (n,) and c.grade.dtype == np.int8 and not c.warn.any()
