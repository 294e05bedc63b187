"""History is not rewritten silently (issue 11): ingest/history_guard.py and ingest/history_check.py.

A reading at a timestamp that already holds another value is refused (`rewrite`) for a sensor
without a registered device, accepted from the sensor's own device (its store-and-forward replay),
and reported for the audit either way; a redelivery of the same value is harmless."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from ingest.history_check import HistoryChange, HistoryCheck
from ingest.history_guard import HistoryGuard, settle_repeats
from ingest.payloads import PayloadDecoder, RawMessage
from ingest.stats import IngestStats
from ingest.store import StoreUnavailable
from sensors.index import SensorIndex
from sensors.model import Registry
from sensors.readings import ReadingBatch
from tests.support.memory_store import MemoryStore
from tests.unit.conftest import make_registry

NOW = 1_795_392_000_000
START = NOW - 3_600_000  # the process started an hour ago


def batch(slots, ts, values) -> ReadingBatch:
    n = len(slots)
    return ReadingBatch(
        np.asarray(slots, np.int32), np.asarray(ts, np.int64), np.asarray(values, float), np.zeros(n, np.int8)
    )


# ---- the guard (pure)


def test_a_timestamp_written_since_start_is_held_at_its_value_and_a_newer_one_is_new():
    guard = HistoryGuard(3, trust_from_ms=START)
    guard.remember(batch([0, 0, 1], [NOW, NOW + 1000, NOW], [1.0, 2.0, 5.0]))
    s = guard.screen(batch([0, 0, 1, 2], [NOW, NOW + 2000, NOW, NOW], [9.0, 3.0, 5.0, 7.0]))
    assert s.held.tolist() == [True, False, True, False]
    assert s.held_value[0] == 1.0 and s.held_value[2] == 5.0
    assert s.changes.tolist() == [True, False, False, False]  # the same value again is no change
    assert not s.unknown.any()


def test_what_the_guard_no_longer_remembers_or_never_saw_is_unknown():
    guard = HistoryGuard(2, trust_from_ms=START, ring=2)
    guard.remember(batch([0] * 5, [NOW + i * 1000 for i in range(5)], [float(i) for i in range(5)]))
    s = guard.screen(
        batch([0, 0, 0, 1, 1], [NOW, NOW + 4000, NOW + 500, START - 1, START], [0.0, 4.0, 1.0, 1, 1])
    )
    # evicted from the ring of two / remembered / before the newest but never written since start /
    # before the process started (only the store knows) / after start for a sensor not seen yet: new
    assert s.unknown.tolist() == [True, False, True, True, False]
    assert s.held.tolist() == [False, True, False, False, False]


def test_the_ring_keeps_each_sensors_last_points_across_batches_of_any_size():
    guard = HistoryGuard(2, trust_from_ms=START, ring=3)
    guard.remember(batch([0, 1, 0], [NOW, NOW, NOW + 1], [1.0, 2.0, 3.0]))
    guard.remember(batch([0] * 4 + [1], [NOW + 2, NOW + 3, NOW + 4, NOW + 5, NOW + 1], [4, 5, 6, 7, 8.0]))
    s = guard.screen(batch([0] * 6 + [1, 1], [NOW + t for t in range(6)] + [NOW, NOW + 1], [0.0] * 8))
    assert s.held.tolist() == [False, False, False, True, True, True, True, True]
    assert s.held_value[3:].tolist() == [5.0, 6.0, 7.0, 2.0, 8.0]


def test_a_change_sent_twice_in_one_batch_is_two_changes_and_a_repeated_new_value_one():
    guard = HistoryGuard(2, trust_from_ms=START)
    guard.remember(batch([0], [NOW], [1.0]))
    b = batch([0, 0, 1, 1, 1], [NOW, NOW, NOW, NOW, NOW], [7.0, 7.0, 3.0, 3.0, 4.0])
    s = guard.screen(b)
    settle_repeats(b.slot, b.ts_ms, s)
    assert s.changes.tolist() == [True, True, False, False, True]


# ---- the check, with the decoder and a store in memory


def index_with_device() -> SensorIndex:
    """site-0: S0 on gateway gw-01; the other sensors name no device."""
    base = make_registry()
    site0 = base.sites[0]
    sensors = (replace(site0.sensors[0], device="gw-01"), *site0.sensors[1:])
    return SensorIndex.build(Registry((replace(site0, sensors=sensors), *base.sites[1:])))


class Rig:
    def __init__(self, current: bool = True, store: MemoryStore | None = None):
        self.index = index_with_device()
        self.decoder = PayloadDecoder(self.index, max_lateness_ms=7 * 86_400_000)
        self.store = store or MemoryStore(self.index)
        self.stats = IngestStats()
        self.reported: list[HistoryChange] = []
        self.current = current
        self.check = HistoryCheck(
            self.index,
            self.decoder,
            self.store,
            self.stats,
            HistoryGuard(len(self.index.sensors), trust_from_ms=START),
            store_current=lambda: self.current,
            on_changes=self.reported.extend,
        )

    def publish(self, items: list[dict], device: str = "gw-01"):
        """Decode, check, count and store like the collector and writer; returns the result."""
        raw = RawMessage(f"hazmon/v1/site-0/{device}/readings", json.dumps({"readings": items}).encode(), NOW)
        result = self.decoder.decode([raw], NOW)
        self.check.apply(result, [raw])
        self.stats.add_decode(result)
        if len(result.batch):
            self.store.write_encoded(self.store.encode(result.batch))
        return result

    def stored(self, sensor: str) -> list[tuple[int, float]]:
        (series,) = self.store.read("site-0", [sensor], 0, 2**62)
        return list(zip(series.ts_ms.tolist(), series.values["value"].tolist(), strict=True))


def test_another_value_at_a_held_timestamp_of_a_sensor_without_device_is_refused_counted_and_audited():
    rig = Rig()
    rig.publish([{"sensor": "S1", "v": 2.5, "ts": NOW - 1000}])
    forged = rig.publish([{"sensor": "S1", "v": 99.0, "ts": NOW - 1000}, {"sensor": "S2", "v": 1.0}])
    assert rig.stored("S1") == [(NOW - 1000, 2.5)]  # history kept
    assert forged.reject_counts == {"rewrite": 1}
    assert "already holds 2.5, not 99.0" in forged.rejects[-1].detail
    assert [rig.index.sensor(s).id for s in forged.batch.slot.tolist()] == ["S2"]  # the good one beside it
    assert rig.stats.snapshot()["rejected_by_reason"] == {"rewrite": 1}
    (change,) = rig.reported
    assert (change.sensor, change.ts_ms, change.stored, change.new, change.device, change.accepted) == (
        "S1",
        NOW - 1000,
        2.5,
        99.0,
        "gw-01",
        False,
    )


def test_a_redelivery_of_the_same_value_is_accepted_silently():
    rig = Rig()
    for _ in range(2):
        result = rig.publish([{"sensor": "S1", "v": 2.5, "ts": NOW - 1000}])
        assert len(result.batch) == 1 and not result.reject_counts
    assert rig.reported == [] and rig.stats.snapshot()["history_rewrites"] == 0


def test_the_sensors_own_device_may_correct_its_history_and_the_change_is_audited():
    rig = Rig()
    rig.publish([{"sensor": "S0", "v": 1.0, "ts": NOW - 1000}])
    replay = rig.publish([{"sensor": "S0", "v": 1.25, "ts": NOW - 1000}])
    assert len(replay.batch) == 1 and not replay.reject_counts
    assert rig.stored("S0") == [(NOW - 1000, 1.25)]
    assert rig.stats.snapshot()["history_rewrites"] == 1
    assert [(c.sensor, c.stored, c.new, c.accepted) for c in rig.reported] == [("S0", 1.0, 1.25, True)]


def test_after_a_restart_an_old_timestamp_is_checked_against_the_store():
    store = MemoryStore(index_with_device())
    store.put("site-0", "S1", [START - 86_400_000, START - 60_000], [4.0, 5.0])
    rig = Rig(store=store)  # a new process: the guard remembers nothing
    result = rig.publish(
        [
            {"sensor": "S1", "v": 6.0, "ts": START - 60_000},  # a change: refused
            {"sensor": "S1", "v": 4.0, "ts": START - 86_400_000},  # a redelivery: fine
            {"sensor": "S1", "v": 7.0, "ts": START - 30_000},  # a gap filled: new
        ]
    )
    assert result.reject_counts == {"rewrite": 1}
    assert rig.stored("S1") == [(START - 86_400_000, 4.0), (START - 60_000, 5.0), (START - 30_000, 7.0)]
    (call,) = store.calls[:1]
    assert (call.site, call.sensors, call.start_ms, call.end_ms) == (
        "site-0",
        ("S1",),
        START - 86_400_000,
        START - 30_000 + 1,
    )


def test_while_the_store_lags_unknown_timestamps_are_let_through_and_counted_unverified():
    store = MemoryStore(index_with_device())
    store.put("site-0", "S1", [START - 60_000], [5.0])
    rig = Rig(current=False, store=store)
    result = rig.publish([{"sensor": "S1", "v": 6.0, "ts": START - 60_000}, {"sensor": "S2", "v": 1.0}])
    assert len(result.batch) == 2 and not result.reject_counts
    assert store.calls == []  # not asked: it would not know what the spool still holds
    assert rig.stats.snapshot()["history_unverified"] == 1


def test_a_store_that_fails_to_answer_leaves_the_readings_unverified_not_lost():
    store = MemoryStore(index_with_device())
    store.fail = StoreUnavailable("connection refused")
    rig = Rig(store=store)
    raw = RawMessage(
        "hazmon/v1/site-0/gw-01/readings",
        json.dumps({"readings": [{"sensor": "S1", "v": 6.0, "ts": START - 60_000}]}).encode(),
        NOW,
    )
    result = rig.decoder.decode([raw], NOW)
    rig.check.apply(result, [raw])
    assert len(result.batch) == 1
    assert rig.stats.snapshot()["history_unverified"] == 1


def test_a_flood_of_changes_is_counted_in_full_and_reported_in_bounded_rows():
    rig = Rig()
    items = [{"sensor": "S1", "v": 1.0, "ts": NOW - 10_000 + i} for i in range(500)]
    rig.publish(items)
    forged = rig.publish([{**it, "v": 2.0} for it in items])
    assert forged.reject_counts == {"rewrite": 500}
    assert len(rig.reported) == 100 and rig.reported[-1].more == 400


def test_past_the_time_budget_the_first_site_is_still_asked_and_the_others_let_through_unverified():
    """A cold process can spend the budget before its first query (CI, issue 11's restart test):
    the first site is always asked, so one site's readings after a restart are always checked."""
    store = MemoryStore(index_with_device())
    rig = Rig(store=store)
    rig.check.lookup_budget_s = -1.0  # spent before the first query
    raws = [
        RawMessage(
            f"hazmon/v1/{site}/gw-01/readings",
            json.dumps({"readings": [{"sensor": "S1", "v": 6.0, "ts": START - 60_000}]}).encode(),
            NOW,
        )
        for site in ("site-0", "site-1")
    ]
    result = rig.decoder.decode(raws, NOW)
    rig.check.apply(result, raws)
    assert len(result.batch) == 2
    assert [call.site for call in store.calls] == ["site-0"]
    assert rig.stats.snapshot()["history_unverified"] == 1
