"""Alarm history (issue 14 item 4): the episodes raised in a period, each with its raise, return,
acknowledgement (who, when) and clear, filtered like the live list and exported as CSV, within
the caller's scope. Folded from the journal by alerts/book/episodes.py."""

from __future__ import annotations

import csv
import io
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from alerts.book.episodes import EPISODE_TYPES, fold_episodes
from alerts.engine.lifecycle import DEFAULT_TZ, local_iso
from api.auth.deps import PrincipalDep, check_site, current_principal
from api.deps import ServiceDep, sees_site, site_map
from api.routers.sites import parse_time
from sensors.readings import now_ms as _now_ms

router = APIRouter(prefix="/api/v1", tags=["alarms"], dependencies=[Depends(current_principal)])

DAY_MS = 86_400_000
MAX_SPAN_MS = 31 * DAY_MS
MAX_ROWS = 200_000  # journal rows read for one answer (a month of a busy province is far fewer raises)
CSV_COLUMNS = (
    "alarm_id",
    "site",
    "site_name",
    "city",
    "district",
    "source",
    "kind",
    "priority",
    "level",
    "value",
    "limit",
    "message",
    "raised",
    "returned",
    "acked",
    "acked_by",
    "cleared",
    "duration_s",
)


@router.get("/alarm-history")
def alarm_history(
    service: ServiceDep,
    principal: PrincipalDep,
    start: str | None = Query(None, alias="from", max_length=64, description="raised from (ISO 8601 or ms)"),
    end: str | None = Query(None, alias="to", max_length=64, description="raised before (ISO 8601 or ms)"),
    site: str | None = Query(None, max_length=64),
    city: str | None = Query(None, max_length=64),
    source: str | None = Query(None, max_length=64),
    priority: Literal["low", "medium", "high", "critical"] | None = None,
    kind: str | None = Query(None, max_length=32, pattern=r"^[A-Z_]+$"),
    limit: int = Query(1000, ge=1, le=20_000),
    format: Literal["json", "csv"] = "json",
) -> Any:
    """The alarm episodes raised in [from, to) (default: the last 24 h), newest first."""
    now = _now_ms()
    end_ms = now if end is None else parse_time(end, "to")
    start_ms = end_ms - DAY_MS if start is None else parse_time(start, "from")
    if not 0 < end_ms - start_ms <= MAX_SPAN_MS:
        raise HTTPException(422, "to must be after from, by at most 31 days")
    sites = site_map(service)
    if site is not None:
        check_site(principal, sites.get(site))
    rows = service.alarms.journal.history(
        site=site, source=source, types=EPISODE_TYPES, since_ms=start_ms, limit=MAX_ROWS, newest_first=False
    )
    episodes = [
        e
        for e in fold_episodes(rows)
        if start_ms <= (e.raised_ms or 0) < end_ms
        and sees_site(principal, service, e.site)
        and (city is None or getattr(sites.get(e.site), "city", None) == city)
        and (priority is None or e.priority == priority)
        and (kind is None or e.kind == kind)
    ][:limit]
    data = [_public(e.row(), sites.get(e.site)) for e in episodes]
    if format == "csv":
        return _csv(data, start_ms, end_ms)
    return {"data": data, "count": len(data), "from_ms": start_ms, "to_ms": end_ms}


def _public(row: dict[str, Any], site: Any) -> dict[str, Any]:
    tz = getattr(site, "timezone", None) or DEFAULT_TZ
    iso = {k[:-3]: (None if row[k] is None else local_iso(row[k], tz)) for k in _TIMES}
    return {
        **row,
        **iso,
        "site_name": getattr(site, "name", "") or "",
        "city": getattr(site, "city", None),
        "district": getattr(site, "district", None),
    }


_TIMES = ("raised_ms", "returned_ms", "acked_ms", "cleared_ms")


def _csv(data: list[dict[str, Any]], start_ms: int, end_ms: int) -> Response:
    """UTF-8 with a BOM, so a spreadsheet opens the Chinese names right; one row per episode."""
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out)
    w.writerow(CSV_COLUMNS)
    for d in data:
        duration = None if d["duration_ms"] is None else round(d["duration_ms"] / 1000)
        w.writerow([duration if c == "duration_s" else d.get(c) for c in CSV_COLUMNS])
    name = f"alarm-history-{start_ms}-{end_ms}.csv"
    return Response(
        out.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
