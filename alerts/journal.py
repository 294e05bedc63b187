"""The alarm journal (SQLite, WAL) and the AlarmBook service that journals every lifecycle step.

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
consumer has delivered the history, alerts/outbox.py), schema_version. Times are UTC ms.

Errors are the lifecycle's domain errors (AlarmError: UnknownAlarm, InvalidTransition,
InvalidCommand); sqlite3 errors propagate as they are, because they are not the operator's fault.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson

from alerts.alarm_numbers import format_alarm_number, normalize_alarm_ref
from alerts.conditions import ConditionChange, ConditionKind, Priority
from alerts.lifecycle import (
    ANNUNCIATED_STATES,
    DEFAULT_CHATTER,
    INSTRUMENT_FAULT,
    PROCESS_KINDS,
    SYSTEM_USER,
    Alarm,
    AlarmError,
    AlarmEvent,
    AlarmKey,
    AlarmState,
    ChatterPolicy,
    InvalidCommand,
    InvalidTransition,
    NewId,
    UnknownAlarm,
    acknowledge,
    apply_condition,
    clear_suspect,
    event_from_record,
    fault_may_suppress,
    mark_suspect,
    new_alarm,
    remove_from_service,
    return_to_service,
    suppress,
    tick,
    unshelve,
    unsuppress,
)
from alerts.lifecycle import comment as comment_alarm
from alerts.lifecycle import shelve as shelve_alarm
from alerts.sqlite_store import SqliteStore

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
DEFAULT_MAX_SHELVE_S = 24 * 3600

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
)
assert len(_MIGRATIONS) == SCHEMA_VERSION


# ---- rows


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


def _dumps(obj: Any) -> str:
    # orjson writes NaN as null and UTF-8 as is (Chinese messages stay readable in the file)
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()


_ALARM_FIELDS = tuple(f.name for f in fields(Alarm))


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


def _alarm_row(a: Alarm) -> tuple[Any, ...]:
    state = (a.alarm_id, a.state.value, int(a.priority), int(a.active), int(a.acked), a.updated_ms)
    return (*a.key, *state, alarm_to_json(a))


# ---- the journal


class JournalTx:
    """Writes inside one open transaction; obtained from AlarmJournal.transaction()."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

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

    def __init__(self, path: str | Path):
        super().__init__(path, _MIGRATIONS, "alarm journal")

    @contextmanager
    def transaction(self) -> Iterator[JournalTx]:
        """One atomic unit: everything written through the yielded JournalTx commits, or none of it."""
        with self._atomic() as conn:
            yield JournalTx(conn)

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
        order = "DESC" if newest_first else "ASC"
        sql = (
            "SELECT seq, time_ms, recorded_ms, alarm_id, site, scope, source, kind, type, details"
            " FROM history"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY time_ms {order}, seq {order} LIMIT ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, [*args, limit]).fetchall()
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
        order = "DESC" if newest_first else "ASC"
        sql = (
            "SELECT seq, time_ms, user, action, outcome, alarm_id, site, scope, source, kind, reason, error,"
            " details FROM audit"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY time_ms {order}, seq {order} LIMIT ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, [*args, limit]).fetchall()
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

    def count_after(self, seq: int, types: Iterable[str]) -> int:
        """How many events of `types` were journaled after `seq` (an outbox's backlog)."""
        types = list(types)
        sql = f"SELECT count(*) FROM history WHERE seq > ? AND type IN ({','.join('?' * len(types))})"
        with self._lock:
            (n,) = self._conn.execute(sql, [seq, *types]).fetchone()
        return int(n)

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


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---- the service


AlarmRef = str | tuple[str, str, str, str]
Step = Callable[[Alarm, int, NewId], tuple[Alarm, list[AlarmEvent]]]


def _change_order(c: ConditionChange) -> tuple[int, bool]:
    # event-time order; at one instant a fault first, so it suppresses the process alarms it explains
    return (c.time_ms, c.kind is not ConditionKind.FAULT)


class AlarmBook:
    """The alarm service: current alarms in memory, each step journaled before it becomes visible.

    Thread-safe: one lock serialises condition batches, operator commands and clock ticks.
    `on_events` (e.g. the notifier and MQTT publisher) is called after each commit, under the lock
    so that listeners see steps in order; it should only enqueue. Its failures are logged, never raised.
    """

    def __init__(
        self,
        journal: AlarmJournal,
        *,
        policy: ChatterPolicy = DEFAULT_CHATTER,
        max_shelve_s: float = DEFAULT_MAX_SHELVE_S,
        auto_suppress_on_fault: bool = True,
        clock: Callable[[], int] | None = None,
        on_events: Callable[[list[AlarmEvent]], None] | None = None,
    ):
        self.journal = journal
        self._policy = policy
        self._max_shelve_s = max_shelve_s
        self._auto_suppress = auto_suppress_on_fault
        self._clock = clock or _now_ms
        self._on_events = on_events
        self._lock = threading.RLock()
        self._alarms: dict[AlarmKey, Alarm] = {}
        self._by_id: dict[str, AlarmKey] = {}
        self._by_source: dict[tuple[str, str], set[AlarmKey]] = {}
        self._source_supp = journal.load_source_suppressions()
        # every alarm with its state, in list order; rebuilt lazily after a change (reads are
        # frequent: consoles poll the list, thousands of points are on it in a flood)
        self._listed: list[tuple[Alarm, AlarmState]] | None = None
        self._remember(journal.load_current().values())
        self._reveal_what_a_fault_may_not_hide()
        logger.info(
            "alarm book loaded %d alarm points (%d on the list) from %s",
            len(self._alarms),
            sum(a.state in ANNUNCIATED_STATES for a in self._alarms.values()),
            journal.path,
        )

    # ---- reads

    def current(
        self,
        *,
        site: str | None = None,
        source: str | None = None,
        states: Iterable[AlarmState] | None = None,
        min_priority: Priority | None = None,
    ) -> list[Alarm]:
        """Alarms worth showing (default: every state but NORMAL), highest priority and newest first."""
        wanted = set(states) if states is not None else set(AlarmState) - {AlarmState.NORMAL}
        with self._lock:
            if self._listed is None:
                ordered = sorted(
                    self._alarms.values(), key=lambda a: (-a.priority, -(a.raised_ms or 0), a.key)
                )
                self._listed = [(a, a.state) for a in ordered]
            listed = self._listed
        return [
            a
            for a, state in listed
            if state in wanted
            and (site is None or a.key[0] == site)
            and (source is None or a.key[2] == source)
            and (min_priority is None or a.priority >= min_priority)
        ]

    def get(self, ref: AlarmRef) -> Alarm:
        """The current alarm by id (A000123, a123) or by point key; UnknownAlarm if none."""
        with self._lock:
            return self._alarms[self._resolve(ref, create=False)]

    def active_condition_keys(self) -> set[AlarmKey]:
        """Points whose condition is active, hidden or not: the engine marks these after a restart."""
        with self._lock:
            return {k for k, a in self._alarms.items() if a.active}

    def source_suppressions(self) -> dict[tuple[str, str], dict[str, int]]:
        """(site, source) -> {reason: since_ms} of the sources suppressed now."""
        with self._lock:
            return {k: dict(v) for k, v in self._source_supp.items()}

    # ---- condition changes and the clock

    def on_changes(self, changes: Iterable[ConditionChange], now_ms: int | None = None) -> list[AlarmEvent]:
        """Apply the engine's condition changes (event-time order) and journal them in one transaction."""
        now = self._now(now_ms)
        with self._lock:
            staged: dict[AlarmKey, Alarm] = {}
            supp = {k: dict(v) for k, v in self._source_supp.items()}
            events: list[AlarmEvent] = []
            with self.journal.transaction() as tx:
                new_id = self._new_id(tx)
                for change in sorted(changes, key=_change_order):
                    if (
                        self._auto_suppress
                        and change.kind is ConditionKind.FAULT
                        and change.scope == "sensor"
                    ):
                        self._follow_fault(change, tx, staged, supp, events, new_id)
                    before = staged[change.key] if change.key in staged else self._alarms.get(change.key)
                    if before is None and change.active and change.kind in PROCESS_KINDS:
                        before = self._born_under(change, supp, staged)
                    after, evs = apply_condition(before, change, now, new_id=new_id, policy=self._policy)
                    if after is not None and after is not before:
                        staged[change.key] = after
                    events += evs
                self._save(tx, staged, events, now)
            self._commit(staged, events, supp)
        return events

    def expire_shelves(self, now_ms: int | None = None) -> list[AlarmEvent]:
        """Run the clock: end shelves that ran out, release chattering alarms quiet long enough."""
        now = self._now(now_ms)
        with self._lock:
            due = [a for a in self._alarms.values() if a.shelved or a.chattering]
            if not due:
                return []
            staged: dict[AlarmKey, Alarm] = {}
            events: list[AlarmEvent] = []
            with self.journal.transaction() as tx:
                new_id = self._new_id(tx)
                for a in due:
                    after, evs = tick(a, now, new_id=new_id, policy=self._policy)
                    if evs:
                        staged[a.key] = after
                        events += evs
                self._save(tx, staged, events, now)
            self._commit(staged, events)
        return events

    # ---- operator commands

    def acknowledge(
        self, alarm_id: AlarmRef, user: str, comment: str = "", now_ms: int | None = None
    ) -> Alarm:
        """Acknowledge an alarm (UNACK -> ACK, RTN_UNACK -> NORMAL)."""
        return self._command(
            "acknowledge", alarm_id, user, comment, lambda a, t, _n: acknowledge(a, user, t, comment), now_ms
        )

    def shelve(
        self, alarm_id: AlarmRef, user: str, duration_s: float, reason: str, now_ms: int | None = None
    ) -> Alarm:
        """Shelve for `duration_s` (bounded by max_shelve_s); the reason is mandatory."""

        def step(a: Alarm, t: int, _n: NewId) -> tuple[Alarm, list[AlarmEvent]]:
            if not 0 < duration_s <= self._max_shelve_s:
                raise InvalidCommand(f"shelve duration must be within (0, {self._max_shelve_s:g}] s")
            return shelve_alarm(a, user, t + round(duration_s * 1000), reason, t)

        return self._command(
            "shelve", alarm_id, user, reason, step, now_ms, details={"duration_s": duration_s}
        )

    def unshelve(self, alarm_id: AlarmRef, user: str, comment: str = "", now_ms: int | None = None) -> Alarm:
        """End a shelve early."""
        return self._command(
            "unshelve",
            alarm_id,
            user,
            comment,
            lambda a, t, n: unshelve(a, user, t, comment, new_id=n),
            now_ms,
        )

    def set_out_of_service(self, ref: AlarmRef, user: str, reason: str, now_ms: int | None = None) -> Alarm:
        """Take a point out of service; `ref` may be a point key that never alarmed."""
        return self._command(
            "remove_from_service",
            ref,
            user,
            reason,
            lambda a, t, _n: remove_from_service(a, user, reason, t),
            now_ms,
            create=True,
        )

    def return_to_service(
        self, ref: AlarmRef, user: str, comment: str = "", now_ms: int | None = None
    ) -> Alarm:
        """Put a point back in service."""
        return self._command(
            "return_to_service",
            ref,
            user,
            comment,
            lambda a, t, n: return_to_service(a, user, t, comment, new_id=n),
            now_ms,
        )

    def comment(self, ref: AlarmRef, user: str, text: str, now_ms: int | None = None) -> Alarm:
        """Attach a note to an alarm."""
        return self._command(
            "comment", ref, user, text, lambda a, t, _n: comment_alarm(a, user, text, t), now_ms
        )

    def suppress_source(
        self, site: str, source: str, reason: str, user: str = SYSTEM_USER, now_ms: int | None = None
    ) -> list[AlarmEvent]:
        """Suppress every process alarm of a source (and future ones) for `reason`; idempotent."""
        return self._source_command("suppress_source", site, source, reason, user, now_ms, on=True)

    def unsuppress_source(
        self, site: str, source: str, reason: str, user: str = SYSTEM_USER, now_ms: int | None = None
    ) -> list[AlarmEvent]:
        """Lift a source suppression; active alarms it hid are annunciated."""
        return self._source_command("unsuppress_source", site, source, reason, user, now_ms, on=False)

    # ---- internals

    def _now(self, now_ms: int | None) -> int:
        return self._clock() if now_ms is None else now_ms

    @staticmethod
    def _new_id(tx: JournalTx) -> NewId:
        return lambda _key, _t: format_alarm_number(tx.next_alarm_number())

    def _resolve(self, ref: AlarmRef, create: bool) -> AlarmKey:
        if isinstance(ref, tuple):
            if ref in self._alarms:
                return ref
            if create:
                if len(ref) != 4 or ref[3] not in ConditionKind.__members__:
                    raise InvalidCommand(f"not an alarm point key: {ref!r}")
                return ref
            raise UnknownAlarm(f"no alarm point {'/'.join(ref)}")
        key = self._by_id.get(normalize_alarm_ref(ref)) or self._by_id.get(ref)
        if key is None:
            raise UnknownAlarm(f"no current alarm {ref!r}")
        return key

    def _command(
        self,
        action: str,
        ref: AlarmRef,
        user: str,
        why: str,
        step: Step,
        now_ms: int | None,
        *,
        create: bool = False,
        details: Mapping[str, Any] | None = None,
    ) -> Alarm:
        now = self._now(now_ms)
        with self._lock:
            key: AlarmKey | None = None
            target = ref if isinstance(ref, str) else ""
            try:
                key = self._resolve(ref, create)
                before = self._alarms.get(key) or new_alarm(key)
                target = before.alarm_id
                with self.journal.transaction() as tx:
                    after, events = step(before, now, self._new_id(tx))
                    tx.save_alarm(after)
                    tx.append_events(events, now)
                    tx.add_audit(AuditEntry(now, user, action, "ok", target, key, why, details=details or {}))
            except AlarmError as e:
                self.journal.add_audit(
                    AuditEntry(now, user, action, "refused", target, key, why, str(e), details=details or {})
                )
                logger.info("refused %s of %s by %r: %s", action, ref, user, e)
                raise
            self._commit({key: after}, events)
        return after

    def _source_command(
        self, action: str, site: str, source: str, reason: str, user: str, now_ms: int | None, *, on: bool
    ) -> list[AlarmEvent]:
        now = self._now(now_ms)
        with self._lock:
            staged: dict[AlarmKey, Alarm] = {}
            supp = {k: dict(v) for k, v in self._source_supp.items()}
            events: list[AlarmEvent] = []
            try:
                if not reason.strip():
                    raise InvalidCommand("reason is required")
                if not on and reason not in supp.get((site, source), {}):
                    raise InvalidTransition(f"{site}/{source} is not suppressed for {reason!r}")
                with self.journal.transaction() as tx:
                    self._set_source(
                        site, source, reason, on, now, user, tx, staged, supp, events, self._new_id(tx)
                    )
                    self._save(tx, staged, events, now)
                    tx.add_audit(
                        AuditEntry(
                            now,
                            user,
                            action,
                            "ok",
                            "",
                            None,
                            reason,
                            details={"site": site, "source": source},
                        )
                    )
            except AlarmError as e:
                self.journal.add_audit(
                    AuditEntry(
                        now,
                        user,
                        action,
                        "refused",
                        "",
                        None,
                        reason,
                        str(e),
                        {"site": site, "source": source},
                    )
                )
                raise
            self._commit(staged, events, supp)
        return events

    def _reveal_what_a_fault_may_not_hide(self) -> None:
        """Journals from before the fail-safe may hold limit alarms a fault hid: annunciate them, suspect."""
        hidden = [
            a
            for a in self._alarms.values()
            if INSTRUMENT_FAULT in a.suppressions and not fault_may_suppress(a.kind, a.priority)
        ]
        if not hidden:
            return
        now = self._now(None)
        staged: dict[AlarmKey, Alarm] = {}
        events: list[AlarmEvent] = []
        with self.journal.transaction() as tx:
            new_id = self._new_id(tx)
            for a in hidden:
                a, evs = unsuppress(a, INSTRUMENT_FAULT, now, new_id=new_id)
                a, more = mark_suspect(a, self._fault_of(a.site, a.source, staged), now)
                staged[a.key] = a
                events += evs + more
            self._save(tx, staged, events, now)
        logger.warning("revealed %d limit alarms an instrument fault had hidden (fail-safe)", len(hidden))
        self._commit(staged, events)

    def _born_under(
        self,
        change: ConditionChange,
        supp: dict[tuple[str, str], dict[str, int]],
        staged: Mapping[AlarmKey, Alarm],
    ) -> Alarm | None:
        """A point raised for the first time while its source is suppressed: born hidden, or suspect."""
        reasons = supp.get((change.site, change.source))
        if not reasons:
            return None
        hide = tuple(
            r for r in reasons if r != INSTRUMENT_FAULT or fault_may_suppress(change.kind, change.priority)
        )
        suspect = self._fault_of(change.site, change.source, staged) if len(hide) < len(reasons) else ""
        return Alarm(key=change.key, suppressions=hide, suspect=suspect)

    def _fault_of(self, site: str, source: str, staged: Mapping[AlarmKey, Alarm]) -> str:
        """The fault kind (e.g. "stuck") of a faulty sensor, as its FAULT alarm point says."""
        key = (site, "sensor", source, ConditionKind.FAULT.name)
        fault = staged.get(key) or self._alarms.get(key)
        return (fault.level if fault is not None and fault.active else "") or INSTRUMENT_FAULT

    def _follow_fault(
        self,
        change: ConditionChange,
        tx: JournalTx,
        staged: dict[AlarmKey, Alarm],
        supp: dict[tuple[str, str], dict[str, int]],
        events: list[AlarmEvent],
        new_id: NewId,
    ) -> None:
        # docs/design.md decision 6: the officer should read "detector fault", not "gas release",
        # except where a fault may not hide the alarm (fault_may_suppress): then it reads both
        self._set_source(
            change.site,
            change.source,
            INSTRUMENT_FAULT,
            change.active,
            change.time_ms,
            SYSTEM_USER,
            tx,
            staged,
            supp,
            events,
            new_id,
            fault=change.level or INSTRUMENT_FAULT,
        )

    def _set_source(
        self,
        site: str,
        source: str,
        reason: str,
        on: bool,
        time_ms: int,
        user: str,
        tx: JournalTx,
        staged: dict[AlarmKey, Alarm],
        supp: dict[tuple[str, str], dict[str, int]],
        events: list[AlarmEvent],
        new_id: NewId,
        fault: str = "",
    ) -> None:
        reasons = supp.setdefault((site, source), {})
        if on == (reason in reasons):
            return  # already so: the engine may resend a fault after a restart
        if on:
            reasons[reason] = time_ms
            tx.set_source_suppression(site, source, reason, time_ms, user)
        else:
            del reasons[reason]
            tx.clear_source_suppression(site, source, reason)
        keys = self._by_source.get((site, source), set()) | {
            k for k in staged if (k[0], k[2]) == (site, source)
        }
        for key in sorted(keys):
            if ConditionKind[key[3]] not in PROCESS_KINDS:
                continue
            a = staged[key] if key in staged else self._alarms[key]
            stands = reason == INSTRUMENT_FAULT and not fault_may_suppress(ConditionKind[key[3]], a.priority)
            if stands and reason not in a.suppressions:
                a, evs = mark_suspect(a, fault or reason, time_ms) if on else clear_suspect(a, time_ms)
                if not evs:
                    continue
            elif on and reason not in a.suppressions:
                a, evs = suppress(a, reason, time_ms)
            elif not on and reason in a.suppressions:
                a, evs = unsuppress(a, reason, time_ms, new_id=new_id)
            else:
                continue
            staged[key] = a
            events += evs

    @staticmethod
    def _save(tx: JournalTx, staged: Mapping[AlarmKey, Alarm], events: list[AlarmEvent], now: int) -> None:
        tx.save_alarms(staged.values())
        tx.append_events(events, now)

    def _remember(self, alarms: Iterable[Alarm]) -> None:
        self._listed = None
        for a in alarms:
            old = self._alarms.get(a.key)
            if old is not None and old.alarm_id and old.alarm_id != a.alarm_id:
                self._by_id.pop(old.alarm_id, None)
            self._alarms[a.key] = a
            if a.alarm_id:
                self._by_id[a.alarm_id] = a.key
            self._by_source.setdefault((a.site, a.source), set()).add(a.key)

    def _commit(
        self,
        staged: Mapping[AlarmKey, Alarm],
        events: list[AlarmEvent],
        supp: dict[tuple[str, str], dict[str, int]] | None = None,
    ) -> None:
        """Make a committed step visible in memory, log its transitions and tell the listeners."""
        for key, a in staged.items():
            old = self._alarms.get(key)
            old_state = old.state if old is not None else AlarmState.NORMAL
            if old_state is not a.state:
                logger.info(
                    "alarm %s %s %s->%s value=%s", a.alarm_id, "/".join(key), old_state, a.state, a.value
                )
        self._remember(staged.values())
        if supp is not None:
            self._source_supp = {k: v for k, v in supp.items() if v}
        if events and self._on_events is not None:
            try:
                self._on_events(events)
            except Exception:
                logger.exception("alarm event listener failed; the alarm state is journaled regardless")
