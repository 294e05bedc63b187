"""Dynamic enterprise risk (issue 13 item 2, alerts/dynamic_risk.py): the static grade with the live
monitoring as a score, a colour and the reasons; the API ranks the sites in scope."""

from __future__ import annotations

import time

import numpy as np

from alerts.dynamic_risk import RiskInputs, dynamic_risk, reasons
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from sensors.model import Registry, Site
from tests.support.api_rig import api_rig
from tests.unit.conftest import make_registry


def inputs(n: int = 1, **columns) -> RiskInputs:
    base = {
        "tailings": np.zeros(n, bool),
        "grade": np.full(n, 4),
        "unack": np.zeros((n, 4)),
        **{
            k: np.zeros(n)
            for k in (
                "warnings",
                "failures",
                "outages",
                "overdue",
                "overdue_critical",
                "raises_7d",
                "critical_active",
            )
        },
    }
    base.update({k: np.asarray(v, dtype=base[k].dtype) for k, v in columns.items()})
    return RiskInputs(**base)


def test_a_quiet_site_is_blue_whatever_its_grade_and_the_grade_weighs_live_alarms():
    quiet = dynamic_risk(inputs(4, grade=[1, 2, 3, 4]))
    assert quiet.score.tolist() == [15.0, 10.0, 5.0, 0.0] and quiet.colour.tolist() == [0, 0, 0, 0]
    one_high = np.array([[0, 0, 1, 0]] * 2)
    r = dynamic_risk(inputs(2, grade=[1, 4], unack=one_high))
    assert r.score.tolist() == [30.0, 10.0]  # 15 + 1.5 x 10 against 0 + 1.0 x 10
    assert r.colour.tolist() == [1, 0]


def test_the_colour_bands_and_the_overrides_for_a_dam_failure_forecast_and_an_overdue_critical_alarm():
    x = inputs(
        5,
        grade=[4, 4, 4, 4, 4],
        unack=[[0, 0, 0, 1], [0, 0, 2, 1], [0, 0, 5, 2], [0, 0, 0, 0], [0, 0, 0, 1]],
        failures=[0, 0, 0, 1, 0],
        overdue=[0, 0, 0, 0, 1],
        overdue_critical=[0, 0, 0, 0, 1],
    )
    r = dynamic_risk(x)
    assert r.score.tolist() == [20.0, 40.0, 90.0, 25.0, 35.0]
    assert [["blue", "yellow", "orange", "red"][c] for c in r.colour] == [
        "yellow",
        "yellow",
        "red",
        "red",
        "red",
    ]


def test_outages_and_the_weekly_rate_are_capped_and_reasons_come_largest_first():
    x = inputs(1, grade=[2], outages=[9], raises_7d=[7 * 40], unack=[[0, 1, 0, 0]])
    r = dynamic_risk(x)
    # base 10; outages min(27, 15) x 1.3 = 19.5; rate (40 - 10) x 2 = 60 -> 20 x 1.3 = 26; medium 4 x 1.3
    assert r.score[0] == 10 + 19.5 + 26 + 5.2
    assert reasons(x, r, 0) == [
        "近7天报警 280 条 (日均 40.0): +26",
        "数据中断 9 处: +20",
        "静态等级 二级: +10",
        "未确认报警 中 1: +5",
    ]


def test_the_api_ranks_the_sites_in_scope_by_risk_with_their_reasons(tmp_path):
    base = make_registry()
    grade_one = Site("site-0", "站0", "chemical", 1, base.sites[0].sensors, city="江门市")
    with api_rig(tmp_path, Registry((grade_one, base.sites[1]))) as api:
        now = time.time_ns() // 1_000_000
        api.service.alarms.book.on_changes(
            [
                ConditionChange(
                    "site-1", "S0", ConditionKind.HH, True, now - 40 * 60_000, Priority.CRITICAL, "HH"
                ),
                ConditionChange("site-0", "S1", ConditionKind.H, True, now - 60_000, Priority.HIGH, "H"),
            ],
            now,
        )
        with api.client() as client:
            body = client.get("/api/v1/risk").json()
            assert [(r["site"], r["colour"]) for r in body["data"]] == [
                ("site-1", "red"),
                ("site-0", "yellow"),
            ]
            top = body["data"][0]
            # grade 2: base 10 + 1.3 x (a critical alarm 20 + its disposal overdue (due in 30 min) 15)
            assert top["score"] == 55.5
            assert top["reasons"][:3] == [
                "紧急报警进行中 1 条: 红",
                "未确认报警 紧急 1: +26",
                "超时未处置报警 1 条: +20",
            ]
            assert client.get("/api/v1/risk?city=江门市").json()["count"] == 1


def test_a_critical_alarm_in_progress_makes_the_site_red_at_once_and_says_so_first():
    x = inputs(2, grade=[3, 3], unack=[[0, 0, 0, 1], [0, 0, 0, 1]], critical_active=[1, 0])
    r = dynamic_risk(x)
    assert r.score.tolist() == [28.0, 28.0]  # 5 + 1.15 x 20: the score alone would be yellow
    assert r.colour.tolist() == [3, 1]  # the leak still in alarm is red; the returned one is not
    assert reasons(x, r, 0)[0] == "紧急报警进行中 1 条: 红"
