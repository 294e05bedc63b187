"""api/recent.py: a value computed at most once per interval, and again as soon as its version moves
(the alarm book's change counter), so the map and the risk ranking follow a raise within 200 ms."""

from __future__ import annotations

import time

from api.recent import Recent


class FakeService:
    version = 0


def test_a_value_is_reused_until_too_old_or_its_version_moves_but_not_faster_than_the_floor():
    calls: list[int] = []

    def compute(_service, now_ms):
        calls.append(now_ms)
        return len(calls)

    svc = FakeService()
    recent: Recent[int] = Recent(60_000, compute, version=lambda s: s.version, min_age_ms=50)
    assert recent.get(svc)[1] == 1
    assert recent.get(svc)[1] == 1  # same version, young: reused
    svc.version += 1
    assert recent.get(svc)[1] == 1  # moved, but within the floor: a flood costs a bounded rate
    time.sleep(0.06)
    assert recent.get(svc)[1] == 2  # moved and past the floor: recomputed long before max age
    time.sleep(0.06)
    assert recent.get(svc)[1] == 2  # nothing moved: reused


def test_without_a_version_only_age_or_another_service_recompute():
    recent: Recent[int] = Recent(30, lambda _s, _t: time.monotonic_ns())
    a, b = FakeService(), FakeService()
    first = recent.get(a)[1]
    assert recent.get(a)[1] == first
    assert recent.get(b)[1] != first
    time.sleep(0.04)
    assert recent.get(b)[1] != first
