"""Live push: a Server-Sent Events stream of alarm events and value changes, for the caller's scope.

GET /api/v1/stream (text/event-stream), authenticated like every route (the browser's session
cookie, which EventSource sends, or a bearer token). Events:

- `hello`  {"seq": n, "user": ...}: where the stream starts (the journal's newest event).
- `alarm`  id = the journal's sequence number; data {"seq", "type", "alarm_id", "site", "source",
  "kind", "time_ms", "details"}: every journalled event of a site in scope, in commit order.
- `values` {"time_ms", "sites": {site: {sensor: [value, time_ms]}}}: sensors whose latest reading
  changed since the last `values` event (every VALUES_EVERY_S); the first one after connecting
  carries every sensor in scope that has a reading, so a page needs nothing else to start.

Resuming: the journal is the durable event log, so a client that reconnects with `Last-Event-ID`
(EventSource does it by itself) gets every alarm event after that id, none lost and none twice,
even across a restart of hazmon. Values are state, not history: after a reconnect the next
`values` event carries the full state again.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Annotated

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
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


async def _events(
    request: Request, service: ServicePort, principal: Principal, after: int | None
) -> AsyncIterator[bytes]:
    scope = _Scope(service, principal)
    journal = service.alarms.journal
    cursor = after if after is not None else await run_in_threadpool(journal.last_seq)
    yield b"retry: 2000\n\n"
    yield _sse("hello", {"seq": cursor, "user": principal.username, "sites": len(scope.sites)})
    sent_t = np.full(len(scope.slot_mask), -1, dtype=np.int64)
    next_values = next_keepalive = 0.0
    while not await request.is_disconnected():
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
) -> StreamingResponse:
    """Server-Sent Events: alarm events and value changes for the caller's sites, resumable."""
    start = last_event_id if last_event_id is not None else after
    return StreamingResponse(
        _events(request, service, principal, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
