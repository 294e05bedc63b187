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
import math
import threading
import time
from collections.abc import AsyncIterator
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


def _values(service: ServicePort, scope: _Scope, sent_t: np.ndarray) -> bytes | None:
    """Sensors in scope whose latest reading is newer than what this stream sent; updates `sent_t`."""
    engine = service.alarms.engine
    last_t = engine.last_t.copy()
    last_x = engine.last_x.copy()
    changed = np.flatnonzero(scope.slot_mask & (last_t > sent_t))
    if changed.size == 0:
        return None
    sent_t[changed] = last_t[changed]
    out: dict[str, dict[str, list]] = {}
    sensors = engine.index.sensors
    for slot in changed.tolist():
        s = sensors[slot]
        x = float(last_x[slot])
        out.setdefault(s.site, {})[s.id] = [x if math.isfinite(x) else None, int(last_t[slot])]
    return _sse("values", {"time_ms": time.time_ns() // 1_000_000, "sites": out})


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
    sent_t = np.full(len(scope.slot_mask), -1, dtype=np.int64)
    next_values = next_keepalive = 0.0
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
                sent_t = np.full(len(scope.slot_mask), -1, dtype=np.int64)
                next_values = 0.0
        frames, cursor = await run_in_threadpool(_alarm_rows, service, scope, cursor)
        for frame in frames:
            yield frame
        now = time.monotonic()
        if now >= next_values:
            next_values = now + VALUES_EVERY_S
            frame = await run_in_threadpool(_values, service, scope, sent_t)
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
