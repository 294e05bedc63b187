"""The duty rosters in SQLite (WAL, one connection), with an audit of who changed what.

docs/design.md decision 2: the roster lives in SQLite next to the alarm journal, so an edit made in the
console survives a restart and the notifier reads the same roster the console shows. A roster is
written whole in one transaction (its people, rotas, holidays and overrides, plus one audit row
listing what changed), so a reader never sees half an edit. `import_yaml` replaces the rosters of
a YAML file or folder in one transaction: all of them or none.

Tables: rosters, people, rotas (shifts, teams and cycle as JSON), holidays, overrides, audit,
schema_version. Times are UTC ms (an override therefore keeps millisecond precision).

Errors: UnknownRoster (a KeyError) for an id not stored; RosterError from the YAML loader for a
bad import; sqlite3 errors propagate as they are.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

from alerts.notify.roster import Jurisdiction, Override, Person, Role, Roster, Rota, Shift
from alerts.notify.roster_yaml import load_rosters
from alerts.sqlite_store import SqliteStore
from sensors.readings import now_ms as _now_ms

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE rosters (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, timezone TEXT NOT NULL, city TEXT, district TEXT,
            updated_ms INTEGER NOT NULL) WITHOUT ROWID""",
        "CREATE INDEX rosters_jurisdiction ON rosters (city, district)",
        """CREATE TABLE people (
            roster_id TEXT NOT NULL, person_id TEXT NOT NULL, position INTEGER NOT NULL, name TEXT NOT NULL,
            phone TEXT NOT NULL, language TEXT NOT NULL, roles TEXT NOT NULL,
            PRIMARY KEY (roster_id, person_id)) WITHOUT ROWID""",
        """CREATE TABLE rotas (
            roster_id TEXT NOT NULL, role TEXT NOT NULL, position INTEGER NOT NULL, shifts TEXT NOT NULL,
            teams TEXT NOT NULL, cycle TEXT NOT NULL, anchor TEXT NOT NULL, handover_s REAL NOT NULL,
            PRIMARY KEY (roster_id, role)) WITHOUT ROWID""",
        """CREATE TABLE holidays (
            roster_id TEXT NOT NULL, role TEXT NOT NULL, day TEXT NOT NULL, teams TEXT NOT NULL,
            PRIMARY KEY (roster_id, role, day)) WITHOUT ROWID""",
        """CREATE TABLE overrides (
            roster_id TEXT NOT NULL, role TEXT NOT NULL, position INTEGER NOT NULL, person TEXT NOT NULL,
            replaces TEXT, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, reason TEXT NOT NULL,
            PRIMARY KEY (roster_id, role, position)) WITHOUT ROWID""",
        "CREATE INDEX overrides_end ON overrides (end_ms)",
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, user TEXT NOT NULL,
            action TEXT NOT NULL, roster_id TEXT NOT NULL, reason TEXT NOT NULL, changes TEXT NOT NULL)""",
        "CREATE INDEX audit_roster ON audit (roster_id, time_ms)",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

_CHILD_TABLES = ("people", "rotas", "holidays", "overrides")


class UnknownRoster(KeyError):
    """No roster with this id is stored."""


@dataclass(frozen=True, slots=True)
class RosterAuditEntry:
    """Who changed which roster, when, why, and what changed (one line per change)."""

    time_ms: int
    user: str
    action: str  # save | delete | import | add_override
    roster_id: str
    reason: str = ""
    changes: tuple[str, ...] = field(default_factory=tuple)
    seq: int | None = None


# ---- what changed (pure)


def describe_changes(old: Roster | None, new: Roster | None) -> list[str]:
    """Human-readable differences between two versions of a roster, for the audit trail."""
    if old is None and new is None:
        return []
    if old is None:
        return ["created"]
    if new is None:
        return ["deleted"]
    out = [f"{f} changed" for f in ("name", "timezone", "jurisdiction") if getattr(old, f) != getattr(new, f)]
    for pid in sorted(old.people.keys() | new.people.keys()):
        a, b = old.people.get(pid), new.people.get(pid)
        if a is None:
            out.append(f"person {pid} added")
        elif b is None:
            out.append(f"person {pid} removed")
        elif a != b:
            diff = [f.name for f in fields(Person) if getattr(a, f.name) != getattr(b, f.name)]
            out.append(f"person {pid} changed: {', '.join(diff)}")
    for role in Role:
        ra, rb = old.rotas.get(role), new.rotas.get(role)
        if ra is None and rb is not None:
            out.append(f"rota {role.value} added")
        elif rb is None and ra is not None:
            out.append(f"rota {role.value} removed")
        elif ra is not None and rb is not None and ra != rb:
            diff = [
                f.name for f in fields(Rota) if _plain(getattr(ra, f.name)) != _plain(getattr(rb, f.name))
            ]
            out.append(f"rota {role.value} changed: {', '.join(diff)}")
    return out


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


# ---- rows <-> model


def _ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _hhmm(t: time) -> str:
    return t.strftime("%H:%M")


class RosterTx:
    """Writes inside one open transaction; obtained from RosterStore.transaction()."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def get(self, roster_id: str) -> Roster | None:
        return _read_roster(self._conn, roster_id)

    def put(self, roster: Roster, now_ms: int) -> None:
        """Replace every row of `roster` with its current content."""
        self.remove(roster.id)
        j = roster.jurisdiction
        self._conn.execute(
            "INSERT INTO rosters (id, name, timezone, city, district, updated_ms) VALUES (?, ?, ?, ?, ?, ?)",
            (roster.id, roster.name, roster.timezone, j and j.city, j and j.district, now_ms),
        )
        self._conn.executemany(
            "INSERT INTO people (roster_id, person_id, position, name, phone, language, roles)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (roster.id, p.id, i, p.name, p.phone, p.language, _dumps(sorted(r.value for r in p.roles)))
                for i, p in enumerate(roster.people.values())
            ],
        )
        for i, (role, rota) in enumerate(roster.rotas.items()):
            self._conn.execute(
                "INSERT INTO rotas (roster_id, role, position, shifts, teams, cycle, anchor, handover_s)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    roster.id,
                    role.value,
                    i,
                    _dumps([[s.name, _hhmm(s.start), _hhmm(s.end)] for s in rota.shifts]),
                    _dumps({k: list(v) for k, v in rota.teams.items()}),
                    _dumps([list(day) for day in rota.cycle]),
                    rota.anchor.isoformat(),
                    rota.handover.total_seconds(),
                ),
            )
            self._conn.executemany(
                "INSERT INTO holidays (roster_id, role, day, teams) VALUES (?, ?, ?, ?)",
                [(roster.id, role.value, d.isoformat(), _dumps(list(t))) for d, t in rota.holidays.items()],
            )
            self._conn.executemany(
                "INSERT INTO overrides (roster_id, role, position, person, replaces, start_ms, end_ms,"
                " reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (roster.id, role.value, k, o.person, o.replaces, _ms(o.start), _ms(o.end), o.reason)
                    for k, o in enumerate(rota.overrides)
                ],
            )

    def remove(self, roster_id: str) -> None:
        self._conn.execute("DELETE FROM rosters WHERE id = ?", (roster_id,))
        for table in _CHILD_TABLES:
            self._conn.execute(f"DELETE FROM {table} WHERE roster_id = ?", (roster_id,))

    def add_audit(self, entry: RosterAuditEntry) -> None:
        self._conn.execute(
            "INSERT INTO audit (time_ms, user, action, roster_id, reason, changes) VALUES (?, ?, ?, ?, ?, ?)",
            (
                entry.time_ms,
                entry.user,
                entry.action,
                entry.roster_id,
                entry.reason,
                _dumps(list(entry.changes)),
            ),
        )


def _read_roster(conn: sqlite3.Connection, roster_id: str) -> Roster | None:
    head = conn.execute(
        "SELECT name, timezone, city, district FROM rosters WHERE id = ?", (roster_id,)
    ).fetchone()
    if head is None:
        return None
    name, tz, city, district = head
    people = {
        pid: Person(pid, pname, phone, lang, frozenset(Role(r) for r in orjson.loads(roles)))
        for pid, pname, phone, lang, roles in conn.execute(
            "SELECT person_id, name, phone, language, roles FROM people WHERE roster_id = ?"
            " ORDER BY position",
            (roster_id,),
        )
    }
    holidays: dict[str, dict[date, tuple[str, ...]]] = {}
    for role, day, teams in conn.execute(
        "SELECT role, day, teams FROM holidays WHERE roster_id = ? ORDER BY day", (roster_id,)
    ):
        holidays.setdefault(role, {})[date.fromisoformat(day)] = tuple(orjson.loads(teams))
    overrides: dict[str, list[Override]] = {}
    for role, person, replaces, start_ms, end_ms, reason in conn.execute(
        "SELECT role, person, replaces, start_ms, end_ms, reason FROM overrides WHERE roster_id = ?"
        " ORDER BY role, position",
        (roster_id,),
    ):
        overrides.setdefault(role, []).append(
            Override(person, _from_ms(start_ms), _from_ms(end_ms), replaces, reason)
        )
    rotas: dict[Role, Rota] = {}
    for role, shifts, teams, cycle, anchor, handover_s in conn.execute(
        "SELECT role, shifts, teams, cycle, anchor, handover_s FROM rotas WHERE roster_id = ?"
        " ORDER BY position",
        (roster_id,),
    ):
        rotas[Role(role)] = Rota(
            shifts=tuple(
                Shift(n, time.fromisoformat(a), time.fromisoformat(b)) for n, a, b in orjson.loads(shifts)
            ),
            teams=MappingProxyType({k: tuple(v) for k, v in orjson.loads(teams).items()}),
            cycle=tuple(tuple(day) for day in orjson.loads(cycle)),
            anchor=date.fromisoformat(anchor),
            handover=timedelta(seconds=handover_s),
            holidays=MappingProxyType(holidays.get(role, {})),
            overrides=tuple(overrides.get(role, ())),
        )
    return Roster(
        id=roster_id,
        people=MappingProxyType(people),
        rotas=MappingProxyType(rotas),
        timezone=tz,
        name=name,
        jurisdiction=Jurisdiction(city, district) if city is not None else None,
    )


# ---- the store


class RosterStore(SqliteStore):
    """SQLite store of duty rosters and their audit; one connection, one writer at a time."""

    def __init__(self, path: str | Path):
        super().__init__(path, _MIGRATIONS, "roster store")

    @contextmanager
    def transaction(self) -> Iterator[RosterTx]:
        """One atomic unit: everything written through the yielded RosterTx commits, or none of it."""
        with self._atomic() as conn:
            yield RosterTx(conn)

    # ---- reads

    def ids(self) -> list[str]:
        """Every stored roster id, sorted."""
        with self._lock:
            return [rid for (rid,) in self._conn.execute("SELECT id FROM rosters ORDER BY id")]

    def load(self, roster_id: str) -> Roster:
        """The stored roster `roster_id`; raise UnknownRoster if there is none."""
        with self._lock:
            roster = _read_roster(self._conn, roster_id)
        if roster is None:
            raise UnknownRoster(roster_id)
        return roster

    def load_all(self) -> dict[str, Roster]:
        """Every stored roster by id (what the notifier loads at start and after an edit)."""
        with self._lock:
            return {rid: r for rid in self.ids() if (r := _read_roster(self._conn, rid)) is not None}

    def audit_log(self, roster_id: str | None = None, limit: int = 1000) -> list[RosterAuditEntry]:
        """Audit rows, newest first, optionally for one roster."""
        sql = "SELECT seq, time_ms, user, action, roster_id, reason, changes FROM audit"
        args: list[Any] = []
        if roster_id is not None:
            sql += " WHERE roster_id = ?"
            args.append(roster_id)
        sql += " ORDER BY seq DESC LIMIT ?"
        with self._lock:
            rows = self._conn.execute(sql, [*args, limit]).fetchall()
        return [
            RosterAuditEntry(t, user, action, rid, reason, tuple(orjson.loads(changes)), seq)
            for seq, t, user, action, rid, reason, changes in rows
        ]

    # ---- writes

    def save(self, roster: Roster, *, user: str, reason: str = "", now_ms: int | None = None) -> list[str]:
        """Store `roster` (new, or replacing the stored one) and audit what changed; return the changes."""
        return self.replace_many([roster], user=user, reason=reason, action="save", now_ms=now_ms)[roster.id]

    def replace_many(
        self,
        rosters: Iterable[Roster],
        *,
        user: str,
        reason: str = "",
        action: str = "save",
        prune: bool = False,
        now_ms: int | None = None,
    ) -> dict[str, list[str]]:
        """Store several rosters in one transaction; with `prune`, delete the stored ones not given.

        Returns the changes per roster id; a roster that did not change is rewritten but not audited.
        """
        now = _now_ms() if now_ms is None else now_ms
        rosters = list(rosters)
        result: dict[str, list[str]] = {}
        with self.transaction() as tx:
            for roster in rosters:
                changes = describe_changes(tx.get(roster.id), roster)
                tx.put(roster, now)
                if changes:
                    tx.add_audit(RosterAuditEntry(now, user, action, roster.id, reason, tuple(changes)))
                result[roster.id] = changes
            if prune:
                keep = {r.id for r in rosters}
                for (rid,) in self._conn.execute("SELECT id FROM rosters ORDER BY id").fetchall():
                    if rid not in keep:
                        tx.remove(rid)
                        tx.add_audit(RosterAuditEntry(now, user, action, rid, reason, ("deleted",)))
                        result[rid] = ["deleted"]
        logger.info("rosters %s by %s (%s): %s", action, user, reason, {k: v for k, v in result.items() if v})
        return result

    def delete(self, roster_id: str, *, user: str, reason: str = "", now_ms: int | None = None) -> None:
        """Delete a stored roster (audited); raise UnknownRoster if there is none."""
        now = _now_ms() if now_ms is None else now_ms
        with self.transaction() as tx:
            if tx.get(roster_id) is None:
                raise UnknownRoster(roster_id)
            tx.remove(roster_id)
            tx.add_audit(RosterAuditEntry(now, user, "delete", roster_id, reason, ("deleted",)))

    def add_override(
        self, roster_id: str, role: Role, override: Override, *, user: str, now_ms: int | None = None
    ) -> Roster:
        """Add a one-off override (e.g. a sick day) to one rota; validated like a whole roster."""
        now = _now_ms() if now_ms is None else now_ms
        with self.transaction() as tx:
            old = tx.get(roster_id)
            if old is None:
                raise UnknownRoster(roster_id)
            if role not in old.rotas:
                raise ValueError(f"roster {roster_id} has no rota for {role.value}")
            rota = old.rotas[role]
            new_rota = replace(rota, overrides=(*rota.overrides, override))
            new = replace(old, rotas=MappingProxyType({**old.rotas, role: new_rota}))  # validates again
            tx.put(new, now)
            what = f"{override.person} replaces {override.replaces}" if override.replaces else override.person
            start, end = (f"{t.astimezone(UTC):%Y-%m-%dT%H:%MZ}" for t in (override.start, override.end))
            change = f"override added to {role.value}: {what} {start}..{end}"
            tx.add_audit(RosterAuditEntry(now, user, "add_override", roster_id, override.reason, (change,)))
        return new

    def import_yaml(
        self, path: str | Path, *, user: str, reason: str = "", prune: bool = False, now_ms: int | None = None
    ) -> dict[str, list[str]]:
        """Replace the stored rosters with those of a YAML file or folder, in one transaction.

        A file with any mistake raises RosterError and changes nothing. With `prune`, rosters not
        in the YAML are deleted (the YAML is then the whole truth).
        """
        rosters = load_rosters(path)
        return self.replace_many(
            rosters.values(),
            user=user,
            reason=reason or f"import {path}",
            action="import",
            prune=prune,
            now_ms=now_ms,
        )
