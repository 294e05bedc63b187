"""alerts/learning.py: history windows that hold no future, the refit schedule, and a backtest whose
learned behaviour at any time is the same whether or not later readings exist."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from alerts.engine.alarm_engine import AlarmEngine, EngineConfig
from alerts.engine.behaviour import BehaviourModel
from alerts.engine.early_warning import EarlyWarnings, attach_early_warnings
from alerts.learning import BehaviourLearner, LearningStopped, ReadingsHistory
from alerts.replay import replay
from sensors.index import SensorIndex
from sensors.model import Limits, Registry, Sensor, Site
from sensors.readings import ReadingBatch

T0 = 1_795_392_000_000  # ms, 2026-11-23T00:00:00Z
MIN = 60_000
HOUR = 3_600_000
DAY = 24 * HOUR


def tank(sensor_id: str, interval_s: float) -> Sensor:
    return Sensor(
        id=sensor_id, site="s1", name="储罐液位", kind="level", unit="m", range=(0.0, 20.0),
        interval_s=interval_s, limits=Limits(ll=1.0, l=2.0, h=16.5, hh=18.0), deadband=0.05,
        forecast=True, device="gw",
    )  # fmt: skip


def engine_with(*sensors: Sensor) -> tuple[AlarmEngine, EarlyWarnings]:
    reg = Registry(sites=(Site(id="s1", name="站", kind="chemical", grade=2, sensors=tuple(sensors)),))
    engine = AlarmEngine(SensorIndex.build(reg), EngineConfig(stale_if_never_heard=False), start_ms=T0)
    return engine, attach_early_warnings(engine, {"s1": "Asia/Shanghai"})


def readings(slot, t, x, quality=None) -> ReadingBatch:
    """A time-sorted batch, as the backtest loads it."""
    t = np.asarray(t, np.int64)
    order = np.argsort(t, kind="stable")
    q = np.zeros(len(t), np.int8) if quality is None else np.asarray(quality, np.int8)
    return ReadingBatch(
        np.asarray(slot, np.int32)[order], t[order], np.asarray(x, np.float64)[order], q[order]
    )


# ---- the history a fit may see


def test_bin_means_see_only_their_window_bin_by_bin_and_no_bad_quality():
    step = MIN
    rows = [
        # (slot, time, value, quality)
        (0, T0 - 1, 1000.0, 0),  # before the window
        (0, T0, 1.0, 0),  # bin 0 opens at its start ...
        (0, T0 + step - 1, 3.0, 0),  # ... and closes just before the next
        (0, T0 + step, 5.0, 0),  # bin 1
        (0, T0 + 2 * step + 10, 7.0, 1),  # bin 2: uncertain quality is still behaviour
        (0, T0 + 2 * step + 20, 9000.0, 2),  # bad quality is not
        (0, T0 + 4 * step - 1, 4.0, 0),  # the last instant of the window
        (0, T0 + 4 * step, 2000.0, 0),  # the window's end: the future
        (0, T0 + 9 * step, 3000.0, 0),  # far future
        (1, T0 + 30_000, 20.0, 0),
        (1, T0 + 3 * step, 2000.0, 2),  # bad quality only in bin 3: NaN
        (2, T0 + 30_000, 99.0, 0),  # a slot nobody asked for
    ]
    slot, t, x, q = (np.array(c) for c in zip(*rows, strict=True))
    history = ReadingsHistory(readings(slot, t, x, q))
    got = history.bin_means(np.array([1, 0]), T0, step / 1000, 4)  # rows in the asked order
    np.testing.assert_array_equal(got[0], [20.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(got[1], [2.0, 5.0, 7.0, 4.0])
    # a window ending earlier never sees what lies at or after its end
    np.testing.assert_array_equal(history.bin_means(np.array([0]), T0, step / 1000, 1), [[2.0]])
    # a slot past every reading's is simply empty
    assert np.isnan(history.bin_means(np.array([7]), T0, step / 1000, 2)).all()


# ---- the schedule


@pytest.fixture(scope="module")
def schedule_run():
    """Two 1-minute tank sensors (2 h horizon: 1-minute grid), ticked every minute for 80 h like the
    backtest's clock: LT-1 reports throughout, LT-2 three times in its first minutes and then falls
    silent (too little history to fit, ever). Returns the fits installed and every fit attempt."""
    engine, ew = engine_with(tank("LT-1", 60.0), tank("LT-2", 60.0))
    rng = np.random.default_rng(1)
    n = 80 * 60
    t = T0 + np.arange(n) * MIN
    x = 10.0 + rng.normal(0, 0.05, n)
    batch = readings(np.r_[np.zeros(n), np.ones(3)], np.r_[t, t[:3]], np.r_[x, x[:3]])
    engine.process(batch.take(slice(0, 4)))  # the first readings of both: their t_first is T0
    learner = BehaviourLearner(ew, ReadingsHistory(batch))
    attempts: list[tuple[int, list[int]]] = []
    fit = learner.fit

    def spy(rows, now_ms):
        attempts.append((now_ms, np.asarray(rows).tolist()))
        return fit(rows, now_ms)

    learner.fit = spy
    fits = []  # (time, span of the fit) of LT-1's fits
    for now in range(T0 + MIN, T0 + n * MIN, MIN):
        before = int(ew.behaviour.fitted_ms[0])
        learner.maybe_refit(now)
        if ew.behaviour.fitted_ms[0] != before:
            fits.append((now, float(ew.behaviour.span_s[0])))
    return fits, attempts, ew


@pytest.mark.deep
def test_first_fit_an_hour_after_the_first_reading_then_after_half_the_span_at_least_daily(schedule_run):
    fits, _, ew = schedule_run
    times = np.array([f[0] for f in fits])
    spans = np.array([f[1] for f in fits])
    assert times[0] == T0 + HOUR
    # each refit follows the previous one by half the span it was fitted on, at least an hour, at most
    # a day (to the next 1-minute tick)
    wait = np.clip(spans[:-1] * 500.0, HOUR, DAY)
    np.testing.assert_array_equal(np.diff(times), np.ceil(wait / MIN) * MIN)
    hours = (times - T0) / HOUR
    assert hours[:4].tolist() == [1.0, 2.0, 3.0, 4.5]  # history grows 1, 2, 3, 4.5 h ... (x 1.5)
    assert (np.diff(times) <= DAY).all() and np.diff(times)[-1] == DAY  # daily once the span is 2 days
    assert ew.behaviour.fitted_ms[0] == times[-1]


@pytest.mark.deep
def test_a_row_whose_fit_fails_is_retried_after_an_hour_not_every_tick(schedule_run):
    _, attempts, ew = schedule_run
    tried = np.array([now for now, rows in attempts if 1 in rows])
    assert ew.behaviour.fitted_ms[1] == -1  # three readings: never enough to fit
    assert tried[0] == T0 + HOUR
    np.testing.assert_array_equal(np.diff(tried), HOUR)  # hourly, over 80 h of minute ticks
    assert len(tried) == 79


# ---- never from the future


def _backtest(
    batch: ReadingBatch, sensors: tuple[Sensor, ...], clock_until: int = 0
) -> list[tuple[int, np.ndarray, BehaviourModel]]:
    """Replay `batch` as `hazmon backtest` does (1-minute clock, learner on the clock), the clock going
    on to `clock_until` after the last reading; returns every fit installed: (time, rows, model)."""
    engine, ew = engine_with(*sensors)
    learner = BehaviourLearner(ew, ReadingsHistory(batch))
    installed = []
    install = ew.install_behaviour

    def spy(rows, model):
        if (model.fitted_ms >= 0).any():  # a fit, not a failed try
            installed.append((int(model.fitted_ms.max()), np.array(rows), model.take(np.arange(len(model)))))
        install(rows, model)

    ew.install_behaviour = spy
    replay(engine, batch, lambda changes, now: None, 60_000, on_clock=learner.maybe_refit)
    for now in range(int(batch.ts_ms[-1]) // MIN * MIN + 2 * MIN, clock_until + 1, MIN):
        learner.maybe_refit(now)
    return installed


@pytest.mark.deep
def test_the_model_fitted_at_t_is_the_same_whether_or_not_later_readings_exist():
    """Three days of two tanks every 10 minutes with a daily cycle; from T = 32 h 10 min (a scheduled
    refit) the tanks do something else entirely (+5 m and a ramp), starting with a reading at exactly T.
    Every fit up to T in the full backtest equals the one in a backtest of the readings before T alone,
    field by field."""
    sensors = (tank("LT-1", 600.0), tank("LT-2", 600.0))
    rng = np.random.default_rng(3)
    t = T0 + np.arange(3 * 144) * 10 * MIN
    cut = T0 + 32 * HOUR + 10 * MIN
    hours = (t - T0) / HOUR
    x = np.vstack([c + np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.05, t.size) for c in (8.0, 12.0)])
    later = t >= cut
    x[:, later] += 5.0 + 0.5 * (t[later] - cut)[None] / HOUR
    assert t[later][0] == cut
    slot = np.repeat([0, 1], t.size)
    full = readings(slot, np.tile(t, 2), x.ravel())
    past = full.take(full.ts_ms < cut)

    with_future = _backtest(full, sensors)
    without = _backtest(past, sensors, clock_until=cut)
    before = [f for f in with_future if f[0] <= cut]
    assert len(before) == len(without) >= 5
    for (t_a, rows_a, a), (t_b, rows_b, b) in zip(before, without, strict=True):
        assert t_a == t_b and rows_a.tolist() == rows_b.tolist()
        for f in fields(BehaviourModel):
            np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name), err_msg=f"{f.name} @ {t_a}")
    assert without[-1][0] == cut  # a fit at T itself, which must not see the reading at T
    # the later readings are different enough that a fit which saw them would differ
    after = next(f for f in with_future if f[0] > cut)
    assert (after[2].level - without[-1][2].level > 0.5).all()


def test_the_replay_clock_keeps_calling_the_scheduler_jobs_through_the_tail_after_the_last_reading():
    """`hazmon backtest --tail-s` runs the clock on past the data: the learner (a scheduler job) must
    run on it too, every minute to the end of the tail, as the service's scheduler would."""
    engine, _ = engine_with(tank("LT-1", 60.0))
    t = T0 + np.arange(30) * MIN
    batch = readings(np.zeros(30, dtype=np.int32), t, np.full(30, 8.0))
    seen: list[int] = []
    replay(engine, batch, lambda changes, now: None, 60_000, tail_ms=10 * MIN, on_clock=seen.append)
    assert seen == list(range(T0 + MIN, int(t[-1]) + 10 * MIN + MIN + 1, MIN))


def test_a_fit_in_progress_gives_up_at_its_next_chunk_when_the_service_stops(monkeypatch):
    """A fleet's first fit reads thousands of history chunks; a stop (SIGTERM) must not wait for them all."""
    engine, ew = engine_with(*(tank(f"LT-{i}", 60.0) for i in range(6)))
    rng = np.random.default_rng(2)
    n = 3 * 60
    t = T0 + np.arange(n) * MIN
    batch = readings(np.repeat(np.arange(6), n), np.tile(t, 6), 10.0 + rng.normal(0, 0.05, 6 * n))
    engine.process(batch)
    history = ReadingsHistory(batch)
    learner = BehaviourLearner(ew, history)
    calls = []
    bin_means = history.bin_means

    def first_chunk_then_stop(slots, start_ms, step_s, n_bins):
        calls.append(len(slots))
        learner.stop()  # the service stops while this chunk is read
        return bin_means(slots, start_ms, step_s, n_bins)

    monkeypatch.setattr(history, "bin_means", first_chunk_then_stop)
    monkeypatch.setattr("alerts.learning.FIT_CELLS", 2 * n)  # two sensors per chunk
    with pytest.raises(LearningStopped):
        learner.fit(np.arange(6), T0 + n * MIN)
    assert calls == [2]  # the chunk under way finished; the other two never started
    with pytest.raises(LearningStopped):  # and a later run gives up at once
        learner.fit(np.arange(6), T0 + n * MIN)
    assert calls == [2]


def _six_tanks_learner(**kwargs) -> tuple[BehaviourLearner, int]:
    engine, ew = engine_with(*(tank(f"LT-{i}", 60.0) for i in range(6)))
    n = 3 * 60
    t = T0 + np.arange(n) * MIN
    batch = readings(np.repeat(np.arange(6), n), np.tile(t, 6), 10.0 + np.tile(np.sin(np.arange(n) / 9), 6))
    engine.process(batch)
    return BehaviourLearner(ew, ReadingsHistory(batch), **kwargs), T0 + n * MIN


def test_a_fit_waits_between_chunks_while_ingest_drains_a_backlog_then_fits_the_same(monkeypatch):
    """A drain after an outage must not share the CPU with a fleet's first fit: the fit waits, then runs."""
    monkeypatch.setattr("alerts.learning.PAUSE_STEP_S", 0.001)
    monkeypatch.setattr("alerts.learning.FIT_CELLS", 2 * 180)  # two sensors per chunk
    busy = iter([True, True, True, False] + [False] * 10)
    waited, now = _six_tanks_learner(pause_while=lambda: next(busy))
    plain, _ = _six_tanks_learner()
    model = waited.fit(np.arange(6), now)
    assert waited.paused_s == pytest.approx(0.003)  # three waits before the first chunk, none after
    assert np.array_equal(model.fitted_ms, plain.fit(np.arange(6), now).fitted_ms)
    assert waited.health()["paused_s"] == 0.0  # rounded to 0.1 s in /healthz


def test_a_fit_waits_no_longer_than_its_limit_when_ingest_never_catches_up(monkeypatch):
    """Under a backlog that never ends the forecasts must still learn: the wait is capped per fit."""
    monkeypatch.setattr("alerts.learning.PAUSE_STEP_S", 0.001)
    learner, now = _six_tanks_learner(pause_while=lambda: True, max_pause_s=0.005)
    model = learner.fit(np.arange(6), now)
    assert learner.paused_s == pytest.approx(0.005)
    assert np.count_nonzero(model.fitted_ms >= 0) == 6
