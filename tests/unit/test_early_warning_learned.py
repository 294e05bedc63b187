"""Early warnings under learned behaviour, through the engine as `hazmon backtest` wires it: AlarmEngine +
attach_early_warnings + BehaviourLearner on the replay's clock, on synthetic tank levels.

A routine the sensor always came back from is not warned once it is learned; a fill unlike the history
is; a chance must hold for the kind's persistence; each warning says which model gave its chance.
"""

from __future__ import annotations

import numpy as np
import pytest

from alerts.engine.alarm_engine import AlarmEngine, EngineConfig
from alerts.engine.behaviour import BehaviourModel, fit_behaviour
from alerts.engine.conditions import ConditionChange, ConditionKind
from alerts.engine.early_warning import (
    MODEL_REVERTING,
    MODEL_TREND,
    WARN_PROFILES,
    EarlyWarningConfig,
    EarlyWarnings,
    WarnProfile,
    attach_early_warnings,
)
from alerts.learning import BehaviourLearner, ReadingsHistory
from alerts.replay import replay
from sensors.index import SensorIndex
from sensors.model import Limits, Registry, Sensor, Site
from sensors.readings import ReadingBatch

T0 = 1_795_392_000_000  # ms, 2026-11-23T00:00:00Z
MIN = 60_000
HOUR = 3_600_000
DAY = 24 * HOUR
EW = ConditionKind.EARLY_WARNING
H_LIMIT = 16.5
LEVEL = WARN_PROFILES["level"]  # 70 % held 10 minutes
#: The replay's clock ticks with the readings (every 10 minutes) rather than the backtest's minute: the
#: judgements are the same (each sensor is judged on its readings); refits come up to 9 minutes later.
CLOCK_MS = 10 * MIN
EVIDENCE_KEYS = {"probability", "horizon_s", "model", "trend_per_h", "normal_lo", "normal_hi"}


def tank(sensor_id: str, interval_s: float = 600.0) -> Sensor:
    """A tank level (2 h trend memory and horizon), H 16.5 m, HH 18 m."""
    return Sensor(
        id=sensor_id, site="s1", name="储罐液位", kind="level", unit="m", range=(0.0, 20.0),
        interval_s=interval_s, limits=Limits(ll=1.0, l=2.0, h=H_LIMIT, hh=18.0), deadband=0.05,
        forecast=True, device="gw",
    )  # fmt: skip


def readings(series: dict[int, tuple[np.ndarray, np.ndarray]]) -> ReadingBatch:
    """A time-sorted batch of {slot: (times, values)}."""
    slot = np.concatenate([np.full(len(t), s) for s, (t, _) in series.items()])
    t = np.concatenate([t for t, _ in series.values()])
    x = np.concatenate([x for _, x in series.values()])
    order = np.argsort(t, kind="stable")
    return ReadingBatch(
        slot[order].astype(np.int32), t[order].astype(np.int64), x[order], np.zeros(len(t), np.int8)
    )


class Run:
    """One backtest-style replay: its condition changes and every judgement's chance."""

    def __init__(self, sensors, batch: ReadingBatch, *, learn: bool, config=None, clock_ms: int = CLOCK_MS):
        reg = Registry(sites=(Site(id="s1", name="站", kind="chemical", grade=2, sensors=tuple(sensors)),))
        self.engine = AlarmEngine(
            SensorIndex.build(reg), EngineConfig(stale_if_never_heard=False), start_ms=T0
        )
        self.ew = attach_early_warnings(self.engine, {"s1": "Asia/Shanghai"}, config)
        self.ids = [s.id for s in sensors]
        self.judged: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.ew.on_judged = lambda rows, now_s, prob, *_: self.judged.append(
            (rows.copy(), now_s.copy(), prob.copy())
        )
        self.changes: list[ConditionChange] = []
        learner = BehaviourLearner(self.ew, ReadingsHistory(batch)) if learn else None
        replay(
            self.engine, batch, lambda ch, now: self.changes.extend(ch), clock_ms,
            on_clock=learner.maybe_refit if learner else None,
        )  # fmt: skip

    def raised(self, sensor_id: str) -> list[ConditionChange]:
        """Early warnings raised or updated (active) for one sensor."""
        return [c for c in self.changes if c.kind == EW and c.active and c.source == sensor_id]

    def chances(self, sensor_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(time ms, chance) of every judgement of one sensor, in time order."""
        row = self.ids.index(sensor_id)
        t = np.concatenate([n[r == row] for r, n, _ in self.judged]) * 1000
        p = np.concatenate([p[r == row] for r, _, p in self.judged])
        return t, p


def routine_with_excursions(days: int, seed: int, peak=(15.6, 16.0), rate_per_h: float = 1.0):
    """10-minute tank levels: a daily swing of ±1 m about 10 m, a slow wander (σ 5 cm, 2 h), and once a
    day, at a random hour, a transfer in at `rate_per_h` up to a peak drawn from `peak`, that then runs
    back out with a 2 h time constant. Returns (times ms, levels)."""
    rng = np.random.default_rng(seed)
    n = days * 144
    t = T0 + np.arange(n) * 10 * MIN
    h = (t - T0) / HOUR
    x = 10.0 + np.sin(2 * np.pi * h / 24)
    keep = np.exp(-10 / 120)
    kicks = rng.normal(0, 0.05 * np.sqrt(1 - keep * keep), n)
    wander = np.zeros(n)
    for i in range(1, n):
        wander[i] = keep * wander[i - 1] + kicks[i]
    x += wander
    for day in range(days):
        start = day * 24 + rng.uniform(4, 16)
        target = rng.uniform(*peak)
        amount = target - x[np.searchsorted(h, start)]
        for _ in range(4):  # the level the excursion tops out from moves with the day: aim at the target
            top = min(np.searchsorted(h, start + amount / rate_per_h), n - 1)
            amount = target - x[top] + amount * (1 - np.clip((h[top] - start) * rate_per_h / amount, 0, 1))
        s = h - start
        rise = amount / rate_per_h
        x += amount * np.clip(s / rise, 0, 1) * np.where(s > rise, np.exp(-(s - rise) / 2.0), 1.0)
    return t, x


DAYS = 11
FILL_START_MS = T0 + (10 * 24 + 3) * HOUR  # LT-2's fill: day 10, 03:00 UTC
FILL_RATE_PER_H = 0.8


@pytest.fixture(scope="module")
def series() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """LT-1: the routine, excursions to 15.6-16.0 m each day (H 16.5 never reached). LT-2: the same
    kind of routine with excursions to about 12.5 m, then on day 10 a steady fill at 0.8 m/h past H."""
    t, routine = routine_with_excursions(DAYS, seed=1)
    _, small = routine_with_excursions(DAYS, seed=2, peak=(12.3, 12.7))
    filling = t >= FILL_START_MS
    small[filling] = small[filling][0] + FILL_RATE_PER_H * (t[filling] - FILL_START_MS) / HOUR
    return {"LT-1": (t, routine), "LT-2": (t, small)}


@pytest.fixture(scope="module")
def learned(series) -> Run:
    batch = readings({0: series["LT-1"], 1: series["LT-2"]})
    return Run([tank("LT-1"), tank("LT-2")], batch, learn=True)


@pytest.fixture(scope="module")
def trend_only(series) -> Run:
    """LT-1's readings with no learner: the trend alone judges them."""
    return Run([tank("LT-1")], readings({0: series["LT-1"]}), learn=False)


def _days(changes: list[ConditionChange]) -> set[int]:
    return {(c.time_ms - T0) // DAY for c in changes}


@pytest.mark.deep
def test_routine_excursions_close_to_h_raise_nothing_once_learned_but_the_trend_alone_warns(
    series, learned, trend_only
):
    t, x = series["LT-1"]
    day = (t - T0) // DAY
    peaks = np.array([x[day == d].max() for d in range(DAYS)])
    assert peaks.max() < H_LIMIT and peaks.min() > H_LIMIT - 1.0  # close to H every day, never at it
    # learned: the first excursion (day 0) is news, after it the routine is the sensor's behaviour
    assert learned.ew.mature(np.array([0]))[0]
    assert [c for c in learned.raised("LT-1") if c.time_ms >= T0 + DAY] == []
    when, chance = learned.chances("LT-1")
    assert chance[when >= T0 + DAY].max() < LEVEL.p_warn
    # the trend alone warns on most of the same days
    trend_days = _days(trend_only.raised("LT-1")) - {0}
    assert len(trend_days) >= 7, trend_days
    assert {c.forecast["model"] for c in trend_only.raised("LT-1")} == {MODEL_TREND}


@pytest.mark.deep
def test_a_novel_fill_is_warned_before_h_with_its_chance_band_and_message(learned):
    raised = learned.raised("LT-2")
    assert [c for c in raised if T0 + DAY <= c.time_ms < FILL_START_MS] == []  # its routine: nothing
    h_alarm = next(
        c for c in learned.changes if c.kind == ConditionKind.H and c.active and c.source == "LT-2"
    )
    first = next(c for c in raised if c.time_ms >= FILL_START_MS)
    assert first.time_ms < h_alarm.time_ms and first.level == "H" and first.limit == H_LIMIT
    assert first.forecast["probability"] >= LEVEL.p_warn
    assert "概率" in first.message and f"{first.forecast['probability']:.0%}" in first.message
    assert first.eta_low_ms <= first.eta_ms
    assert first.eta_high_ms is None or first.eta_ms <= first.eta_high_ms
    assert first.forecast["model"] == MODEL_TREND  # beyond the levels it ever showed: the trend speaks
    assert first.forecast["normal_hi"] < first.value  # and the evidence says it is outside its normal


@pytest.fixture(scope="module")
def often_near_h() -> Run:
    """LT-3: a level that wanders fast (OU, σ 1 m, 20 min) about 15.5 m and so reaches H = 16.5 m
    several times a day; two days. Its learned behaviour gives a high chance of reaching H again."""
    rng = np.random.default_rng(5)
    n = 2 * 144
    keep = np.exp(-10 / 20)
    kicks = rng.normal(0, np.sqrt(1 - keep * keep), n)
    w = np.zeros(n)
    w[0] = rng.normal()
    for i in range(1, n):
        w[i] = keep * w[i - 1] + kicks[i]
    t = T0 + np.arange(n) * 10 * MIN
    return Run([tank("LT-3")], readings({0: (t, 15.5 + w)}), learn=True)


@pytest.mark.deep
def test_evidence_says_which_model_gave_the_chance_and_carries_its_keys(learned, trend_only, often_near_h):
    reverting = [c for c in often_near_h.raised("LT-3") if c.forecast["model"] == MODEL_REVERTING]
    assert reverting, "no warning from the learned behaviour"
    trend = [c for c in learned.raised("LT-2") if c.time_ms >= FILL_START_MS]
    for c in reverting + trend + trend_only.raised("LT-1"):
        assert c.forecast.keys() >= EVIDENCE_KEYS, c.forecast
        assert c.forecast["horizon_s"] == 2 * 3600.0
        assert "概率" in c.message
    for c in reverting:  # from the learned behaviour: its normal range is known
        assert c.forecast["normal_lo"] < c.forecast["normal_hi"]
        assert c.forecast["probability"] >= 0.5 * LEVEL.p_warn  # raised at p_warn, updated while holding
        assert "历史行为模型" in c.message
    assert any(c.forecast["probability"] >= LEVEL.p_warn for c in reverting)
    assert {c.forecast["model"] for c in trend} == {MODEL_TREND} and "趋势外推" in trend[0].message
    # nothing learned: no normal range to show
    assert all(c.forecast["normal_lo"] is None for c in trend_only.raised("LT-1"))


# ---- persistence


def _routine_fill_stopping_at(top: float) -> ReadingBatch:
    """A 1-minute tank: 8 m, filling at 1 m/h from hour 1 up to `top`, then holding; 9 h."""
    rng = np.random.default_rng(9)
    t = T0 + np.arange(9 * 60) * MIN
    h = (t - T0) / HOUR
    return readings({0: (t, 8.0 + np.clip(h - 1.0, 0, top - 8.0) + rng.normal(0, 0.005, t.size))})


def _longest_hold(run: Run, p_warn: float) -> float:
    """Longest time (ms) the chance stayed at or above `p_warn` over consecutive judgements."""
    t, p = run.chances("LT-1")
    longest, since = 0.0, None
    for ti, pi in zip(t, p, strict=True):
        since = (since if since is not None else ti) if pi >= p_warn else None
        if since is not None:
            longest = max(longest, ti - since)
    return longest


def _level_profile(persist_s: float) -> EarlyWarningConfig:
    return EarlyWarningConfig(profiles={**WARN_PROFILES, "level": WarnProfile(LEVEL.p_warn, persist_s)})


@pytest.mark.deep
def test_a_chance_above_the_threshold_for_less_than_the_persistence_raises_nothing():
    """A routine fill that stops at 14.33 m: the trend's chance of H within 2 h passes 70 % for about half
    an hour. Judged with a persistence longer than that, nothing is raised; with one exactly as long, it
    is raised at the judgement where the chance has held that long; with the kind's 10 minutes, 10
    minutes (to the next judgement) after the chance first reached 70 %."""
    fill = _routine_fill_stopping_at(14.33)
    never = Run([tank("LT-1", 60.0)], fill, learn=False, config=_level_profile(1e9), clock_ms=MIN)
    assert never.raised("LT-1") == []
    held = _longest_hold(never, LEVEL.p_warn)
    assert held > LEVEL.persist_s * 1000  # the premise: a chance that holds, and for how long
    t, p = never.chances("LT-1")
    since = t[np.argmax(p >= LEVEL.p_warn)]
    longer = Run(
        [tank("LT-1", 60.0)], fill, learn=False, config=_level_profile(held / 1000 + 1), clock_ms=MIN
    )
    assert longer.raised("LT-1") == []
    exact = Run([tank("LT-1", 60.0)], fill, learn=False, config=_level_profile(held / 1000), clock_ms=MIN)
    assert [c.time_ms for c in exact.raised("LT-1")][:1] == [since + held]
    kind = Run([tank("LT-1", 60.0)], fill, learn=False, clock_ms=MIN)
    first = kind.raised("LT-1")[0]
    judged_every = kind.ew.eval_every_s[0] * 1000  # 4 minutes for a tank level
    assert since + LEVEL.persist_s * 1000 <= first.time_ms < since + LEVEL.persist_s * 1000 + judged_every
    assert first.forecast["probability"] >= LEVEL.p_warn


# ---- installing fits


def test_install_behaviour_keeps_rows_that_a_new_fit_could_not_fit():
    reg = Registry(
        sites=(Site(id="s1", name="站", kind="chemical", grade=2, sensors=(tank("A"), tank("B"))),)
    )
    ew = EarlyWarnings(SensorIndex.build(reg))
    rng = np.random.default_rng(4)
    good = 10.0 + rng.normal(0, 0.1, (2, 300))
    first = fit_behaviour(good, T0 / 1000, 600.0, np.full((2, 1), 7200.0))
    ew.install_behaviour(np.array([0, 1]), first)
    assert (ew.behaviour.fitted_ms >= 0).all()
    kept = ew.behaviour.take(np.array([1]))
    # a refit where A has new data and B has none (too few bins): A changes, B keeps its old fit
    later = good + 1.0
    later[1, :] = np.nan
    second = fit_behaviour(later, T0 / 1000 + 3600.0, 600.0, np.full((2, 1), 7200.0))
    assert second.fitted_ms[1] == -1
    ew.install_behaviour(np.array([0, 1]), second)
    assert ew.behaviour.level[0] == pytest.approx(11.0, abs=0.05)
    assert ew.behaviour.fitted_ms[0] == second.fitted_ms[0]
    for name in ("fitted_ms", "level", "quantiles", "theta", "rate_hi"):
        np.testing.assert_array_equal(getattr(ew.behaviour, name)[1:], getattr(kept, name), err_msg=name)
    # a fit of nobody changes nothing
    before = ew.behaviour.take(np.arange(2))
    ew.install_behaviour(np.array([0, 1]), BehaviourModel.empty(2))
    np.testing.assert_array_equal(ew.behaviour.level, before.level)
