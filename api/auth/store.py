"""Users, browser sessions, API tokens, failed-login lockout and the auth audit log, in SQLite.

Built on alerts.sqlite_store (WAL, synchronous=FULL, versioned migrations). Secrets are never
stored: a session or API token is 32 random bytes handed to the caller once, and only its SHA-256
is kept; passwords are argon2id hashes (api/auth/passwords.py).

Sessions expire 12 h after login (absolute) or after 30 min without a request (idle), both
configurable. `last_seen` / `last_used` are written at most once a minute per credential, so a
busy console does not fsync on every request. Changing a user's password, disabling the user or
changing their role or scope revokes their sessions (they log in again under the new rules);
API tokens of a disabled user stop resolving while the user stays disabled.

Lockout is per (username, source address), known name or not (so it does not reveal which names
exist): `max_failures` failed logins from one address within `failure_window_s` lock the name for
that address for `lockout_s`, so a stranger cannot lock a real user out from elsewhere. Across all
addresses, once a name has `global_failures` failures in the window, its password is checked at
most once every `global_backoff_s` (a distributed guesser gets a few guesses a minute, the real user
waits seconds). Each attempt is reserved, counted as a failure, in one transaction before its
password is checked and is forgiven if the password proves right, so parallel attempts cannot
check more passwords than the limit allows. A login for an unknown name spends one dummy argon2
verification, so its answer time matches a real one.

Every mutation writes one `auth_audit` row in the same transaction (actor, action, outcome,
target, detail, remote address); so does every login attempt, including failed and locked ones.
The audit keeps `audit_retention_days` (3 years) and at most `audit_max_rows` (1 000 000) rows.

Times are UTC ms; every method takes an optional `now_ms` (default: the injected clock).
Errors: see api/auth/errors.py.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from alerts.sqlite_store import SqliteStore
from api.auth.errors import (
    AccountLocked,
    InvalidCredentials,
    InvalidUserData,
    LastAdmin,
    UnknownToken,
    UnknownUser,
    UserExists,
)
from api.auth.model import Principal, Role, Scope, User
from api.auth.passwords import PasswordHasher, check_policy

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE users (
            username TEXT PRIMARY KEY, display_name TEXT NOT NULL, role TEXT NOT NULL, scope TEXT NOT NULL,
            password_hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,
            created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID""",
        """CREATE TABLE login_failures (
            username TEXT PRIMARY KEY, failures INTEGER NOT NULL, first_ms INTEGER NOT NULL,
            locked_until_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID""",
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, username TEXT NOT NULL,
            csrf TEXT NOT NULL, created_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL, remote TEXT NOT NULL DEFAULT '', revoked_ms INTEGER)""",
        "CREATE INDEX sessions_user ON sessions (username)",
        """CREATE TABLE api_tokens (
            id TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, username TEXT NOT NULL,
            name TEXT NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER,
            last_used_ms INTEGER, revoked_ms INTEGER)""",
        "CREATE UNIQUE INDEX api_tokens_name ON api_tokens (username, name) WHERE revoked_ms IS NULL",
        """CREATE TABLE auth_audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, actor TEXT NOT NULL,
            action TEXT NOT NULL, outcome TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL,
            remote TEXT NOT NULL)""",
        "CREATE INDEX auth_audit_time ON auth_audit (time_ms)",
    ),
    (  # version 2: failed logins counted per (username, source), plus one '*' row per username
        "DROP TABLE login_failures",
        """CREATE TABLE login_throttle (
            username TEXT NOT NULL, source TEXT NOT NULL, failures INTEGER NOT NULL,
            first_ms INTEGER NOT NULL, locked_until_ms INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (username, source)) WITHOUT ROWID""",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
TOKEN_PREFIX = "hzm_"  # API tokens are recognisable in a leaked log or a secret scanner
_TOUCH_EVERY_MS = 60_000  # last_seen / last_used resolution
_SEEN_COLUMN = {"sessions": "last_seen_ms", "api_tokens": "last_used_ms"}  # when a credential was last used
AUDIT_PRUNE_EVERY = 500  # audit rows written between two prunings


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A new session: the secret cookie value (shown once) and its CSRF double-submit value."""

    id: str
    token: str
    csrf: str
    username: str
    expires_ms: int


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token's public facts (never the secret)."""

    id: str
    username: str
    name: str
    created_ms: int
    expires_ms: int | None
    last_used_ms: int | None
    revoked_ms: int | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the auth audit log."""

    seq: int
    time_ms: int
    actor: str
    action: str
    outcome: str
    target: str
    detail: str
    remote: str


def normalize_username(username: str) -> str:
    """The stored form of a username: trimmed and lower-case."""
    return username.strip().lower()


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _clean_text(value: str, what: str, max_len: int) -> str:
    value = value.strip()
    if len(value) > max_len or any(ord(c) < 32 for c in value):
        raise InvalidUserData(f"{what} must be at most {max_len} printable characters")
    return value


class AuthStore(SqliteStore):
    """Users, sessions, API tokens, lockout and audit in one SQLite file (`auth.sqlite`)."""

    def __init__(
        self,
        path: str | Path,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], int] | None = None,
        session_absolute_s: float = 12 * 3600,
        session_idle_s: float = 30 * 60,
        max_failures: int = 5,
        failure_window_s: float = 15 * 60,
        lockout_s: float = 5 * 60,
        global_failures: int = 20,
        global_backoff_s: float = 2.0,
        audit_retention_days: int = 3 * 365,
        audit_max_rows: int = 1_000_000,
        audit_prune_every: int = AUDIT_PRUNE_EVERY,
    ):
        super().__init__(path, _MIGRATIONS, "auth store")
        self.hasher = hasher if hasher is not None else PasswordHasher()
        self._clock = clock if clock is not None else (lambda: time.time_ns() // 1_000_000)
        self.session_absolute_ms = int(session_absolute_s * 1000)
        self.session_idle_ms = int(session_idle_s * 1000)
        self.max_failures = max_failures
        self.failure_window_ms = int(failure_window_s * 1000)
        self.lockout_ms = int(lockout_s * 1000)
        self.global_failures = global_failures
        self.global_backoff_ms = int(global_backoff_s * 1000)
        self.audit_retention_days = audit_retention_days
        self.audit_max_rows = audit_max_rows
        self.audit_prune_every = audit_prune_every
        self._audits_since_prune = 0

    def now_ms(self) -> int:
        """The store's clock (UTC ms)."""
        return self._clock()

    def _now(self, now_ms: int | None) -> int:
        return self._clock() if now_ms is None else now_ms

    def _audit(
        self,
        conn: sqlite3.Connection,
        now_ms: int,
        actor: str,
        action: str,
        outcome: str,
        target: str = "",
        detail: str = "",
        remote: str = "",
    ) -> None:
        conn.execute(
            "INSERT INTO auth_audit (time_ms, actor, action, outcome, target, detail, remote)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (now_ms, actor, action, outcome, target, detail, remote or ""),
        )
        self._audits_since_prune += 1
        if self._audits_since_prune >= self.audit_prune_every:
            self._audits_since_prune = 0
            self._prune_audit(conn, now_ms)

    def _prune_audit(self, conn: sqlite3.Connection, now_ms: int) -> None:
        """Keep the audit bounded: rows older than `audit_retention_days`, and beyond the newest
        `audit_max_rows`, go (a flood of failed logins writes a row per attempt)."""
        cutoff = now_ms - self.audit_retention_days * 86_400_000
        old = conn.execute("DELETE FROM auth_audit WHERE time_ms < ?", (cutoff,)).rowcount
        (newest,) = conn.execute("SELECT coalesce(max(seq), 0) FROM auth_audit").fetchone()
        over = conn.execute("DELETE FROM auth_audit WHERE seq <= ?", (newest - self.audit_max_rows,)).rowcount
        if old or over:
            logger.info(
                "auth audit: %d rows past %d days and %d past the newest %d dropped",
                old,
                self.audit_retention_days,
                over,
                self.audit_max_rows,
            )

    # ---- users

    @staticmethod
    def _row_user(row: tuple) -> User:
        username, display_name, role, scope, disabled = row
        return User(
            username=username,
            display_name=display_name,
            role=Role(role),
            scope=Scope.from_dict(orjson.loads(scope)),
            disabled=bool(disabled),
        )

    _USER_COLS = "username, display_name, role, scope, disabled"

    def get_user(self, username: str) -> User:
        """Return the user, or raise UnknownUser."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {self._USER_COLS} FROM users WHERE username = ?", (normalize_username(username),)
            ).fetchone()
        if row is None:
            raise UnknownUser(f"no user {username!r}")
        return self._row_user(row)

    def list_users(self) -> list[User]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {self._USER_COLS} FROM users ORDER BY username").fetchall()
        return [self._row_user(r) for r in rows]

    def has_users(self) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None

    def create_user(
        self,
        username: str,
        password: str,
        role: Role | str,
        scope: Scope,
        *,
        display_name: str = "",
        actor: str,
        remote: str = "",
        now_ms: int | None = None,
    ) -> User:
        """Create an enabled user; raise UserExists, PasswordPolicyError or InvalidUserData."""
        name = normalize_username(username)
        if not USERNAME_RE.match(name):
            raise InvalidUserData(
                "username must be 1-64 characters: letters a-z, digits and . _ @ - (starting with a letter"
                " or digit)"
            )
        try:
            role = Role(role)
        except ValueError:
            raise InvalidUserData(f"unknown role {role!r}; one of {', '.join(Role)}") from None
        display_name = _clean_text(display_name, "display name", 100)
        check_policy(password, name)
        password_hash = self.hasher.hash(password)  # slow: outside the lock
        now = self._now(now_ms)
        with self._atomic() as conn:
            if conn.execute("SELECT 1 FROM users WHERE username = ?", (name,)).fetchone():
                raise UserExists(f"user {name!r} already exists")
            conn.execute(
                "INSERT INTO users (username, display_name, role, scope, password_hash, disabled,"
                " created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                (
                    name,
                    display_name,
                    role.value,
                    orjson.dumps(scope.to_dict()).decode(),
                    password_hash,
                    now,
                    now,
                ),
            )
            self._audit(
                conn,
                now,
                actor,
                "create_user",
                "ok",
                name,
                f"role={role.value} scope={scope.describe()}",
                remote,
            )
        logger.info("auth: %s created user %s (%s, %s)", actor, name, role.value, scope.describe())
        return User(username=name, display_name=display_name, role=role, scope=scope)

    def set_password(
        self, username: str, password: str, *, actor: str, remote: str = "", now_ms: int | None = None
    ) -> None:
        """Replace the user's password and end their sessions."""
        name = normalize_username(username)
        self.get_user(name)
        check_policy(password, name)
        password_hash = self.hasher.hash(password)
        now = self._now(now_ms)
        with self._atomic() as conn:
            if not conn.execute(
                "UPDATE users SET password_hash = ?, updated_ms = ? WHERE username = ?",
                (password_hash, now, name),
            ).rowcount:
                raise UnknownUser(f"no user {name!r}")
            n = self._revoke_user_sessions(conn, name, now)
            self._audit(conn, now, actor, "set_password", "ok", name, f"sessions revoked={n}", remote)

    def update_user(
        self,
        username: str,
        *,
        role: Role | str | None = None,
        scope: Scope | None = None,
        disabled: bool | None = None,
        display_name: str | None = None,
        actor: str,
        remote: str = "",
        now_ms: int | None = None,
    ) -> User:
        """Change role, scope, disabled flag or display name; a change of rights ends the user's sessions."""
        name = normalize_username(username)
        if role is not None:
            try:
                role = Role(role)
            except ValueError:
                raise InvalidUserData(f"unknown role {role!r}; one of {', '.join(Role)}") from None
        if display_name is not None:
            display_name = _clean_text(display_name, "display name", 100)
        now = self._now(now_ms)
        with self._atomic() as conn:
            row = conn.execute(f"SELECT {self._USER_COLS} FROM users WHERE username = ?", (name,)).fetchone()
            if row is None:
                raise UnknownUser(f"no user {name!r}")
            old = self._row_user(row)
            new = User(
                username=name,
                display_name=old.display_name if display_name is None else display_name,
                role=old.role if role is None else role,
                scope=old.scope if scope is None else scope,
                disabled=old.disabled if disabled is None else disabled,
            )
            changes = [
                f"{f}: {a} -> {b}"
                for f, a, b in (
                    ("role", old.role.value, new.role.value),
                    ("scope", old.scope.describe(), new.scope.describe()),
                    ("disabled", old.disabled, new.disabled),
                    ("display_name", old.display_name, new.display_name),
                )
                if a != b
            ]
            if self._is_root(old) and not self._is_root(new) and self._root_count(conn) <= 1:
                raise LastAdmin("this is the last enabled admin with all sites; create another one first")
            conn.execute(
                "UPDATE users SET display_name = ?, role = ?, scope = ?, disabled = ?, updated_ms = ?"
                " WHERE username = ?",
                (
                    new.display_name,
                    new.role.value,
                    orjson.dumps(new.scope.to_dict()).decode(),
                    int(new.disabled),
                    now,
                    name,
                ),
            )
            if (old.role, old.scope, old.disabled) != (new.role, new.scope, new.disabled):
                n = self._revoke_user_sessions(conn, name, now)
                changes.append(f"sessions revoked={n}")
            self._audit(
                conn, now, actor, "update_user", "ok", name, "; ".join(changes) or "no change", remote
            )
        return new

    def set_role(self, username: str, role: Role | str, *, actor: str, **kw) -> User:
        return self.update_user(username, role=role, actor=actor, **kw)

    def set_scope(self, username: str, scope: Scope, *, actor: str, **kw) -> User:
        return self.update_user(username, scope=scope, actor=actor, **kw)

    def disable(self, username: str, *, actor: str, **kw) -> User:
        return self.update_user(username, disabled=True, actor=actor, **kw)

    @staticmethod
    def _is_root(user: User) -> bool:
        return user.role is Role.ADMIN and user.scope.kind == "all" and not user.disabled

    def _root_count(self, conn: sqlite3.Connection) -> int:
        rows = conn.execute(f"SELECT {self._USER_COLS} FROM users WHERE role = 'admin' AND disabled = 0")
        return sum(1 for r in rows if self._is_root(self._row_user(r)))

    # ---- login and lockout

    def authenticate(
        self, username: str, password: str, *, remote: str = "", now_ms: int | None = None
    ) -> User:
        """Return the user if the password is right; else raise InvalidCredentials or AccountLocked.

        A disabled account answers like a wrong password (InvalidCredentials): only the audit says
        which, so a guesser learns nothing about the account."""
        name = normalize_username(username)[:64]
        source = (remote or "unknown")[:64]
        now = self._now(now_ms)
        with self._atomic() as conn:  # the attempt is reserved (or refused) before any password check
            retry_ms, detail = self._reserve_attempt(conn, name, source, now)
            if retry_ms:
                self._audit(conn, now, name, "login", "locked", name, detail, remote)
            row = conn.execute(
                f"SELECT {self._USER_COLS}, password_hash FROM users WHERE username = ?", (name,)
            ).fetchone()
        if retry_ms:
            raise AccountLocked(retry_after_s=max(1, -(-retry_ms // 1000)))
        if row is None:
            self.hasher.verify_unknown(password)
            ok, password_hash = False, None
        else:
            password_hash = row[-1]
            ok = self.hasher.verify(password_hash, password)
        if not ok:
            with self._atomic() as conn:
                self._audit(conn, now, name, "login", "denied", name, detail, remote)
            raise InvalidCredentials()
        user = self._row_user(row[:-1])
        # argon2 parameters raised since this hash was made: upgrade it now that we know the password
        new_hash = self.hasher.hash(password) if self.hasher.needs_rehash(password_hash) else None
        with self._atomic() as conn:
            self._forgive_attempt(conn, name, source)
            if user.disabled:
                self._audit(conn, now, name, "login", "disabled", name, "", remote)
            else:
                if new_hash is not None:
                    conn.execute(
                        "UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?",
                        (new_hash, name, password_hash),
                    )
                self._audit(conn, now, name, "login", "ok", name, "", remote)
        if user.disabled:
            raise InvalidCredentials()
        return user

    def _reserve_attempt(self, conn: sqlite3.Connection, name: str, source: str, now: int) -> tuple[int, str]:
        """Count this attempt as failed, up front, for its source and for the name; or refuse it.

        Returns (0, what was counted) when its password may be checked, or (ms to wait, why) when the
        source is locked out or the name's global backoff has not run out."""
        window = self.failure_window_ms
        # forget stale counters (guessed names would otherwise pile up forever)
        conn.execute(
            "DELETE FROM login_throttle WHERE locked_until_ms <= ? AND first_ms < ?", (now, now - window)
        )
        rows = {
            src: (failures, first, until)
            for src, failures, first, until in conn.execute(
                "SELECT source, failures, first_ms, locked_until_ms FROM login_throttle"
                " WHERE username = ? AND source IN (?, '*')",
                (name, source),
            )
        }
        mine, everyone = rows.get(source), rows.get("*")
        if mine is not None and mine[2] > now:
            return mine[2] - now, f"locked for {source} after {mine[0]} failures"
        if everyone is not None and everyone[0] >= self.global_failures and everyone[2] > now:
            return everyone[2] - now, f"global backoff after {everyone[0]} failures from all sources"
        counted = []
        for src, row, limit, hold_ms in (
            (source, mine, self.max_failures, self.lockout_ms),
            ("*", everyone, self.global_failures, self.global_backoff_ms),
        ):
            failures = 1 if row is None or now - row[1] > window else row[0] + 1
            first = now if failures == 1 else row[1]
            until = now + hold_ms if failures >= limit else 0
            conn.execute(
                "INSERT OR REPLACE INTO login_throttle"
                " (username, source, failures, first_ms, locked_until_ms) VALUES (?, ?, ?, ?, ?)",
                (name, src, failures, first, until),
            )
            counted.append(failures)
        if counted[0] >= self.max_failures:
            logger.warning(
                "auth: username %r locked for %s for %d s after %d failed logins",
                name,
                source,
                self.lockout_ms // 1000,
                counted[0],
            )
        return 0, f"failure {counted[0]} from {source}, {counted[1]} from all sources"

    def _forgive_attempt(self, conn: sqlite3.Connection, name: str, source: str) -> None:
        """The password was right: its source starts afresh, and the name's count loses this attempt."""
        conn.execute("DELETE FROM login_throttle WHERE username = ? AND source = ?", (name, source))
        conn.execute(
            "UPDATE login_throttle SET failures = max(failures - 1, 0) WHERE username = ? AND source = '*'",
            (name,),
        )

    # ---- sessions

    def create_session(self, user: User, *, remote: str = "", now_ms: int | None = None) -> SessionInfo:
        """Start a browser session for an authenticated user."""
        now = self._now(now_ms)
        info = SessionInfo(
            id=secrets.token_hex(8),
            token=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            username=user.username,
            expires_ms=now + self.session_absolute_ms,
        )
        with self._atomic() as conn:
            conn.execute(
                "INSERT INTO sessions (id, token_sha256, username, csrf, created_ms, last_seen_ms,"
                " expires_ms, remote) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    info.id,
                    _sha256(info.token),
                    user.username,
                    info.csrf,
                    now,
                    now,
                    info.expires_ms,
                    remote or "",
                ),
            )
            self._audit(conn, now, user.username, "create_session", "ok", info.id, "", remote)
        return info

    def resolve_session(self, token: str, *, now_ms: int | None = None) -> Principal | None:
        """The principal of a live session, or None (unknown, revoked, expired, idle or user disabled)."""
        if not token or len(token) > 256:
            return None
        now = self._now(now_ms)
        with self._lock:
            row = self._conn.execute(
                f"SELECT s.id, s.csrf, s.last_seen_ms, s.expires_ms, s.revoked_ms, {self._USER_COLS}"
                " FROM sessions s JOIN users USING (username) WHERE s.token_sha256 = ?",
                (_sha256(token),),
            ).fetchone()
            if row is None:
                return None
            sid, csrf, last_seen, expires, revoked = row[:5]
            user = self._row_user(row[5:])
            if (
                revoked is not None
                or now >= expires
                or now - last_seen >= self.session_idle_ms
                or user.disabled
            ):
                return None
            self._touch("sessions", sid, last_seen, now)
        return Principal(user=user, via="session", credential_id=sid, csrf=csrf)

    def _touch(self, table: str, credential_id: str, last_ms: int | None, now: int) -> None:
        """Record a credential's use at most once a minute (a busy console must not fsync per request).

        Called with the lock held, inside the read that found the credential."""
        if last_ms is None or now - last_ms >= _TOUCH_EVERY_MS:
            column = _SEEN_COLUMN[table]
            self._conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (now, credential_id))

    def recheck(self, principal: Principal, *, now_ms: int | None = None) -> Principal | None:
        """The caller as they stand now, for a connection that outlives its request (the live stream).

        None once the session or token is revoked (logout) or expired, or the user disabled; else the
        principal with the user's current role and scope (a token keeps working across a change of
        scope, under the new scope). A session's open stream counts as activity: it is touched."""
        now = self._now(now_ms)
        table = "sessions" if principal.via == "session" else "api_tokens"
        seen = _SEEN_COLUMN[table]
        with self._lock:
            row = self._conn.execute(
                f"SELECT c.expires_ms, c.revoked_ms, c.{seen}, {self._USER_COLS}"
                f" FROM {table} c JOIN users USING (username) WHERE c.id = ?",
                (principal.credential_id,),
            ).fetchone()
            if row is None:
                return None
            expires, revoked, last = row[:3]
            user = self._row_user(row[3:])
            if revoked is not None or (expires is not None and now >= expires) or user.disabled:
                return None
            self._touch(table, principal.credential_id, last, now)
        return Principal(
            user=user, via=principal.via, credential_id=principal.credential_id, csrf=principal.csrf
        )

    def revoke_session(
        self, session_id: str, *, actor: str, remote: str = "", now_ms: int | None = None
    ) -> bool:
        """End a session (logout); return False if it was not live."""
        now = self._now(now_ms)
        with self._atomic() as conn:
            n = conn.execute(
                "UPDATE sessions SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL", (now, session_id)
            ).rowcount
            self._audit(
                conn, now, actor, "revoke_session", "ok" if n else "not_found", session_id, "", remote
            )
        return bool(n)

    def _revoke_user_sessions(self, conn: sqlite3.Connection, name: str, now: int) -> int:
        return conn.execute(
            "UPDATE sessions SET revoked_ms = ? WHERE username = ? AND revoked_ms IS NULL", (now, name)
        ).rowcount

    # ---- API tokens

    _TOKEN_COLS = "id, username, name, created_ms, expires_ms, last_used_ms, revoked_ms"

    def create_token(
        self,
        username: str,
        name: str,
        *,
        expires_ms: int | None = None,
        actor: str,
        remote: str = "",
        now_ms: int | None = None,
    ) -> tuple[ApiToken, str]:
        """Issue a named API token for the user; return its facts and the secret (shown only now)."""
        user = self.get_user(username)
        name = _clean_text(name, "token name", 64)
        if not name:
            raise InvalidUserData("token name must not be blank")
        now = self._now(now_ms)
        if expires_ms is not None and expires_ms <= now:
            raise InvalidUserData("token expiry must be in the future")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = ApiToken(secrets.token_hex(8), user.username, name, now, expires_ms, None, None)
        with self._atomic() as conn:
            try:
                conn.execute(
                    "INSERT INTO api_tokens (id, token_sha256, username, name, created_ms, expires_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (token.id, _sha256(secret), user.username, name, now, expires_ms),
                )
            except sqlite3.IntegrityError:
                raise InvalidUserData(f"{user.username} already has a live token named {name!r}") from None
            self._audit(
                conn, now, actor, "create_token", "ok", user.username, f"id={token.id} name={name}", remote
            )
        return token, secret

    def list_tokens(self, username: str | None = None) -> list[ApiToken]:
        """The tokens of one user (or everyone's), newest first, revoked ones included."""
        sql = f"SELECT {self._TOKEN_COLS} FROM api_tokens"
        args: tuple = ()
        if username is not None:
            sql, args = sql + " WHERE username = ?", (normalize_username(username),)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created_ms DESC, id", args).fetchall()
        return [ApiToken(*r) for r in rows]

    def resolve_token(self, secret: str, *, now_ms: int | None = None) -> Principal | None:
        """The principal of a live API token, or None (unknown, revoked, expired or user disabled)."""
        if not secret or len(secret) > 256:
            return None
        now = self._now(now_ms)
        with self._lock:
            row = self._conn.execute(
                f"SELECT t.id, t.expires_ms, t.last_used_ms, t.revoked_ms, {self._USER_COLS}"
                " FROM api_tokens t JOIN users USING (username) WHERE t.token_sha256 = ?",
                (_sha256(secret),),
            ).fetchone()
            if row is None:
                return None
            tid, expires, last_used, revoked = row[:4]
            user = self._row_user(row[4:])
            if revoked is not None or (expires is not None and now >= expires) or user.disabled:
                return None
            self._touch("api_tokens", tid, last_used, now)
        return Principal(user=user, via="token", credential_id=tid)

    def revoke_token(
        self,
        token_id: str,
        *,
        actor: str,
        owner: str | None = None,
        remote: str = "",
        now_ms: int | None = None,
    ) -> None:
        """Revoke a token; with `owner`, only if it is theirs. Raise UnknownToken otherwise."""
        now = self._now(now_ms)
        with self._atomic() as conn:
            sql = "UPDATE api_tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL"
            args: tuple = (now, token_id)
            if owner is not None:
                sql, args = sql + " AND username = ?", (*args, normalize_username(owner))
            if not conn.execute(sql, args).rowcount:
                raise UnknownToken(f"no live token {token_id!r}")
            self._audit(conn, now, actor, "revoke_token", "ok", token_id, "", remote)

    # ---- audit

    def audit_log(self, *, limit: int = 1000, target: str | None = None) -> list[AuditEntry]:
        """The newest audit rows first."""
        sql, args = "SELECT * FROM auth_audit", ()
        if target is not None:
            sql, args = sql + " WHERE target = ?", (target,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
        return [AuditEntry(*r) for r in rows]

    def record(
        self,
        actor: str,
        action: str,
        outcome: str = "ok",
        *,
        target: str = "",
        detail: str = "",
        remote: str = "",
        now_ms: int | None = None,
    ) -> None:
        """Write one audit row for an action done outside the store (for the routers that enforce auth)."""
        now = self._now(now_ms)
        with self._atomic() as conn:
            self._audit(conn, now, actor, action, outcome, target, detail, remote)
