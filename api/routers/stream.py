"""Live push: a Server-Sent Events stream of alarm events and value changes, for the caller's scope.

GET /api/v1/stream (text/event-stream), authenticated like every route (the browser's session
cookie, which EventSource sends, or a bearer token). Events:

- `hello`  {"seq": n, "user": ...}: where the stream starts (the journal's newest event).
- `alarm`  id = the journal's sequence number; data {"seq", "type", "alarm_id", "site", "source",
  "kind", "time_ms", "details"}: every journalled event of a site in scope, in commit order.
- `values` {"time_ms", "sites": {site: {sensor: [value, time_ms]}}}: sensors whose latest reading
  changed since the last `values` event (every VALUES_EVERY_S); the first one after connecting
  carries every sensor in scope that has a reading, so a page needs nothing else to start.

- `bye`    {"reason"}: the stream ends because its session or token was revoked (logout), expired,
  or its user disabled; the caller's rights are checked again every RECHECK_S, and a change of
  role or scope applies to the open stream (its next `values` event carries the new scope's state).

A user has at most MAX_STREAMS_PER_USER open streams; another is refused with 429.

Resuming: the journal is the durable event log, so a client that reconnects with `Last-Event-ID`
(EventSource does it by itself) gets every alarm event after that id, none lost and none twice,
even across a restart of hazmon. Values are state, not history: after a reconnect the next
`values` event carries the full state again.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from alerts.engine.lifecycle import EVENT_CLASSES
from api.auth.deps import PrincipalDep, current_principal
from api.auth.model import Principal, can_see
from api.deps import ServiceDep
from api.routers.sites import site_slots
from api.service_port import ServicePort

router = APIRouter(prefix="/api/v1", tags=["stream"], dependencies=[Depends(current_principal)])

ALARM_POLL_S = 0.25
VALUES_EVERY_S = 2.0
KEEPALIVE_S = 15.0
FEED_IDLE_S = 60.0
RECHECK_S = 5.0
MAX_STREAMS_PER_USER = 8
ALL_TYPES = tuple(sorted(EVENT_CLASSES))


def _sse(event: str, data: dict, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


class _Scope:
    """The caller's sites, as a set of ids and a mask over sensor slots (built once per connection)."""

    def __init__(self, service: ServicePort, principal: Principal):
        slots, sites = site_slots(service)
        visible = np.array([can_see(principal.user, sites[s]) for s in slots.site_ids], dtype=bool)
        self.site_ids = slots.site_ids
        self.sites = {s for s, v in zip(slots.site_ids, visible, strict=True) if v}
        self.site_of_slot = slots.site_of_slot
        self.slot_mask = visible[slots.site_of_slot] if len(slots.site_of_slot) else np.zeros(0, bool)
        self.key = hashlib.blake2b(np.packbits(self.slot_mask).tobytes(), digest_size=16).digest()


def _alarm_rows(service: ServicePort, scope: _Scope, after: int) -> tuple[list[bytes], int]:
    """The next journalled events after `after` as SSE frames (only sites in scope); the new cursor."""
    rows = service.alarms.journal.history_after(after, ALL_TYPES, limit=500)
    frames = []
    for h in rows:
        after = h.seq
        site, scope_name, source, kind = h.key
        if site not in scope.sites:
            continue
        data = {
            "seq": h.seq, "type": h.type, "alarm_id": h.alarm_id, "site": site, "scope": scope_name,
            "source": source, "kind": kind, "time_ms": h.time_ms, "details": h.details,
        }  # fmt: skip
        frames.append(_sse("alarm", data, h.seq))
    return frames, after


def _values_frame(
    index, ids: list[str], mask: np.ndarray, sent_t: np.ndarray, last_t: np.ndarray, last_x: np.ndarray
) -> bytes | None:
    """A `values` frame of the sensors in `mask` whose reading in `last_t` is newer than `sent_t`.

    `index` is the engine's sensor index and `ids` its sensor ids by slot. Built site by site from
    runs of slots (a site's sensors are adjacent), not sensor by sensor: a province's frame holds
    tens of thousands of sensors."""
    changed = np.flatnonzero(mask & (last_t > sent_t))
    if changed.size == 0:
        return None
    codes = index.site_of_slot[changed]
    cuts = (np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist()
    slots = changed.tolist()
    xs = last_x[changed].tolist()  # NaN and inf are written as null
    ts = last_t[changed].tolist()
    out: dict[str, dict[str, tuple]] = {}
    for a, b in zip([0, *cuts], [*cuts, len(slots)], strict=True):
        site = index.site_ids[int(codes[a])]
        out.setdefault(site, {}).update(
            zip([ids[s] for s in slots[a:b]], zip(xs[a:b], ts[a:b], strict=True), strict=True)
        )
    return _sse("values", {"time_ms": time.time_ns() // 1_000_000, "sites": out})


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """The engine's latest readings at one values tick, and the frame of what changed since the
    feed's previous snapshot (tick `prev_tick`; None for the first)."""

    tick: int
    prev_tick: int | None
    t: np.ndarray
    delta: bytes | None


class ValuesFeed:
    """The `values` events of one scope: one snapshot of the engine's latest readings per values
    tick (VALUES_EVERY_S) and one frame of what changed since the previous snapshot, built once and
    sent to every stream of that scope. Twenty consoles on one province cost one frame per tick, not
    twenty (each a loop over the tens of thousands of sensors that reported in the interval)."""

    def __init__(self, mask: np.ndarray):
        self.mask = mask
        self._ids: list[str] | None = None
        self._lock = threading.Lock()
        self._snap: _Snapshot | None = None
        self.used = time.monotonic()

    def frame(
        self, service: ServicePort, sent_t: np.ndarray, last_t: np.ndarray, last_x: np.ndarray
    ) -> bytes | None:
        index = service.alarms.engine.index
        if self._ids is None or len(self._ids) != len(index.sensors):
            self._ids = [s.id for s in index.sensors]
        return _values_frame(index, self._ids, self.mask, sent_t, last_t, last_x)

    def snapshot(self, service: ServicePort, tick: int) -> _Snapshot:
        """The snapshot of `tick` (taken now by the first stream that asks)."""
        with self._lock:
            self.used = time.monotonic()
            snap = self._snap
            if snap is None or snap.tick < tick:
                engine = service.alarms.engine
                last_t = engine.last_t.copy()
                last_x = engine.last_x.copy()
                delta = None if snap is None else self.frame(service, snap.t, last_t, last_x)
                snap = self._snap = _Snapshot(tick, None if snap is None else snap.tick, last_t, delta)
            return snap


class ValuesFeeds:
    """The feeds by scope, on app.state; a feed no stream asked for in FEED_IDLE_S is dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._feeds: dict[bytes, ValuesFeed] = {}

    def feed(self, scope: _Scope) -> ValuesFeed:
        key = scope.key
        with self._lock:
            now = time.monotonic()
            for k in [k for k, f in self._feeds.items() if now - f.used > FEED_IDLE_S and k != key]:
                del self._feeds[k]
            feed = self._feeds.get(key)
            if feed is None:
                feed = self._feeds[key] = ValuesFeed(scope.slot_mask)
            return feed


class StreamValues:
    """One stream's side of its feed: which tick it has, and what it has sent.

    A stream that took the previous tick's snapshot gets the feed's shared frame; a new stream, or
    one that fell more than a tick behind, gets a frame of its own from the engine's latest state
    (the first one carries every sensor in scope that has a reading)."""

    def __init__(self, feed: ValuesFeed, n_slots: int):
        self.feed = feed
        self.tick: int | None = None
        self.sent_t = np.full(n_slots, -1, dtype=np.int64)

    def next_frame(self, service: ServicePort, tick: int) -> bytes | None:
        """The frame for values tick `tick` (None: nothing changed, or this tick was served)."""
        if self.tick is not None and self.tick >= tick:
            return None
        snap = self.feed.snapshot(service, tick)
        if self.tick is not None and snap.prev_tick == self.tick:
            self.tick, self.sent_t = snap.tick, snap.t  # shared, never written to
            return snap.delta
        engine = service.alarms.engine
        last_t = engine.last_t.copy()
        last_x = engine.last_x.copy()
        frame = self.feed.frame(service, self.sent_t, last_t, last_x)
        self.tick, self.sent_t = snap.tick, last_t  # at least as new as the snapshot of `tick`
        return frame


def values_tick(now: float | None = None) -> int:
    """The values tick of monotonic time `now`: every stream moves to the next one at its boundary."""
    return int((time.monotonic() if now is None else now) // VALUES_EVERY_S)


class StreamCounts:
    """Open streams per user, on app.state: a user may hold at most MAX_STREAMS_PER_USER."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    def acquire(self, username: str) -> bool:
        with self._lock:
            if self._open.get(username, 0) >= MAX_STREAMS_PER_USER:
                return False
            self._open[username] = self._open.get(username, 0) + 1
            return True

    def release(self, username: str) -> None:
        with self._lock:
            left = self._open.get(username, 1) - 1
            if left > 0:
                self._open[username] = left
            else:
                self._open.pop(username, None)


def _feeds(request: Request) -> ValuesFeeds:
    feeds = getattr(request.app.state, "values_feeds", None)
    if feeds is None:
        feeds = request.app.state.values_feeds = ValuesFeeds()
    return feeds


async def _events(
    request: Request, service: ServicePort, principal: Principal, after: int | None, counts: StreamCounts
) -> AsyncIterator[bytes]:
    try:
        async for frame in _frames(request, service, principal, after):
            yield frame
    finally:
        counts.release(principal.username)


async def _frames(
    request: Request, service: ServicePort, principal: Principal, after: int | None
) -> AsyncIterator[bytes]:
    store = request.app.state.auth
    scope = _Scope(service, principal)
    journal = service.alarms.journal
    cursor = after if after is not None else await run_in_threadpool(journal.last_seq)
    yield b"retry: 2000\n\n"
    yield _sse("hello", {"seq": cursor, "user": principal.username, "sites": len(scope.sites)})
    feeds = _feeds(request)
    values = StreamValues(feeds.feed(scope), len(scope.slot_mask))
    next_keepalive = 0.0
    next_check = time.monotonic() + RECHECK_S
    while not await request.is_disconnected():
        if time.monotonic() >= next_check:  # logged out, disabled, or given another scope since?
            next_check = time.monotonic() + RECHECK_S
            fresh = await run_in_threadpool(store.recheck, principal)
            if fresh is None:
                yield _sse("bye", {"reason": "the session or token ended, or the user was disabled"})
                return
            if fresh.user != principal.user:
                principal, scope = fresh, _Scope(service, fresh)
                values = StreamValues(feeds.feed(scope), len(scope.slot_mask))
        frames, cursor = await run_in_threadpool(_alarm_rows, service, scope, cursor)
        for frame in frames:
            yield frame
        now = time.monotonic()
        tick = values_tick(now)
        if values.tick is None or tick > values.tick:
            frame = await run_in_threadpool(values.next_frame, service, tick)
            if frame is not None:
                yield frame
                next_keepalive = now + KEEPALIVE_S
        if now >= next_keepalive:
            next_keepalive = now + KEEPALIVE_S
            yield b": keepalive\n\n"
        await asyncio.sleep(ALARM_POLL_S)


@router.get("/stream", response_class=StreamingResponse)
async def stream(
    request: Request,
    service: ServiceDep,
    principal: PrincipalDep,
    last_event_id: Annotated[
        int | None, Header(ge=0, description="set by EventSource on a reconnect")
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, description="resume after this event id, without the header")
    ] = None,
) -> Response:
    """Server-Sent Events: alarm events and value changes for the caller's sites, resumable."""
    start = last_event_id if last_event_id is not None else after
    counts = getattr(request.app.state, "stream_counts", None)
    if counts is None:
        counts = request.app.state.stream_counts = StreamCounts()
    if not counts.acquire(principal.username):
        return JSONResponse(
            {"detail": f"at most {MAX_STREAMS_PER_USER} open streams per user", "error": "too_many_streams"},
            status_code=429,
            headers={"Retry-After": "5"},
        )
    return StreamingResponse(
        _events(request, service, principal, start, counts),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
