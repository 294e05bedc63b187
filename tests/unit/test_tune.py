"""Alarm rationalisation (alerts/tune.py): what settings would have raised, and what to suggest."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from alerts.engine.alarm_engine import DELAYED_COLS, AlarmEngine, EngineConfig
from alerts.engine.conditions import ConditionKind
from alerts.metrics import chattering_points
from alerts.replay import replay
from alerts.tune import Status, TuneConfig, tune
from alerts.tune_settings import Setting
from sensors.index import SensorIndex
from sensors.model import Limits, Registry, Sensor, Site
from sensors.readings import ReadingBatch

T0 = 1_795_392_000_000  # 2026-11-23T00:00:00Z
DAY, HOUR, MIN = 86_400_000, 3_600_000, 60_000
DAYS = 4
SITE = "s1"


def level_sensor(sensor_id: str, **kw) -> Sensor:
    base = dict(
        id=sensor_id, site=SITE, name=f"{sensor_id}液位", kind="level", unit="m", range=(0.0, 20.0),
        interval_s=120.0, limits=Limits(h=16.0, hh=18.0),
    )  # fmt: skip
    return Sensor(**(base | kw))


SENSORS = (
    level_sensor("CHAT"),  # hovers at H for 40 min a day: chatters with no deadband
    level_sensor("STAND"),  # above H for 30 h
    level_sensor("QUIET"),
    level_sensor("SHORT"),  # only the last day recorded
    level_sensor("BLIP"),  # three 30-s crossings of HH a day
)


def registry(*sensors: Sensor) -> Registry:
    return Registry((Site(id=SITE, name="站", kind="chemical", grade=2, sensors=sensors),))


def _steady(rng, t: np.ndarray, level: float, sigma: float = 0.02) -> np.ndarray:
    return level + rng.normal(0.0, sigma, len(t))


def _ramp(t0: int, a: float, b: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """From a towards b (excluded) by `step` every 10 s, starting at t0."""
    x = np.arange(a, b, step if b > a else -step)
    return t0 + 10_000 * np.arange(len(x), dtype=np.int64), x


def history(seed: int = 7, t0: int = T0) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """Four days of synthetic readings per sensor id from t0: (times, values); and the end of the window."""
    rng = np.random.default_rng(seed)
    background = t0 + 2 * MIN * np.arange(DAYS * 720, dtype=np.int64)  # every 2 min (the interval)
    out = {}
    # CHAT: each day at noon, 10 min up to H, 40 min at H +- 0.08 m every 10 s, 10 min down
    ts, xs = [background], [_steady(rng, background, 12.0)]
    for d in range(DAYS):
        up_t, up_x = _ramp(t0 + d * DAY + 12 * HOUR, 12.0, 16.0, 4.0 / 60)
        hover_t = up_t[-1] + 10_000 * np.arange(1, 241, dtype=np.int64)
        down_t, down_x = _ramp(int(hover_t[-1]) + 10_000, 16.0, 12.0, 4.0 / 60)
        ts += [up_t, hover_t, down_t]
        xs += [up_x, _steady(rng, hover_t, 16.0, 0.08), down_x]
    out["CHAT"] = _without_overlap(ts, xs)
    # STAND: from day 1 06:00 for 30 h at 16.5 m
    x = _steady(rng, background, 12.0)
    standing = (background >= t0 + DAY + 6 * HOUR) & (background < t0 + 2 * DAY + 12 * HOUR)
    x[standing] += 4.5
    ramp = np.clip((background - (t0 + DAY + 6 * HOUR)) / (20 * MIN), 0, 1) * 4.5  # never a 4.5 m jump
    x = np.where(standing, 12.0 + ramp + rng.normal(0, 0.02, len(x)), x)
    out["STAND"] = (background, x)
    out["QUIET"] = (background, _steady(rng, background, 12.0))
    last_day = background[background >= t0 + (DAYS - 1) * DAY]
    out["SHORT"] = (last_day, _steady(rng, last_day, 12.0))
    # BLIP: at 04:00, 12:00 and 20:00 up in 0.8 m steps (no spike), 20 s above HH, back down
    ts, xs = [background], [_steady(rng, background, 12.0)]
    shape = np.r_[np.arange(12.0, 17.61, 0.8), 18.3, 18.3, np.arange(17.6, 11.99, -0.8)]
    for d in range(DAYS):
        for h in (4, 12, 20):
            ts.append(t0 + d * DAY + h * HOUR + 5_000 + 10_000 * np.arange(len(shape), dtype=np.int64))
            xs.append(shape)
    out["BLIP"] = _without_overlap(ts, xs)
    return out, t0 + DAYS * DAY


def _without_overlap(ts: list[np.ndarray], xs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The 2-minute background, with the minutes around an event given to the event's samples."""
    base_t, base_x = ts[0], xs[0]
    ev_t, ev_x = np.concatenate(ts[1:]), np.concatenate(xs[1:])
    busy = np.zeros(len(base_t), dtype=bool)
    for lo, hi in _spans(ts[1:]):
        busy |= (base_t >= lo - MIN) & (base_t <= hi + MIN)
    t = np.r_[base_t[~busy], ev_t]
    order = np.argsort(t, kind="stable")
    return t[order], np.r_[base_x[~busy], ev_x][order]


def _spans(parts: list[np.ndarray]) -> list[tuple[int, int]]:
    return [(int(p[0]), int(p[-1])) for p in parts]


def batch_of(index: SensorIndex, data: dict[str, tuple[np.ndarray, np.ndarray]]) -> ReadingBatch:
    slots, ts, xs = [], [], []
    for sensor_id, (t, x) in data.items():
        if sensor_id in index.by_site[SITE]:
            slots.append(np.full(len(t), index.slot(SITE, sensor_id), np.int32))
            ts.append(t)
            xs.append(x)
    t = np.concatenate(ts)
    order = np.argsort(t, kind="stable")
    return ReadingBatch(
        np.concatenate(slots)[order], t[order], np.concatenate(xs)[order], np.zeros(len(t), np.int8)
    )


@pytest.fixture(scope="module")
def verdicts():
    data, end = history()
    index = SensorIndex.build(registry(*SENSORS))
    got = tune(index, [batch_of(index, data)], T0, end, TuneConfig())
    return {t.sensor.id: t for t in got}, data, end


def replay_with(sensor: Sensor, setting: Setting, data, end: int) -> list:
    """Activations (condition on-changes of LL..ROC) of `sensor` with `setting`, by the plain engine."""
    tuned = dataclasses.replace(
        sensor, deadband=setting.deadband, on_delay_s=setting.on_delay_s, off_delay_s=setting.off_delay_s
    )
    index = SensorIndex.build(registry(tuned))
    engine = AlarmEngine(index, EngineConfig(stale_if_never_heard=False), start_ms=T0)
    changes: list = []
    replay(engine, batch_of(index, {sensor.id: data[sensor.id]}), lambda c, _now: changes.extend(c))
    return [c for c in changes if c.active and c.kind in DELAYED_COLS and c.time_ms < end]


@pytest.mark.deep
def test_a_chattering_alarm_gets_a_setting_that_stops_the_chatter_when_the_engine_reruns_with_it(verdicts):
    by_id, data, end = verdicts
    chat = by_id["CHAT"]
    assert chat.current.chattering == ("H",) and chat.current.total > 50
    assert chat.status is Status.SUGGEST
    suggested = chat.suggested.setting
    assert suggested != Setting.of(SENSORS[0])
    assert suggested.deadband <= 0.05 * 20 < 18.0 - 16.0  # the level cap, below the room between limits
    raised = replay_with(SENSORS[0], suggested, data, end)
    assert len(raised) == chat.suggested.total <= DAYS * 1.0
    assert chattering_points([c.kind for c in raised], [c.time_ms for c in raised]) == []
    assert chat.suggested.late == 0 and chat.suggested.chattering == ()


@pytest.mark.deep
def test_a_standing_alarm_is_reported_with_its_time_in_alarm(verdicts):
    stand = verdicts[0]["STAND"]
    assert stand.current.standing == ("H",)
    assert stand.current.activations["H"] == 1
    assert stand.current.time_in_alarm_s["H"] == pytest.approx(30 * 3600, rel=0.02)
    assert stand.status is Status.NO_CHANGE  # one activation in four days: the rate is fine, the limit is not


@pytest.mark.deep
def test_a_quiet_sensor_gets_no_change(verdicts):
    quiet = verdicts[0]["QUIET"]
    assert quiet.status is Status.NO_CHANGE and quiet.suggested is None
    assert quiet.current.total == 0 and quiet.current.per_day == (0, 0, 0, 0)
    assert quiet.observed_days == pytest.approx(DAYS, abs=0.01)


@pytest.mark.deep
def test_too_little_data_is_said_instead_of_a_suggestion(verdicts):
    short = verdicts[0]["SHORT"]
    assert short.status is Status.TOO_LITTLE_DATA
    assert short.suggested is None and short.closest is None
    assert short.observed_days == pytest.approx(1.0, abs=0.01) and "1.0 days" in short.message


@pytest.mark.deep
def test_a_delay_that_would_hide_short_hh_crossings_is_never_suggested(verdicts):
    by_id, data, end = verdicts
    blip = by_id["BLIP"]
    assert blip.current.activations["HH"] == 3 * DAYS
    # a 15 s on-delay would have met the rate (the H excursions are sustained) by hiding every HH crossing
    hidden = replay_with(SENSORS[4], Setting(15.0, 0.0, 0.0), data, end)
    assert [c for c in hidden if c.kind == ConditionKind.HH] == []
    assert blip.status is Status.UNREACHABLE
    assert blip.closest.missed == 0 and blip.closest.activations["HH"] == 3 * DAYS


@pytest.mark.deep
def test_slicing_the_history_into_windows_and_small_engine_calls_gives_the_same_verdicts(monkeypatch):
    data, _ = history()
    index = SensorIndex.build(registry(SENSORS[0], SENSORS[2]))
    end = T0 + 2 * DAY
    batch = batch_of(index, data)
    batch = batch.take(batch.ts_ms < end)
    cfg = TuneConfig(deadbands_pct=(0.0, 1.0), delays_s=(0.0, 60.0), min_days=1.0)
    whole = tune(index, [batch], T0, end, cfg)
    monkeypatch.setattr("alerts.tune_replay.MAX_EXPANDED", 5_000)
    edges = np.searchsorted(batch.ts_ms, T0 + np.arange(1, 8) * 6 * HOUR)  # 6-h windows
    windows = [
        batch.take(slice(lo, hi)) for lo, hi in zip(np.r_[0, edges], np.r_[edges, len(batch)], strict=True)
    ]
    sliced = tune(index, windows, T0, end, cfg)
    assert [(t.status, t.current, t.suggested) for t in sliced] == [
        (t.status, t.current, t.suggested) for t in whole
    ]
    assert whole[0].status is Status.SUGGEST
