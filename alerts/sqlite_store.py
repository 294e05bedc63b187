"""One SQLite file as hazmon's durable stores use it (docs/design.md decision 2): the alarm journal, the
duty rosters, the SMS outbox and the auth store (api/auth/store.py).

WAL with synchronous=FULL (a committed step survives a power cut), one connection shared by the
service's threads under one lock, explicit BEGIN IMMEDIATE transactions, and a versioned schema
upgraded in place on open.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

Migrations = Sequence[Sequence[str]]  # migrations[v - 1]: the statements that make schema version v


class SqliteStore:
    """Base of the stores: `_conn` and `_lock` for reads, `_atomic()` for writes."""

    def __init__(self, path: str | Path, migrations: Migrations, label: str):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # autocommit mode: transactions are explicit BEGIN IMMEDIATE ... COMMIT
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._migrate(migrations, label)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self, migrations: Migrations, label: str) -> None:
        latest = len(migrations)
        with self._atomic() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            (current,) = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
            if current > latest:
                raise RuntimeError(
                    f"{self.path}: {label} schema version {current} is newer than this code ({latest})"
                )
            for version in range(current + 1, latest + 1):
                for statement in migrations[version - 1]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                logger.info("%s %s: schema upgraded to version %d", label, self.path, version)

    @contextmanager
    def _atomic(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit: everything written through the yielded connection commits, or none of it."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
