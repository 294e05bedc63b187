"""Roster YAML loader: the example rosters, the format, and errors named by file, roster and key."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from alerts.notify.roster import Jurisdiction, Role, duty_for_site, find_duty, next_change, on_duty
from alerts.notify.roster_yaml import RosterError, load_rosters, parse_rosters_text
from sensors import load_registry

EXAMPLES = Path(__file__).resolve().parents[2] / "sensors" / "examples"
SHANGHAI = ZoneInfo("Asia/Shanghai")
RESPONSIBLE = (Role.PRINCIPAL, Role.TECHNICAL_LEAD, Role.OPERATOR)


def cst(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI).astimezone(UTC)


def a_roster(**overrides: Any) -> dict[str, Any]:
    """A valid roster mapping with `overrides` applied (value None removes the key)."""
    raw: dict[str, Any] = {
        "id": "jianghai-duty",
        "name": "值班表",
        "people": [
            {"id": "li", "name": "李海燕", "phone": "+86 138 0013 8004", "roles": ["operator"]},
            {"id": "zhang", "name": "张伟", "phone": "+8613800138005", "roles": ["operator"]},
            {
                "id": "chen",
                "name": "陈建国",
                "phone": "+8613800138001",
                "roles": ["principal"],
                "language": "en",
            },
        ],
        "rotas": {
            "operator": {
                "shifts": {"day": "08:00-20:00", "night": "20:00-08:00"},
                "anchor": "2026-11-02",
                "teams": {"甲班": ["li"], "乙班": ["zhang"]},
                "cycle": [{"day": "甲班", "night": "乙班"}, "zhang"],
            },
            "principal": {
                "shifts": {"all": "00:00-00:00"},
                "anchor": "2026-11-02",
                "rotate": {"teams": ["chen"]},
            },
        },
    }
    raw.update(overrides)
    return {k: v for k, v in raw.items() if v is not None}


def operator_rota(**overrides: Any) -> dict[str, Any]:
    rota = dict(a_roster()["rotas"]["operator"])
    rota.update(overrides)
    return {k: v for k, v in rota.items() if v is not None}


def dump(*rosters: dict[str, Any]) -> str:
    return yaml.safe_dump({"rosters": list(rosters)}, allow_unicode=True, sort_keys=False)


def issues_of(text: str) -> list[str]:
    rosters, issues = parse_rosters_text(text, "r.yaml")
    assert not rosters or issues, "expected at least one issue"
    return [str(i) for i in issues]


# ---- the examples


@pytest.fixture(scope="module")
def examples():
    return load_rosters(EXAMPLES / "rosters")


@pytest.fixture(scope="module")
def registry():
    return load_registry(EXAMPLES)


def test_every_example_site_has_its_roster_with_the_three_responsible_persons_around_the_clock(
    examples, registry
) -> None:
    for site in registry.sites:
        roster = examples[site.roster]
        for role in RESPONSIBLE:
            assert roster.rotas[role].covers_day, (site.id, role)
        for hour in range(0, 48, 5):
            at = cst(2026, 11, 23) + timedelta(hours=hour)
            for role in RESPONSIBLE:
                assert on_duty(roster, role, at), (site.id, role, at)


def test_every_example_site_finds_a_regulator_day_and_night(examples, registry) -> None:
    for site in registry.sites:
        for at in (cst(2026, 11, 23, 10), cst(2026, 11, 23, 3)):
            assert duty_for_site(site, examples, Role.REGULATOR_DUTY, at), (site.id, at)
    dayawan = registry.site("dayawan-srs-01")
    assert find_duty(dayawan, examples, Role.REGULATOR_DUTY, cst(2026, 11, 23, 10))[0].id == (
        "regulator:huizhou/dayawan"
    )
    assert (
        find_duty(dayawan, examples, Role.REGULATOR_DUTY, cst(2026, 11, 23, 22))[0].id == "regulator:huizhou"
    )
    assert examples["regulator:huizhou/dayawan"].jurisdiction == Jurisdiction("惠州市", "大亚湾区")


def test_example_phones_are_the_obviously_fake_range(examples) -> None:
    phones = [p.phone for r in examples.values() for p in r.people.values()]
    assert all(p.startswith("+861380013") for p in phones)
    assert len(set(phones)) == len(phones)


# ---- the format


def test_cycle_teams_people_as_teams_and_phone_spacing() -> None:
    (r,), issues = parse_rosters_text(dump(a_roster()), "r.yaml")
    assert issues == []
    assert r.people["li"].phone == "+8613800138004"
    assert r.people["chen"].language == "en"
    rota = r.rotas[Role.OPERATOR]
    assert rota.handover == timedelta(minutes=15)  # the default
    assert rota.cycle == (("甲班", "乙班"), ("zhang", "zhang"))
    assert [p.id for p in on_duty(r, Role.OPERATOR, cst(2026, 11, 2, 12))] == ["li"]
    assert [p.id for p in on_duty(r, Role.OPERATOR, cst(2026, 11, 3, 12))] == ["zhang"]
    assert next_change(r, Role.PRINCIPAL, cst(2026, 11, 3, 12)) is None


def test_rotate_holidays_and_overrides_in_local_time_or_with_offset() -> None:
    rota = operator_rota(
        cycle=None,
        rotate={"teams": ["甲班", "乙班"], "days": 2},
        handover_min=0,
        holidays=[{"dates": [date(2026, 11, 4)], "team": "zhang"}],
        overrides=[
            {
                "person": "zhang",
                "replaces": "li",
                "from": "2026-11-02 09:00",
                "to": "2026-11-02T10:00:00+08:00",
            },
            {
                "person": "zhang",
                "from": datetime(2026, 11, 2, 14),
                "to": "2026-11-02T07:00:00Z",
                "reason": "检修",
            },
        ],
    )
    (r,), issues = parse_rosters_text(dump(a_roster(rotas={"operator": rota})), "r.yaml")
    assert issues == []
    got = r.rotas[Role.OPERATOR]
    assert got.cycle == (("甲班", "乙班"), ("甲班", "乙班"), ("乙班", "甲班"), ("乙班", "甲班"))
    assert got.holidays == {date(2026, 11, 4): ("zhang", "zhang")}
    assert [(o.start, o.end) for o in got.overrides] == [
        (cst(2026, 11, 2, 9), cst(2026, 11, 2, 10)),
        (cst(2026, 11, 2, 14), cst(2026, 11, 2, 15)),
    ]
    assert [p.id for p in on_duty(r, Role.OPERATOR, cst(2026, 11, 2, 9, 30))] == ["zhang"]
    assert [p.id for p in on_duty(r, Role.OPERATOR, cst(2026, 11, 2, 14, 30))] == ["li", "zhang"]


def test_a_folder_loads_every_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(dump(a_roster()), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(dump(a_roster(id="other")), encoding="utf-8")
    assert sorted(load_rosters(tmp_path)) == ["jianghai-duty", "other"]


# ---- errors name file, roster and key


@pytest.mark.parametrize(
    ("roster", "expected"),
    [
        (a_roster(colour="red"), "r.yaml: roster jianghai-duty: key 'colour': unknown key"),
        (a_roster(id="Bad Id"), "roster Bad Id: key 'id': roster id must match"),
        (a_roster(timezone="Mars/Olympus"), "key 'timezone': unknown time zone 'Mars/Olympus'"),
        (a_roster(district="大亚湾区"), "key 'district': a district needs its city"),
        (a_roster(rotas={"cook": operator_rota()}), "key 'rotas.cook': unknown role"),
        (
            a_roster(rotas={"operator": operator_rota(shifts={"day": "8-20"})}),
            "key 'rotas.operator.shifts.day'",
        ),
        (
            a_roster(rotas={"operator": operator_rota(cycle=[{"day": "甲班"}])}),
            "key 'rotas.operator.cycle[0]': no team for shift night",
        ),
        (
            a_roster(rotas={"operator": operator_rota(cycle=["丙班"])}),
            "key 'rotas.operator.cycle[0]': unknown team or person '丙班'",
        ),
        (
            a_roster(rotas={"operator": operator_rota(rotate={"teams": ["甲班"]})}),
            "key 'rotas.operator': give exactly one of rotate or cycle",
        ),
        (
            a_roster(rotas={"operator": operator_rota(teams={"甲班": ["chen"]})}),
            "key 'rotas.operator.teams.甲班': person 'chen' does not hold role operator",
        ),
        (a_roster(rotas={"operator": operator_rota(anchor="soon")}), "key 'rotas.operator.anchor'"),
        (a_roster(rotas={"operator": operator_rota(handover_min=-5)}), "key 'rotas.operator.handover_min'"),
        (
            a_roster(
                rotas={
                    "operator": operator_rota(
                        overrides=[{"person": "li", "from": "2026-11-02 10:00", "to": "2026-11-02 09:00"}]
                    )
                }
            ),
            "key 'rotas.operator.overrides[0].to': to must be after from",
        ),
        (
            a_roster(
                rotas={
                    "operator": operator_rota(
                        overrides=[{"person": "nobody", "from": "2026-11-02 10:00", "to": "2026-11-02 11:00"}]
                    )
                }
            ),
            "key 'rotas.operator.overrides[0].person': unknown person 'nobody'",
        ),
        (
            a_roster(rotas={"operator": operator_rota(holidays=[{"dates": ["2026-13-01"], "team": "甲班"}])}),
            "key 'rotas.operator.holidays[0].dates': not a date",
        ),
    ],
)
def test_mistakes_are_reported_with_file_roster_and_key(roster: dict[str, Any], expected: str) -> None:
    assert any(expected in i for i in issues_of(dump(roster))), issues_of(dump(roster))


def test_person_mistakes_name_the_person() -> None:
    people = [
        {"id": "li", "name": "李海燕", "phone": "13800138004", "roles": ["operator"]},
        {"id": "li", "name": "李海燕", "phone": "+8613800138004", "roles": ["operator"]},
        {"id": "wu", "name": "吴斌", "phone": "+8613800138006", "roles": ["chef"], "language": "fr"},
    ]
    issues = issues_of(dump(a_roster(people=people)))
    assert any("key 'people.li.phone': phone '13800138004' is not E.164" in i for i in issues)
    assert any("key 'people.li.id': duplicate person id" in i for i in issues)
    assert any("key 'people.wu.roles': unknown role 'chef'" in i for i in issues)
    assert any("key 'people.wu.language'" in i for i in issues)


def test_every_mistake_is_reported_in_one_run() -> None:
    bad = a_roster(colour="red", timezone="Nowhere/Zone")
    issues = issues_of(dump(bad, a_roster(id="x", rotas={"cook": {}})))
    assert len(issues) >= 3
    assert any("roster x: key 'rotas.cook'" in i for i in issues)


def test_duplicate_yaml_keys_are_errors() -> None:
    text = "rosters:\n  - id: a\n    id: b\n"
    (issue,) = issues_of(text)
    assert "r.yaml: not valid YAML: duplicate key 'id'" in issue


def test_document_shape_and_duplicate_ids(tmp_path: Path) -> None:
    assert issues_of("sites: []") == [
        "r.yaml: key 'rosters': the document must be a mapping with a 'rosters' list"
    ]
    assert any("key 'id': duplicate roster id" in i for i in issues_of(dump(a_roster(), a_roster())))
    (tmp_path / "a.yaml").write_text(dump(a_roster()), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(dump(a_roster()), encoding="utf-8")
    with pytest.raises(RosterError) as e:
        load_rosters(tmp_path)
    assert (
        f"b.yaml: roster jianghai-duty: key 'id': duplicate roster id (also in {tmp_path / 'a.yaml'})"
        in str(e.value)
    )


def test_missing_file_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(RosterError, match="file not found"):
        load_rosters(tmp_path / "nope.yaml")
    with pytest.raises(RosterError, match=r"no \*\.yaml files"):
        load_rosters(tmp_path)
