"""Reports kept for download: an index in SQLite (`reports.sqlite`) and the files beside it.

One row per (scope, period): the id is a hash of both, so asking twice, or a restart re-running
the schedule, finds the same row and makes nothing twice. A row is `pending` until its files are
written (each to a temporary name, then renamed), then `ready` with the report's summary, or
`failed` with the error (asked again, it is made again).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from alerts.reports.model import ReportScope
from alerts.reports.periods import Period
from alerts.sqlite_store import SqliteStore

PENDING, READY, FAILED = "pending", "ready", "failed"
_MIGRATIONS = (
    (
        """CREATE TABLE reports (
            id TEXT PRIMARY KEY, level TEXT NOT NULL, name TEXT, city TEXT, kind TEXT NOT NULL,
            start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, tz TEXT NOT NULL, label TEXT NOT NULL,
            sites TEXT NOT NULL, state TEXT NOT NULL, requested_ms INTEGER NOT NULL,
            requested_by TEXT NOT NULL, as_of_ms INTEGER, error TEXT, summary TEXT, files TEXT)
            WITHOUT ROWID""",
        "CREATE INDEX reports_period ON reports (end_ms)",
    ),
)
_COLUMNS = (
    "id, level, name, city, kind, start_ms, end_ms, tz, label, sites, state, requested_ms, requested_by,"
    " as_of_ms, error, summary, files"
)


def report_id(scope: ReportScope, period: Period) -> str:
    """The id of the report of this scope and period (the same on every run)."""
    text = f"{scope.key}|{period.kind}|{period.start_ms}|{period.end_ms}"
    return "r" + hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class StoredReport:
    """A report's index row: what it covers, its state, its summary and its files' sizes."""

    id: str
    scope: ReportScope
    period: Period
    sites: tuple[str, ...]
    state: str
    requested_ms: int
    requested_by: str
    as_of_ms: int | None = None
    error: str | None = None
    summary: dict[str, Any] | None = None
    files: dict[str, int] | None = None  # format -> bytes


def _from_row(row: tuple) -> StoredReport:
    (rid, level, name, city, kind, start, end, tz, label, sites, state, requested, by, as_of, error,
     summary, files) = row  # fmt: skip
    return StoredReport(
        id=rid,
        scope=ReportScope(level, name, city),
        period=Period(kind, start, end, tz, label),
        sites=tuple(orjson.loads(sites)),
        state=state,
        requested_ms=requested,
        requested_by=by,
        as_of_ms=as_of,
        error=error,
        summary=None if summary is None else orjson.loads(summary),
        files=None if files is None else orjson.loads(files),
    )


class ReportStore(SqliteStore):
    """The index of kept reports and the folder of their files (`<id>.<format>`)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        super().__init__(self.folder / "reports.sqlite", _MIGRATIONS, "report index")

    def file(self, rid: str, fmt: str) -> Path:
        """Where the report's file of that format is kept."""
        return self.folder / f"{rid}.{fmt}"

    def claim(
        self, scope: ReportScope, period: Period, sites: list[str], by: str, now_ms: int, retry: bool = True
    ) -> tuple[StoredReport, bool]:
        """The report of (scope, period); a new one becomes pending, and so does a failed one when
        `retry`. Returns it and whether it must be made now."""
        rid = report_id(scope, period)
        with self._atomic() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM reports WHERE id = ?", (rid,)).fetchone()
            if row is not None and (row[10] != FAILED or not retry):
                return _from_row(row), False
            db.execute(
                f"INSERT OR REPLACE INTO reports ({_COLUMNS}) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL)",
                (rid, scope.level, scope.name, scope.city, period.kind, period.start_ms, period.end_ms,
                 period.tz, period.label, orjson.dumps(sites).decode(), PENDING, now_ms, by),
            )  # fmt: skip
        found = self.get(rid)
        assert found is not None
        return found, True

    def finish(self, rid: str, as_of_ms: int, summary: dict[str, Any], files: dict[str, int]) -> None:
        with self._atomic() as db:
            db.execute(
                "UPDATE reports SET state = ?, as_of_ms = ?, summary = ?, files = ?, error = NULL"
                " WHERE id = ?",
                (READY, as_of_ms, orjson.dumps(summary).decode(), orjson.dumps(files).decode(), rid),
            )

    def fail(self, rid: str, error: str) -> None:
        with self._atomic() as db:
            db.execute("UPDATE reports SET state = ?, error = ? WHERE id = ?", (FAILED, error[:500], rid))

    def get(self, rid: str) -> StoredReport | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM reports WHERE id = ?", (rid,)).fetchone()
        return None if row is None else _from_row(row)

    def list(self, *, state: str | None = None, level: str | None = None) -> list[StoredReport]:
        """Every kept report (optionally of one state or level), the latest period first."""
        where, args = [], []
        for column, value in (("state", state), ("level", level)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT {_COLUMNS} FROM reports" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY end_ms DESC, level, name", args).fetchall()
        return [_from_row(r) for r in rows]

    def ids(self) -> set[str]:
        """The ids of every kept report, whatever its state."""
        with self._lock:
            return {rid for (rid,) in self._conn.execute("SELECT id FROM reports")}

    def expire(self, before_ms: int) -> int:
        """Delete the reports whose period ended before `before_ms`, and their files."""
        with self._atomic() as db:
            ids = [rid for (rid,) in db.execute("SELECT id FROM reports WHERE end_ms < ?", (before_ms,))]
            db.execute("DELETE FROM reports WHERE end_ms < ?", (before_ms,))
        for rid in ids:
            for f in self.folder.glob(f"{rid}.*"):
                f.unlink(missing_ok=True)
        return len(ids)
