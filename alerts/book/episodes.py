"""Alarm episodes from the journal (issue 14 item 4): one row per alarm number, from its raise to its
clear, folded from the history rows, so the console's history screen and its CSV show what each
alarm did (raised, returned, acknowledged by whom, cleared) without replaying the state machine.

Pure: history rows in, episodes out. The rows of one alarm number may arrive in any order; they
are folded in time order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from alerts.book.records import HistoryEntry
from alerts.engine.conditions import Priority

EPISODE_TYPES = (
    "AlarmRaised",
    "AlarmReturnedToNormal",
    "AlarmAcknowledged",
    "AlarmCleared",
    "AlarmShelved",
    "AlarmCommented",
)


@dataclass(slots=True)
class Episode:
    """What one alarm number did; times are event times in ms, None when it has not happened."""

    alarm_id: str
    site: str
    scope: str
    source: str
    kind: str
    priority: str = ""
    level: str = ""
    value: float | None = None
    limit: float | None = None
    message: str = ""
    raised_ms: int | None = None
    returned_ms: int | None = None
    acked_ms: int | None = None
    acked_by: str = ""
    cleared_ms: int | None = None
    reraised: int = 0  # raised again within the episode (returned, then active before the ack)
    shelved_by: list[str] = field(default_factory=list)
    comments: int = 0

    @property
    def duration_ms(self) -> int | None:
        """Raise to return to normal (the time in alarm), None while still in alarm."""
        if self.raised_ms is None or self.returned_ms is None:
            return None
        return max(self.returned_ms - self.raised_ms, 0)

    def row(self) -> dict[str, Any]:
        return {
            "alarm_id": self.alarm_id,
            "site": self.site,
            "scope": self.scope,
            "source": self.source,
            "kind": self.kind,
            "priority": self.priority,
            "level": self.level,
            "value": self.value,
            "limit": self.limit,
            "message": self.message,
            "raised_ms": self.raised_ms,
            "returned_ms": self.returned_ms,
            "acked_ms": self.acked_ms,
            "acked_by": self.acked_by,
            "cleared_ms": self.cleared_ms,
            "duration_ms": self.duration_ms,
            "reraised": self.reraised,
            "shelved_by": list(self.shelved_by),
            "comments": self.comments,
        }


def _priority_name(p: Any) -> str:
    try:
        return Priority(int(p)).name.lower()
    except (TypeError, ValueError):
        return str(p or "").lower()


def fold_episodes(rows: Iterable[HistoryEntry]) -> list[Episode]:
    """Episodes of the alarm numbers the rows name, newest raise first."""
    by_id: dict[str, Episode] = {}
    for h in sorted(rows, key=lambda r: (r.time_ms, r.seq)):
        if not h.alarm_id:
            continue
        e = by_id.get(h.alarm_id)
        if e is None:
            site, scope, source, kind = h.key
            e = by_id[h.alarm_id] = Episode(h.alarm_id, site, scope, source, kind)
        d = h.details
        if h.type == "AlarmRaised":
            if e.raised_ms is None:
                e.raised_ms = h.time_ms
                e.value, e.limit = d.get("value"), d.get("limit")
            else:
                e.reraised += 1
                e.returned_ms = None
            e.priority = _priority_name(d.get("priority"))
            e.level = str(d.get("level") or e.level)
            e.message = str(d.get("message") or e.message)
        elif h.type == "AlarmReturnedToNormal":
            e.returned_ms = h.time_ms
        elif h.type == "AlarmAcknowledged":
            e.acked_ms, e.acked_by = h.time_ms, str(d.get("user") or "")
        elif h.type == "AlarmCleared":
            e.cleared_ms = h.time_ms
            if e.returned_ms is None:
                e.returned_ms = h.time_ms
        elif h.type == "AlarmShelved":
            e.shelved_by.append(str(d.get("user") or ""))
        elif h.type == "AlarmCommented":
            e.comments += 1
    return sorted((e for e in by_id.values() if e.raised_ms is not None), key=lambda e: -(e.raised_ms or 0))
