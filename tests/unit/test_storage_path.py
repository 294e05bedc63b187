"""Line protocol rendering, the disk spool and the batching writer, without servers."""

from __future__ import annotations

import errno
import os
import threading
import time

import numpy as np
import pytest

from ingest.lineproto import batch_to_line_protocol, escape_tag, format_values, series_prefixes
from ingest.spool import Spool, SpoolFull, SpoolWriteFailed
from ingest.stats import IngestStats
from ingest.store import StoreRejected, StoreUnavailable
from ingest.writer import BatchWriter
from sensors.readings import ReadingBatch


def batch(n: int, start_ts: int = 1_795_392_000_000, slot: int = 0) -> ReadingBatch:
    return ReadingBatch(
        slot=np.full(n, slot, np.int32),
        ts_ms=np.arange(start_ts, start_ts + n, dtype=np.int64),
        value=np.linspace(0.0, 1.0, n),
        quality=np.zeros(n, np.int8),
    )


# ---- line protocol


def test_line_protocol_matches_the_documented_layout(index):
    b = ReadingBatch(
        np.array([1, 0], np.int32),
        np.array([1795392000123, 1795392000456], np.int64),
        np.array([12.31, -0.5]),
        np.array([1, 0], np.int8),
    )
    body = batch_to_line_protocol(series_prefixes(index), b).decode()
    assert body.splitlines() == [
        "readings,kind=level,sensor=S1,site=site-0 value=12.31,quality=1i 1795392000123",
        "readings,kind=level,sensor=S0,site=site-0 value=-0.5,quality=0i 1795392000456",
    ]


def test_line_protocol_values_round_trip_exactly(index):
    values = np.array([0.1, 1e-300, 123456789.123456789, -2.5e17, 5e-324])
    b = ReadingBatch(np.zeros(5, np.int32), np.arange(5, dtype=np.int64), values, np.zeros(5, np.int8))
    lines = batch_to_line_protocol(series_prefixes(index), b).decode().splitlines()
    parsed = [float(line.split("value=")[1].split(",")[0]) for line in lines]
    assert parsed == values.tolist()


def test_values_are_formatted_as_floats_that_read_back_exactly():
    values = np.array([3.0, -0.0, 1e16, 1e-5, 0.1 + 0.2, 1.7976931348623157e308, 5e-324])
    text = format_values(values).tolist()
    assert [float(t) for t in text] == values.tolist()
    assert text[0] == "3.0" and all("null" not in t and "," not in t for t in text)
    assert format_values(np.array([1.5, np.nan])).tolist() == ["1.5", "nan"]  # numpy's text, as before


def test_tag_values_are_escaped():
    assert escape_tag("a b,c=d") == "a\\ b\\,c\\=d"


# ---- spool


def test_spool_replays_segments_in_order_and_survives_a_restart(tmp_path):
    spool = Spool(tmp_path, max_bytes=1_000)
    for body in (b"one", b"two", b"three"):
        spool.append(body)
    (tmp_path / "000000000009.tmp").write_bytes(b"half-written")  # a crash mid-append
    reopened = Spool(tmp_path, max_bytes=1_000)
    assert reopened.segments == 3 and reopened.bytes == 11
    got = []
    while (head := reopened.peek()) is not None:
        got.append(head[1])
        reopened.remove(head[0])
    assert got == [b"one", b"two", b"three"]
    assert not list(tmp_path.iterdir())


def test_spool_refuses_beyond_its_byte_limit(tmp_path):
    spool = Spool(tmp_path, max_bytes=10)
    spool.append(b"12345678")
    with pytest.raises(SpoolFull):
        spool.append(b"123")


def test_a_disk_that_refuses_a_segment_is_a_spool_error_and_leaves_no_part_of_it(tmp_path, monkeypatch):
    spool = Spool(tmp_path, max_bytes=1_000)
    spool.append(b"kept")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(SpoolWriteFailed, match="No space left"):
        spool.append(b"refused")
    monkeypatch.undo()
    assert [p.suffix for p in tmp_path.iterdir()] == [".lp"]  # no .tmp, no half segment
    assert (spool.segments, spool.bytes) == (1, 4)
    spool.append(b"later")  # the disk has room again
    assert spool.segments == 2


class RefusingSpool(Spool):
    """A spool whose disk refuses every write while `refusing` is set (ENOSPC, as a full disk)."""

    refusing = True

    def append(self, body: bytes) -> None:
        if self.refusing:
            raise SpoolWriteFailed("spool write failed: No space left on device")
        super().append(body)


# ---- writer


class FakeStore:
    """A reading store of its own format (one `ts` per line), to show the writer and the spool treat
    bodies as opaque; it records what it stores and can be switched down or to refusing."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.down = False
        self.refuse = False

    def encode(self, batch) -> bytes:
        return "\n".join(map(str, batch.ts_ms.tolist())).encode()

    def encoded_points(self, body: bytes) -> int:
        return body.count(b"\n") + 1 if body else 0

    def write_encoded(self, body: bytes) -> None:
        if self.down:
            raise StoreUnavailable("connection refused")
        if self.refuse:
            raise StoreRejected(400, "field type conflict")
        self.bodies.append(body)

    def points(self) -> list[int]:
        return [int(line) for body in self.bodies for line in body.splitlines()]


def make_writer(tmp_path, store, **kw) -> tuple[BatchWriter, IngestStats]:
    stats = IngestStats()
    w = BatchWriter(
        store,
        Spool(tmp_path / "spool", 10**8),
        stats,
        max_age_s=0.05,
        retry_min_s=0.05,
        retry_max_s=0.2,
        **kw,
    )
    w.start()
    return w, stats


def wait_until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_writer_batches_by_size_and_acks_only_after_the_write(tmp_path):
    store = FakeStore()
    w, stats = make_writer(tmp_path, store, max_points=100)
    acked = threading.Event()
    w.submit(batch(250), acked.set)
    wait_until(acked.is_set)
    assert [body.count(b"\n") + 1 for body in store.bodies] == [100, 100, 50]
    assert stats.points_written == 250
    w.stop()


@pytest.mark.deep
def test_writer_spools_while_influx_is_down_acks_anyway_and_replays_in_order(tmp_path):
    store = FakeStore()
    w, stats = make_writer(tmp_path, store, max_points=50)
    store.down = True
    acks = []
    for i in range(4):
        w.submit(batch(50, start_ts=1_000_000 + i * 50), lambda i=i: acks.append(i))
    wait_until(lambda: len(acks) == 4)  # durable in the spool, so acknowledged
    assert stats.points_spooled == 200 and stats.spool_segments >= 1 and not store.bodies
    store.down = False
    w.submit(batch(10, start_ts=2_000_000), lambda: acks.append(4))
    wait_until(lambda: w.idle() and len(acks) == 5)
    assert store.points() == list(range(1_000_000, 1_000_200)) + list(range(2_000_000, 2_000_010))
    # fresh data queues behind the spool while it drains, so it may be replayed too
    assert stats.points_replayed == stats.points_spooled >= 200 and stats.spool_bytes == 0
    w.stop()


def test_writer_refused_batch_is_counted_and_does_not_block_the_stream(tmp_path):
    store = FakeStore()
    w, stats = make_writer(tmp_path, store, max_points=10)
    store.refuse = True
    done = threading.Event()
    w.submit(batch(10), done.set)
    wait_until(done.is_set)
    assert stats.points_refused == 10 and stats.spool_segments == 0
    w.stop()


def test_writer_stop_flushes_pending_points(tmp_path):
    store = FakeStore()
    w, _ = make_writer(tmp_path, store, max_points=10_000)
    w.max_age_s = 60
    w.submit(batch(7))
    w.stop()
    assert len(store.points()) == 7


def test_a_spool_that_cannot_take_a_batch_holds_it_unacknowledged_until_the_disk_takes_it(tmp_path):
    store = FakeStore()
    stats = IngestStats()
    spool = RefusingSpool(tmp_path / "spool", 10**8)
    w = BatchWriter(store, spool, stats, max_points=50, max_age_s=0.02, retry_min_s=0.02, retry_max_s=0.05)
    w.start()
    store.down = True
    acked = threading.Event()
    w.submit(batch(50), acked.set)
    wait_until(lambda: stats.spool_refusals >= 2)  # tried again and again
    assert not acked.is_set() and stats.spool_error and "No space left" in stats.spool_error
    assert stats.snapshot()["spool_error"] == stats.spool_error
    assert "hazmon_spool_ok 0" in stats.render_prometheus()
    spool.refusing = False  # room on the disk again: spooled, then acknowledged
    wait_until(acked.is_set)
    assert stats.points_spooled == 50 and stats.spool_error is None
    store.down = False
    wait_until(w.idle)
    assert store.points() == list(range(1_795_392_000_000, 1_795_392_000_050))
    w.stop()


def test_held_readings_go_to_influxdb_when_it_returns_before_the_disk(tmp_path):
    store = FakeStore()
    stats = IngestStats()
    w = BatchWriter(
        store,
        RefusingSpool(tmp_path / "spool", 10**8),
        stats,
        max_age_s=0.02,
        retry_min_s=0.02,
        retry_max_s=0.05,
    )
    w.start()
    store.down = True
    acked = threading.Event()
    w.submit(batch(20), acked.set)
    wait_until(lambda: stats.spool_refusals >= 1)
    store.down = False
    wait_until(acked.is_set)
    assert len(store.points()) == 20 and stats.spool_error is None
    w.stop()


def test_a_batch_still_held_when_the_writer_stops_is_never_acknowledged(tmp_path):
    store = FakeStore()
    stats = IngestStats()
    w = BatchWriter(store, RefusingSpool(tmp_path / "spool", 10**8), stats, max_age_s=0.02, retry_min_s=0.02)
    w.start()
    store.down = True
    acked = threading.Event()
    w.submit(batch(20), acked.set)
    wait_until(lambda: stats.spool_refusals >= 1)
    w.stop()
    assert not acked.is_set() and stats.batches_withheld == 1  # the broker keeps them and sends them again


def test_an_unexpected_error_while_storing_acknowledges_nothing(tmp_path):
    class BrokenStore(FakeStore):
        def write_encoded(self, body: bytes) -> None:
            raise RuntimeError("a bug in the adapter")

    stats = IngestStats()
    w = BatchWriter(BrokenStore(), Spool(tmp_path / "spool", 10**8), stats, max_age_s=0.02)
    w.start()
    acked = threading.Event()
    w.submit(batch(5), acked.set)
    wait_until(lambda: stats.batches_withheld == 1)
    assert not acked.is_set()
    w.stop()


def test_writer_backlog_is_how_long_the_oldest_batch_waits_for_the_store(tmp_path):
    class SlowStore(FakeStore):
        def __init__(self) -> None:
            super().__init__()
            self.open = threading.Event()

        def write_encoded(self, body: bytes) -> None:
            self.open.wait(5)
            super().write_encoded(body)

    store = SlowStore()
    w, _ = make_writer(tmp_path, store, max_points=10)
    assert w.backlog_s() == 0.0  # nothing accepted
    acked = threading.Event()
    w.submit(batch(50), acked.set)  # five writes: two in flight, the others wait their turn
    time.sleep(0.3)
    assert w.backlog_s() >= 0.25  # a store that does not keep up shows, though readings are on time
    store.open.set()
    wait_until(acked.is_set)
    wait_until(lambda: w.backlog_s() == 0.0)
    w.stop()
