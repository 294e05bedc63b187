"""What the journal keeps besides the alarms: the history of their events and the audit of commands."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.engine.lifecycle import AlarmEvent, AlarmKey, event_from_record


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One journaled AlarmEvent."""

    seq: int
    time_ms: int
    recorded_ms: int
    alarm_id: str
    key: AlarmKey
    type: str
    details: dict[str, Any]

    def to_event(self) -> AlarmEvent:
        """The AlarmEvent this row journaled (e.g. to publish it as a docs/contracts.md §3 event)."""
        return event_from_record(self.type, self.key, self.alarm_id, self.time_ms, self.details)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what, when and why; `outcome` is "ok" or "refused" (then `error` says why)."""

    time_ms: int
    user: str
    action: str
    outcome: str
    alarm_id: str = ""
    key: AlarmKey | None = None
    reason: str = ""
    error: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    seq: int | None = None
