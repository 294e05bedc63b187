"""Registry loader (docs/contracts.md §2), the example registry and the sensor index: fast, no servers."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from sensors import RegistryError, RegistryIssue, SensorIndex, load_registry

EXAMPLES = Path(__file__).resolve().parents[2] / "sensors" / "examples"


# ---- helpers


def sensor(**overrides: Any) -> dict[str, Any]:
    """Return a valid sensor mapping, with `overrides` applied (value None removes the key)."""
    raw: dict[str, Any] = {
        "id": "T101-LT",
        "name": "1号储罐液位",
        "kind": "level",
        "unit": "m",
        "range": [0, 20],
        "interval_s": 10,
        "limits": {"ll": 0.5, "l": 1.0, "h": 16.5, "hh": 18.0},
        "deadband": 0.1,
        "on_delay_s": 5,
        "device": "tf-gw-01",
    }
    raw.update(overrides)
    return {k: v for k, v in raw.items() if v is not None}


def site(*sensors: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """Return a valid chemical site mapping holding `sensors` (one level sensor if none given)."""
    raw: dict[str, Any] = {
        "id": "jianghai-chem-01",
        "name": "江海区某化工储罐区",
        "kind": "chemical",
        "grade": 2,
        "location": {"lat": 22.57, "lon": 113.13},
        "roster": "jianghai-duty",
        "sensors": list(sensors) or [sensor()],
    }
    raw.update(overrides)
    return {k: v for k, v in raw.items() if v is not None}


def write(folder: Path, *sites: dict[str, Any], name: str = "registry.yaml") -> Path:
    """Write `sites` as one registry file in `folder`; return its path."""
    path = folder / name
    path.write_text(
        yaml.safe_dump({"sites": list(sites)}, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return path


def issues_of(path: Path) -> list[RegistryIssue]:
    """Load `path`, expecting a RegistryError; return its issues."""
    with pytest.raises(RegistryError) as excinfo:
        load_registry(path)
    return excinfo.value.issues


def located(issue: RegistryIssue) -> tuple[str, str | None, str | None, str | None]:
    """Return where an issue points: (file, site, sensor, key)."""
    return (issue.file, issue.site, issue.sensor, issue.key)


def where(issues: list[RegistryIssue]) -> set[tuple[str, str | None, str | None, str | None]]:
    return {located(i) for i in issues}


def only_issue(path: Path) -> RegistryIssue:
    issues = issues_of(path)
    assert len(issues) == 1, issues
    return issues[0]


# ---- the example registry


@pytest.fixture(scope="module")
def examples():
    return load_registry(EXAMPLES)


def test_examples_load_with_at_least_three_chemical_and_two_tailings_sites(examples):
    kinds = [s.kind for s in examples.sites]
    assert kinds.count("chemical") >= 3
    assert kinds.count("tailings") >= 2
    assert len(examples.sensors()) == sum(len(s.sensors) for s in examples.sites)


def test_each_example_file_holds_one_site_named_after_the_file():
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert files
    for f in files:
        registry = load_registry(f)
        assert [s.id for s in registry.sites] == [f.stem]


def test_examples_have_one_group_of_exactly_three_gas_lel_detectors_on_one_device(examples):
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for s in examples.sensors():
        if s.group is not None:
            groups[(s.site, s.group)].append(s)
    lel_groups = [members for members in groups.values() if all(m.kind == "gas_lel" for m in members)]
    assert len(lel_groups) == 1
    (members,) = lel_groups
    assert len(members) == 3
    assert len({m.device for m in members}) == 1


def test_every_measured_example_sensor_reports_through_a_device(examples):
    assert all(s.device for s in examples.measured().sensors())
    assert all(s.device is None for s in examples.sensors() if s.formula is not None)


def test_example_gas_set_points_follow_gb_t_50493(examples):
    for s in examples.measured().sensors():
        lim = s.limits.configured()
        if s.kind == "gas_lel":
            assert lim == {"h": 25.0, "hh": 50.0}, s.id
        elif s.kind == "gas_toxic":
            assert lim["hh"] == 2 * lim["h"], s.id  # 2nd alarm = 2 x OEL
        elif s.kind == "oxygen":
            assert lim == {"l": 19.5, "h": 23.5}, s.id


def test_example_phreatic_depth_and_dry_beach_alarm_when_low(examples):
    for s in examples.sensors():
        if s.kind in ("phreatic_depth", "dry_beach"):
            lim = s.limits.configured()
            assert set(lim) == {"l", "ll"}, s.id
        if s.kind == "phreatic_depth":
            assert lim["l"] == pytest.approx(1.1 * lim["ll"]), s.id  # orange = 1.1 x red (GB 51108 8.3)


def test_example_slow_trend_sensors_have_forecast_on(examples):
    slow = [
        s
        for s in examples.sensors()
        if s.kind in ("pond_level", "phreatic_depth", "dry_beach", "displacement")
        or (s.kind == "level" and s.unit == "m")
    ]
    assert slow
    assert all(s.forecast for s in slow)


# ---- a valid file


def test_minimal_registry_loads_with_defaults_and_extra_keys(tmp_path):
    path = write(
        tmp_path,
        site(sensor(off_delay_s=30, forecast=True, group="T101-lvl"), district="江海区", city="江门市"),
    )
    registry = load_registry(path)
    (s,) = registry.sites
    assert (s.timezone, s.district, s.city) == ("Asia/Shanghai", "江海区", "江门市")
    assert s.roster == "jianghai-duty"
    (t,) = s.sensors
    assert t.key == ("jianghai-chem-01", "T101-LT")
    assert (t.off_delay_s, t.forecast, t.group, t.device) == (30.0, True, "T101-lvl", "tf-gw-01")
    assert t.limits.configured() == {"ll": 0.5, "l": 1.0, "h": 16.5, "hh": 18.0}
    assert registry.sources == (str(path),)


def test_equal_low_limits_and_equal_high_limits_are_allowed(tmp_path):
    limits = {"ll": 1.0, "l": 1.0, "h": 18.0, "hh": 18.0}
    path = write(tmp_path, site(sensor(limits=limits)))
    assert load_registry(path).sensors()[0].limits.configured() == limits


def test_same_sensor_id_on_two_sites_is_allowed(tmp_path):
    path = write(tmp_path, site(), site(id="gaolan-lpg-01", name="液化石油气储配站"))
    assert [s.key for s in load_registry(path).sensors()] == [
        ("jianghai-chem-01", "T101-LT"),
        ("gaolan-lpg-01", "T101-LT"),
    ]


# ---- each kind of mistake names the file, site, sensor and key


def test_unknown_site_key_is_reported(tmp_path):
    path = write(tmp_path, site(operator="张三"))
    issue = only_issue(path)
    assert located(issue) == (str(path), "jianghai-chem-01", None, "operator")
    assert "unknown key" in issue.message


def test_unknown_sensor_key_is_reported(tmp_path):
    path = write(tmp_path, site(sensor(alarm_colour="red")))
    issue = only_issue(path)
    assert located(issue) == (str(path), "jianghai-chem-01", "T101-LT", "alarm_colour")
    assert "unknown key" in issue.message


def test_unknown_limit_name_is_reported(tmp_path):
    path = write(tmp_path, site(sensor(limits={"hhh": 19.0})))
    assert where(issues_of(path)) == {(str(path), "jianghai-chem-01", "T101-LT", "limits.hhh")}


def test_duplicate_sensor_id_in_one_site_is_reported(tmp_path):
    path = write(tmp_path, site(sensor(), sensor(name="重复的液位")))
    issue = only_issue(path)
    assert located(issue) == (str(path), "jianghai-chem-01", "T101-LT", "id")
    assert "duplicate sensor id" in issue.message


def test_duplicate_site_id_across_two_files_names_both_files(tmp_path):
    first = write(tmp_path, site(), name="a.yaml")
    second = write(tmp_path, site(name="另一个储罐区"), name="b.yaml")
    issue = only_issue(tmp_path)
    assert located(issue) == (str(second), "jianghai-chem-01", None, "id")
    assert "duplicate site id" in issue.message
    assert str(first) in issue.message


def test_duplicate_site_id_in_one_file_is_reported(tmp_path):
    path = write(tmp_path, site(), site())
    assert where(issues_of(path)) == {(str(path), "jianghai-chem-01", None, "id")}


@pytest.mark.parametrize(
    ("limits", "key"),
    [
        ({"ll": 2.0, "l": 1.0}, "limits.l"),
        ({"l": 16.5, "h": 16.5}, "limits.h"),  # L < H is strict
        ({"ll": 16.5, "hh": 16.5}, "limits.hh"),  # so is LL < HH
        ({"h": 18.0, "hh": 16.5}, "limits.hh"),
        ({"l": 17.0, "h": 16.5, "hh": 18.0}, "limits.h"),
    ],
)
def test_limits_out_of_order_are_reported(tmp_path, limits, key):
    path = write(tmp_path, site(sensor(limits=limits)))
    issue = only_issue(path)
    assert located(issue) == (str(path), "jianghai-chem-01", "T101-LT", key)
    assert "out of order" in issue.message


@pytest.mark.parametrize(("limits", "key"), [({"hh": 20.5}, "limits.hh"), ({"ll": -0.1}, "limits.ll")])
def test_limit_outside_the_instrument_range_is_reported(tmp_path, limits, key):
    path = write(tmp_path, site(sensor(limits=limits)))
    issue = only_issue(path)
    assert located(issue) == (str(path), "jianghai-chem-01", "T101-LT", key)
    assert "outside the instrument range" in issue.message


def test_unknown_sensor_kind_is_reported(tmp_path):
    path = write(tmp_path, site(sensor(kind="humidity", unit="%")))
    issue = only_issue(path)
    assert located(issue) == (str(path), "jianghai-chem-01", "T101-LT", "kind")
    assert "unknown kind 'humidity'" in issue.message


@pytest.mark.parametrize(
    ("kind", "unit", "limits"),
    [
        ("level", "%LEL", {"h": 16.5}),
        ("gas_lel", "ppm", {"h": 10}),
        ("pressure", "psi", {"h": 10}),
        ("phreatic_depth", "mm", {"ll": 5}),
        ("temperature", "K", {"h": 10}),
    ],
)
def test_unit_not_valid_for_the_kind_is_reported(tmp_path, kind, unit, limits):
    path = write(tmp_path, site(sensor(kind=kind, unit=unit, limits=limits)))
    issue = only_issue(path)
    assert located(issue) == (str(path), "jianghai-chem-01", "T101-LT", "unit")
    assert repr(unit) in issue.message


def test_bad_yaml_is_reported_with_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("sites:\n  - id: jianghai-chem-01\n    name: [unclosed\n", encoding="utf-8")
    issue = only_issue(path)
    assert located(issue) == (str(path), None, None, None)
    assert "not valid YAML" in issue.message


def test_document_without_a_sites_list_is_reported(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text("site:\n  - id: jianghai-chem-01\n", encoding="utf-8")
    assert where(issues_of(path)) == {(str(path), None, None, "sites")}


@pytest.mark.parametrize("literal", [".nan", ".inf", "-.inf", "9" * 400])  # the last: too large for a float
@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"limits": {"h": "NONFINITE"}}, "limits.h"),
        ({"range": [0, "NONFINITE"]}, "range"),
        ({"interval_s": "NONFINITE"}, "interval_s"),
        ({"deadband": "NONFINITE"}, "deadband"),
    ],
)
def test_non_finite_number_is_reported(tmp_path, literal, overrides, key):
    path = write(tmp_path, site(sensor(**overrides)))
    text = path.read_text(encoding="utf-8").replace("NONFINITE", literal)
    path.write_text(text, encoding="utf-8")
    assert literal in text
    issues = issues_of(path)
    # a non-finite range also leaves the limits unchecked against it, but never hides the range itself
    assert (str(path), "jianghai-chem-01", "T101-LT", key) in where(issues)
    assert all(i.sensor == "T101-LT" for i in issues)


@pytest.mark.parametrize("bad_id", ["Jianghai-chem-01", "-chem-01", "chem 01", "化工01", "a" * 65, ""])
def test_bad_site_id_is_reported(tmp_path, bad_id):
    path = write(tmp_path, site(id=bad_id))
    issue = only_issue(path)
    assert located(issue) == (str(path), bad_id, None, "id")


def test_site_id_of_64_characters_is_accepted(tmp_path):
    path = write(tmp_path, site(id="a" * 64))
    assert load_registry(path).sites[0].id == "a" * 64


@pytest.mark.parametrize(
    ("kind", "grade"),
    [
        ("chemical", 0),
        ("chemical", 5),
        ("tailings", 0),
        ("tailings", 6),
        ("chemical", "2"),
        ("chemical", True),
        ("tailings", 2.5),
    ],
)
def test_bad_grade_is_reported(tmp_path, kind, grade):
    path = write(tmp_path, site(kind=kind, grade=grade))
    issue = only_issue(path)
    assert located(issue) == (str(path), "jianghai-chem-01", None, "grade")


def test_tailings_dam_class_five_is_a_valid_grade(tmp_path):
    path = write(tmp_path, site(kind="tailings", grade=5))
    assert load_registry(path).sites[0].grade == 5


@pytest.mark.parametrize("tz", ["Asia/Shangai", "UTC+8", "Asia/", "", "../etc/localtime"])
def test_bad_timezone_is_reported(tmp_path, tz):
    path = write(tmp_path, site(timezone=tz))
    issue = only_issue(path)
    assert located(issue) == (str(path), "jianghai-chem-01", None, "timezone")


def test_several_mistakes_in_several_files_are_reported_together(tmp_path):
    a = write(
        tmp_path,
        site(
            sensor(kind="level", unit="%LEL"),
            sensor(id="T101-TT", kind="temperature", unit="°C", range=[-20, 80], limits={"hh": 90}),
            operator="张三",
        ),
        name="a.yaml",
    )
    b = write(tmp_path, site(id="gaolan-lpg-01", timezone="Asia/Canton"), name="b.yaml")
    c = tmp_path / "c.yaml"
    c.write_text("sites: [\n", encoding="utf-8")
    with pytest.raises(RegistryError) as excinfo:
        load_registry(tmp_path)
    assert where(excinfo.value.issues) == {
        (str(a), "jianghai-chem-01", None, "operator"),
        (str(a), "jianghai-chem-01", "T101-LT", "unit"),
        (str(a), "jianghai-chem-01", "T101-TT", "limits.hh"),
        (str(b), "gaolan-lpg-01", None, "timezone"),
        (str(c), None, None, None),
    }
    assert len(excinfo.value.issues) == 5


def test_error_message_names_file_site_sensor_and_key(tmp_path):
    path = write(tmp_path, site(sensor(limits={"h": 25})))
    with pytest.raises(RegistryError) as excinfo:
        load_registry(path)
    text = str(excinfo.value)
    for part in (str(path), "site jianghai-chem-01", "sensor T101-LT", "key 'limits.h'"):
        assert part in text


def test_folder_without_yaml_files_is_reported(tmp_path):
    assert where(issues_of(tmp_path)) == {(str(tmp_path), None, None, None)}


# ---- the sensor index


@pytest.fixture
def two_sites(tmp_path):
    path = write(
        tmp_path,
        site(
            sensor(),
            sensor(
                id="T101-TT", kind="temperature", unit="°C", range=[-20, 80], interval_s=60, limits={"h": 45}
            ),
        ),
        site(sensor(range=[0, 16], limits={"hh": 14.8}), id="gaolan-lpg-01", name="液化石油气储配站"),
    )
    return load_registry(path)


def test_index_assigns_slots_in_registry_order(two_sites):
    index = SensorIndex.build(two_sites)
    assert len(index) == 3
    assert [index.sensor(i).key for i in range(len(index))] == [s.key for s in two_sites.sensors()]
    assert index.slot("jianghai-chem-01", "T101-LT") == 0
    assert index.slot("jianghai-chem-01", "T101-TT") == 1
    assert index.site_ids == ("jianghai-chem-01", "gaolan-lpg-01")
    assert index.site_of_slot.tolist() == [0, 0, 1]


def test_index_gives_the_same_sensor_id_on_two_sites_different_slots(two_sites):
    index = SensorIndex.build(two_sites)
    a = index.slot("jianghai-chem-01", "T101-LT")
    b = index.slot("gaolan-lpg-01", "T101-LT")
    assert a != b
    assert index.sensor(b).site == "gaolan-lpg-01"
    assert index.range_hi[a] == 20.0
    assert index.range_hi[b] == 16.0


def test_index_columns_follow_the_slots(two_sites):
    index = SensorIndex.build(two_sites)
    assert index.range_lo.tolist() == [0.0, -20.0, 0.0]
    assert index.range_hi.tolist() == [20.0, 80.0, 16.0]
    assert index.interval_s.tolist() == [10.0, 60.0, 10.0]


def test_index_raises_key_error_for_a_sensor_of_another_site(two_sites):
    index = SensorIndex.build(two_sites)
    with pytest.raises(KeyError):
        index.slot("gaolan-lpg-01", "T101-TT")  # T101-TT exists, but on jianghai-chem-01
    with pytest.raises(KeyError):
        index.slot("no-such-site", "T101-LT")


def test_index_of_the_examples_covers_every_sensor(examples):
    index = SensorIndex.build(examples)
    assert len(index) == len(examples.sensors())
    for slot, s in enumerate(examples.sensors()):
        assert index.slot(s.site, s.id) == slot


def test_duplicate_yaml_key_is_an_error_not_a_silent_overwrite(tmp_path):
    text = """\
sites:
  - id: dup-site
    name: 重复键
    kind: chemical
    grade: 2
    sensors:
      - id: T1
        name: 液位
        kind: level
        unit: m
        range: [0, 20]
        interval_s: 10
        limits: {h: 16, hh: 18}
        limits: {h: 19.5, hh: 19.9}
"""
    path = tmp_path / "dup.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    message = str(err.value)
    assert str(path) in message and "duplicate key 'limits'" in message and "line 14" in message
