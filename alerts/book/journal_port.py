"""What the alarm book needs of its journal: one transaction per lifecycle step, and the state to reload.

The SQLite adapter is alerts/book/sqlite_journal.py (AlarmJournal); another store (PostgreSQL when
several workers write one book, docs/design.md "Growing past one machine") implements the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from alerts.book.records import AuditEntry
from alerts.engine.lifecycle import Alarm, AlarmEvent, AlarmKey


class JournalTransaction(Protocol):
    """The writes of one step; they commit together or not at all."""

    def save_alarm(self, a: Alarm) -> None: ...

    def save_alarms(self, alarms: Iterable[Alarm]) -> None: ...

    def append_events(self, events: Iterable[AlarmEvent], recorded_ms: int) -> None: ...

    def add_audit(self, entry: AuditEntry) -> None: ...

    def next_alarm_number(self) -> int: ...

    def set_source_suppression(
        self, site: str, source: str, reason: str, since_ms: int, user: str
    ) -> None: ...

    def clear_source_suppression(self, site: str, source: str, reason: str) -> None: ...


class AlarmJournalPort(Protocol):
    """Where the book's alarms, their history and the audit are kept."""

    path: Path | str  # where, for the log

    def transaction(self) -> AbstractContextManager[JournalTransaction]: ...

    def add_audit(self, entry: AuditEntry) -> None:
        """Record a command on its own (a refused one: nothing else changes)."""
        ...

    def load_current(self) -> dict[AlarmKey, Alarm]: ...

    def load_source_suppressions(self) -> dict[tuple[str, str], dict[str, int]]: ...
