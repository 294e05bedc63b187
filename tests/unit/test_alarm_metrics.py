"""EEMUA 191 figures on hand-made histories, and the live flood detector against the batch definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alerts.book.book import AlarmBook
from alerts.book.records import HistoryEntry
from alerts.book.sqlite_journal import AlarmJournal
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from alerts.metrics import (
    DAY_MS,
    TEN_MIN_MS,
    FloodDetector,
    FloodEnded,
    FloodStarted,
    alarm_rate,
    bad_actors,
    chattering_points,
    eemua_report,
    flood_intervals,
    flood_share,
    flood_share_by_console,
    priority_distribution,
    standing_alarms,
)

T0 = 1_795_392_000_000
S = 1000
MIN = 60 * S


# ---- rates and floods


def test_alarm_rate_average_and_peak_per_ten_minutes():
    raises = [T0 + 1 * MIN, T0 + 9 * MIN, *(T0 + 20 * MIN + i * S for i in range(5)), T0 + 40 * MIN]
    r = alarm_rate(raises, T0, T0 + 30 * MIN)  # the last raise is outside the period
    assert (r.total, r.periods, r.peak, r.peak_start_ms) == (7, 3.0, 5, T0 + 20 * MIN)
    assert r.average == pytest.approx(7 / 3)
    assert alarm_rate([], T0, T0 + 30 * MIN).average == 0.0


def test_flood_share_is_exact_on_a_small_example():
    # 11 raises one second apart: more than 10 in the window from the 11th raise (t = 10 s)
    # until the first one leaves the window (t = 600 s)
    raises = [T0 + i * S for i in range(11)]
    assert flood_intervals(raises, T0, T0 + 20 * MIN) == [(T0 + 10 * S, T0 + 600 * S)]
    assert flood_share(raises, T0, T0 + 20 * MIN) == pytest.approx(590 / 1200)
    assert flood_share(raises[:10], T0, T0 + 20 * MIN) == 0.0  # exactly 10 is not a flood


def test_flood_counts_raises_before_the_period_and_clips_to_it():
    raises = [T0 - 5 * MIN + i * S for i in range(11)]  # flood from T0 - 5 min + 10 s to T0 + 5 min
    assert flood_intervals(raises, T0, T0 + 10 * MIN) == [(T0, T0 + 5 * MIN)]
    assert flood_share(raises, T0, T0 + 10 * MIN) == pytest.approx(0.5)


def test_flood_ends_when_the_count_falls_back_to_the_threshold():
    # 12 raises 0..11 s: 11 at 10 s (start), 12 at 11 s, 11 at 600 s, 10 at 601 s (end)
    burst = [T0 + i * S for i in range(12)]
    assert flood_intervals(burst, T0, T0 + DAY_MS) == [(T0 + 10 * S, T0 + 601 * S)]
    # a raise at 600.5 s keeps it above 10 until 602 s: still one flood
    late = [T0 + 600 * S + 500]
    assert flood_intervals(burst + late, T0, T0 + DAY_MS) == [(T0 + 10 * S, T0 + 602 * S)]
    # a second burst later is a second flood
    again = [T0 + 1000 * S + i * S for i in range(11)]
    assert flood_intervals(burst + again, T0, T0 + DAY_MS) == [
        (T0 + 10 * S, T0 + 601 * S),
        (T0 + 1010 * S, T0 + 1600 * S),
    ]


def test_flood_share_per_console():
    a = [T0 + i * S for i in range(11)]
    b = [T0 + i * MIN for i in range(11)]  # 11 in 11 minutes: never more than 10 in 10 minutes
    share = flood_share_by_console(a + b, ["west"] * 11 + ["east"] * 11, T0, T0 + 20 * MIN)
    assert share == {"west": pytest.approx(590 / 1200), "east": 0.0}
    # one console watching both sites sees a longer flood
    assert flood_share(a + b, T0, T0 + 20 * MIN) > share["west"]


def test_flood_detector_reports_start_and_end():
    fd = FloodDetector()
    out = []
    for i in range(11):
        out += fd.add("west", T0 + i * S)
    assert out == [FloodStarted("west", T0 + 10 * S, 11)]
    assert fd.in_flood("west") and not fd.in_flood("east")
    assert fd.advance(T0 + 600 * S - 1) == []
    assert fd.advance(T0 + 600 * S) == [FloodEnded("west", T0 + 600 * S, T0 + 10 * S)]
    assert fd.count("west") == 10 and not fd.in_flood("west")


def _detector_spans(raises: np.ndarray, consoles: np.ndarray) -> dict[str, list[tuple[int, int]]]:
    fd = FloodDetector()
    events = []
    for t, c in zip(raises.tolist(), consoles.tolist(), strict=True):
        events += fd.add(c, t)
    events += fd.advance(int(raises.max()) + TEN_MIN_MS + 1)
    spans: dict[str, list[tuple[int, int]]] = {}
    for e in events:
        if isinstance(e, FloodEnded):
            spans.setdefault(e.console, []).append((e.started_ms, e.time_ms))
    return spans


@pytest.mark.parametrize("seed", range(5))
def test_live_detector_agrees_with_the_batch_definition(seed):
    rng = np.random.default_rng(seed)
    # bursts and quiet spells, times rounded to 5 s so that ties happen
    gaps = np.where(rng.random(3000) < 0.5, rng.exponential(20 * S, 3000), rng.exponential(2 * MIN, 3000))
    raises = T0 + (np.cumsum(gaps).astype(np.int64) // (5 * S)) * (5 * S)
    consoles = rng.choice(np.array(["west", "east"]), size=raises.size)
    live = _detector_spans(raises, consoles)
    end = int(raises.max()) + TEN_MIN_MS + 1
    for c in ("west", "east"):
        batch = flood_intervals(raises[consoles == c], T0, end)
        assert live.get(c, []) == batch
        assert batch, "the data should contain floods"


def test_detector_accepts_a_slightly_late_raise():
    fd = FloodDetector(threshold=2)
    fd.add("c", T0)
    fd.add("c", T0 + 2 * S)
    assert fd.add("c", T0 + 1 * S) == [FloodStarted("c", T0 + 1 * S, 3)]
    assert fd.add("c", T0 - 20 * MIN) == []  # long gone
    assert fd.count("c") == 3


# ---- alarm points


def test_bad_actors_are_ordered_by_count_then_key_with_their_share():
    keys = ["P3"] * 5 + ["P1"] * 3 + ["P2"] * 3 + [f"Q{i:02d}" for i in range(20)] + ["P4"] * 9
    top = bad_actors(keys)
    assert [(b.key, b.count) for b in top[:4]] == [("P4", 9), ("P3", 5), ("P1", 3), ("P2", 3)]
    assert [b.key for b in top[4:]] == ["Q00", "Q01", "Q02", "Q03", "Q04", "Q05"]
    assert len(top) == 10
    assert top[0].share == pytest.approx(9 / 40)
    assert sum(b.share for b in top) == pytest.approx((9 + 5 + 3 + 3 + 6) / 40)
    assert bad_actors([]) == []


def test_standing_alarms_oldest_first():
    keys = ["fresh", "day-and-hour", "inactive", "two-days", "exactly-a-day"]
    since = [T0 - 3_600_000, T0 - 25 * 3_600_000, math.nan, T0 - 2 * DAY_MS, T0 - DAY_MS]
    out = standing_alarms(keys, since, T0)
    assert [(s.key, s.age_ms) for s in out] == [
        ("two-days", 2 * DAY_MS),
        ("day-and-hour", 25 * 3_600_000),
        ("exactly-a-day", DAY_MS),
    ]
    assert [s.key for s in standing_alarms(keys, since, T0, threshold_ms=3_600_000)][-1] == "fresh"


def test_chattering_points_three_raises_within_a_minute():
    data = {
        "A": [0, 20, 50],  # 3 within 50 s
        "B": [0, 40, 70],  # 70 s from first to third
        "C": [0, 30, 61, 65, 90],  # 61..90 s
        "D": [0, 1],  # only two
    }
    keys = [k for k, ts in data.items() for _ in ts]
    times = [T0 + t * S for ts in data.values() for t in ts]
    order = np.random.default_rng(1).permutation(len(keys))  # input order does not matter
    assert sorted(chattering_points([keys[i] for i in order], np.asarray(times)[order])) == ["A", "C"]
    assert chattering_points(keys, times, count=2, window_ms=2 * S) == ["D"]


def test_priority_distribution():
    dist = priority_distribution(["low"] * 16 + ["medium"] * 3 + ["high"])
    assert dist == {"critical": 0.0, "high": 0.05, "medium": 0.15, "low": 0.8}
    assert priority_distribution([]) == {"critical": 0.0, "high": 0.0, "medium": 0.0, "low": 0.0}


# ---- the report from history


def _h(seq: int, t: int, source: str, type_: str, site: str = "west", **details: object) -> HistoryEntry:
    return HistoryEntry(seq, t, t, f"A{seq:06d}", (site, "sensor", source, "H"), type_, dict(details))


def test_report_from_a_hand_made_history():
    hist = [
        _h(1, T0 - 2 * DAY_MS, "OLD", "AlarmRaised", priority="high", reactivated=False),  # standing
        *(_h(10 + i, T0 + i * S, f"F{i % 3}", "AlarmRaised", priority="low") for i in range(11)),  # flood
        _h(30, T0 + 30 * S, "F0", "AlarmReturnedToNormal"),
        _h(31, T0 + 31 * S, "CH", "AlarmSuppressed", chattering=True, reason="chattering"),
        _h(32, T0 + 32 * S, "CH", "AlarmSuppressed", chattering=True, reason="chattering"),
        _h(33, T0 + 33 * S, "X", "AlarmRaised", site="east", priority="critical"),
        _h(34, T0 + 20 * MIN, "LATE", "AlarmRaised", priority="low"),  # after the period
    ]
    r = eemua_report(reversed(hist), T0, T0 + 20 * MIN)  # any order
    assert r.raises == 12
    assert r.rate.peak == 12 and r.rate.average == pytest.approx(6.0)
    assert r.flood_share == {"west": pytest.approx(590 / 1200), "east": 0.0}
    assert [(b.key[2], b.count) for b in r.bad_actors[:3]] == [("F0", 4), ("F1", 4), ("F2", 3)]
    assert r.top10_share == pytest.approx(1.0)
    assert [s.key[2] for s in r.standing] == ["OLD"]
    assert r.chattering == 1
    assert r.priorities == pytest.approx({"critical": 1 / 12, "high": 0.0, "medium": 0.0, "low": 11 / 12})
    # consoles can span sites
    both = eemua_report(hist, T0, T0 + 20 * MIN, console_of=lambda key: "control room")
    assert set(both.flood_share) == {"control room"}


def test_report_reads_the_journal():
    def change(source: str, active: bool, t: int) -> ConditionChange:
        return ConditionChange("west", source, ConditionKind.H, active, t, Priority.MEDIUM, "H", 1.0, 0.5)

    with AlarmJournal(":memory:") as j:
        book = AlarmBook(j)
        book.on_changes([change(f"S{i}", True, T0 + i * S) for i in range(12)], now_ms=T0 + 12 * S)
        book.on_changes([change("S0", False, T0 + 13 * S)], now_ms=T0 + 13 * S)
        r = eemua_report(j.history(limit=10_000), T0, T0 + DAY_MS + 20 * S)
    assert r.raises == 12 and r.priorities["medium"] == 1.0
    assert r.flood_share["west"] == pytest.approx(
        (601 - 10) * S / (DAY_MS + 20 * S)
    )  # 12 raises: 10 s to 601 s
    assert sorted(s.key[2] for s in r.standing) == sorted(f"S{i}" for i in range(1, 12))
