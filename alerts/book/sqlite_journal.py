"""The alarm journal on SQLite (WAL): the adapter behind the book's port (alerts/book/journal_port.py).

docs/design.md decision 2: alarm state lives in SQLite, so a restart reloads it and neither re-raises
nor loses an alarm. One step (a batch of condition changes, or one operator command) is one
transaction: the alarm rows, their history events, the audit row and any new alarm number commit
together or not at all, and the in-memory view changes only after the commit.

Durability: WAL with synchronous=FULL. With NORMAL, WAL commits survive a process crash but the
last ones can be lost on power failure, which here would mean an acknowledged alarm coming back
unacknowledged, or a raised alarm (already sent by SMS) missing from the record. Alarm steps are
rare next to readings (tens per second at worst), so an fsync per commit costs little.

Tables: alarms (one row per alarm point, full state as JSON plus queryable columns), history
(every AlarmEvent), audit (every operator command, refused ones too, with the reason),
alarm_sequence (human-friendly alarm numbers, A000123), source_suppressions (sources whose
process alarms are suppressed, e.g. a faulty sensor), publish_cursors (how far each outbox
consumer has delivered the history, alerts/book/outbox.py), schema_version. Times are UTC ms.

Errors are the lifecycle's domain errors (AlarmError: UnknownAlarm, InvalidTransition,
InvalidCommand); sqlite3 errors propagate as they are, because they are not the operator's fault.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import orjson

from alerts.book.disposals import DEFAULT_DUE_MIN, Disposal, check_disposal
from alerts.book.records import AuditEntry, HistoryEntry
from alerts.engine.conditions import Priority
from alerts.engine.lifecycle import (
    ANNUNCIATED_STATES,
    Alarm,
    AlarmEvent,
    AlarmKey,
    AlarmRaised,
    AlarmState,
    InvalidTransition,
    UnknownAlarm,
)
from alerts.sqlite_store import SqliteStore
from sensors.readings import now_ms as _now_ms

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3

# Each entry upgrades the schema by one version; statements run in one transaction.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE alarms (
            site TEXT NOT NULL, scope TEXT NOT NULL, source TEXT NOT NULL, kind TEXT NOT NULL,
            alarm_id TEXT NOT NULL, state TEXT NOT NULL, priority INTEGER NOT NULL,
            active INTEGER NOT NULL, acked INTEGER NOT NULL, updated_ms INTEGER, data TEXT NOT NULL,
            PRIMARY KEY (site, scope, source, kind)) WITHOUT ROWID""",
        "CREATE INDEX alarms_alarm_id ON alarms (alarm_id)",
        "CREATE INDEX alarms_state ON alarms (state, site)",
        """CREATE TABLE history (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, recorded_ms INTEGER NOT NULL,
            alarm_id TEXT NOT NULL, site TEXT NOT NULL, scope TEXT NOT NULL, source TEXT NOT NULL,
            kind TEXT NOT NULL, type TEXT NOT NULL, details TEXT NOT NULL)""",
        "CREATE INDEX history_time ON history (time_ms)",
        "CREATE INDEX history_alarm ON history (alarm_id)",
        "CREATE INDEX history_point ON history (site, source, time_ms)",
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, user TEXT NOT NULL,
            action TEXT NOT NULL, outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'refused')),
            alarm_id TEXT NOT NULL, site TEXT, scope TEXT, source TEXT, kind TEXT,
            reason TEXT NOT NULL, error TEXT NOT NULL, details TEXT NOT NULL)""",
        "CREATE INDEX audit_time ON audit (time_ms)",
        "CREATE INDEX audit_user ON audit (user, time_ms)",
        "CREATE INDEX audit_alarm ON audit (alarm_id)",
        "CREATE TABLE alarm_sequence (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL)",
        "INSERT INTO alarm_sequence (id, last) VALUES (1, 0)",
        """CREATE TABLE source_suppressions (
            site TEXT NOT NULL, source TEXT NOT NULL, reason TEXT NOT NULL, since_ms INTEGER NOT NULL,
            user TEXT NOT NULL, PRIMARY KEY (site, source, reason)) WITHOUT ROWID""",
    ),
    (
        # outbox cursors: the last history seq a consumer (e.g. MQTT event output) has delivered
        "CREATE TABLE publish_cursors (name TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID",
    ),
    (
        # closed-loop disposal (alerts/book/disposals.py): one row per alarm number that must get one
        """CREATE TABLE disposals (
            alarm_id TEXT PRIMARY KEY, site TEXT NOT NULL, scope TEXT NOT NULL, source TEXT NOT NULL,
            kind TEXT NOT NULL, priority INTEGER NOT NULL, level TEXT NOT NULL, raised_ms INTEGER NOT NULL,
            due_ms INTEGER NOT NULL, disposed_ms INTEGER, cause TEXT, action TEXT, person TEXT, user TEXT,
            comment TEXT NOT NULL DEFAULT '') WITHOUT ROWID""",
        "CREATE INDEX disposals_open ON disposals (disposed_ms, due_ms)",
        "CREATE INDEX disposals_site ON disposals (site, raised_ms)",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION


def _dumps(obj: Any) -> str:
    # orjson writes NaN as null and UTF-8 as is (Chinese messages stay readable in the file)
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()


_ALARM_FIELDS = tuple(f.name for f in fields(Alarm))
_DISPOSAL_COLUMNS = (
    "alarm_id, site, scope, source, kind, priority, level, raised_ms, due_ms, disposed_ms, cause, action,"
    " person, user, comment"
)


def alarm_to_json(a: Alarm) -> str:
    """Serialise the whole alarm (the alarms.data column)."""
    d: dict[str, Any] = {}
    for name in _ALARM_FIELDS:
        v = getattr(a, name)
        d[name] = list(v) if isinstance(v, tuple) else int(v) if isinstance(v, Priority) else v
    return _dumps(d)


def alarm_from_json(text: str) -> Alarm:
    """Rebuild an alarm; unknown keys are ignored and missing ones take defaults (tolerant reader)."""
    d = orjson.loads(text)
    kw = {k: v for k, v in d.items() if k in _ALARM_FIELDS}
    kw["key"] = tuple(kw["key"])
    kw["priority"] = Priority(kw.get("priority", Priority.LOW))
    for name in ("suppressions", "recent_activations_ms"):
        if name in kw:
            kw[name] = tuple(kw[name])
    return Alarm(**kw)


def _disposal_row(conn: sqlite3.Connection, alarm_id: str) -> Disposal | None:
    sql = f"SELECT {_DISPOSAL_COLUMNS} FROM disposals WHERE alarm_id = ?"
    row = conn.execute(sql, (alarm_id,)).fetchone()
    return None if row is None else Disposal(*row)


def _alarm_row(a: Alarm) -> tuple[Any, ...]:
    state = (a.alarm_id, a.state.value, int(a.priority), int(a.active), int(a.acked), a.updated_ms)
    return (*a.key, *state, alarm_to_json(a))


# ---- the journal


class JournalTx:
    """Writes inside one open transaction; obtained from AlarmJournal.transaction()."""

    def __init__(self, conn: sqlite3.Connection, disposal_due_ms: int = int(DEFAULT_DUE_MIN * 60_000)):
        self._conn = conn
        self._disposal_due_ms = disposal_due_ms

    def save_alarm(self, a: Alarm) -> None:
        self.save_alarms((a,))

    def save_alarms(self, alarms: Iterable[Alarm]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO alarms (site, scope, source, kind, alarm_id, state, priority, active,"
            " acked, updated_ms, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [_alarm_row(a) for a in alarms],
        )

    def append_events(self, events: Iterable[AlarmEvent], recorded_ms: int) -> None:
        self._conn.executemany(
            "INSERT INTO history (time_ms, recorded_ms, alarm_id, site, scope, source, kind, type, details)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(e.time_ms, recorded_ms, e.alarm_id, *e.key, e.type, _dumps(e.details())) for e in events],
        )
        # a raise at high or critical asks for a disposal: once per alarm number, from its first such raise
        asked = [
            (e.alarm_id, *e.key, int(e.priority), e.level, e.time_ms, e.time_ms + self._disposal_due_ms)
            for e in events
            if isinstance(e, AlarmRaised) and e.priority >= Priority.HIGH
        ]
        if asked:
            self._conn.executemany(
                "INSERT OR IGNORE INTO disposals (alarm_id, site, scope, source, kind, priority, level,"
                " raised_ms, due_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                asked,
            )

    def add_audit(self, entry: AuditEntry) -> None:
        site, scope, source, kind = entry.key if entry.key else (None, None, None, None)
        self._conn.execute(
            "INSERT INTO audit (time_ms, user, action, outcome, alarm_id, site, scope, source, kind, reason,"
            " error, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.time_ms,
                entry.user,
                entry.action,
                entry.outcome,
                entry.alarm_id,
                site,
                scope,
                source,
                kind,
                entry.reason,
                entry.error,
                _dumps(dict(entry.details)),
            ),
        )

    def disposal(self, alarm_id: str) -> Disposal | None:
        return _disposal_row(self._conn, alarm_id)

    def set_disposal(
        self, alarm_id: str, now_ms: int, cause: str, action: str, person: str, user: str, comment: str
    ) -> None:
        self._conn.execute(
            "UPDATE disposals SET disposed_ms = ?, cause = ?, action = ?, person = ?, user = ?,"
            " comment = ? WHERE alarm_id = ?",
            (now_ms, cause, action, person, user, comment, alarm_id),
        )

    def next_alarm_number(self) -> int:
        (n,) = self._conn.execute(
            "UPDATE alarm_sequence SET last = last + 1 WHERE id = 1 RETURNING last"
        ).fetchone()
        return int(n)

    def set_source_suppression(self, site: str, source: str, reason: str, since_ms: int, user: str) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO source_suppressions (site, source, reason, since_ms, user)"
            " VALUES (?, ?, ?, ?, ?)",
            (site, source, reason, since_ms, user),
        )

    def clear_source_suppression(self, site: str, source: str, reason: str) -> None:
        self._conn.execute(
            "DELETE FROM source_suppressions WHERE site = ? AND source = ? AND reason = ?",
            (site, source, reason),
        )


class AlarmJournal(SqliteStore):
    """SQLite store of alarm state, history and audit; one connection, one writer at a time."""

    def __init__(self, path: str | Path, disposal_due_min: float = DEFAULT_DUE_MIN):
        super().__init__(path, _MIGRATIONS, "alarm journal")
        self.disposal_due_ms = int(disposal_due_min * 60_000)
        self.disposals_recorded = 0  # moves with each disposal: cached risk rankings recompute

    @contextmanager
    def transaction(self) -> Iterator[JournalTx]:
        """One atomic unit: everything written through the yielded JournalTx commits, or none of it."""
        with self._atomic() as conn:
            yield JournalTx(conn, self.disposal_due_ms)

    # ---- disposals (alerts/book/disposals.py)

    def dispose(
        self, alarm_id: str, user: str, cause: str, action: str, person: str, comment: str, now_ms: int
    ) -> Disposal:
        """Record the enterprise's disposal of an alarm, audited; UnknownAlarm when none is asked of it,
        InvalidTransition when it has one already (the audit keeps the refusal too)."""
        cause, action, person = check_disposal(cause, action, person)
        with self.transaction() as tx:
            found = tx.disposal(alarm_id)
            if found is None:
                raise UnknownAlarm(
                    f"no disposal is asked of alarm {alarm_id!r} (only high and critical alarms)"
                )
            key = (found.site, found.scope, found.source, found.kind)
            if found.done:
                tx.add_audit(
                    AuditEntry(now_ms, user, "dispose", "refused", alarm_id, key, cause, "already disposed")
                )
                refused = InvalidTransition(f"alarm {alarm_id} was disposed by {found.user} already")
            else:
                tx.set_disposal(alarm_id, now_ms, cause, action, person, user, comment)
                details = {"action": action, "person": person, "comment": comment}
                tx.add_audit(AuditEntry(now_ms, user, "dispose", "ok", alarm_id, key, cause, "", details))
                refused = None
        if refused is not None:
            raise refused
        self.disposals_recorded += 1
        result = self.disposal(alarm_id)
        assert result is not None
        return result

    def disposal(self, alarm_id: str) -> Disposal | None:
        with self._lock:
            return _disposal_row(self._conn, alarm_id)

    def disposals(
        self,
        *,
        sites: Iterable[str] | None = None,
        since_ms: int | None = None,
        open_only: bool = False,
        limit: int = 1000,
    ) -> list[Disposal]:
        """Disposals asked since `since_ms` (raise time), of `sites` if given, newest raise first."""
        where, args = [], []
        if since_ms is not None:
            where.append("raised_ms >= ?")
            args.append(since_ms)
        if open_only:
            where.append("disposed_ms IS NULL")
        if sites is not None:
            sites = list(sites)
            where.append(f"site IN ({','.join('?' * len(sites))})")
            args.extend(sites)
        sql = f"SELECT {_DISPOSAL_COLUMNS} FROM disposals"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY raised_ms DESC LIMIT ?"
        with self._lock:
            rows = self._conn.execute(sql, [*args, limit]).fetchall()
        return [Disposal(*row) for row in rows]

    # ---- writes

    def record(
        self,
        alarm_after: Alarm | None,
        events: Sequence[AlarmEvent],
        audit: AuditEntry | None = None,
        recorded_ms: int | None = None,
    ) -> None:
        """Store one step atomically: the alarm's new state, its events and the audit row."""
        with self.transaction() as tx:
            if alarm_after is not None:
                tx.save_alarm(alarm_after)
            tx.append_events(events, _now_ms() if recorded_ms is None else recorded_ms)
            if audit is not None:
                tx.add_audit(audit)

    def add_audit(self, entry: AuditEntry) -> None:
        """Store one audit row on its own (refused commands change nothing else)."""
        with self.transaction() as tx:
            tx.add_audit(entry)

    def next_alarm_number(self) -> int:
        """Take the next alarm number; numbers only grow, across restarts too."""
        with self.transaction() as tx:
            return tx.next_alarm_number()

    # ---- reads

    def load_current(self) -> dict[AlarmKey, Alarm]:
        """Every alarm point with its full state (used on restart)."""
        with self._lock:
            rows = self._conn.execute("SELECT data FROM alarms").fetchall()
        alarms = (alarm_from_json(data) for (data,) in rows)
        return {a.key: a for a in alarms}

    def active_alarms(
        self,
        site: str | None = None,
        states: Iterable[AlarmState] = ANNUNCIATED_STATES,
        min_priority: Priority | None = None,
    ) -> list[Alarm]:
        """Alarms in `states` (default: on the operator's list), highest priority first."""
        states = list(states)
        sql = f"SELECT data FROM alarms WHERE state IN ({','.join('?' * len(states))})"
        args: list[Any] = [s.value for s in states]
        if site is not None:
            sql += " AND site = ?"
            args.append(site)
        if min_priority is not None:
            sql += " AND priority >= ?"
            args.append(int(min_priority))
        sql += " ORDER BY priority DESC, updated_ms DESC"
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [alarm_from_json(data) for (data,) in rows]

    def history(
        self,
        *,
        site: str | None = None,
        source: str | None = None,
        alarm_id: str | None = None,
        key: AlarmKey | None = None,
        types: Iterable[str] | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 1000,
        newest_first: bool = True,
    ) -> list[HistoryEntry]:
        """Journaled events matching every filter given; `until_ms` is exclusive."""
        where, args = _filters(
            site=site, source=source, alarm_id=alarm_id, since_ms=since_ms, until_ms=until_ms, types=types
        )
        if key is not None:
            where.append("site = ? AND scope = ? AND source = ? AND kind = ?")
            args.extend(key)
        columns = "seq, time_ms, recorded_ms, alarm_id, site, scope, source, kind, type, details"
        rows = self._select_in_time_order("history", columns, where, args, newest_first, limit)
        return [
            HistoryEntry(seq, t, rec, aid, (si, sc, so, k), typ, orjson.loads(det))
            for seq, t, rec, aid, si, sc, so, k, typ, det in rows
        ]

    def audit_log(
        self,
        *,
        user: str | None = None,
        alarm_id: str | None = None,
        site: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 1000,
        newest_first: bool = True,
    ) -> list[AuditEntry]:
        """Audit rows matching every filter given; `until_ms` is exclusive."""
        where, args = _filters(site=site, alarm_id=alarm_id, since_ms=since_ms, until_ms=until_ms)
        for column, value in (("user", user), ("action", action), ("outcome", outcome)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        columns = (
            "seq, time_ms, user, action, outcome, alarm_id, site, scope, source, kind, reason, error, details"
        )
        rows = self._select_in_time_order("audit", columns, where, args, newest_first, limit)
        return [
            AuditEntry(
                time_ms=t,
                user=u,
                action=act,
                outcome=out,
                alarm_id=aid,
                key=(si, sc, so, k) if si is not None else None,
                reason=why,
                error=err,
                details=orjson.loads(det),
                seq=seq,
            )
            for seq, t, u, act, out, aid, si, sc, so, k, why, err, det in rows
        ]

    def _select_in_time_order(
        self, table: str, columns: str, where: list[str], args: list, newest_first: bool, limit: int
    ) -> list[tuple]:
        """Rows of `table` (history or audit) matching every `where`, by event time then journal order."""
        order = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT {columns} FROM {table}"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY time_ms {order}, seq {order} LIMIT ?"
        )
        with self._lock:
            return self._conn.execute(sql, [*args, limit]).fetchall()

    def history_after(self, seq: int, types: Iterable[str], limit: int = 1000) -> list[HistoryEntry]:
        """Events of `types` journaled after `seq`, in journal (commit) order: what an outbox sends next."""
        types = list(types)
        sql = (
            "SELECT seq, time_ms, recorded_ms, alarm_id, site, scope, source, kind, type, details"
            f" FROM history WHERE seq > ? AND type IN ({','.join('?' * len(types))}) ORDER BY seq LIMIT ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, [seq, *types, limit]).fetchall()
        return [
            HistoryEntry(seq, t, rec, aid, (si, sc, so, k), typ, orjson.loads(det))
            for seq, t, rec, aid, si, sc, so, k, typ, det in rows
        ]

    def last_seq(self) -> int:
        """The newest history row's sequence number (0 for an empty journal): a live stream's start."""
        with self._lock:
            (seq,) = self._conn.execute("SELECT coalesce(max(seq), 0) FROM history").fetchone()
        return int(seq)

    def raises_by_site(self, since_ms: int) -> dict[str, int]:
        """Annunciations (AlarmRaised) per site since `since_ms` (the dynamic risk's alarm rate)."""
        sql = "SELECT site, count(*) FROM history WHERE time_ms >= ? AND type = 'AlarmRaised' GROUP BY site"
        with self._lock:
            return {site: int(n) for site, n in self._conn.execute(sql, (since_ms,)).fetchall()}

    def count_after(self, seq: int, types: Iterable[str]) -> int:
        """How many events of `types` were journaled after `seq` (an outbox's backlog)."""
        types = list(types)
        sql = f"SELECT count(*) FROM history WHERE seq > ? AND type IN ({','.join('?' * len(types))})"
        with self._lock:
            (n,) = self._conn.execute(sql, [seq, *types]).fetchone()
        return int(n)

    # ---- the audit in commit order (the upward forwarder's disposals, alerts/forward/)

    def audit_after(self, seq: int, action: str, outcome: str = "ok", limit: int = 1000) -> list[AuditEntry]:
        """Audit rows of `action` and `outcome` after `seq`, in commit order (writes are serialised,
        so seq order is commit order): what an outbox reading the audit sends next."""
        sql = (
            "SELECT seq, time_ms, user, action, outcome, alarm_id, site, scope, source, kind, reason, error,"
            " details FROM audit WHERE seq > ? AND action = ? AND outcome = ? ORDER BY seq LIMIT ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, (seq, action, outcome, limit)).fetchall()
        return [
            AuditEntry(t, u, act, out, aid, (si, sc, so, k) if si is not None else None, why, err,
                       orjson.loads(det), seq=s)
            for s, t, u, act, out, aid, si, sc, so, k, why, err, det in rows
        ]  # fmt: skip

    def last_audit_seq(self) -> int:
        """The newest audit row's seq (0 for none): where a new reader of the audit starts."""
        with self._lock:
            (seq,) = self._conn.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()
        return int(seq)

    # ---- outbox cursors

    def open_cursor(self, name: str) -> int:
        """The cursor `name`; a new one starts at the end of the history (nothing old is re-sent).

        Open it before any step is journaled (at start), so no event can fall between the end
        of the history and the new cursor.
        """
        with self.transaction():
            self._conn.execute(
                "INSERT OR IGNORE INTO publish_cursors (name, seq)"
                " SELECT ?, coalesce(max(seq), 0) FROM history",
                (name,),
            )
            (seq,) = self._conn.execute("SELECT seq FROM publish_cursors WHERE name = ?", (name,)).fetchone()
        return int(seq)

    def set_cursor(self, name: str, seq: int) -> None:
        """Move the cursor forward to `seq` (never back); the cursor must have been opened."""
        with self.transaction():
            self._conn.execute(
                "UPDATE publish_cursors SET seq = ? WHERE name = ? AND seq < ?", (seq, name, seq)
            )

    def load_source_suppressions(self) -> dict[tuple[str, str], dict[str, int]]:
        """(site, source) -> {reason: since_ms} for sources whose process alarms are suppressed."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        with self._lock:
            rows = self._conn.execute(
                "SELECT site, source, reason, since_ms FROM source_suppressions"
            ).fetchall()
        for site, source, reason, since in rows:
            out.setdefault((site, source), {})[reason] = since
        return out


def _filters(
    *,
    site: str | None = None,
    source: str | None = None,
    alarm_id: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    types: Iterable[str] | None = None,
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("site", site), ("source", source), ("alarm_id", alarm_id)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if since_ms is not None:
        where.append("time_ms >= ?")
        args.append(since_ms)
    if until_ms is not None:
        where.append("time_ms < ?")
        args.append(until_ms)
    if types is not None:
        types = list(types)
        where.append(f"type IN ({','.join('?' * len(types))})")
        args.extend(types)
    return where, args
