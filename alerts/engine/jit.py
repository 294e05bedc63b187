"""Fused per-sensor kernels for the tick's hot spots, compiled by numba when it is there.

Why: the vectorised numpy form of a streaming update makes ~40 passes over the round's arrays, each
with a temporary, and a round that covers part of a state pays a gather and a scatter on top. One
compiled loop keeps a sensor's sums in registers and touches each array element once, which is what
brings the 1 M-sensor tick near the memory floor (issue 15). The scalar functions below are the only
definition of that arithmetic for the compiled path; the numpy forms they replace stay in their
modules as the fallback, and tests/unit/test_jit_kernels.py holds the two equal.

`ENABLED` is False when numba cannot be imported or ``HAZMON_NUMBA=0`` (a platform without a numba
wheel, or to rule the compiler out when hunting a bug): callers then take their numpy path. Compiled
code is cached on disk (numba's ``cache=True``), so a restart does not pay the compile again.
"""

from __future__ import annotations

import math
import os

import numpy as np

try:  # numba is a dependency, but hazmon must still run where its wheel is missing
    import numba as _numba
except ImportError:  # pragma: no cover - exercised on platforms without numba
    _numba = None

ENABLED: bool = _numba is not None and os.environ.get("HAZMON_NUMBA", "1").strip() != "0"


def _compiled(fn):
    """numba's njit (no Python objects, GIL released, cached on disk), or the function itself without numba.

    Without numba the plain function still runs (slowly, one element at a time): tests call it that way
    to compare the scalar arithmetic with the numpy fallback on machines without a compiler.
    """
    if _numba is None:  # pragma: no cover
        return fn
    # error_model="numpy": a division by zero gives inf/NaN, as in the numpy code, instead of raising
    return _numba.njit(cache=True, nogil=True, error_model="numpy")(fn)


@_compiled
def trend_step(
    sums: np.ndarray,
    t_ref: np.ndarray,
    t_first: np.ndarray,
    x_ref: np.ndarray,
    x_last: np.ndarray,
    tau_s: np.ndarray,
    idx: np.ndarray,
    t: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
) -> None:
    """Add sample ``(t[i], y[i])`` to trend column ``idx[i]`` for every i, in place (forecast.update_trend).

    Same arithmetic, in the same order, as the numpy path of `alerts.engine.forecast.update_trend`: move
    the origin to the new sample with the binomial shift, decay by ``exp(-d/tau)`` (``Q`` sums by its
    square), add the sample at the origin. A non-finite or out-of-order sample leaves the column as it
    was; a fresh column (``t_ref`` NaN) starts at the sample. ``y`` is the de-seasonalised value, ``x``
    the raw one (kept as ``x_last``).
    """
    for i in range(idx.shape[0]):
        j = idx[i]
        tr = t_ref[j]
        ti = t[i]
        yi = y[i]
        fresh = math.isnan(tr)
        d = ti - tr
        good = math.isfinite(ti) and math.isfinite(x[i]) and (fresh or d >= 0.0)
        if not good:
            continue
        if fresh:
            d = 0.0
            e = 0.0
        else:
            e = yi - x_ref[j]
        w = sums[0, j]
        st = sums[1, j]
        sx = sums[2, j]
        stt = sums[3, j]
        stx = sums[4, j]
        sxx = sums[5, j]
        sttt = sums[6, j]
        q0 = sums[7, j]
        q1 = sums[8, j]
        q2 = sums[9, j]
        a = math.exp(-(d / tau_s[j]))
        a2 = a * a
        dw = d * w
        ew = e * w
        sttt = sttt - (3.0 * stt - (3.0 * st - dw) * d) * d
        stt = stt - (2.0 * st - dw) * d
        stx = stx - e * st - (sx - ew) * d
        sxx = sxx - (2.0 * sx - ew) * e
        st = st - dw
        sx = sx - ew
        dq0 = d * q0
        q2 = q2 - (2.0 * q1 - dq0) * d
        q1 = q1 - dq0
        sums[0, j] = w * a + 1.0
        sums[1, j] = st * a
        sums[2, j] = sx * a
        sums[3, j] = stt * a
        sums[4, j] = stx * a
        sums[5, j] = sxx * a
        sums[6, j] = sttt * a
        sums[7, j] = q0 * a2 + 1.0
        sums[8, j] = q1 * a2
        sums[9, j] = q2 * a2
        t_ref[j] = ti
        if fresh:
            t_first[j] = ti
        x_ref[j] = yi
        x_last[j] = x[i]


@_compiled
def round_samples_loop(
    row_of: np.ndarray,
    slot: np.ndarray,
    t_ms: np.ndarray,
    x: np.ndarray,
    fault_code: np.ndarray,
    x_last: np.ndarray,
    t_first: np.ndarray,
    x_short: np.ndarray,
    t_short: np.ndarray,
    step_s: np.ndarray,
    next_eval_s: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A round's samples of the early-warning rows, in one pass over the round (early_warning.on_round).

    Returns the positions i in the round with ``row_of[slot[i]] >= 0``, their rows, times (s), values
    (NaN where ``fault_code[slot]`` is not 0: a faulty instrument has no trend; ``fault_code`` empty =
    every instrument healthy) and whether each valid sample is due for a judgement
    (``t >= next_eval_s[row]``). Updates the rows' last value, first time and EW mean over one grid
    step (``exp(-gap/step)``) in place; rows are unique within a round.
    """
    n = slot.shape[0]
    check = fault_code.shape[0] > 0
    # rows are unique within a round: at most one sample per early-warning row. Sized by that, the
    # outputs of a 1 M-sensor round with a quarter forecast are 8 MB instead of 33 MB of fresh pages
    cap = min(n, x_last.shape[0])
    at = np.empty(cap, dtype=np.intp)
    rows = np.empty(cap, dtype=np.intp)
    t_s = np.empty(cap)
    xv = np.empty(cap)
    due = np.empty(cap, dtype=np.bool_)
    k = 0
    for i in range(n):
        s = slot[i]
        r = row_of[s]
        if r < 0:
            continue
        if k == cap:  # a row twice in one round: the caller broke the contract, never write past the end
            raise ValueError("round_samples: a row appears twice in one round")
        ti = t_ms[i] / 1000.0
        v = x[i]
        if check and fault_code[s] != 0:
            v = np.nan
        at[k], rows[k], t_s[k], xv[k] = i, r, ti, v
        due[k] = False
        k += 1
        if math.isnan(v):
            continue
        x_last[r] = v
        t_first[r] = min(t_first[r], ti) if not math.isnan(t_first[r]) else ti
        prev = t_short[r]
        if math.isnan(prev):
            x_short[r] = v
        else:
            keep = math.exp(-(ti - prev) / step_s[r])
            x_short[r] = keep * x_short[r] + (1.0 - keep) * v
        t_short[r] = ti
        due[k - 1] = ti >= next_eval_s[r]
    return at[:k], rows[:k], t_s[:k], xv[:k], due[:k]


@_compiled
def instrument_moves(
    t: np.ndarray,
    x: np.ndarray,
    last_x: np.ndarray,
    last_t: np.ndarray,
    diff: np.ndarray,
    d: np.ndarray,
    heard: np.ndarray,
    rate: np.ndarray,
    last_change_t: np.ndarray,
    frozen: np.ndarray,
    n_changes: np.ndarray,
    mad: np.ndarray,
    n_seen: np.ndarray,
    step_min: np.ndarray,
    slot: np.ndarray,
    full: bool,
    lo_tol: np.ndarray,
    hi_tol: np.ndarray,
    rate_alpha: float,
    mad_alpha: float,
    quick_samples: int,
    rate_new: np.ndarray,
    frozen_new: np.ndarray,
    change_t: np.ndarray,
    changes_new: np.ndarray,
    mad_new: np.ndarray,
    seen_new: np.ndarray,
    oor: np.ndarray,
) -> tuple:
    """How each reading of a round moves, in one pass: alarm_engine's health step with the shortcuts.

    Inputs are the round's rows (``heard`` empty when every sensor has been heard before); ``step_min``
    is the whole per-sensor array (``slot`` indexes it unless ``full``) and is lowered in place. Writes
    the rows' new rate since the last change, frozen samples, last change time, changes, mean absolute
    step, samples seen and out-of-range mask into the last seven arrays (distinct from the inputs), and
    returns three counts: rows out of range, rows frozen for at least ``quick_samples`` (a stuck verdict
    is due) and rows whose frozen stretch just ended.
    The arithmetic is kernels.change_rate, kernels.update_mad_abs and kernels.outside, in their order.
    """
    m = t.shape[0]
    has_heard = heard.shape[0] == m
    n_oor = 0
    n_frozen = 0
    n_ended = 0
    keep = 1.0 - mad_alpha
    for i in range(m):
        xi = x[i]
        changed = xi != last_x[i]  # NaN never equals: a change
        heard_i = True
        if has_heard:
            heard_i = heard[i]
            changed = changed or not heard_i
        step_ok = changed and heard_i
        lct = last_change_t[i]
        if step_ok:
            since = lct if lct >= 0 else last_t[i]
            rate_new[i] = rate[i] * (1.0 - rate_alpha) + (diff[i] / (t[i] - since)) * rate_alpha
        else:
            rate_new[i] = rate[i]
        fz = frozen[i]
        if changed:
            if fz >= quick_samples:
                n_ended += 1
            frozen_new[i] = 0
            change_t[i] = t[i]
        else:
            frozen_new[i] = fz + 1
            change_t[i] = lct
            if fz + 1 >= quick_samples:
                n_frozen += 1
        changes_new[i] = n_changes[i] + (1 if step_ok else 0)
        di = d[i]
        if step_ok and di > 0.0:
            j = i if full else slot[i]
            if di < step_min[j]:
                step_min[j] = di
        mi = mad[i]
        if has_heard and not heard_i:
            mad_new[i] = mi
        else:
            step = mi if math.isnan(di) else di
            if mi > 0.0:
                mad_new[i] = min(mi * 5.0, step) * mad_alpha + keep * mi
            else:
                mad_new[i] = step
        seen_new[i] = n_seen[i] + 1
        out = xi < lo_tol[i] or xi > hi_tol[i]
        oor[i] = out
        if out:
            n_oor += 1
    return n_oor, n_frozen, n_ended


@_compiled
def member_votes(
    active: np.ndarray,
    h_col: int,
    hh_col: int,
    fault_code: np.ndarray,
    members: np.ndarray,
    member_group: np.ndarray,
    k: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """kernels.group_votes straight from the engine's state: one pass over the voters.

    A voter votes when its H or HH is active and it has no instrument fault; a group with faulty
    voters needs ``k - faulty`` votes, at least 1. Returns (voted, degraded, votes) per group.
    """
    n_groups = k.shape[0]
    votes = np.zeros(n_groups, dtype=np.int64)
    faulty = np.zeros(n_groups, dtype=np.int64)
    for i in range(members.shape[0]):
        s = members[i]
        g = member_group[i]
        if fault_code[s] > 0:
            faulty[g] += 1
        elif active[s, h_col] or active[s, hh_col]:
            votes[g] += 1
    voted = np.empty(n_groups, dtype=np.bool_)
    degraded = np.empty(n_groups, dtype=np.bool_)
    for g in range(n_groups):
        voted[g] = votes[g] >= max(k[g] - faulty[g], 1)
        degraded[g] = faulty[g] > 0
    return voted, degraded, votes


def round_samples_numpy(
    row_of: np.ndarray,
    slot: np.ndarray,
    t_ms: np.ndarray,
    x: np.ndarray,
    fault_code: np.ndarray,
    x_last: np.ndarray,
    t_first: np.ndarray,
    x_short: np.ndarray,
    t_short: np.ndarray,
    step_s: np.ndarray,
    next_eval_s: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """numpy form of `round_samples_loop`."""
    rows = row_of[slot]
    at = np.flatnonzero(rows >= 0)
    r = rows[at]
    t_s = t_ms[at] / 1000.0
    xv = np.asarray(x, dtype=np.float64)[at]
    if len(fault_code):
        xv = np.where(fault_code[slot[at]] == 0, xv, np.nan)
    ok = ~np.isnan(xv)
    ro, to, xo = r[ok], t_s[ok], xv[ok]
    x_last[ro] = xo
    t_first[ro] = np.fmin(t_first[ro], to)
    prev = t_short[ro]
    keep = np.exp(-np.nan_to_num(to - prev, nan=np.inf) / step_s[ro])
    x_short[ro] = np.where(np.isnan(prev), xo, keep * x_short[ro] + (1 - keep) * xo)
    t_short[ro] = to
    due = t_s >= next_eval_s[r]
    due &= ok
    return at, r, t_s, xv, due


round_samples = round_samples_loop if ENABLED else round_samples_numpy
