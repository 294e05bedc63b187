"""The alarm pipeline without servers: the bounded work queue and the engine thread feeding the book."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from alerts.book.book import AlarmBook
from alerts.book.sqlite_journal import AlarmJournal
from alerts.engine.alarm_engine import AlarmEngine
from alerts.pipeline import ADVANCE, EXPIRE_SHELVES, AlarmPipeline, WorkQueue
from alerts.stats import AlarmStats
from sensors.index import SensorIndex
from sensors.readings import ReadingBatch
from tests.unit.conftest import make_registry

T0 = 1_795_392_000_000


def batch(slots, ts, values) -> ReadingBatch:
    n = len(slots)
    return ReadingBatch(
        np.asarray(slots, np.int32),
        np.asarray(ts, np.int64),
        np.asarray(values, np.float64),
        np.zeros(n, np.int8),
    )


# ---- the queue


def test_take_returns_every_waiting_batch_in_arrival_order_and_jobs_once():
    q = WorkQueue()
    b1, b2 = batch([0], [T0], [1.0]), batch([1, 2], [T0, T0], [2.0, 3.0])
    q.put_batch(b1)
    q.post(ADVANCE)
    q.put_batch(b2)
    q.post(ADVANCE)  # coalesced with the pending one
    q.post(EXPIRE_SHELVES)
    assert q.depth == 3
    work = q.take(0)
    assert work.batches == [b1, b2] and work.jobs == [ADVANCE, EXPIRE_SHELVES]
    assert len(work.enqueued_s) == 2
    assert q.depth == 0 and q.take(0).batches == []


def test_a_full_queue_makes_the_producer_wait_until_the_consumer_takes():
    q = WorkQueue(max_readings=2, put_timeout_s=5)
    q.put_batch(batch([0, 1], [T0, T0], [1.0, 1.0]))
    done = threading.Event()

    def produce():
        q.put_batch(batch([2], [T0], [1.0]))
        done.set()

    threading.Thread(target=produce).start()
    deadline = time.monotonic() + 5
    while q.waits == 0 and time.monotonic() < deadline:  # until the producer finds no room
        time.sleep(0.001)
    assert q.waits == 1 and not done.wait(0.02)  # blocked: room for nothing
    assert len(q.take(0).batches) == 1
    assert done.wait(2)
    assert q.dropped_batches == 0 and q.depth == 1


def test_a_queue_full_for_longer_than_the_timeout_drops_and_counts():
    q = WorkQueue(max_readings=2, put_timeout_s=0.05)
    assert q.put_batch(batch([0, 1], [T0, T0], [1.0, 1.0]))
    assert not q.put_batch(batch([2, 3, 4], [T0] * 3, [1.0] * 3))
    assert (q.dropped_batches, q.dropped_readings) == (1, 3)


def test_a_batch_larger_than_the_bound_still_enters_an_empty_queue():
    q = WorkQueue(max_readings=2, put_timeout_s=0)
    assert q.put_batch(batch([0, 1, 2], [T0] * 3, [1.0] * 3))


def test_close_hands_out_what_is_left_then_none():
    q = WorkQueue()
    q.put_batch(batch([0], [T0], [1.0]))
    q.close()
    assert not q.put_batch(batch([1], [T0], [1.0]))
    assert len(q.take(0).batches) == 1
    assert q.take(0) is None


def test_take_times_out_empty():
    started = time.monotonic()
    work = WorkQueue().take(0.05)
    assert work is not None and not work.batches and not work.jobs
    assert time.monotonic() - started >= 0.04


# ---- the pipeline with the real engine and book


@pytest.fixture
def rig(tmp_path):
    index = SensorIndex.build(make_registry(n_sites=2, sensors_per_site=3))  # h 16.5, hh 18
    journal = AlarmJournal(tmp_path / "alarms.sqlite")
    clock = [T0]
    events = []
    book = AlarmBook(journal, clock=lambda: clock[0], on_events=events.extend)
    engine = AlarmEngine(index, start_ms=T0)
    stats = AlarmStats()
    pipeline = AlarmPipeline(engine, book, WorkQueue(), stats, clock_ms=lambda: clock[0])
    yield pipeline, book, events, clock, stats
    journal.close()


def test_batches_waiting_together_are_processed_as_one_and_raise_once(rig):
    pipeline, book, events, _clock, stats = rig
    pipeline.on_batch(batch([0, 1], [T0 + 1000, T0 + 1000], [10.0, 10.0]))
    pipeline.on_batch(batch([0], [T0 + 2000], [17.0]))  # S0 above H
    pipeline.on_batch(batch([], [], []))  # empty batches are not queued
    assert pipeline.queue.pending_batches == 2
    pipeline.run(pipeline.queue.take(0))
    assert [(e.type, e.key[2], e.key[3]) for e in events] == [("AlarmRaised", "S0", "H")]
    assert book.current()[0].alarm_id == "A000001"
    snap = stats.snapshot()
    assert snap["batches"] == 1 and snap["readings"] == 3 and snap["conditions"] == 1


def test_clock_jobs_use_the_wall_clock_for_stale_data(rig):
    pipeline, _book, events, clock, _stats = rig
    pipeline.on_batch(batch([0, 1, 2], [T0 + 1000] * 3, [10.0] * 3))
    pipeline.run(pipeline.queue.take(0))
    clock[0] = T0 + 10 * 60_000  # ten minutes of silence (stale after 30 s)
    pipeline.post(ADVANCE)
    pipeline.run(pipeline.queue.take(0))
    assert {e.key[3] for e in events if e.type == "AlarmRaised"} == {"STALE"}


def test_a_failing_batch_is_counted_and_processing_goes_on(rig):
    pipeline, _book, events, _clock, stats = rig
    pipeline.on_batch(batch([99], [T0 + 1000], [1.0]))  # no such slot: the engine raises
    pipeline.run(pipeline.queue.take(0))
    assert stats.snapshot()["errors"] == 1
    pipeline.on_batch(batch([0], [T0 + 2000], [17.0]))
    pipeline.run(pipeline.queue.take(0))
    assert [e.type for e in events] == ["AlarmRaised"]


def test_the_thread_processes_what_the_listener_enqueues_and_drains_on_stop(rig):
    pipeline, _book, events, _clock, _stats = rig
    pipeline.start()
    assert pipeline.alive
    pipeline.on_batch(batch([0], [T0 + 2000], [17.0]))
    pipeline.stop()
    assert not pipeline.alive
    assert [e.type for e in events] == ["AlarmRaised"]


def test_an_unknown_job_is_counted_not_fatal(rig):
    pipeline, _book, _events, _clock, stats = rig
    pipeline.post("defragment")
    pipeline.run(pipeline.queue.take(0))
    assert stats.snapshot()["errors"] == 1


def test_restored_conditions_are_not_raised_again(rig, tmp_path):
    pipeline, book, events, _clock, _stats = rig
    pipeline.on_batch(batch([0], [T0 + 1000], [17.0]))
    pipeline.run(pipeline.queue.take(0))
    assert len(events) == 1
    # a new engine after a "restart", restored from the book, sees the same condition again
    engine = AlarmEngine(pipeline.engine.index, start_ms=T0 + 5000)
    engine.restore_active(book.active_condition_keys())
    again = AlarmPipeline(engine, book, WorkQueue(), AlarmStats(), clock_ms=lambda: T0 + 6000)
    again.on_batch(batch([0], [T0 + 6000], [17.2]))
    again.run(again.queue.take(0))
    assert len(events) == 1 and book.current()[0].alarm_id == "A000001"
