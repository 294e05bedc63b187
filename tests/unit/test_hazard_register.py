"""The hazard-source register (issue 13 item 1): S, R = α Σ β q/Q and the grade of each unit
(GB 18218-2018, Order 40 Annex 1), a site's grade from its units, a pond's class from its dam, and
every number explained. GB 18218-2018 gives its grading as formula and tables, without a numeric
worked example; the published worked examples found (exam questions with their published answers)
are checked below, the rest are computed by hand from the rules."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sensors.hazard_register import Dam, alpha_of, grade_of, grade_source, pond_class, site_grade
from sensors.registry import parse_registry_text

SITE = """
sites:
  - id: plant-1
    name: 某化工厂
    kind: chemical
    grade: 2
    hazard_sources:
{units}
    sensors:
      - {{id: LT-1, name: 液位, kind: level, unit: m, range: [0, 20], interval_s: 10}}
"""


U = "      - {id: u, name: U, kind: storage, exposed_people: 1, substances: "  # one unit, its substances next


def sources(units: str):
    sites, issues = parse_registry_text(SITE.format(units=units))
    assert issues == [], issues
    return sites[0].hazard_sources


def test_an_lpg_tank_farm_with_a_hundred_neighbours_is_grade_two():
    (farm,) = sources(
        "      - {id: lpg, name: 液化石油气罐区, kind: storage, exposed_people: 120,"
        " substances: [{name: 液化石油气, q: 1000}]}"
    )
    g = grade_source(farm)
    # q/Q = 1000/50 = 20, β 1.5 (flammable gas), α 2.0 (>= 100 people): R = 60
    assert (g.s, g.alpha, g.r, g.grade) == (20.0, 2.0, 60.0, 2)
    assert g.lines[-1] == "R = α Σ β q/Q = 2 × 30 = 60: 二级"
    assert "Q = 50 t (GB 18218-2018 Table 1, 液化石油气, UNCONFIRMED)" in g.lines[0]


def test_several_substances_add_up_and_a_named_toxic_gas_has_its_own_beta():
    (unit,) = sources(
        "      - {id: u1, name: 合成氨储存单元, kind: storage, exposed_people: 40, substances: ["
        "{name: 液氨, q: 50}, {name: 甲醇, cas: 67-56-1, q: 250}]}"
    )
    g = grade_source(unit)
    # 50/10 x β 2 (NH3) + 250/500 x 1 = 10.5; S = 5.5; α 1.2 (30-49 people): R = 12.6
    assert g.s == 5.5 and g.r == pytest.approx(12.6) and g.grade == 3
    assert "β = 2 (toxic gas NH3, Order 40 Annex 1 Table 2)" in g.lines[0]


def test_a_unit_under_its_critical_quantities_is_no_major_hazard_source():
    (unit,) = sources(
        "      - {id: u1, name: 甲苯库, kind: storage, exposed_people: 500, substances: "
        "[{name: 甲苯, q: 200}]}"
    )
    g = grade_source(unit)
    assert g.s == 0.4 and g.grade is None and not g.major
    assert "< 1, not a major hazard source" in g.lines[-3]


def test_a_category_and_a_given_critical_quantity_stand_in_for_an_unnamed_substance():
    (unit,) = sources(
        "      - {id: u1, name: 氯气钢瓶间, kind: storage, exposed_people: 10, substances: ["
        "{name: 氯, category: J1, toxic_gas: Cl2, q: 10},"
        " {name: 某溶剂, q: 300, critical_t: 1000, basis: 'GB 18218-2018 表2 W5.4 (site engineer)'}]}"
    )
    g = grade_source(unit)
    # 10/5 x β 4 (Cl2) + 300/1000 x 1 = 8.3; α 1.0: R = 8.3, 四级; S = 2.3
    assert g.r == pytest.approx(8.3) and g.grade == 4
    assert "Q = 5 t (GB 18218-2018 Table 2, J1 急性毒性类别1 气体)" in g.lines[0]
    assert "Q = 1000 t (registry: GB 18218-2018 表2 W5.4 (site engineer))" in g.lines[1]


def test_alpha_and_grades_at_their_boundaries():
    assert [alpha_of(n) for n in (0, 1, 29, 30, 49, 50, 99, 100)] == [0.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 2.0]
    assert [grade_of(r) for r in (0, 9.99, 10, 49.9, 50, 99.9, 100, 1e6)] == [4, 4, 3, 3, 2, 2, 1, 1]


def test_a_unit_whose_ratios_add_up_to_exactly_one_is_a_major_hazard_source():
    # 7/10 + 2/10 + 1/10 is 0.9999999999999999 in floating point: the unit sits on S = 1 and is major
    (unit,) = sources(U + "[{name: 氨, q: 7}, {name: 二氧化硫, q: 4}, {name: 光气, q: 0.03}]}")
    g = grade_source(unit)
    assert g.s == 1.0 and g.major and g.grade == 4
    assert "≥ 1, a major hazard source" in g.lines[-3]


def test_an_r_on_a_grade_boundary_takes_the_higher_grade_whatever_the_binary_fractions():
    # 1.5 x (2 x 0.4/0.3 + 2 x 4.6/0.3) is exactly 50, and 49.99999999999999 in floating point
    given = "basis: b, beta: 2, beta_basis: b"
    (unit,) = sources(
        "      - {id: u, name: U, kind: storage, exposed_people: 60, substances: ["
        f"{{name: x, q: 0.4, critical_t: 0.3, {given}}}, {{name: y, q: 4.6, critical_t: 0.3, {given}}}]}}"
    )
    g = grade_source(unit)
    assert g.r == pytest.approx(50.0) and g.grade == 2
    assert [grade_of(r) for r in (9.99, 49.99, 99.99)] == [4, 3, 2]  # a real figure below stays below


# Published worked examples (exam questions and their published answers): the closest to "the standard's
# own examples" there is, GB 18218-2018 having none. Their data as published, their answers as published.


def test_published_example_sulphur_dioxide_200_t_with_60_neighbours_is_r_30_grade_three():
    # 注册安全工程师 exam question (https://www.8fe.cn/test-question-282515.html): SO2, q 200 t, Q 20 t,
    # β 2, 60 people so α 1.5; published answer "R=1.5x(2 x200÷20)=30,属于三级重大危险源"
    (unit,) = sources(
        "      - {id: so2, name: 生产区域, kind: production, exposed_people: 60,"
        " substances: [{name: 二氧化硫, q: 200}]}"
    )
    g = grade_source(unit)  # Q and β from hazmon's own tables, α from its own table
    assert (g.alpha, g.r, g.grade) == (1.5, 30.0, 3)
    assert "Q = 20 t" in g.lines[0] and "β = 2 (toxic gas SO2" in g.lines[0]


def test_published_example_three_substances_one_a_beta_five_gas_is_r_12_56_grade_three():
    # a published explanation of an exam question: "分级指标R=1×（1×30/500+1×25/10+5×2/1）=12.56，属于三级
    # 重大危险源" (α 1, 1-29 people); the substances are not named there, so Q and β are given as published
    given = "basis: published worked example, beta_basis: published worked example"
    (unit,) = sources(
        "      - {id: u, name: U, kind: storage, exposed_people: 20, substances: ["
        f"{{name: a, q: 30, critical_t: 500, beta: 1, {given}}},"
        f"{{name: b, q: 25, critical_t: 10, beta: 1, {given}}},"
        f"{{name: c, q: 2, critical_t: 1, beta: 5, {given}}}]}}"
    )
    g = grade_source(unit)
    assert g.alpha == 1.0 and round(g.r, 2) == 12.56 and g.grade == 3


def test_published_example_a_store_whose_ratios_add_to_exactly_one_is_a_major_hazard_source():
    # an exam question on identification (http://liangxue.laixue.com/test/7001413), store 丁:
    # "200÷500+100÷200+1÷10=1,属于重大危险源"; its critical quantities are the question's own
    given = "basis: published worked example"
    (unit,) = sources(
        U + f"[{{name: a, q: 200, critical_t: 500, {given}}}, {{name: b, q: 100, critical_t: 200, {given}}},"
        f" {{name: c, q: 1, critical_t: 10, {given}}}]}}"
    )
    g = grade_source(unit)
    assert g.s == 1.0 and g.major


def test_a_sites_grade_is_its_highest_units():
    units = sources(
        "      - {id: a, name: A, kind: storage, exposed_people: 0, substances: [{name: 光气, q: 1}]}\n"
        "      - {id: b, name: B, kind: production, exposed_people: 200, substances: [{name: 氢, q: 400}]}\n"
        "      - {id: c, name: C, kind: storage, exposed_people: 0, substances: [{name: 甲醇, q: 1}]}"
    )
    gradings = tuple(grade_source(u) for u in units)
    # A: 1/0.3 x 20 x 0.5 = 33.3 三级; B: 400/5 x 1.5 x 2 = 240 一级; C: not major
    assert [g.grade for g in gradings] == [3, 1, None]
    assert site_grade(gradings) == 1 and site_grade(gradings[2:]) is None


@pytest.mark.parametrize(
    ("storage", "height", "cls"),
    [(450, 45, 4), (2600, 75, 3), (50, 75, 4), (1500, 40, 3), (20000, 150, 2), (10, 10, 5)],
)
def test_a_ponds_class_follows_the_higher_of_storage_and_height_or_one_less_when_far_apart(
    storage, height, cls
):
    got, lines = pond_class(Dam(height, storage))
    assert got == cls and lines


@pytest.mark.parametrize(
    ("units", "message"),
    [
        (
            U + "[{name: 神秘物质, q: 1}]}",
            "not in hazmon's Table 1",
        ),
        (
            U + "[{name: x, q: 1, critical_t: 5}]}",
            "with its basis",
        ),
        (
            "      - {id: u, name: U, kind: storage, exposed_people: -1, substances: [{name: 氢, q: 1}]}",
            "exposed_people",
        ),
        (
            "      - {id: u, name: U, kind: depot, exposed_people: 1, substances: [{name: 氢, q: 1}]}",
            "storage or production",
        ),
        (
            U + "[{name: 氢, q: -1}]}",
            "q (the maximum quantity",
        ),
        (
            U + "[{name: 氢, q: 1, toxic_gas: XX}]}",
            "toxic_gas must be one of",
        ),
        (
            U + "[{name: x, category: Z9, q: 1}]}",
            "unknown category",
        ),
    ],
)
def test_register_mistakes_are_named(units, message):
    _, issues = parse_registry_text(SITE.format(units=units))
    assert any(message in i.message for i in issues), issues


def test_a_dam_belongs_to_a_pond_and_units_to_a_chemical_site():
    _, issues = parse_registry_text(
        SITE.format(units=U + "[{name: 氢, q: 1}]}")
        .replace("kind: chemical", "kind: tailings")
        .replace("    sensors:", "    dam: {height_m: 45, storage_10k_m3: 450}\n    sensors:")
    )
    assert [i.message for i in issues] == [
        "hazard_sources (GB 18218-2018 units) are for chemical sites; a tailings pond has its dam"
    ]


def test_the_register_round_trips_through_the_registry_json():
    from sensors.model import Registry
    from sensors.registry import registry_to_json

    sites, _ = parse_registry_text(
        SITE.format(
            units="      - {id: u1, name: 氯气钢瓶间, kind: storage, exposed_people: 10, substances: ["
            "{name: 氯, category: J1, toxic_gas: Cl2, q: 10}, {name: 甲醇, q: 5}]}"
        )
    )
    again, issues = parse_registry_text(registry_to_json(Registry(tuple(sites))).decode())
    assert issues == [] and again == sites


def test_registry_check_explains_each_grade_and_flags_one_the_registry_declares_otherwise(tmp_path, capsys):
    from hazmon.cli import main

    examples = Path(__file__).resolve().parents[2] / "sensors" / "examples"
    assert main(["registry", "check", "--registry", str(examples)]) == 0
    out = capsys.readouterr().out
    assert (
        "gaolan-lpg-01 (珠海市金湾区高栏港某液化石油气储配站, chemical): computed 一级, declared 一级" in out
    )
    assert "R = α Σ β q/Q = 2 × 48.98 = 97.96: 二级" in out and out.rstrip().endswith("grades agree")
    wrong = tmp_path / "r.yaml"
    wrong.write_text(
        SITE.format(
            units="      - {id: lpg, name: 罐区, kind: storage, exposed_people: 120, "
            "substances: [{name: 液化石油气, q: 1000}]}"
        ).replace("grade: 2", "grade: 4"),
        encoding="utf-8",
    )
    assert main(["registry", "check", "--registry", str(wrong), "--json"]) == 1
    (view,) = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert (view["computed"], view["declared"], view["agrees"]) == (2, 4, False)
    wrong.write_text("sites: [{}]", encoding="utf-8")
    assert main(["registry", "check", "--registry", str(wrong)]) == 2


def test_the_api_lists_the_register_of_the_sites_in_scope_and_one_sites_lines(tmp_path):
    from sensors.registry import load_registry
    from tests.support.api_rig import api_rig

    examples = Path(__file__).resolve().parents[2] / "sensors" / "examples"
    with api_rig(tmp_path, load_registry(examples)) as api, api.client() as client:
        body = client.get("/api/v1/register").json()
        by_site = {v["site"]: v for v in body["data"]}
        assert body["count"] == 5 and by_site["gaolan-lpg-01"]["computed"] == 1
        assert by_site["renhua-tsf-01"]["computed"] == 3 and by_site["dayawan-srs-01"]["computed"] is None
        assert client.get("/api/v1/register?mismatched=true").json()["count"] == 0
        one = client.get("/api/v1/sites/jianghai-tf-01/register").json()
        (unit,) = one["units"]
        assert (unit["id"], unit["grade"], unit["r"]) == ("tank-farm", 2, 97.96)
        assert client.get("/api/v1/sites/nowhere/register").status_code == 404


def test_an_ammonium_nitrate_variant_takes_its_2018_critical_quantity_and_an_explosives_beta():
    (unit,) = sources(U + "[{name: '硝酸铵(含可燃物>0.2%)', q: 20}]}")
    g = grade_source(unit)
    # q/Q = 20/5 = 4, β 2 (explosive), α 1.0 (1 person): R = 8, 四级
    assert (g.s, g.r, g.grade) == (4.0, 8.0, 4)
    assert "GB 18218-2018 Table 1, 硝酸铵(含可燃物>0.2%))" in g.lines[0]
