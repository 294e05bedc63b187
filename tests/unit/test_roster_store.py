"""Roster store (SQLite): round trip, restart, audited edits, and all-or-nothing YAML import."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest
import yaml

from alerts.notify.roster import Override, Role, RosterValueError, on_duty
from alerts.notify.roster_store import RosterStore, RosterTx, UnknownRoster, describe_changes
from alerts.notify.roster_yaml import RosterError, load_rosters

EXAMPLE_ROSTERS = Path(__file__).resolve().parents[2] / "sensors" / "examples" / "rosters"


def cst(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)


@pytest.fixture(scope="module")
def examples():
    return load_rosters(EXAMPLE_ROSTERS)


@pytest.fixture
def store(tmp_path: Path):
    with RosterStore(tmp_path / "state" / "rosters.sqlite") as s:
        yield s


def test_rosters_come_back_equal_after_a_restart(tmp_path: Path, examples) -> None:
    path = tmp_path / "rosters.sqlite"
    with RosterStore(path) as s:
        s.replace_many(examples.values(), user="admin")
    with RosterStore(path) as s:
        assert s._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert s.ids() == sorted(examples)
        assert s.load_all() == examples
        assert (
            s.load("jianghai-duty").rotas[Role.OPERATOR].overrides
            == examples["jianghai-duty"].rotas[Role.OPERATOR].overrides
        )


def test_unknown_roster_is_a_key_error(store: RosterStore) -> None:
    with pytest.raises(UnknownRoster):
        store.load("nope")
    with pytest.raises(UnknownRoster):
        store.delete("nope", user="admin")


def test_save_audits_who_changed_what_and_skips_no_op_saves(store: RosterStore, examples) -> None:
    r = examples["gaolan-duty"]
    assert store.save(r, user="alice", reason="initial", now_ms=1) == ["created"]
    assert store.save(r, user="alice", now_ms=2) == []  # nothing changed: nothing to audit
    du = r.people["gl-du-peng"]
    edited = replace(r, people=MappingProxyType({**r.people, du.id: replace(du, phone="+8613800138099")}))
    changes = store.save(edited, user="bob", reason="新手机号", now_ms=3)
    assert changes == ["person gl-du-peng changed: phone"]
    assert store.load("gaolan-duty").people["gl-du-peng"].phone == "+8613800138099"
    log = store.audit_log("gaolan-duty")
    assert [(e.user, e.action, e.reason, e.changes, e.time_ms) for e in log] == [
        ("bob", "save", "新手机号", ("person gl-du-peng changed: phone",), 3),
        ("alice", "save", "initial", ("created",), 1),
    ]
    store.delete("gaolan-duty", user="carol", reason="site closed")
    assert store.ids() == []
    assert store.audit_log()[0].changes == ("deleted",)


def test_describe_changes_names_people_and_rotas(examples) -> None:
    old = examples["jianghai-duty"]
    rotas = dict(old.rotas)
    rotas[Role.OPERATOR] = replace(rotas[Role.OPERATOR], handover=rotas[Role.OPERATOR].handover * 2)
    del rotas[Role.PRINCIPAL]
    new = replace(old, name="新名称", rotas=MappingProxyType(rotas))
    assert describe_changes(old, new) == [
        "name changed",
        "rota operator changed: handover",
        "rota principal removed",
    ]


def test_add_override_is_stored_audited_and_used(store: RosterStore, examples) -> None:
    store.save(examples["dayawan-duty"], user="admin")
    sick = Override(
        "dy-lin-tao", cst(2026, 11, 23, 8), cst(2026, 11, 23, 20), replaces="dy-zeng-fang", reason="病假"
    )
    before = [p.id for p in on_duty(store.load("dayawan-duty"), Role.OPERATOR, cst(2026, 11, 23, 12))]
    assert before == ["dy-zeng-fang"]
    store.add_override("dayawan-duty", Role.OPERATOR, sick, user="shift-office")
    after = store.load("dayawan-duty")
    assert [p.id for p in on_duty(after, Role.OPERATOR, cst(2026, 11, 23, 12))] == ["dy-lin-tao"]
    entry = store.audit_log("dayawan-duty")[0]
    assert (entry.user, entry.action, entry.reason) == ("shift-office", "add_override", "病假")
    assert entry.changes == (
        "override added to operator: dy-lin-tao replaces dy-zeng-fang 2026-11-23T00:00Z..2026-11-23T12:00Z",
    )


def test_an_invalid_override_changes_nothing(store: RosterStore, examples) -> None:
    store.save(examples["dayawan-duty"], user="admin")
    stranger = Override("nobody", cst(2026, 11, 23, 8), cst(2026, 11, 23, 20))
    with pytest.raises(RosterValueError, match="unknown person 'nobody'"):
        store.add_override("dayawan-duty", Role.OPERATOR, stranger, user="x")
    with pytest.raises(ValueError, match="no rota for regulator_duty"):
        store.add_override("dayawan-duty", Role.REGULATOR_DUTY, stranger, user="x")
    assert store.load("dayawan-duty") == examples["dayawan-duty"]
    assert len(store.audit_log()) == 1


@pytest.mark.deep
def test_import_yaml_replaces_the_stored_rosters(store: RosterStore, examples, tmp_path: Path) -> None:
    changes = store.import_yaml(EXAMPLE_ROSTERS, user="admin")
    assert set(changes) == set(examples) and all(c == ["created"] for c in changes.values())
    assert store.load_all() == examples
    # a second import of the same files changes nothing; a pruning import of one file drops the rest
    assert all(c == [] for c in store.import_yaml(EXAMPLE_ROSTERS, user="admin").values())
    store.import_yaml(EXAMPLE_ROSTERS / "regulators.yaml", user="admin", prune=True)
    assert all(rid.startswith("regulator:") for rid in store.ids())
    assert store.audit_log("gaolan-duty")[0].action == "import"
    assert store.audit_log("gaolan-duty")[0].changes == ("deleted",)


def test_a_bad_yaml_import_changes_nothing(store: RosterStore, tmp_path: Path) -> None:
    store.import_yaml(EXAMPLE_ROSTERS / "sites.yaml", user="admin")
    before = store.load_all()
    doc = yaml.safe_load((EXAMPLE_ROSTERS / "sites.yaml").read_text(encoding="utf-8"))
    doc["rosters"][0]["people"][0]["phone"] = "12345"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RosterError, match=re.escape("key 'people.jh-chen-jianguo.phone'")):
        store.import_yaml(bad, user="admin", prune=True)
    assert store.load_all() == before


def test_an_import_failing_half_way_rolls_back(store: RosterStore, monkeypatch: pytest.MonkeyPatch) -> None:
    real_put = RosterTx.put
    calls = []

    def failing_put(self, roster, now_ms):
        calls.append(roster.id)
        if len(calls) == 3:
            raise OSError("disk full")
        real_put(self, roster, now_ms)

    monkeypatch.setattr(RosterTx, "put", failing_put)
    with pytest.raises(OSError, match="disk full"):
        store.import_yaml(EXAMPLE_ROSTERS, user="admin")
    assert store.ids() == []
    assert store.audit_log() == []
