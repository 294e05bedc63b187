"""Upward records (docs/contracts.md §8): what the forwarder sends, each with a stable idempotency key.

Pure: journal rows, disposal audit rows and summary figures in, JSON-ready dicts out. A record's
`key` names the thing it reports, never the moment it was built, so building it again (after a
crash, a restart, a catch-up) gives the same key and the receiver can drop the copy:

- lifecycle: `alarm:<alarm_id>:<kind>:<journal seq>` (the journal's history seq is unique and
  never reused; the alarm number and kind make the key readable);
- disposal: `disposal:<alarm_id>` (one disposal per alarm number, docs/contracts.md §7);
- summary: `summary:<site>/<sensor>/<minute start, UTC ISO 8601>`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from alerts.book.disposals import CAUSES, Disposal
from alerts.book.records import AuditEntry, HistoryEntry
from alerts.engine.lifecycle import DEFAULT_TZ, local_iso

#: journal event type -> upward record kind (the alarm lifecycle an upper platform follows)
LIFECYCLE_KINDS: dict[str, str] = {
    "AlarmRaised": "raise",
    "AlarmReturnedToNormal": "return_to_normal",
    "AlarmAcknowledged": "acknowledge",
    "AlarmCleared": "clear",
}
DISPOSE_ACTION = "dispose"  # the audit action of a disposal (AlarmJournal.dispose)
KINDS = (*LIFECYCLE_KINDS.values(), "disposal", "summary")


def event_key(entry: HistoryEntry) -> str:
    return f"alarm:{entry.alarm_id}:{LIFECYCLE_KINDS[entry.type]}:{entry.seq}"


def disposal_key(alarm_id: str) -> str:
    return f"disposal:{alarm_id}"


def minute_iso(minute_ms: int) -> str:
    """A minute's start as UTC ISO 8601 (`2026-12-04T17:15:00Z`): the time part of a summary key."""
    return datetime.fromtimestamp(minute_ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary_key(site: str, sensor: str, minute_ms: int) -> str:
    return f"summary:{site}/{sensor}/{minute_iso(minute_ms)}"


def _alarm_point(key: tuple[str, str, str, str], alarm_id: str) -> dict[str, Any]:
    _site, scope, source, kind = key
    return {"alarm_id": alarm_id, "scope": scope, "source": source, "alarm_kind": kind}


def event_record(entry: HistoryEntry, site_tz: str = DEFAULT_TZ) -> dict[str, Any] | None:
    """The upward record of a journaled lifecycle event, or None for a type that is not forwarded."""
    kind = LIFECYCLE_KINDS.get(entry.type)
    if kind is None:
        return None
    out: dict[str, Any] = {
        "key": event_key(entry),
        "kind": kind,
        "site": entry.key[0],
        "time": local_iso(entry.time_ms, site_tz),
        "time_ms": entry.time_ms,
        **_alarm_point(entry.key, entry.alarm_id),
        "details": dict(entry.details),
    }
    # a raise and a return to normal carry the docs/contracts.md §3 event, as on MQTT
    out["event"] = entry.to_event().to_contract_event(site_tz)
    return out


def disposal_record(
    audit: AuditEntry, disposal: Disposal | None, site_tz: str = DEFAULT_TZ
) -> dict[str, Any] | None:
    """The upward record of a disposal (an `ok` audit row of action `dispose`), with the disposal row's
    raise and due times when it is at hand; None for any other audit row."""
    if audit.action != DISPOSE_ACTION or audit.outcome != "ok" or audit.key is None:
        return None
    details: Mapping[str, Any] = audit.details
    out: dict[str, Any] = {
        "key": disposal_key(audit.alarm_id),
        "kind": "disposal",
        "site": audit.key[0],
        "time": local_iso(audit.time_ms, site_tz),
        "time_ms": audit.time_ms,
        **_alarm_point(audit.key, audit.alarm_id),
        "cause": audit.reason,
        "cause_zh": CAUSES.get(audit.reason),
        "action": details.get("action"),
        "person": details.get("person"),
        "comment": details.get("comment", ""),
        "user": audit.user,
    }
    if disposal is not None:
        out |= {
            "priority": disposal.priority,
            "level": disposal.level,
            "raised_ms": disposal.raised_ms,
            "due_ms": disposal.due_ms,
            "late": audit.time_ms > disposal.due_ms,
        }
    return out


def _num(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def summary_record(
    site: str, sensor: str, unit: str, minute_ms: int, stats: Mapping[str, Any], site_tz: str = DEFAULT_TZ
) -> dict[str, Any]:
    """The upward record of one sensor's closed minute (`stats` from summaries.minute_stats)."""
    return {
        "key": summary_key(site, sensor, minute_ms),
        "kind": "summary",
        "site": site,
        "time": local_iso(minute_ms, site_tz),
        "time_ms": minute_ms,
        "sensor": sensor,
        "unit": unit,
        "minute": minute_iso(minute_ms),
        "count": int(stats["count"]),
        "bad": int(stats["bad"]),
        "min": _num(stats["min"]),
        "max": _num(stats["max"]),
        "mean": _num(stats["mean"]),
        "last": _num(stats["last"]),
        "last_ms": stats["last_ms"],
    }
