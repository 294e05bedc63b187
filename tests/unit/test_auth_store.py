"""AuthStore (api/auth/store.py): passwords, lockout, sessions, API tokens, audit; SQLite in tmp_path."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from api.auth.errors import (
    AccountLocked,
    InvalidCredentials,
    InvalidUserData,
    LastAdmin,
    PasswordPolicyError,
    UnknownToken,
    UnknownUser,
    UserExists,
)
from api.auth.model import Role, Scope
from api.auth.passwords import PasswordHasher
from api.auth.store import AuthStore
from tests.support.auth_copies import AuthUser, auth_store_copy

MIN = 60_000
T0 = 1_800_000_000_000
PW = "correct horse battery"


class FakeClock:
    def __init__(self, t: int = T0):
        self.t = t

    def __call__(self) -> int:
        return self.t

    def advance(self, ms: int) -> None:
        self.t += ms


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


#: made once at T0, copied for each test (tests/support/auth_copies.py)
USERS = (
    AuthUser("root", PW, Role.ADMIN, Scope.everything()),
    AuthUser(
        "op", PW, Role.OPERATOR, Scope.jurisdiction("江门市", "江海区"), display_name="值班员", actor="root"
    ),
)


@pytest.fixture
def store(tmp_path, clock) -> AuthStore:
    s, _ = auth_store_copy(tmp_path, USERS, made_at_ms=T0, clock=clock)
    yield s
    s.close()


def actions(store: AuthStore) -> list[tuple[str, str, str]]:
    return [(e.action, e.outcome, e.target) for e in reversed(store.audit_log())]


# ---- passwords and users


def test_hash_is_argon2id_and_never_the_password(store: AuthStore):
    (h,) = store._conn.execute("SELECT password_hash FROM users WHERE username = 'op'").fetchone()
    assert h != PW and PW not in h and h.startswith("$argon2id$")


def test_authenticate_right_and_wrong_password(store: AuthStore):
    assert store.authenticate("op", PW).role is Role.OPERATOR
    assert store.authenticate(" OP ", PW).username == "op"  # names are trimmed and lower-case
    with pytest.raises(InvalidCredentials) as wrong:
        store.authenticate("op", PW + "x")
    with pytest.raises(InvalidCredentials) as unknown:
        store.authenticate("nobody", PW)
    assert str(wrong.value) == str(unknown.value)  # the answer does not tell which


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short", "at least 10"),
        ("operator-1", "username"),
        (" " * 12, "blank"),
        ("1234567890", "most common"),  # accepted before issue 11
        ("qwertyuiop", "most common"),
        ("88888888888", "too easy"),
        ("operator-12345", "too easy"),  # the name with digits
        ("woaini1314", "too easy"),  # a common Chinese password (love you for life)
    ],
)
def test_password_policy(store: AuthStore, password: str, rule: str):
    with pytest.raises(PasswordPolicyError, match=rule):
        store.create_user("operator-1", password, Role.VIEWER, Scope.everything(), actor="root")


@pytest.mark.parametrize("password", ["correct horse battery", "Tank-Farm-2026!", "jianghai-ops-7731"])
def test_passwords_that_are_long_and_unguessable_are_taken(store: AuthStore, password: str):
    store.create_user("operator-1", password, Role.VIEWER, Scope.everything(), actor="root")
    assert store.authenticate("operator-1", password).username == "operator-1"


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "-lead", "名字"])
def test_bad_usernames_are_refused(store: AuthStore, name: str):
    with pytest.raises(InvalidUserData):
        store.create_user(name, PW, Role.VIEWER, Scope.everything(), actor="root")


def test_duplicate_user_and_unknown_role(store: AuthStore):
    with pytest.raises(UserExists):
        store.create_user("OP", PW, Role.VIEWER, Scope.everything(), actor="root")
    with pytest.raises(InvalidUserData, match="unknown role"):
        store.create_user("new", PW, "boss", Scope.everything(), actor="root")


def test_users_persist_across_reopen(tmp_path, store: AuthStore):
    store.close()
    with AuthStore(tmp_path / "auth.sqlite", hasher=PasswordHasher(time_cost=1, memory_cost=64)) as again:
        op = again.get_user("op")
    assert (op.display_name, op.scope) == ("值班员", Scope.jurisdiction("江门市", "江海区"))


def test_set_password_replaces_it_and_ends_sessions(store: AuthStore):
    session = store.create_session(store.authenticate("op", PW))
    store.set_password("op", "another good one", actor="root")
    with pytest.raises(InvalidCredentials):
        store.authenticate("op", PW)
    assert store.authenticate("op", "another good one").username == "op"
    assert store.resolve_session(session.token) is None
    with pytest.raises(UnknownUser):
        store.set_password("ghost", "another good one", actor="root")


def test_disabled_user_cannot_log_in_and_loses_sessions_and_tokens(store: AuthStore):
    session = store.create_session(store.authenticate("op", PW))
    _, secret = store.create_token("op", "scada", actor="root")
    store.disable("op", actor="root")
    with pytest.raises(InvalidCredentials):  # answered like a wrong password; only the audit says why
        store.authenticate("op", PW)
    assert store.audit_log(limit=1)[0].outcome == "disabled"
    assert store.resolve_session(session.token) is None
    assert store.resolve_token(secret) is None
    store.update_user("op", disabled=False, actor="root")
    assert store.resolve_token(secret) is not None  # tokens come back, sessions do not
    assert store.resolve_session(session.token) is None


def test_role_or_scope_change_ends_sessions(store: AuthStore):
    session = store.create_session(store.authenticate("op", PW))
    store.set_role("op", Role.SUPERVISOR, actor="root")
    assert store.resolve_session(session.token) is None
    assert store.get_user("op").role is Role.SUPERVISOR
    session = store.create_session(store.authenticate("op", PW))
    store.update_user("op", display_name="新名字", actor="root")  # not a change of rights
    assert store.resolve_session(session.token) is not None
    store.set_scope("op", Scope.jurisdiction("江门市"), actor="root")
    assert store.resolve_session(session.token) is None


def test_last_admin_with_all_sites_cannot_be_removed(store: AuthStore):
    with pytest.raises(LastAdmin):
        store.disable("root", actor="root")
    with pytest.raises(LastAdmin):
        store.set_scope("root", Scope.jurisdiction("江门市"), actor="root")
    store.create_user("root2", PW, Role.ADMIN, Scope.everything(), actor="root")
    store.disable("root", actor="root2")
    assert store.get_user("root").disabled


# ---- lockout


def test_lockout_after_five_failures_and_its_expiry(store: AuthStore, clock: FakeClock):
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            store.authenticate("op", "wrong password")
    with pytest.raises(AccountLocked) as locked:
        store.authenticate("op", PW)  # even the right password
    assert locked.value.retry_after_s == 300
    clock.advance(4 * MIN)
    with pytest.raises(AccountLocked) as locked:
        store.authenticate("op", PW)
    assert locked.value.retry_after_s == 60
    clock.advance(MIN)
    assert store.authenticate("op", PW).username == "op"
    assert store.authenticate("root", PW).username == "root"  # per username: root never was locked


def test_failures_spread_out_do_not_lock(store: AuthStore, clock: FakeClock):
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            store.authenticate("op", "wrong password")
    clock.advance(16 * MIN)  # the 15-minute window starting at the first failure has closed
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            store.authenticate("op", "wrong password")
    assert store.authenticate("op", PW).username == "op"


def test_success_resets_the_failure_count(store: AuthStore):
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            store.authenticate("op", "wrong password")
    store.authenticate("op", PW)
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            store.authenticate("op", "wrong password")
    assert store.authenticate("op", PW).username == "op"


def test_unknown_usernames_lock_too(store: AuthStore):
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            store.authenticate("ghost", PW)
    with pytest.raises(AccountLocked):
        store.authenticate("ghost", PW)  # the same answers as for a real name


class CountingHasher(PasswordHasher):
    """Counts password checks, and holds each for a moment so that parallel attempts overlap."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=64)
        self.checks = 0
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self.checks += 1
        time.sleep(0.005)

    def verify(self, stored_hash: str, password: str) -> bool:
        self._count()
        return super().verify(stored_hash, password)

    def verify_unknown(self, password: str) -> None:
        self._count()
        super().verify_unknown(password)


def test_parallel_guesses_from_one_address_check_at_most_five_passwords_then_even_the_right_one_waits(
    tmp_path,
):
    hasher = CountingHasher()
    store = AuthStore(tmp_path / "auth.sqlite", hasher=hasher)
    store.create_user("op", PW, Role.OPERATOR, Scope.everything(), actor="test")
    hasher.checks = 0
    outcomes: list[str] = []

    def guess(i: int) -> None:
        for j in range(20):
            try:
                store.authenticate("op", f"guess {i}-{j}", remote="203.0.113.7")
            except (InvalidCredentials, AccountLocked) as e:
                outcomes.append(type(e).__name__)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hasher.checks <= 5 and outcomes.count("InvalidCredentials") == hasher.checks
    assert outcomes.count("AccountLocked") == 160 - hasher.checks
    with pytest.raises(AccountLocked):
        store.authenticate("op", PW, remote="203.0.113.7")
    assert hasher.checks <= 5  # refused without a check
    store.close()


def test_a_stranger_locking_a_name_from_one_address_does_not_lock_its_user_out_elsewhere(store: AuthStore):
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            store.authenticate("op", "wrong password", remote="198.51.100.66")
    with pytest.raises(AccountLocked):
        store.authenticate("op", PW, remote="198.51.100.66")
    assert store.authenticate("op", PW, remote="10.1.2.3").username == "op"  # the control room


def test_guesses_from_many_addresses_slow_the_name_down_without_locking_its_user_out(
    store: AuthStore, clock: FakeClock
):
    for i in range(20):  # a botnet: one guess per address, no address reaches its own lockout
        with pytest.raises(InvalidCredentials):
            store.authenticate("op", f"guess {i}", remote=f"192.0.2.{i}")
    with pytest.raises(AccountLocked) as backoff:
        store.authenticate("op", "guess 21", remote="192.0.2.200")
    assert backoff.value.retry_after_s <= 2  # a backoff of seconds, not a lockout of minutes
    clock.advance(2_000)
    assert store.authenticate("op", PW, remote="10.1.2.3").username == "op"
    assert "global backoff" in store.audit_log(limit=2)[1].detail


# ---- sessions


def test_session_token_is_stored_only_hashed(tmp_path, store: AuthStore):
    s = store.create_session(store.get_user("op"))
    p = store.resolve_session(s.token)
    assert p is not None and (p.username, p.via, p.csrf) == ("op", "session", s.csrf)
    raw = (tmp_path / "auth.sqlite").read_bytes() + (tmp_path / "auth.sqlite-wal").read_bytes()
    assert s.token.encode() not in raw
    assert store.resolve_session("not-a-token") is None
    assert store.resolve_session("") is None


def test_session_idle_expiry(store: AuthStore, clock: FakeClock):
    s = store.create_session(store.get_user("op"))
    clock.advance(29 * MIN)
    assert store.resolve_session(s.token) is not None  # and this request counts as activity
    clock.advance(29 * MIN)
    assert store.resolve_session(s.token) is not None
    clock.advance(30 * MIN)
    assert store.resolve_session(s.token) is None


def test_session_absolute_expiry(store: AuthStore, clock: FakeClock):
    s = store.create_session(store.get_user("op"))
    for _ in range(12 * 6 - 1):
        clock.advance(10 * MIN)  # busy all shift long: never idle
        assert store.resolve_session(s.token) is not None
    clock.advance(10 * MIN)  # 12 h after login
    assert store.resolve_session(s.token) is None


def test_session_lifetimes_are_configurable(tmp_path, clock: FakeClock):
    hasher = PasswordHasher(time_cost=1, memory_cost=64)
    with AuthStore(tmp_path / "a.sqlite", hasher=hasher, clock=clock, session_idle_s=60) as s:
        u = s.create_user("a", PW, Role.VIEWER, Scope.everything(), actor="t")
        sess = s.create_session(u)
        clock.advance(61_000)
        assert s.resolve_session(sess.token) is None


def test_revoke_session(store: AuthStore):
    s = store.create_session(store.get_user("op"))
    assert store.revoke_session(s.id, actor="op")
    assert store.resolve_session(s.token) is None
    assert not store.revoke_session(s.id, actor="op")


# ---- API tokens


def test_token_resolve_revoke_and_last_used(store: AuthStore, clock: FakeClock):
    token, secret = store.create_token("op", "scada-gw", actor="root")
    assert secret.startswith("hzm_") and len(secret) > 40
    clock.advance(MIN)
    p = store.resolve_token(secret)
    assert p is not None and (p.username, p.via, p.credential_id) == ("op", "token", token.id)
    (listed,) = store.list_tokens("op")
    assert listed.last_used_ms == T0 + MIN and listed.name == "scada-gw"
    with pytest.raises(UnknownToken):
        store.revoke_token(token.id, actor="root", owner="root")  # not root's token
    store.revoke_token(token.id, actor="op", owner="op")
    assert store.resolve_token(secret) is None
    with pytest.raises(UnknownToken):
        store.revoke_token(token.id, actor="op")


def test_token_expiry_and_names(store: AuthStore, clock: FakeClock):
    _, secret = store.create_token("op", "short", expires_ms=T0 + 10 * MIN, actor="root")
    clock.advance(10 * MIN)
    assert store.resolve_token(secret) is None
    with pytest.raises(InvalidUserData, match="already has"):
        store.create_token("op", "short", actor="root")
    with pytest.raises(InvalidUserData, match="future"):
        store.create_token("op", "past", expires_ms=T0, actor="root")
    with pytest.raises(InvalidUserData):
        store.create_token("op", "  ", actor="root")
    with pytest.raises(UnknownUser):
        store.create_token("ghost", "x", actor="root")


def test_token_secret_is_stored_only_hashed(store: AuthStore):
    _, secret = store.create_token("op", "x", actor="root")
    dump = "\n".join(store._conn.iterdump())
    assert secret not in dump and secret[4:] not in dump


# ---- audit


def test_every_mutation_and_login_is_audited(store: AuthStore, clock: FakeClock):
    store._conn.execute("DELETE FROM auth_audit")
    user = store.authenticate("op", PW, remote="10.0.0.7")
    with pytest.raises(InvalidCredentials):
        store.authenticate("op", "wrong password")
    s = store.create_session(user, remote="10.0.0.7")
    store.revoke_session(s.id, actor="op")
    token, _ = store.create_token("op", "t", actor="op")
    store.revoke_token(token.id, actor="op")
    store.create_user("v", PW, Role.VIEWER, Scope.of_sites(["a"]), actor="root")
    store.set_password("v", "yet another one", actor="root")
    store.set_role("v", Role.OPERATOR, actor="root")
    store.record("op", "acknowledge", target="A000001", detail="site jh-1")
    assert actions(store) == [
        ("login", "ok", "op"),
        ("login", "denied", "op"),
        ("create_session", "ok", s.id),
        ("revoke_session", "ok", s.id),
        ("create_token", "ok", "op"),
        ("revoke_token", "ok", token.id),
        ("create_user", "ok", "v"),
        ("set_password", "ok", "v"),
        ("update_user", "ok", "v"),
        ("acknowledge", "ok", "A000001"),
    ]
    log = list(reversed(store.audit_log()))
    assert log[0].remote == "10.0.0.7" and log[0].time_ms == T0
    assert log[6].actor == "root" and "role=viewer" in log[6].detail
    assert "role: viewer -> operator" in log[8].detail
    assert all(PW not in e.detail for e in log)


def test_failed_mutation_writes_nothing(store: AuthStore):
    before = len(store.audit_log())
    with pytest.raises(UserExists):
        store.create_user("op", PW, Role.VIEWER, Scope.everything(), actor="root")
    assert len(store.audit_log()) == before


def test_newer_schema_is_refused(tmp_path, store: AuthStore):
    store.close()
    conn = sqlite3.connect(tmp_path / "auth.sqlite")
    conn.execute("INSERT INTO schema_version VALUES (99)")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        AuthStore(tmp_path / "auth.sqlite")


def test_weaker_hash_is_upgraded_at_login(tmp_path, clock: FakeClock):
    path = tmp_path / "up.sqlite"
    with AuthStore(path, hasher=PasswordHasher(time_cost=1, memory_cost=64), clock=clock) as s:
        s.create_user("a", PW, Role.VIEWER, Scope.everything(), actor="t")
    with AuthStore(path, hasher=PasswordHasher(time_cost=2, memory_cost=64), clock=clock) as s:
        (old,) = s._conn.execute("SELECT password_hash FROM users").fetchone()
        assert s.hasher.needs_rehash(old)
        s.authenticate("a", PW)
        (new,) = s._conn.execute("SELECT password_hash FROM users").fetchone()
        assert new != old and not s.hasher.needs_rehash(new)
        assert s.authenticate("a", PW).username == "a"


def test_stale_failure_counters_are_forgotten(store: AuthStore, clock: FakeClock):
    for name in ("ghost1", "ghost2"):
        with pytest.raises(InvalidCredentials):
            store.authenticate(name, PW)
    clock.advance(16 * MIN)
    with pytest.raises(InvalidCredentials):
        store.authenticate("ghost3", PW)
    names = {r[0] for r in store._conn.execute("SELECT username FROM login_throttle")}
    assert names == {"ghost3"}


def test_recheck_ends_a_logged_out_or_disabled_caller_and_follows_a_change_of_scope(store: AuthStore):
    session = store.resolve_session(store.create_session(store.authenticate("op", PW)).token)
    _, secret = store.create_token("op", "screen", actor="op")
    token = store.resolve_token(secret)
    assert session is not None and token is not None
    store.update_user("op", scope=Scope.jurisdiction("珠海市"), actor="root")
    assert store.recheck(session) is None  # a change of rights ends sessions
    moved = store.recheck(token)
    assert moved is not None and moved.user.scope == Scope.jurisdiction("珠海市")
    store.disable("op", actor="root")
    assert store.recheck(token) is None
    store.update_user("op", disabled=False, actor="root")
    fresh = store.resolve_session(store.create_session(store.authenticate("op", PW)).token)
    store.revoke_session(fresh.credential_id, actor="op")  # logout
    assert store.recheck(fresh) is None


@pytest.mark.deep
def test_the_audit_stays_bounded_under_a_flood_of_failed_logins(tmp_path, clock: FakeClock):
    store = AuthStore(
        tmp_path / "auth.sqlite",
        hasher=PasswordHasher(time_cost=1, memory_cost=64),
        clock=clock,
        audit_max_rows=100,
        audit_retention_days=30,
        audit_prune_every=50,
    )
    for i in range(300):  # guessed names from many addresses: one audit row each
        with pytest.raises((InvalidCredentials, AccountLocked)):
            store.authenticate(f"ghost{i % 7}", "wrong password", remote=f"192.0.2.{i % 250}")
    (rows,) = store._conn.execute("SELECT count(*) FROM auth_audit").fetchone()
    assert rows <= 100 + 50  # pruned every 50 rows to the newest 100
    clock.advance(31 * 24 * 60 * MIN)
    for i in range(50):
        with pytest.raises((InvalidCredentials, AccountLocked)):
            store.authenticate("ghost", "wrong password", remote=f"198.51.100.{i}")
    oldest = store._conn.execute("SELECT min(time_ms) FROM auth_audit").fetchone()[0]
    assert oldest >= clock.t - 30 * 24 * 60 * MIN  # nothing older than the retention is left
    store.close()
