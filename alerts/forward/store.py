"""The forward outbox on SQLite (`forward.sqlite`): upward records, where each source stands, and how far
each transport has delivered (docs/design.md decision 20).

Tables: records (seq, key UNIQUE, kind, site, created_ms, body: the record's JSON), positions (how
far each source has been read: the journal's history seq, its audit seq, the next minute to
summarise), deliveries (the last record seq each transport had acknowledged). Records and the
position of the source they came from are written in one transaction, so a crash never loses or
doubles a record in the outbox; a key already there is ignored (the same record built twice).
WAL with synchronous=FULL, as every store (alerts/sqlite_store.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from alerts.sqlite_store import SqliteStore

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE records (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
            site TEXT NOT NULL, created_ms INTEGER NOT NULL, body BLOB NOT NULL)""",
        "CREATE INDEX records_created ON records (created_ms)",
        "CREATE TABLE positions (name TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE TABLE deliveries (transport TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID",
    ),
)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One record of the outbox: its place, key, kind, site and JSON body (bytes, sent as they are)."""

    seq: int
    key: str
    kind: str
    site: str
    body: bytes


class ForwardStore(SqliteStore):
    """The durable outbox of upward records; one connection, one writer at a time."""

    def __init__(self, path: str | Path):
        super().__init__(path, _MIGRATIONS, "forward outbox")

    # ---- sources

    def open_position(self, name: str, initial: int) -> int:
        """The position of source `name`, set to `initial` the first time it is asked for."""
        with self._atomic() as conn:
            conn.execute("INSERT OR IGNORE INTO positions (name, position) VALUES (?, ?)", (name, initial))
            (pos,) = conn.execute("SELECT position FROM positions WHERE name = ?", (name,)).fetchone()
        return int(pos)

    def append(self, records: Iterable[Mapping], positions: Mapping[str, int], now_ms: int) -> int:
        """Add records and move the sources' positions, atomically; returns how many were new."""
        rows = [
            (r["key"], r["kind"], r["site"], now_ms, orjson.dumps(r, option=orjson.OPT_SORT_KEYS))
            for r in records
        ]
        with self._atomic() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO records (key, kind, site, created_ms, body) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            added = conn.total_changes - before
            conn.executemany(
                "UPDATE positions SET position = ? WHERE name = ?", [(p, n) for n, p in positions.items()]
            )
        return added

    # ---- transports

    def open_delivery(self, transport: str) -> int:
        """Where transport `transport` stands; a new one starts after the records already there."""
        with self._atomic() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO deliveries (transport, seq)"
                " SELECT ?, coalesce(max(seq), 0) FROM records",
                (transport,),
            )
            (seq,) = conn.execute("SELECT seq FROM deliveries WHERE transport = ?", (transport,)).fetchone()
        return int(seq)

    def set_delivered(self, transport: str, seq: int) -> None:
        """Move the transport's cursor forward to `seq` (never back)."""
        with self._atomic() as conn:
            conn.execute(
                "UPDATE deliveries SET seq = ? WHERE transport = ? AND seq < ?", (seq, transport, seq)
            )

    def after(self, seq: int, limit: int) -> list[StoredRecord]:
        """Records after `seq`, in outbox order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, key, kind, site, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        return [StoredRecord(s, k, kind, site, bytes(body)) for s, k, kind, site, body in rows]

    def count_after(self, seq: int) -> int:
        with self._lock:
            (n,) = self._conn.execute("SELECT count(*) FROM records WHERE seq > ?", (seq,)).fetchone()
        return int(n)

    def last_seq(self) -> int:
        with self._lock:
            (n,) = self._conn.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()
        return int(n)

    def prune(self, upto_seq: int, before_ms: int) -> int:
        """Delete records up to `upto_seq` (what every configured transport has delivered) made before
        `before_ms`; returns how many. A transport no longer configured does not hold records back."""
        with self._atomic() as conn:
            cur = conn.execute("DELETE FROM records WHERE seq <= ? AND created_ms < ?", (upto_seq, before_ms))
            return cur.rowcount
