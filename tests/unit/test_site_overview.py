"""Per-site aggregation for the control-room map: counts, worst priority, data age and the colour rule."""

from __future__ import annotations

import time

import numpy as np
import pytest

from alerts.engine.conditions import Priority
from alerts.engine.lifecycle import Alarm
from api.site_overview import (
    BLUE,
    COLOUR_NAMES,
    COUNTED_STATES,
    ORANGE,
    RED,
    YELLOW,
    SiteSlots,
    alarm_colour,
    site_overview,
)

P = Priority
SHELF = {"shelved_until_ms": 10**13, "shelved_by": "op", "shelve_reason": "maintenance"}


def alarm(
    site="s0", kind="H", prio=P.MEDIUM, active=True, acked=False, scope="sensor", level=None, source="A", **kw
):
    return Alarm(
        key=(site, scope, source, kind),
        alarm_id="A000001",
        active=active,
        acked=acked,
        annunciated=True,
        priority=prio,
        level=level if level is not None else kind,
        **kw,
    )


COLOUR_TABLE = [
    # (description, alarms, colour)
    ("no alarms", [], BLUE),
    ("critical HH unacknowledged", [alarm(kind="HH", prio=P.CRITICAL)], RED),
    ("critical HH acknowledged, still active", [alarm(kind="HH", prio=P.CRITICAL, acked=True)], RED),
    ("critical HH returned, not acknowledged", [alarm(kind="HH", prio=P.CRITICAL, active=False)], RED),
    (
        "critical HH returned and acknowledged = NORMAL",
        [alarm(kind="HH", prio=P.CRITICAL, active=False, acked=True)],
        BLUE,
    ),
    ("high HH", [alarm(kind="HH", prio=P.HIGH)], ORANGE),
    ("high rate of change", [alarm(kind="ROC", prio=P.HIGH, acked=True)], ORANGE),
    ("high vote", [alarm(kind="VOTE", prio=P.HIGH, scope="group")], ORANGE),
    ("medium H", [alarm(kind="H", prio=P.MEDIUM)], YELLOW),
    ("low L", [alarm(kind="L", prio=P.LOW)], YELLOW),
    ("early warning of a limit, high", [alarm(kind="EARLY_WARNING", prio=P.HIGH, level="HH")], YELLOW),
    ("early warning FAILURE, high", [alarm(kind="EARLY_WARNING", prio=P.HIGH, level="FAILURE")], RED),
    ("instrument fault, high", [alarm(kind="FAULT", prio=P.HIGH, level="stuck")], YELLOW),
    ("stale sensor", [alarm(kind="STALE", prio=P.MEDIUM)], YELLOW),
    ("stale device", [alarm(kind="STALE", prio=P.MEDIUM, scope="device", source="gw-01")], YELLOW),
    ("shelved critical does not colour", [alarm(kind="HH", prio=P.CRITICAL, **SHELF)], BLUE),
    ("suppressed critical does not colour", [alarm(kind="HH", prio=P.CRITICAL, suppressions=("x",))], BLUE),
    (
        "out of service critical does not colour",
        [alarm(kind="HH", prio=P.CRITICAL, out_of_service=True)],
        BLUE,
    ),
    ("worst wins: yellow + orange", [alarm(kind="H"), alarm(kind="HH", prio=P.HIGH, source="B")], ORANGE),
    (
        "worst wins: orange + red",
        [alarm(kind="HH", prio=P.HIGH), alarm(kind="HH", prio=P.CRITICAL, source="B")],
        RED,
    ),
    ("alarm of another site", [alarm(site="s1", kind="HH", prio=P.CRITICAL)], BLUE),
    ("alarm of an unknown site is ignored", [alarm(site="nowhere", kind="HH", prio=P.CRITICAL)], BLUE),
]


def two_sites() -> SiteSlots:
    return SiteSlots.build(("s0", "s1"), np.array([0, 0, 0, 1, 1]))


@pytest.mark.parametrize(
    ("alarms", "colour"), [(a, c) for _, a, c in COLOUR_TABLE], ids=[d for d, _, _ in COLOUR_TABLE]
)
def test_colour_rule(alarms, colour):
    ov = site_overview(two_sites(), np.full(5, -1, dtype=np.int64), alarms)
    assert COLOUR_NAMES[ov.colour[0]] == COLOUR_NAMES[colour]


def test_alarm_colour_of_a_critical_fault_is_red():
    assert alarm_colour(alarm(kind="FAULT", prio=P.CRITICAL, level="spike")) == RED


def test_counts_by_state_and_worst_priority():
    alarms = [
        alarm(kind="H", source="A"),  # UNACK medium
        alarm(kind="HH", prio=P.HIGH, acked=True, source="B"),  # ACK high
        alarm(kind="H", active=False, source="C"),  # RTN_UNACK
        alarm(kind="HH", prio=P.CRITICAL, source="D", **SHELF),  # SHELVED, not listed
        alarm(kind="L", source="E", suppressions=("instrument fault",)),  # SUPPRESSED
        alarm(kind="L", source="F", out_of_service=True),  # OUT_OF_SERVICE
        alarm(kind="H", active=False, acked=True, source="G"),  # NORMAL: not counted
    ]
    ov = site_overview(two_sites(), np.full(5, -1, dtype=np.int64), alarms)
    by_state = dict(zip((s.value for s in COUNTED_STATES), ov.counts[0].tolist(), strict=True))
    assert by_state == {
        "UNACK": 1,
        "ACK": 1,
        "RTN_UNACK": 1,
        "SHELVED": 1,
        "SUPPRESSED": 1,
        "OUT_OF_SERVICE": 1,
    }
    assert ov.counts[1].sum() == 0
    assert ov.worst_priority.tolist() == [int(P.HIGH), 0]  # the shelved critical is not on the list
    assert ov.sensor_count.tolist() == [3, 2]


def test_data_age_from_the_newest_reading_and_never_seen_sensors():
    slots = SiteSlots.build(("s0", "s1", "s2"), np.array([0, 0, 1, 1, 2]))
    # s0: one sensor never heard (-1), one at 9 000; s1: never heard at all; s2: heard at 4 000
    last_t = np.array([-1, 9_000, -1, -1, 4_000], dtype=np.int64)
    ov = site_overview(slots, last_t, [])
    assert ov.newest_ms.tolist() == [9_000, -1, 4_000]
    assert ov.data_age_s(0, 10_000) == 1.0
    assert ov.data_age_s(1, 10_000) is None
    assert ov.data_age_s(2, 10_000) == 6.0
    assert ov.data_age_s(0, 8_000) == 0.0  # a reading stamped ahead of the clock is not a negative age


def test_a_site_without_sensors():
    slots = SiteSlots.build(("s0", "empty"), np.array([0, 0]))
    ov = site_overview(slots, np.array([5, 7], dtype=np.int64), [])
    assert ov.sensor_count.tolist() == [2, 0]
    assert ov.newest_ms.tolist() == [7, -1]
    assert ov.colour.tolist() == [BLUE, BLUE]


def test_two_thousand_sites_hundred_thousand_sensors_five_thousand_alarms(capsys):
    rng = np.random.default_rng(5)
    n_sites, n_sensors, n_alarms = 2_000, 100_000, 5_000
    site_ids = tuple(f"site-{i:04d}" for i in range(n_sites))
    site_of_slot = np.sort(rng.integers(0, n_sites, n_sensors))
    last_t = np.where(rng.random(n_sensors) < 0.1, -1, rng.integers(0, 10**12, n_sensors))
    kinds = ("H", "HH", "L", "LL", "FAULT", "STALE", "EARLY_WARNING")
    alarms = [
        alarm(
            site=site_ids[int(rng.integers(n_sites))],
            kind=kinds[j % len(kinds)],
            prio=Priority(int(rng.integers(1, 5))),
            acked=bool(j % 2),
            active=bool(j % 3),
            source=f"S{j}",
        )
        for j in range(n_alarms)
    ]
    t0 = time.perf_counter()
    slots = SiteSlots.build(site_ids, site_of_slot)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    ov = site_overview(slots, last_t, alarms)
    took = time.perf_counter() - t0
    with capsys.disabled():
        print(  # noqa: T201 - figures for the closing note
            f"\nSiteSlots.build {built * 1000:.1f} ms; site_overview 2000/100000/5000 {took * 1000:.1f} ms"
        )
    assert ov.counts.sum() == sum(1 for a in alarms if a.state.value != "NORMAL")
    assert ov.sensor_count.sum() == n_sensors
    assert took < 5.0  # generous: this machine may be busy; the figure printed is what matters
