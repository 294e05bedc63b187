"""The alarm journal (SQLite) and the AlarmBook: atomic steps, crash recovery, audit, alarm numbers."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from alerts.book.alarm_numbers import normalize_alarm_ref
from alerts.book.book import AlarmBook
from alerts.book.records import AuditEntry
from alerts.book.sqlite_journal import AlarmJournal, alarm_from_json, alarm_to_json
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from alerts.engine.lifecycle import (
    INSTRUMENT_FAULT,
    Alarm,
    AlarmEvent,
    AlarmState,
    InvalidCommand,
    InvalidTransition,
    UnknownAlarm,
    apply_condition,
    suppress,
)

SITE = "jianghai-chem-01"
T0 = 1_795_392_000_000
ROOT = Path(__file__).resolve().parents[2]


def change(
    source: str, active: bool, t: int, kind: ConditionKind = ConditionKind.H, site: str = SITE, **kw: object
) -> ConditionChange:
    args: dict = dict(
        site=site, source=source, kind=kind, active=active, time_ms=t, priority=Priority.HIGH,
        level=kind.name, value=1.0, limit=0.5, message=f"{source} {kind.name}",
    )  # fmt: skip
    args.update(kw)
    return ConditionChange(**args)


def types(events: list[AlarmEvent]) -> list[str]:
    return [e.type for e in events]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "var" / "alarms.sqlite"


@pytest.fixture
def book(db: Path):
    journal = AlarmJournal(db)
    yield AlarmBook(journal, clock=lambda: T0 + 10 * 60_000)
    journal.close()


# ---- the journal


def test_schema_is_created_once_and_in_wal_mode(db):
    AlarmJournal(db).close()
    with AlarmJournal(db) as j:
        assert j._conn.execute("SELECT version FROM schema_version").fetchall() == [(1,), (2,), (3,)]
        assert j._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert j._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_alarm_survives_json_round_trip():
    a, _ = apply_condition(None, change("T101-LT", True, T0, eta_ms=T0 + 5), T0)
    assert a is not None
    a = Alarm(**{**{f: getattr(a, f) for f in a.__dataclass_fields__}, "suppressions": ("x", "chattering")})
    assert alarm_from_json(alarm_to_json(a)) == a


def test_record_stores_state_events_and_audit_together(db):
    a, evs = apply_condition(None, change("T101-LT", True, T0), T0)
    with AlarmJournal(db) as j:
        j.record(a, evs, AuditEntry(T0, "op1", "test", "ok", a.alarm_id, a.key, "why"), recorded_ms=T0)
        assert j.load_current() == {a.key: a}
        [h] = j.history()
        assert (h.type, h.alarm_id, h.key, h.time_ms, h.details["priority"]) == (
            "AlarmRaised", a.alarm_id, a.key, T0, "high",
        )  # fmt: skip
        [row] = j.audit_log()
        assert (row.user, row.action, row.reason, row.key) == ("op1", "test", "why", a.key)


def test_a_failed_step_leaves_nothing_behind(db):
    a, evs = apply_condition(None, change("T101-LT", True, T0), T0)
    with AlarmJournal(db) as j:
        with pytest.raises(RuntimeError), j.transaction() as tx:
            tx.save_alarm(a)
            tx.append_events(evs, T0)
            tx.next_alarm_number()
            raise RuntimeError("crash in the middle of a step")
        assert j.load_current() == {} and j.history() == []
        assert j.next_alarm_number() == 1  # the number taken inside was rolled back too


def test_alarm_numbers_grow_across_restarts(db):
    with AlarmJournal(db) as j:
        assert [j.next_alarm_number() for _ in range(3)] == [1, 2, 3]
    with AlarmJournal(db) as j:
        assert j.next_alarm_number() == 4


def test_book_numbers_are_unique_and_increasing_across_restarts(db):
    ids = []
    for run in range(3):
        with AlarmJournal(db) as j:
            b = AlarmBook(j)
            evs = b.on_changes([change(f"S{run}-{i}", True, T0 + i) for i in range(4)], now_ms=T0)
            ids += [e.alarm_id for e in evs]
    assert ids == [f"A{n:06d}" for n in range(1, 13)]


def test_history_and_audit_filters(book):
    book.on_changes(
        [change("A", True, T0), change("B", True, T0 + 1), change("A", False, T0 + 2)], now_ms=T0 + 3
    )
    j = book.journal
    assert [h.type for h in j.history(source="A", newest_first=False)] == [
        "AlarmRaised",
        "AlarmReturnedToNormal",
    ]
    assert len(j.history(types=["AlarmRaised"])) == 2
    assert [h.key[2] for h in j.history(since_ms=T0 + 1, until_ms=T0 + 2)] == ["B"]
    assert len(j.history(limit=1)) == 1 and j.history(limit=1)[0].time_ms == T0 + 2
    a_id = book.get(("jianghai-chem-01", "sensor", "B", "H")).alarm_id
    book.acknowledge(a_id, "op1", "seen", now_ms=T0 + 5)
    with pytest.raises(InvalidTransition):
        book.acknowledge(a_id, "op2", now_ms=T0 + 6)
    assert [r.user for r in j.audit_log(outcome="refused")] == ["op2"]
    assert [r.outcome for r in j.audit_log(alarm_id=a_id, newest_first=False)] == ["ok", "refused"]
    assert j.audit_log(user="op1")[0].reason == "seen"
    # A returned to normal unacknowledged: still on the list until someone acknowledges it
    assert [(a.key[2], a.state) for a in j.active_alarms(site=SITE)] == [
        ("B", AlarmState.ACK), ("A", AlarmState.RTN_UNACK),
    ]  # fmt: skip
    assert [a.key[2] for a in j.active_alarms(states=[AlarmState.ACK])] == ["B"]
    assert j.active_alarms(site="other") == []


# ---- crash safety


def crash_batch(i: int) -> list[ConditionChange]:
    """Batch i of the crash test: point i % 40 toggles, so every batch emits and nothing chatters."""
    return [change(f"S{i % 40}", (i // 40) % 2 == 0, T0 + i * 1000)]


def crash_child(path: str) -> None:
    """Write batches as fast as possible, reporting each commit, until killed."""
    book = AlarmBook(AlarmJournal(path))
    i = 0
    while True:
        book.on_changes(crash_batch(i), now_ms=T0 + i * 1000)
        if i % 50 == 49:  # operator commands interleaved with engine batches
            book.acknowledge(book.current(states=[AlarmState.UNACK])[0].alarm_id, "op1", now_ms=T0 + i * 1000)
        sys.stdout.write(f"{i}\n")
        sys.stdout.flush()
        i += 1


def reference(path: Path, k: int) -> AlarmJournal:
    j = AlarmJournal(path)
    book = AlarmBook(j)
    for i in range(k):
        book.on_changes(crash_batch(i), now_ms=T0 + i * 1000)
        if i % 50 == 49:
            book.acknowledge(book.current(states=[AlarmState.UNACK])[0].alarm_id, "op1", now_ms=T0 + i * 1000)
    return j


@pytest.mark.deep
def test_sigkill_mid_write_loses_nothing_committed_and_half_of_nothing(tmp_path):
    db = tmp_path / "crash.sqlite"
    code = f"import tests.unit.test_journal as t; t.crash_child({str(db)!r})"
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    last = -1
    for line in child.stdout:
        last = int(line)
        if last >= 120:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert last >= 120, "the child died before writing enough"

    with AlarmJournal(db) as j:
        assert j._conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        times = sorted({h.time_ms for h in j.history(limit=10**6)})
        k = len(times)
        assert times == [T0 + i * 1000 for i in range(k)]  # whole batches only, none half-written
        assert k >= last + 1  # every reported commit is there
        with reference(tmp_path / "ref.sqlite", k) as ref:
            assert j.load_current() == ref.load_current()
            strip = [(h.time_ms, h.alarm_id, h.type, h.details) for h in j.history(limit=10**6)]
            assert strip == [(h.time_ms, h.alarm_id, h.type, h.details) for h in ref.history(limit=10**6)]
            assert [(r.action, r.alarm_id) for r in j.audit_log()] == [
                (r.action, r.alarm_id) for r in ref.audit_log()
            ]
        before = j.load_current()
        # the engine replays what it sent before the crash: nothing is raised again
        book = AlarmBook(j)
        replayed = book.on_changes([c for i in range(k) for c in crash_batch(i)], now_ms=T0 + k * 1000)
        assert replayed == []
        assert j.load_current() == before
        raised = [
            h.alarm_id for h in j.history(types=["AlarmRaised"], limit=10**6) if not h.details["reactivated"]
        ]
        assert len(raised) == len(set(raised))


def test_abandoned_connection_then_reopen_gives_the_same_alarms(db):
    j1 = AlarmJournal(db)  # never closed: like a process that died
    b1 = AlarmBook(j1)
    b1.on_changes([change("A", True, T0), change("B", True, T0), change("C", True, T0)], now_ms=T0)
    b1.acknowledge("A000001", "op1", now_ms=T0 + 1)
    b1.shelve("A000002", "op1", 3600, "known issue", now_ms=T0 + 2)
    b1.on_changes([change("A", False, T0 + 3)], now_ms=T0 + 3)

    j2 = AlarmJournal(db)
    b2 = AlarmBook(j2)
    assert j2.load_current() == j1.load_current()
    states = {a.source: a.state for a in b2.current()}
    assert states == {"B": AlarmState.SHELVED, "C": AlarmState.UNACK}
    assert b2.on_changes([change("B", True, T0), change("C", True, T0 + 5)], now_ms=T0 + 5) == []
    assert b2.acknowledge("a3", "op1", now_ms=T0 + 6).state is AlarmState.ACK  # ids still resolve
    j1._conn.close()
    j2.close()


# ---- the book: audit and commands


def test_refused_commands_are_audited_with_user_and_reason(book):
    book.on_changes([change("T101-LT", True, T0)], now_ms=T0)
    refusals = [
        (UnknownAlarm, lambda: book.acknowledge("A999999", "op1")),
        (InvalidCommand, lambda: book.shelve("A000001", "op2", 3600, "")),
        (InvalidCommand, lambda: book.shelve("A000001", "op2", 25 * 3600, "long night")),
        (InvalidCommand, lambda: book.acknowledge("A000001", "")),
        (InvalidTransition, lambda: book.return_to_service("A000001", "tech")),
        (InvalidTransition, lambda: book.unsuppress_source(SITE, "T101-LT", "nothing", "op3")),
        (InvalidCommand, lambda: book.set_out_of_service((SITE, "sensor", "X", "NOPE"), "tech", "r")),
    ]
    for error, command in refusals:
        with pytest.raises(error):
            command()
    rows = book.journal.audit_log(outcome="refused", newest_first=False)
    assert [(r.user, r.action) for r in rows] == [
        ("op1", "acknowledge"), ("op2", "shelve"), ("op2", "shelve"), ("", "acknowledge"),
        ("tech", "return_to_service"), ("op3", "unsuppress_source"), ("tech", "remove_from_service"),
    ]  # fmt: skip
    assert all(r.error for r in rows)
    assert rows[0].alarm_id == "A999999" and "A999999" in rows[0].error
    assert rows[2].reason == "long night" and rows[2].details == {"duration_s": 25 * 3600}
    # nothing changed and nothing but the audit was written
    assert book.get("A000001").state is AlarmState.UNACK
    assert types([*reversed(book.journal.history())]) == ["AlarmRaised"]


def test_successful_commands_are_audited_and_journaled(book):
    book.on_changes([change("T101-LT", True, T0)], now_ms=T0)
    book.acknowledge("A000001", "op1", "checked on site", now_ms=T0 + 1)
    book.shelve("A000001", "op1", 1800, "valve under repair", now_ms=T0 + 2)
    book.comment("A000001", "op1", "called maintenance", now_ms=T0 + 3)
    book.unshelve("A000001", "op1", now_ms=T0 + 4)
    rows = book.journal.audit_log(newest_first=False)
    assert [(r.action, r.outcome, r.reason) for r in rows] == [
        ("acknowledge", "ok", "checked on site"), ("shelve", "ok", "valve under repair"),
        ("comment", "ok", "called maintenance"), ("unshelve", "ok", ""),
    ]  # fmt: skip
    assert types(list(reversed(book.journal.history()))) == [
        "AlarmRaised", "AlarmAcknowledged", "AlarmShelved", "AlarmCommented", "AlarmUnshelved", "AlarmRaised",
    ]  # fmt: skip
    assert book.get("A000001").state is AlarmState.UNACK


def test_alarm_refs_accept_what_people_type():
    assert normalize_alarm_ref(" a123 ") == normalize_alarm_ref("A000123") == "A000123"
    assert normalize_alarm_ref("0f3a9c") == "0f3a9c"


def test_superseded_episode_ids_are_unknown(book):
    book.on_changes([change("A", True, T0)], now_ms=T0)
    book.acknowledge("A000001", "op1", now_ms=T0)
    book.on_changes([change("A", False, T0 + 1), change("A", True, T0 + 200_000)], now_ms=T0 + 200_000)
    assert book.get("A000002").source == "A"
    with pytest.raises(UnknownAlarm):
        book.acknowledge("A000001", "op1")


def test_out_of_service_by_point_key_before_any_alarm(book):
    key = (SITE, "sensor", "T102-LT", "HH")
    a = book.set_out_of_service(key, "tech", "transmitter replaced", now_ms=T0)
    assert a.state is AlarmState.OUT_OF_SERVICE and a.alarm_id == ""
    assert book.on_changes([change("T102-LT", True, T0 + 1, kind=ConditionKind.HH)], now_ms=T0 + 1)[
        0
    ].type == ("AlarmConditionChanged")
    a = book.return_to_service(key, "tech", now_ms=T0 + 2)
    assert a.state is AlarmState.UNACK and a.alarm_id == "A000001"


def test_expire_shelves_runs_the_clock(book):
    book.on_changes([change("A", True, T0)], now_ms=T0)
    book.shelve("A000001", "op1", 60, "nuisance", now_ms=T0)
    assert book.expire_shelves(now_ms=T0 + 59_999) == []
    assert types(book.expire_shelves(now_ms=T0 + 60_000)) == ["AlarmUnshelved", "AlarmRaised"]
    assert book.get("A000001").state is AlarmState.UNACK
    assert book.journal.load_current()[book.get("A000001").key].state is AlarmState.UNACK


# ---- suppression by design


MEDIUM = Priority.MEDIUM


def test_an_instrument_fault_suppresses_the_sensors_medium_and_derived_alarms(book, db):
    # medium-priority limit alarms (a tank level's H) and derived ones (rate of change) are hidden
    h = book.on_changes([change("GT-01", True, T0, priority=MEDIUM)], now_ms=T0)
    assert types(h) == ["AlarmRaised"]
    evs = book.on_changes(
        [
            change("GT-01", True, T0 + 1000, kind=ConditionKind.FAULT, level="stuck"),
            change("GT-02", True, T0 + 1000, priority=MEDIUM),
        ],
        now_ms=T0 + 1000,
    )
    assert [(e.type, e.key[2], e.key[3]) for e in evs] == [
        ("AlarmSuppressed", "GT-01", "H"), ("AlarmRaised", "GT-01", "FAULT"), ("AlarmRaised", "GT-02", "H"),
    ]  # fmt: skip
    # a new process condition of the faulty sensor is born suppressed; the fault itself is not
    evs = book.on_changes(
        [change("GT-01", True, T0 + 2000, kind=ConditionKind.ROC, priority=Priority.HIGH)], now_ms=T0 + 2000
    )
    assert types(evs) == ["AlarmConditionChanged"]
    assert {(a.key[3], a.state) for a in book.current(source="GT-01")} == {
        ("H", AlarmState.SUPPRESSED), ("ROC", AlarmState.SUPPRESSED), ("FAULT", AlarmState.UNACK),
    }  # fmt: skip
    # a restart remembers the faulty source
    with AlarmJournal(db) as j2:
        assert AlarmBook(j2).source_suppressions() == {(SITE, "GT-01"): {INSTRUMENT_FAULT: T0 + 1000}}
    # the fault clears: what is still active is annunciated
    evs = book.on_changes([change("GT-01", False, T0 + 3000, kind=ConditionKind.FAULT)], now_ms=T0 + 3000)
    assert sorted((e.type, e.key[3], getattr(e, "reactivated", None)) for e in evs) == [
        ("AlarmRaised", "H", True), ("AlarmRaised", "ROC", False), ("AlarmReturnedToNormal", "FAULT", None),
        ("AlarmUnsuppressed", "H", None), ("AlarmUnsuppressed", "ROC", None),
    ]  # fmt: skip
    assert book.source_suppressions() == {}


def test_an_instrument_fault_never_hides_a_high_or_critical_limit_alarm(book):
    # a detector flat at 56 %LEL above HH 40 looks stuck exactly when the release is steady
    crit = Priority.CRITICAL
    book.on_changes(
        [change("GT-01", True, T0), change("GT-01", True, T0, kind=ConditionKind.HH, priority=crit)]
    )
    evs = book.on_changes(
        [change("GT-01", True, T0 + 1000, kind=ConditionKind.FAULT, level="stuck", priority=MEDIUM)],
        now_ms=T0 + 1000,
    )
    assert sorted((e.type, e.key[3]) for e in evs) == [
        ("AlarmMarkedSuspect", "H"), ("AlarmMarkedSuspect", "HH"), ("AlarmRaised", "FAULT"),
    ]  # fmt: skip
    states = {a.key[3]: (a.state, a.suspect) for a in book.current(source="GT-01")}
    assert states == {
        "H": (AlarmState.UNACK, "stuck"), "HH": (AlarmState.UNACK, "stuck"), "FAULT": (AlarmState.UNACK, ""),
    }  # fmt: skip
    # an alarm raised while the sensor is faulty is annunciated, suspect, with the fault in its §3 event
    evs = book.on_changes([change("GT-01", True, T0 + 2000, kind=ConditionKind.LL)], now_ms=T0 + 2000)
    assert types(evs) == ["AlarmRaised"]
    assert evs[0].to_contract_event()["suspect"] == "stuck"
    # rate of change and early warnings of the faulty sensor stay hidden
    evs = book.on_changes([change("GT-01", True, T0 + 2000, kind=ConditionKind.ROC)], now_ms=T0 + 2000)
    assert types(evs) == ["AlarmConditionChanged"]
    # the fault ends: the suspect mark goes, nothing is raised twice
    evs = book.on_changes([change("GT-01", False, T0 + 3000, kind=ConditionKind.FAULT)], now_ms=T0 + 3000)
    assert sorted(types(evs)) == [
        "AlarmRaised", "AlarmReturnedToNormal", "AlarmSuspectCleared", "AlarmSuspectCleared",
        "AlarmSuspectCleared", "AlarmUnsuppressed",
    ]  # fmt: skip
    assert all(not a.suspect for a in book.current(source="GT-01"))


def test_a_limit_alarm_hidden_by_a_fault_before_the_fail_safe_is_revealed_on_load(db):
    # journals written before the fail-safe may hold a critical alarm suppressed by a fault
    with AlarmJournal(db) as j:
        AlarmBook(j).on_changes(
            [change("GT-01", True, T0, kind=ConditionKind.FAULT, level="stuck", priority=MEDIUM)], now_ms=T0
        )
        hh, _ = apply_condition(
            None, change("GT-01", True, T0, kind=ConditionKind.HH, priority=Priority.CRITICAL), T0
        )
        hh, _ = suppress(hh, INSTRUMENT_FAULT, T0)
        with j.transaction() as tx:
            tx.save_alarm(hh)
    heard: list[AlarmEvent] = []
    with AlarmJournal(db) as j:
        b = AlarmBook(j, on_events=heard.extend, clock=lambda: T0 + 5)
        hh = b.get((SITE, "sensor", "GT-01", "HH"))
        assert (hh.state, hh.suspect) == (AlarmState.UNACK, "stuck")
        assert sorted(types(heard)) == ["AlarmMarkedSuspect", "AlarmRaised", "AlarmUnsuppressed"]


def test_a_resent_fault_changes_nothing(book):
    fault = change("GT-01", True, T0, kind=ConditionKind.FAULT, level="stuck")
    book.on_changes([change("GT-01", True, T0), fault], now_ms=T0)
    assert book.on_changes([fault], now_ms=T0 + 1) == []


def test_manual_source_suppression_is_idempotent_and_audited(book):
    book.on_changes([change("V-01", True, T0, scope="group", kind=ConditionKind.VOTE)], now_ms=T0)
    evs = book.suppress_source(SITE, "V-01", "vote group degraded", "eng1", now_ms=T0 + 1)
    assert types(evs) == ["AlarmSuppressed"]
    assert book.suppress_source(SITE, "V-01", "vote group degraded", "eng1", now_ms=T0 + 2) == []
    assert types(book.unsuppress_source(SITE, "V-01", "vote group degraded", "eng1", now_ms=T0 + 3)) == [
        "AlarmUnsuppressed",
        "AlarmRaised",
    ]
    assert [r.action for r in book.journal.audit_log(user="eng1", newest_first=False)] == [
        "suppress_source", "suppress_source", "unsuppress_source",
    ]  # fmt: skip


def test_chattering_through_the_book(book):
    changes = [
        change("LT-9", on, T0 + i * 10_000 + (0 if on else 5000)) for i in range(3) for on in (True, False)
    ]
    evs = book.on_changes(changes, now_ms=T0 + 30_000)
    assert types(evs).count("AlarmRaised") == 2 and "AlarmSuppressed" in types(evs)
    assert book.current(source="LT-9")[0].chattering
    assert types(book.expire_shelves(now_ms=T0 + 20_000 + 600_000)) == ["AlarmUnsuppressed"]


# ---- the book: reads, listeners, threads


def test_current_filters_and_orders(book):
    book.on_changes(
        [
            change("A", True, T0, priority=Priority.LOW),
            change("B", True, T0 + 1, priority=Priority.CRITICAL),
            change("C", True, T0 + 2, priority=Priority.CRITICAL, site="other"),
        ],
        now_ms=T0 + 3,
    )
    assert [a.source for a in book.current()] == ["C", "B", "A"]
    assert [a.source for a in book.current(site=SITE)] == ["B", "A"]
    assert [a.source for a in book.current(min_priority=Priority.HIGH)] == ["C", "B"]
    assert book.active_condition_keys() == {a.key for a in book.current()}


def test_listeners_hear_committed_steps_and_cannot_break_them(db):
    heard: list[list[str]] = []

    def listener(events):
        heard.append(types(events))
        raise RuntimeError("SMS gateway down")

    with AlarmJournal(db) as j:
        b = AlarmBook(j, on_events=listener)
        b.on_changes([change("A", True, T0)], now_ms=T0)
        b.acknowledge("A000001", "op1", now_ms=T0 + 1)
        assert heard == [["AlarmRaised"], ["AlarmAcknowledged"]]
        assert b.get("A000001").state is AlarmState.ACK


def test_concurrent_writers_get_unique_numbers(book):
    def work(n: int) -> None:
        for i in range(20):
            book.on_changes([change(f"T{n}-{i}", True, T0 + i)], now_ms=T0 + i)
            if i % 5 == 0:
                book.comment((SITE, "sensor", f"T{n}-{i}", "H"), f"op{n}", "note", now_ms=T0 + i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [a.alarm_id for a in book.journal.load_current().values()]
    assert sorted(ids) == [f"A{n:06d}" for n in range(1, 121)]
    assert len(book.journal.audit_log()) == 6 * 4


def test_journal_file_is_plain_sqlite(db, book):
    book.on_changes([change("A", True, T0)], now_ms=T0)
    con = sqlite3.connect(db)
    assert con.execute("SELECT alarm_id, state, priority FROM alarms").fetchall() == [("A000001", "UNACK", 3)]
    con.close()
