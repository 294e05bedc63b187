"""The compiled kernels (alerts/engine/jit.py) give the numbers of the numpy code they replace.

numba is optional at run time (HAZMON_NUMBA=0, or no wheel): a fleet must warn the same either way.
"""

from __future__ import annotations

import numpy as np
import pytest

from alerts.engine import jit
from alerts.engine.alarm_engine import AlarmEngine
from alerts.engine.early_warning import attach_early_warnings
from alerts.engine.forecast import DAY_S, HOUR_S, TrendState, update_trend
from alerts.engine.kernels import group_votes
from alerts.engine.warm_up import warm_up_kernels
from sensors.index import SensorIndex
from sensors.readings import ReadingBatch
from simulators.generate import generate_registry
from tests.unit.test_early_warning import engine_for, fill_then_hold, run, tank

T0 = 1_795_392_000.0  # s


@pytest.fixture
def numpy_only(monkeypatch: pytest.MonkeyPatch):
    """Every caller of jit takes its numpy path, as on a machine without numba."""

    def use() -> None:
        monkeypatch.setattr(jit, "ENABLED", False)
        monkeypatch.setattr(jit, "round_samples", jit.round_samples_numpy)

    return use


def _feed(state: TrendState, t: np.ndarray, x: np.ndarray, seed: int) -> TrendState:
    """Rounds of shuffled, partial and full slot sets, with NaN values and samples out of order."""
    rng = np.random.default_rng(seed)
    n, m = t.shape
    for k in range(m):
        if k % 5 == 0:
            update_trend(state, None, t[:, k], x[:, k])  # a full round
            continue
        slots = rng.permutation(n)[: rng.integers(1, n + 1)]
        tk = t[slots, k].copy()
        late = rng.random(slots.size) < 0.05
        tk[late] -= 5000.0  # older than the last sample: skipped
        update_trend(state, slots, tk, x[slots, k])
    return state


def _series(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = T0 + np.cumsum(rng.choice([30.0, 60.0, 90.0, 600.0, 3600.0], size=(n, m)), axis=1)
    x = 500.0 + 1e-4 * (t - T0) + 2.0 * np.cos(2 * np.pi * (t % DAY_S) / DAY_S) + rng.normal(0, 0.05, (n, m))
    x[rng.random((n, m)) < 0.05] = np.nan
    x[rng.random((n, m)) < 0.01] = np.inf
    return t, x


def _states(n: int, seed: int) -> TrendState:
    rng = np.random.default_rng(seed)
    return TrendState.empty(rng.uniform(0.5, 8.0, n) * HOUR_S, np.arange(n) % 3 == 0)


@pytest.mark.skipif(not jit.ENABLED, reason="numba is not installed or HAZMON_NUMBA=0")
def test_compiled_trend_update_equals_the_numpy_update(numpy_only) -> None:
    t, x = _series(40, 120, seed=3)
    compiled = _feed(_states(40, 1), t, x, seed=5)
    numpy_only()
    plain = _feed(_states(40, 1), t, x, seed=5)
    for name in ("sums", "t_ref", "x_ref", "x_last", "t_first", "season", "season_t", "season_coef"):
        np.testing.assert_allclose(
            getattr(compiled, name),
            getattr(plain, name),
            rtol=1e-12,
            atol=1e-12,
            equal_nan=True,
            err_msg=name,
        )
    assert np.isfinite(compiled.sums).all() and (compiled.sums[0] > 1).all()  # the trends did learn


def test_round_samples_loop_equals_its_numpy_form() -> None:
    rng = np.random.default_rng(4)
    n, m = 900, 300  # sensors; of which m watched for early warnings
    row_of = np.full(n, -1, dtype=np.intp)
    row_of[rng.permutation(n)[:m]] = np.arange(m)
    state = [np.full(m, np.nan) for _ in range(4)]  # x_last, t_first, x_short, t_short
    twin = [a.copy() for a in state]
    step_s = rng.uniform(60, 600, m)
    next_eval = rng.uniform(0, 3000, m)
    t_ms = 1_000_000
    for k in range(20):
        slot = rng.permutation(n)[: rng.integers(1, n)].astype(np.intp)
        t_ms += int(rng.integers(1_000, 120_000))
        t = t_ms + rng.integers(0, 1000, slot.size)
        x = rng.normal(10, 1, slot.size)
        x[rng.random(slot.size) < 0.1] = np.nan
        faults = np.zeros(0, np.int8) if k % 2 else (rng.random(n) < 0.1).astype(np.int8)
        got = jit.round_samples_loop(row_of, slot, t, x, faults, *state, step_s, next_eval)
        want = jit.round_samples_numpy(row_of, slot, t, x, faults, *twin, step_s, next_eval)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-13, equal_nan=True)
        assert got[4].any() and not got[4].all()  # some samples were due
        assert (got[1] == row_of[slot[got[0]]]).all()
    for a, b in zip(state, twin, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, equal_nan=True)
    assert np.isfinite(state[2]).sum() > m // 2


@pytest.mark.skipif(not jit.ENABLED, reason="the compiled loop sizes its outputs by the rows")
def test_round_samples_loop_refuses_a_row_twice_in_one_round_instead_of_writing_past_its_outputs() -> None:
    row_of = np.array([0, -1, 1], dtype=np.intp)  # two early-warning rows among three sensors
    state = [np.full(2, np.nan) for _ in range(4)]
    slot = np.array([0, 2, 0], dtype=np.intp)  # row 0 twice: three samples for outputs of two
    with pytest.raises(ValueError, match="twice"):
        jit.round_samples_loop(
            row_of, slot, np.array([1_000, 1_000, 2_000]), np.ones(3), np.zeros(0, np.int8), *state,
            np.full(2, 60.0), np.zeros(2),
        )  # fmt: skip


def _warnings(chunk: int) -> list[tuple]:
    engine, _ = engine_for(tank())
    t, x = fill_then_hold(hours=30.0)
    return [(c.kind.name, c.active, c.time_ms, c.level, c.eta_ms) for c in run(engine, t, x, chunk=chunk)]


def test_a_filling_tank_warns_identically_with_and_without_the_compiler(numpy_only) -> None:
    compiled = _warnings(chunk=60)
    numpy_only()
    plain = _warnings(chunk=60)
    assert [c[:4] for c in compiled] == [c[:4] for c in plain]
    assert any(c[0] == "EARLY_WARNING" and c[1] for c in compiled)  # the fill was warned
    for a, b in zip(compiled, plain, strict=True):
        assert (a[4] is None) == (b[4] is None)
        if a[4] is not None:
            assert abs(a[4] - b[4]) <= 1000  # the expected crossing time, to the second


def _fleet_run(seed: int) -> tuple[list[tuple], dict[str, np.ndarray]]:
    """A generated fleet through the engine: walks, frozen stretches, spikes, NaN, bad quality, range."""
    index = SensorIndex.build(generate_registry(4, 50, seed=seed, sensors_per_device=25))
    n = len(index)
    engine = AlarmEngine(index, start_ms=int(T0 * 1000))
    attach_early_warnings(engine)
    rng = np.random.default_rng(seed)
    lo, hi = index.range_lo, index.range_hi
    x = lo + (hi - lo) * rng.uniform(0.3, 0.6, n)
    frozen = rng.random(n) < 0.1  # these freeze for a while: stuck verdicts, then flat runs that end
    out = []
    for k in range(120):
        x = x + (hi - lo) * rng.normal(0, 0.003, n) * np.where(frozen & (30 < k < 80), 0.0, 1.0)
        value = x.copy()
        value[rng.integers(0, n, 3)] += 0.3 * (hi - lo)[:3]  # spikes
        value[rng.integers(0, n, 2)] = np.nan
        value[rng.integers(0, n, 2)] = hi[:2] * 1.5  # out of range
        q = np.zeros(n, np.int8)
        q[rng.integers(0, n, 2)] = 2
        slot = np.arange(n, dtype=np.int32)
        if k % 7 == 3:  # a partial round, out of slot order
            slot = rng.permutation(n)[: n // 2].astype(np.int32)
        t = int(T0 * 1000) + k * 1000 + rng.integers(0, 1000, len(slot))
        if k < 5:  # sensors come online one by one: rounds with rows never heard before
            slot = slot[: (k + 1) * n // 6]
            t = t[: len(slot)]
        batch = ReadingBatch(slot, t.astype(np.int64), value[slot], q[slot])
        changes = engine.process(batch) + engine.advance(int(T0 * 1000) + (k + 1) * 1000)
        out += [(c.site, c.source, c.kind.name, c.active, c.time_ms, c.level) for c in changes]
    names = ("rate_at_change", "frozen_samples", "last_change_t", "n_changes", "mad", "n_seen", "step_min")
    return out, {name: getattr(engine, name).copy() for name in names}


@pytest.mark.skipif(not jit.ENABLED, reason="numba is not installed or HAZMON_NUMBA=0")
def test_a_fleet_raises_the_same_conditions_and_keeps_the_same_health_state_without_the_compiler(
    numpy_only,
) -> None:
    compiled, state = _fleet_run(seed=11)
    numpy_only()
    plain, plain_state = _fleet_run(seed=11)
    assert compiled == plain
    kinds = {c[2] for c in compiled}
    assert {"FAULT"} <= kinds, kinds  # faults (range, quality, stuck) were exercised
    for name, a in state.items():
        np.testing.assert_allclose(a, plain_state[name], rtol=1e-12, equal_nan=True, err_msg=name)


def test_member_votes_equal_group_votes_with_faulty_voters_degrading_the_vote() -> None:
    rng = np.random.default_rng(9)
    n, n_groups = 400, 60
    group_of = np.where(rng.random(n) < 0.7, rng.integers(0, n_groups, n), -1)
    members = np.flatnonzero(group_of >= 0)
    active = rng.random((n, 10)) < 0.3
    fault_code = np.where(rng.random(n) < 0.1, rng.integers(1, 5, n), 0).astype(np.int8)
    k = rng.integers(1, 4, n_groups).astype(np.int64)
    got = jit.member_votes(active, 2, 3, fault_code, members, group_of[members], k)
    want = group_votes(
        active[members, 2] | active[members, 3], fault_code[members] > 0, group_of[members], n_groups, k
    )
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    assert got[0].any() and not got[0].all() and got[1].any()


@pytest.mark.skipif(not jit.ENABLED, reason="numba is not installed or HAZMON_NUMBA=0")
def test_after_the_warm_up_a_fleet_runs_without_compiling_anything() -> None:
    warm_up_kernels()
    kernels = [jit.trend_step, jit.round_samples_loop, jit.instrument_moves, jit.member_votes]
    before = {k.py_func.__name__: len(k.signatures) for k in kernels}
    assert all(before.values()), before
    _fleet_run(seed=5)
    after = {k.py_func.__name__: len(k.signatures) for k in kernels}
    assert after == before
    assert warm_up_kernels() == 0.0  # once per process
