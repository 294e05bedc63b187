"""The stream's `values` events (api/routers/stream.py): one shared frame per scope and values tick."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import orjson

from api.routers.stream import StreamValues, ValuesFeed


def _service(n: int):
    sensors = [SimpleNamespace(site=f"site-{i % 2}", id=f"S{i:03d}") for i in range(n)]
    index = SimpleNamespace(
        sensors=sensors,
        site_ids=("site-0", "site-1"),
        site_of_slot=np.array([i % 2 for i in range(n)], dtype=np.int32),
    )
    engine = SimpleNamespace(last_t=np.full(n, -1, dtype=np.int64), last_x=np.full(n, np.nan), index=index)
    return SimpleNamespace(alarms=SimpleNamespace(engine=engine))


def _report(service, slots, t_ms: int, x: float = 1.0) -> None:
    engine = service.alarms.engine
    engine.last_t[slots] = t_ms
    engine.last_x[slots] = x


def _sensors(frame: bytes | None) -> set[str]:
    if frame is None:
        return set()
    data = orjson.loads(frame.split(b"data: ", 1)[1])
    for site, values in data["sites"].items():  # every sensor under its own site, as [value, time]
        assert all(int(s[1:]) % 2 == int(site[-1]) and len(v) == 2 for s, v in values.items())
    return {s for site in data["sites"].values() for s in site}


def test_streams_of_one_scope_share_one_frame_per_tick_with_only_what_changed():
    svc = _service(10)
    _report(svc, np.arange(10), 1000)
    feed = ValuesFeed(np.ones(10, dtype=bool))
    a, b = StreamValues(feed, 10), StreamValues(feed, 10)
    # the first frame of each stream carries every sensor with a reading
    assert _sensors(a.next_frame(svc, 1)) == {f"S{i:03d}" for i in range(10)}
    assert _sensors(b.next_frame(svc, 1)) == {f"S{i:03d}" for i in range(10)}
    assert a.next_frame(svc, 1) is None  # the tick was served
    _report(svc, [2, 5], 2000)
    fa, fb = a.next_frame(svc, 2), b.next_frame(svc, 2)
    assert fa is fb  # one frame, built once, for both
    assert _sensors(fa) == {"S002", "S005"}
    assert a.next_frame(svc, 3) is None and b.next_frame(svc, 3) is None  # nothing new
    _report(svc, [7], 4000, x=float("nan"))
    f4 = a.next_frame(svc, 4)
    assert _sensors(f4) == {"S007"}
    assert orjson.loads(f4.split(b"data: ", 1)[1])["sites"] == {"site-1": {"S007": [None, 4000]}}


def test_a_stream_that_missed_a_tick_gets_everything_since_its_last_frame():
    svc = _service(6)
    _report(svc, np.arange(6), 1000)
    feed = ValuesFeed(np.ones(6, dtype=bool))
    fast, slow = StreamValues(feed, 6), StreamValues(feed, 6)
    fast.next_frame(svc, 1)
    slow.next_frame(svc, 1)
    _report(svc, [1], 2000)
    assert _sensors(fast.next_frame(svc, 2)) == {"S001"}
    _report(svc, [3], 3000)
    assert _sensors(fast.next_frame(svc, 3)) == {"S003"}
    # `slow` skipped tick 2: tick 3's shared frame would lose S001, so it gets its own
    assert _sensors(slow.next_frame(svc, 3)) == {"S001", "S003"}
    _report(svc, [4], 4000)
    f4 = fast.next_frame(svc, 4)
    assert slow.next_frame(svc, 4) is f4 and _sensors(f4) == {"S004"}  # back on the shared frame


def test_a_stream_joining_later_starts_with_the_whole_state_and_then_shares():
    svc = _service(4)
    _report(svc, [0, 1], 1000)
    feed = ValuesFeed(np.ones(4, dtype=bool))
    old = StreamValues(feed, 4)
    old.next_frame(svc, 1)
    _report(svc, [2], 1500)  # after tick 1's snapshot
    new = StreamValues(feed, 4)
    assert _sensors(new.next_frame(svc, 1)) == {"S000", "S001", "S002"}  # the engine's latest state
    _report(svc, [3], 2500)
    frame = old.next_frame(svc, 2)
    assert _sensors(frame) == {"S002", "S003"}
    assert new.next_frame(svc, 2) is frame  # S002 again: values are state, none is lost


def test_a_feed_sends_only_its_scope():
    svc = _service(6)
    _report(svc, np.arange(6), 1000)
    mask = np.array([i % 2 == 0 for i in range(6)])  # site-0's sensors
    s = StreamValues(ValuesFeed(mask), 6)
    assert _sensors(s.next_frame(svc, 1)) == {"S000", "S002", "S004"}
    _report(svc, [1, 2], 2000)
    assert _sensors(s.next_frame(svc, 2)) == {"S002"}
