"""Alarm history (issue 14 item 4): episodes folded from the journal, filtered within the caller's
scope, and exported as CSV."""

from __future__ import annotations

import csv
import io

from alerts.book.episodes import fold_episodes
from alerts.book.records import HistoryEntry
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from tests.support.api_rig import api_rig
from tests.unit.conftest import make_registry

T0 = 1_795_392_000_000
KEY = ("s1", "sensor", "GT-1", "HH")


def h(seq, t, typ, **details):
    return HistoryEntry(seq, t, t, "A000007", KEY, typ, details)


def test_an_episode_folds_raise_return_ack_and_clear_in_time_order_whatever_the_row_order():
    rows = [
        h(4, T0 + 4000, "AlarmCleared"),
        h(1, T0, "AlarmRaised", priority=4, level="HH", value=45.0, limit=40.0, message="高高"),
        h(3, T0 + 3000, "AlarmAcknowledged", user="li"),
        h(2, T0 + 2000, "AlarmReturnedToNormal"),
    ]
    (e,) = fold_episodes(rows)
    assert (e.priority, e.level, e.value, e.acked_by) == ("critical", "HH", 45.0, "li")
    assert (e.raised_ms, e.returned_ms, e.acked_ms, e.cleared_ms, e.duration_ms) == (
        T0,
        T0 + 2000,
        T0 + 3000,
        T0 + 4000,
        2000,
    )


def test_the_api_lists_the_periods_episodes_in_scope_and_exports_them_as_csv(tmp_path):
    with api_rig(tmp_path, make_registry(), clock=lambda: T0) as rig:
        book = rig.service.alarms.book

        def change(site, active, t):
            return ConditionChange(
                site, "S0", ConditionKind.HH, active, t, Priority.CRITICAL, "HH", value=9.0
            )

        book.on_changes([change("site-0", True, T0), change("site-1", True, T0 + 1)], T0 + 5)
        book.on_changes([change("site-0", False, T0 + 60_000)], T0 + 60_005)
        with rig.client() as c:
            period = {"from": T0 - 1000, "to": T0 + 120_000}
            body = c.get("/api/v1/alarm-history", params=period).json()
            assert [(d["site"], d["duration_ms"]) for d in body["data"]] == [
                ("site-1", None),
                ("site-0", 60_000),
            ]
            li = {"Authorization": f"Bearer {c.tokens['li']}"}  # an operator of site-0's district
            mine = c.get("/api/v1/alarm-history", params=period, headers=li).json()["data"]
            assert [d["site"] for d in mine] == ["site-0"]
            assert (
                c.get("/api/v1/alarm-history", params={**period, "site": "site-1"}, headers=li).status_code
                == 404
            )
            r = c.get("/api/v1/alarm-history", params={**period, "format": "csv"})
            assert r.headers["content-type"].startswith("text/csv") and r.content.startswith(b"\xef\xbb\xbf")
            rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
            assert [(x["alarm_id"], x["priority"], x["duration_s"]) for x in rows] == [
                ("A000002", "critical", ""),
                ("A000001", "critical", "60"),
            ]
            assert c.get("/api/v1/alarm-history", params={"from": T0, "to": T0 - 1}).status_code == 422
