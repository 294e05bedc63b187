"""Closed-loop alarm disposal (issue 13 item 3): a high or critical raise asks for a disposal, once
per alarm number and in the raise's own transaction; the enterprise records cause, action and person
in time or late; regulators list what is overdue and see the figures per site and district."""

from __future__ import annotations

import time

import pytest

from alerts.book.book import AlarmBook
from alerts.book.disposals import check_disposal
from alerts.book.sqlite_journal import AlarmJournal
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from alerts.engine.lifecycle import InvalidCommand, InvalidTransition, UnknownAlarm
from sensors.model import Registry, Site
from tests.support.api_rig import api_rig
from tests.unit.conftest import make_registry

MIN = 60_000


def raise_(book, site: str, sensor: str, priority: Priority, t: int, kind=ConditionKind.HH) -> str:
    book.on_changes([ConditionChange(site, sensor, kind, True, t, priority, kind.name)], t)
    return next(a.alarm_id for a in book.current(site=site) if a.source == sensor and a.kind is kind)


@pytest.fixture
def rig(tmp_path):
    base = make_registry()
    site0 = Site("site-0", "站0", "chemical", 2, base.sites[0].sensors, city="江门市", district="江海区")
    site1 = Site("site-1", "站1", "chemical", 2, base.sites[1].sensors, city="江门市", district="蓬江区")
    with api_rig(tmp_path, Registry((site0, site1)), disposal_due_min=30) as api:
        yield api


def test_a_high_raise_asks_for_a_disposal_once_and_a_medium_one_does_not(rig):
    book, journal = rig.service.alarms.book, rig.service.alarms.journal
    now = time.time_ns() // 1_000_000
    high = raise_(book, "site-0", "S0", Priority.HIGH, now - 40 * MIN)
    medium = raise_(book, "site-0", "S1", Priority.MEDIUM, now - 40 * MIN, kind=ConditionKind.H)
    asked = journal.disposal(high)
    assert asked is not None and asked.due_ms == asked.raised_ms + 30 * MIN and asked.state(now) == "overdue"
    assert journal.disposal(medium) is None
    book.on_changes(
        [ConditionChange("site-0", "S0", ConditionKind.HH, False, now - 39 * MIN, Priority.HIGH, "HH")], now
    )
    book.on_changes(
        [ConditionChange("site-0", "S0", ConditionKind.HH, True, now - 38 * MIN, Priority.HIGH, "HH")], now
    )
    assert len(journal.disposals(sites=["site-0"])) == 1  # a re-raise in the same episode asks nothing more


def test_a_disposal_is_recorded_once_audited_and_checked(tmp_path):
    journal = AlarmJournal(tmp_path / "j.sqlite", disposal_due_min=30)
    now = time.time_ns() // 1_000_000
    book = AlarmBook(journal, clock=lambda: now)
    alarm_id = raise_(book, "site-0", "S0", Priority.CRITICAL, now - 10 * MIN)
    done = journal.dispose(alarm_id, "li", "maintenance", " 更换传感器 ", "李工", "", now)
    assert (done.cause, done.action, done.person, done.user, done.state(now)) == (
        "maintenance",
        "更换传感器",
        "李工",
        "li",
        "done",
    )
    with pytest.raises(InvalidTransition):
        journal.dispose(alarm_id, "wang", "other", "x", "y", "", now)
    with pytest.raises(UnknownAlarm):
        journal.dispose("A999999", "li", "other", "x", "y", "", now)
    audit = [(e.user, e.outcome, e.reason) for e in journal.audit_log(action="dispose", newest_first=False)]
    assert audit == [("li", "ok", "maintenance"), ("wang", "refused", "other")]
    with pytest.raises(InvalidCommand):
        check_disposal("weather", "x", "y")
    with pytest.raises(InvalidCommand):
        check_disposal("test", "  ", "y")
    journal.close()


def test_the_api_disposes_lists_overdue_and_sums_per_district_within_scope(rig):
    book = rig.service.alarms.book
    now = time.time_ns() // 1_000_000
    late = raise_(book, "site-0", "S0", Priority.HIGH, now - 50 * MIN)
    in_time = raise_(book, "site-0", "S2", Priority.CRITICAL, now - 5 * MIN)
    other = raise_(book, "site-1", "S0", Priority.HIGH, now - 45 * MIN)
    with rig.client("li") as li:  # the operator of site-0
        body = {"cause": "process", "action": "降低进料量", "person": "李四"}
        r = li.post(f"/api/v1/alarms/{in_time}/dispose", json=body)
        assert r.status_code == 200 and r.json()["state"] == "done" and r.json()["cause_zh"] == "工艺波动"
        assert li.post(f"/api/v1/alarms/{in_time}/dispose", json=body).status_code == 409
        assert li.post(f"/api/v1/alarms/{other}/dispose", json=body).status_code == 404  # not their site
        assert li.post(f"/api/v1/alarms/{late}/dispose", json={**body, "cause": "weather"}).status_code == 422
        assert [d["alarm_id"] for d in li.get("/api/v1/disposals?state=overdue").json()["data"]] == [late]
    with rig.client("wang") as viewer:
        assert viewer.post(f"/api/v1/alarms/{late}/dispose", json=body).status_code == 403
    with rig.client("zhang") as regulator:
        overdue = regulator.get("/api/v1/disposals?state=overdue").json()["data"]
        assert sorted(d["alarm_id"] for d in overdue) == sorted([late, other])
        summary = regulator.get("/api/v1/disposals/summary?by=district").json()["data"]
        assert summary == [
            {
                "district": "江海区",
                "asked": 2,
                "done": 1,
                "late": 0,
                "open": 0,
                "overdue": 1,
                "in_time_ratio": 1.0,
                "median_minutes": pytest.approx(5.0, abs=0.2),  # raised 5 min before the disposal
            },
            {
                "district": "蓬江区",
                "asked": 1,
                "done": 0,
                "late": 0,
                "open": 0,
                "overdue": 1,
                "in_time_ratio": None,
                "median_minutes": None,
            },
        ]
