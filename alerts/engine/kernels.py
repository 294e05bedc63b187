"""Pure numpy kernels of the alarm engine: limits, delays, rate of change, staleness, faults, votes.

Conventions (STYLE.md): inputs are 1-D arrays over the sensors touched in one step (`m` of
them) or over all sensors (`n`); float64 with NaN for "missing / not configured"; outputs are
new arrays, inputs are never mutated. Times are int64 milliseconds (event time) unless a name
says `_s`. Nothing here loops over sensors in Python.
"""

from __future__ import annotations

import numpy as np

SPIKE_MIN_FRACTION = 0.05  # a spike must also exceed this share of the instrument span ...
SPIKE_WARMUP = 20  # ... and comes only after this many samples of the sensor
MAD_ALPHA = 0.05  # weight of a new |Δx| in the mean absolute difference
STUCK_QUICK_SAMPLES = 6  # fewest frozen samples of any stuck verdict
STUCK_SLOW_SAMPLES = 60
RANGE_TOLERANCE = 0.01  # out of range: beyond the range by this share of its span
CHANGE_RATE_ALPHA = 0.3  # weight of a new step in the rate since the last change (stuck check)

# ---- limits with deadband hysteresis


def limit_conditions(
    x: np.ndarray, limits: np.ndarray, deadband: np.ndarray, was_raw: np.ndarray
) -> np.ndarray:
    """Raw (undelayed) LL/L/H/HH conditions with deadband hysteresis.

    Parameters
    ----------
    x : (m,) float64
        Values; NaN gives no condition.
    limits : (m, 4) float64
        Columns LL, L, H, HH; NaN where a limit is not configured.
    deadband : (m,) float64
        In the sensor's unit; a condition that is on clears only past limit ∓ deadband.
    was_raw : (m, 4) bool
        The raw conditions after the previous sample (for hysteresis).

    Returns
    -------
    (m, 4) bool
        High limits trip at x >= limit and clear at x < limit - deadband; low limits mirror it.
    """
    xc = x[:, None]
    db = deadband[:, None]
    with np.errstate(invalid="ignore"):
        low_on = np.where(was_raw[:, :2], xc < limits[:, :2] + db, xc <= limits[:, :2])
        high_on = np.where(was_raw[:, 2:], xc > limits[:, 2:] - db, xc >= limits[:, 2:])
    return np.concatenate([low_on, high_on], axis=1) & ~np.isnan(limits) & ~np.isnan(xc)


# ---- on/off delays


def apply_delays(
    raw: np.ndarray,
    active: np.ndarray,
    pending_since: np.ndarray,
    t_ms: np.ndarray,
    on_delay_ms: np.ndarray,
    off_delay_ms: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Debounce conditions: a change must persist for its delay before it takes effect.

    Parameters
    ----------
    raw, active : (m, k) bool
        The undelayed condition now, and the delayed (effective) condition so far.
    pending_since : (m, k) int64
        Event time at which raw first differed from active; -1 when they agree.
    t_ms : (m,) int64
        Event time of this evaluation (a sample, or the clock for time-driven checks).
    on_delay_ms, off_delay_ms : (m,) or (m, k) int64
        How long raw must stay on (off) before active turns on (off).

    Returns
    -------
    active, pending_since : (m, k) bool, (m, k) int64
    """
    t = t_ms[:, None]
    on_d = on_delay_ms if on_delay_ms.ndim == 2 else on_delay_ms[:, None]
    off_d = off_delay_ms if off_delay_ms.ndim == 2 else off_delay_ms[:, None]
    differs = raw != active
    since = np.where(differs, np.where(pending_since >= 0, pending_since, t), -1)
    delay = np.where(raw, on_d, off_d)
    flip = differs & (t - since >= delay)
    new_active = np.where(flip, raw, active)
    return new_active, np.where(flip, -1, since)


# ---- rate of change


def rate_of_change(
    x: np.ndarray,
    t_ms: np.ndarray,
    anchor_x: np.ndarray,
    anchor_t_ms: np.ndarray,
    prev_x: np.ndarray,
    prev_t_ms: np.ndarray,
    window_ms: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rate per minute over about one window, with an O(1) anchor per sensor.

    The anchor is the oldest sample kept; once it is older than the window, the previous sample
    becomes the anchor, so the rate spans between one and two windows of history.

    Returns
    -------
    rate_per_min : (m,) float64 (NaN until two samples exist)
    anchor_x, anchor_t_ms : the updated anchors
    """
    stale_anchor = (anchor_t_ms < 0) | (t_ms - anchor_t_ms > window_ms)
    use_prev = stale_anchor & (prev_t_ms >= 0)
    new_ax = np.where(use_prev, prev_x, np.where(anchor_t_ms < 0, x, anchor_x))
    new_at = np.where(use_prev, prev_t_ms, np.where(anchor_t_ms < 0, t_ms, anchor_t_ms))
    dt_min = (t_ms - new_at) / 60_000.0
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(dt_min > 0, (x - new_ax) / dt_min, np.nan)
    return rate, new_ax, new_at


# ---- staleness, rolled up by device


def stale_sensors(now_ms: int, last_t_ms: np.ndarray, stale_after_ms: np.ndarray) -> np.ndarray:
    """(n,) bool: no sample for longer than stale_after_ms (last_t_ms holds the start time if none)."""
    return (now_ms - last_t_ms) > stale_after_ms


def device_rollup(
    now_ms: int,
    stale: np.ndarray,
    ref_ms: np.ndarray,
    stale_after_ms: np.ndarray,
    device_of: np.ndarray,
    n_devices: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fold sensor staleness into device staleness, so one silent gateway is one incident.

    A device is silent when none of its sensors has spoken for longer than the shortest stale time
    among the sensors that were still alive when it last spoke (a sensor dead long before does not
    set the pace). A stale sensor is reported on its own only when its device has spoken since the
    sensor went overdue; sensors that fell silent together with their device are held for the
    device's verdict instead of being reported one by one.

    Parameters
    ----------
    now_ms : int
    stale : (n,) bool
        Sensors judged stale (`stale_sensors`, less any the caller does not judge).
    ref_ms : (n,) int64
        Last sample time per sensor (or the time judging began, for sensors never heard).
    stale_after_ms : (n,) int64
    device_of : (n,) int64
        Device index of each sensor, -1 for sensors without a device (or not judged).
    n_devices : int

    Returns
    -------
    device_stale : (n_devices,) bool
    sensor_stale : (n,) bool
        Stale sensors reported one by one.
    device_silent_at : (n_devices,) int64
        Event time at which each device became (or will become) silent; int64 min for no members.
    """
    overdue_at = ref_ms + stale_after_ms
    has = device_of >= 0
    dev = device_of[has]
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    last = np.full(n_devices, lo, dtype=np.int64)
    np.maximum.at(last, dev, ref_ms[has])
    after_h = stale_after_ms[has]
    alive = ref_ms[has] >= last[dev] - after_h
    pace = np.full(n_devices, hi, dtype=np.int64)
    np.minimum.at(pace, dev[alive], after_h[alive])
    members = np.bincount(dev, minlength=n_devices) > 0
    silent_at = np.where(members, last + np.where(members, pace, 0), lo)
    device_stale = members & (now_ms > silent_at)
    alone = ~has
    alone[has] = ~device_stale[dev] & (last[dev] >= overdue_at[has])
    return device_stale, stale & alone, silent_at


# ---- instrument faults


def out_of_range(
    x: np.ndarray, lo: np.ndarray, hi: np.ndarray, tolerance: float = RANGE_TOLERANCE
) -> np.ndarray:
    """(m,) bool: outside the instrument range by more than `tolerance` of its span.

    A reading at full scale (a saturated gas detector in a real release) is not a fault.
    """
    margin = (hi - lo) * tolerance
    return outside(x, lo - margin, hi + margin)


def outside(x: np.ndarray, lo_tol: np.ndarray, hi_tol: np.ndarray) -> np.ndarray:
    """(m,) bool: `out_of_range` against bounds that already include the tolerance (precomputed once)."""
    return (x < lo_tol) | (x > hi_tol)


def robust_jump(
    x: np.ndarray,
    prev_x: np.ndarray,
    mad: np.ndarray,
    span: np.ndarray,
    n_seen: np.ndarray,
    k: float = 10.0,
    min_fraction: float = SPIKE_MIN_FRACTION,
    warmup: int = SPIKE_WARMUP,
) -> np.ndarray:
    """(m,) bool: a jump far outside the sensor's usual sample-to-sample change.

    `mad` is an exponentially weighted mean absolute difference (a robust scale that single
    outliers barely move); a jump must exceed k * mad and a share of the span, after warm-up.
    """
    with np.errstate(invalid="ignore"):
        return (n_seen >= warmup) & jump_beyond(np.abs(x - prev_x), mad, min_fraction * span, k)


def jump_beyond(d: np.ndarray, mad: np.ndarray, floor: np.ndarray, k: float = 10.0) -> np.ndarray:
    """(m,) bool: `robust_jump` past warm-up, from the absolute steps ``d`` and ``floor`` = the span's share.

    One threshold ``max(k * mad, floor)`` instead of two comparisons; NaN (no mad yet) is no jump.
    """
    thr = np.multiply(mad, k)
    np.maximum(thr, floor, out=thr)
    return d > thr


def change_rate(
    rate: np.ndarray,
    diff: np.ndarray,
    t: np.ndarray,
    last_change_t: np.ndarray,
    last_t: np.ndarray,
    stepped: np.ndarray | None = None,
) -> np.ndarray:
    """(m,) float64: the EW rate (units/ms, weight CHANGE_RATE_ALPHA) of the reading since it last changed.

    A quantised signal steps once in a while, and its step over one sample interval would overstate
    how fast it moves, so a step ``diff`` is spread over the time since the last change
    (``last_change_t``, or ``last_t`` before any; ``t > last_t >= last_change_t``). Rows where
    ``stepped`` is False keep ``rate``; None = every row stepped.
    """
    step = diff / (t - np.where(last_change_t >= 0, last_change_t, last_t))
    step *= CHANGE_RATE_ALPHA
    new = rate * (1 - CHANGE_RATE_ALPHA)
    new += step
    return new if stepped is None else np.where(stepped, new, rate)


def update_mad(mad: np.ndarray, x: np.ndarray, prev_x: np.ndarray, alpha: float = MAD_ALPHA) -> np.ndarray:
    """Exponentially weighted mean |Δx|, with jumps clipped so a spike cannot inflate it."""
    d = np.abs(x - prev_x)
    d = np.where(np.isnan(d), mad, d)
    clipped = np.minimum(d, np.where(mad > 0, 5 * mad, d))
    return np.where(np.isnan(mad) | (mad == 0), d, (1 - alpha) * mad + alpha * clipped)


def update_mad_abs(mad: np.ndarray, d: np.ndarray, alpha: float = MAD_ALPHA) -> np.ndarray:
    """`update_mad` from the absolute steps ``d = |x - prev_x|``, in fewer passes; the same numbers.

    Parameters
    ----------
    mad : (m,) float64
        Mean absolute difference so far: >= 0, NaN (or 0) before the first step.
    d : (m,) float64
        Absolute step of each sensor; NaN = no step (the mean is kept).

    Returns
    -------
    (m,) float64
        A new array; for mad >= 0 or NaN, bit for bit what `update_mad` returns.
    """
    if np.isnan(d).any():
        d = np.where(np.isnan(d), mad, d)
    with np.errstate(invalid="ignore"):
        blend = np.multiply(mad, 5.0)
        np.minimum(blend, d, out=blend)  # the step, clipped at 5 mad
        blend *= alpha
        blend += (1 - alpha) * mad
        return np.where(mad > 0, blend, d)  # NaN or 0: the step itself


def stuck_condition(
    frozen_samples: np.ndarray,
    frozen_ms: np.ndarray,
    expected_move: np.ndarray,
    noise: np.ndarray,
    varies: np.ndarray,
    may_flatline: np.ndarray,
    min_ms: np.ndarray | int = 300_000,
    resolution: np.ndarray | float = 0.0,
    normal_flat_ms: np.ndarray | float = 0.0,
    at_rest: np.ndarray | bool = False,
    quick_samples: int = STUCK_QUICK_SAMPLES,
    slow_samples: int = STUCK_SLOW_SAMPLES,
    slow_ms: int = 30 * 60_000,
) -> np.ndarray:
    """(m,) bool: a flatlined instrument.

    Two ways to be stuck: quickly, when the sensor's own recent trend says it should have moved
    by well over its noise and several steps of its resolution while frozen (a level gauge stuck
    during a fill, Buncefield 2005); or slowly, when a sensor that normally varies has not changed
    for many intervals and at least 30 minutes. Either needs the reading frozen for at least
    `min_ms` (the registry's `stuck_after_s`, minutes by default): a gas detector of 1 %LEL
    resolution in a steady release reads the same number for a while, and is not faulty for it.

    The sensor's own history counts too (learned by the engine): `normal_flat_ms` is the longest
    flat stretch it recently came out of by itself, and the slow way needs twice that; `at_rest`
    marks a reading at the value it rests at (a bursty signal back at its usual zero), which the
    quick way leaves alone. Sensors that legitimately sit still (a dry rain gauge) are exempt.
    """
    floor = np.maximum(5.0 * np.maximum(noise, 1e-12), 3.0 * np.asarray(resolution, dtype=np.float64))
    quick = (frozen_samples >= quick_samples) & (expected_move > floor) & ~np.asarray(at_rest, dtype=bool)
    slow_after = np.maximum(np.maximum(slow_ms, min_ms), 2.0 * np.asarray(normal_flat_ms, dtype=np.float64))
    slow = (frozen_samples >= slow_samples) & (frozen_ms >= slow_after) & varies
    return (quick | slow) & (frozen_ms >= min_ms) & ~may_flatline


# ---- k-out-of-n voting


def group_votes(
    member_alarm: np.ndarray, member_faulty: np.ndarray, group_of: np.ndarray, n_groups: int, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vote per group, degrading when voters are faulty.

    Parameters
    ----------
    member_alarm, member_faulty : (n,) bool
        A member in alarm (H or above), a member with an instrument fault.
    group_of : (n,) int64
        Group index per sensor, -1 for none.
    k : (n_groups,) int64
        Votes needed with every voter healthy (2 for 2oo3).

    Returns
    -------
    voted : (n_groups,) bool
    degraded : (n_groups,) bool
        At least one voter is faulty; the vote then needs k - faulty (at least 1): a 2oo3
        group with one faulty detector acts as 1oo2, erring on the safe side.
    votes : (n_groups,) int64
    """
    has = group_of >= 0
    g = group_of[has]
    votes = np.bincount(g, weights=(member_alarm & ~member_faulty)[has], minlength=n_groups).astype(np.int64)
    faulty = np.bincount(g, weights=member_faulty[has], minlength=n_groups).astype(np.int64)
    need = np.maximum(k - faulty, 1)
    return votes >= need, faulty > 0, votes
