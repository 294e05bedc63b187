"""Computed sensors (issue 12, part 1): sensors/formula.py, sensors/computed.py, their registry key
`compute` and the decoder's `computed` reject."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ingest.payloads import PayloadDecoder, RawMessage
from sensors import RegistryError, SensorIndex, load_registry
from sensors.computed import ComputedSensors
from sensors.formula import FormulaError, evaluate, parse_formula
from sensors.readings import ReadingBatch

T0 = 1_795_392_000_000


# ---- formulas


def test_a_formula_names_its_inputs_and_constants_and_evaluates_over_arrays():
    f = parse_formula({"expr": "crest - pond", "inputs": {"pond": "PL-01"}, "constants": {"crest": 86.5}})
    assert f.inputs == (("pond", "PL-01"),) and f.constants == (("crest", 86.5),)
    got = evaluate(f.expr, {"crest": np.array([86.5, 90.0]), "pond": np.array([85.0, 88.8])})
    assert got.tolist() == pytest.approx([1.5, 1.2])
    many = evaluate("max(a, b, 0) + abs(-a) * sqrt(b) / 2 ** 1", {"a": np.array([1.0]), "b": np.array([4.0])})
    assert many.tolist() == [5.0]


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"expr": "__import__('os').system('x')", "inputs": {"a": "S1"}}, "not allowed"),
        ({"expr": "a.real", "inputs": {"a": "S1"}}, "not allowed"),
        ({"expr": "a[0]", "inputs": {"a": "S1"}}, "not allowed"),
        ({"expr": "a if a else 1", "inputs": {"a": "S1"}}, "not allowed"),
        ({"expr": "a + b", "inputs": {"a": "S1"}}, "'b' is neither"),
        ({"expr": "a", "inputs": {"a": "S1", "b": "S2"}}, "not used"),
        ({"expr": "min(a)", "inputs": {"a": "S1"}}, "takes 2 to 8"),
        ({"expr": "a +", "inputs": {"a": "S1"}}, "not an expression"),
        ({"expr": "a", "inputs": {}}, "at least one sensor"),
        ({"expr": "a", "inputs": {"A-1": "S1"}}, "is not a name"),
        ({"expr": "a", "inputs": {"min": "S1"}}, "is not a name"),
        ({"expr": "a + k", "inputs": {"a": "S1"}, "constants": {"k": "1"}}, "finite number"),
        ({"expr": "a", "inputs": {"a": "S1"}, "other": 1}, "unknown key"),
        ("a + b", "must be a mapping"),
    ],
)
def test_a_formula_outside_the_admitted_arithmetic_is_refused_with_its_reason(raw, says):
    with pytest.raises(FormulaError, match=says):
        parse_formula(raw)


# ---- the registry


def pond_site(*extra: dict, site_id: str = "pond-a", crest: float = 86.5) -> dict:
    level = {
        "id": "PL-01",
        "name": "库水位",
        "kind": "level",
        "unit": "m",
        "range": [0, 100],
        "interval_s": 60,
    }
    freeboard = {
        "id": "FB-01",
        "name": "安全超高",
        "kind": "level",
        "unit": "m",
        "range": [-10, 20],
        "interval_s": 60,
        "limits": {"ll": 0.7, "l": 1.0},
        "compute": {"expr": "crest - pond", "inputs": {"pond": "PL-01"}, "constants": {"crest": crest}},
    }
    return {
        "id": site_id,
        "name": "尾矿库",
        "kind": "tailings",
        "grade": 3,
        "sensors": [level, freeboard, *extra],
    }


def load(tmp_path: Path, *sites: dict):
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"sites": list(sites)}, allow_unicode=True))
    return load_registry(path)


def test_a_computed_sensor_loads_and_a_cycle_a_stranger_input_or_a_device_is_refused(tmp_path):
    registry = load(tmp_path, pond_site())
    assert registry.sensors()[1].formula.input_ids == ("PL-01",)
    assert [s.id for s in registry.measured().sensors()] == ["PL-01"]

    def computed(sid: str, expr: str, inputs: dict, **more) -> dict:
        return {"id": sid, "name": sid, "kind": "level", "unit": "m", "range": [0, 9], "interval_s": 60,
                "compute": {"expr": expr, "inputs": inputs}, **more}  # fmt: skip

    with pytest.raises(RegistryError) as e:
        load(
            tmp_path,
            pond_site(
                computed("X1", "b + 1", {"b": "X2"}),
                computed("X2", "a - 1", {"a": "X1"}),
                computed("X3", "a", {"a": "NOPE"}),
                computed("X4", "a", {"a": "PL-01"}, device="gw-1"),
            ),
        )
    text = str(e.value)
    assert "depend on themselves: X1 -> X2 -> X1" in text
    assert "'NOPE' is not a sensor of this site" in text
    assert "a computed sensor has no device" in text


# ---- deriving readings


def batch(index: SensorIndex, rows: list[tuple[str, str, int, float, int]]) -> ReadingBatch:
    slots = [index.by_site[site][sensor] for site, sensor, *_ in rows]
    return ReadingBatch(
        np.array(slots, np.int32),
        np.array([r[2] for r in rows], np.int64),
        np.array([r[3] for r in rows], float),
        np.array([r[4] for r in rows], np.int8),
    )


def readings(index: SensorIndex, b: ReadingBatch) -> list[tuple[str, str, int, float, int]]:
    return sorted(
        (index.sensor(s).site, index.sensor(s).id, t, round(v, 6), q)
        for s, t, v, q in zip(
            b.slot.tolist(), b.ts_ms.tolist(), b.value.tolist(), b.quality.tolist(), strict=True
        )
    )


def test_freeboard_of_many_ponds_is_derived_in_one_pass_at_the_inputs_time(tmp_path):
    registry = load(tmp_path, *(pond_site(site_id=f"pond-{i}", crest=80.0 + i) for i in range(3)))
    index = SensorIndex.build(registry)
    computed = ComputedSensors(index)
    assert len(computed.levels) == 1 and len(computed.levels[0]) == 1  # one shape for the three ponds
    got = computed.derive(
        batch(index, [("pond-0", "PL-01", T0, 79.0, 0), ("pond-2", "PL-01", T0 + 5, 80.5, 0)])
    )
    assert readings(index, got) == [("pond-0", "FB-01", T0, 1.0, 0), ("pond-2", "FB-01", T0 + 5, 1.5, 0)]


def test_a_suspect_or_stale_input_makes_a_suspect_result_and_a_missing_one_no_result(tmp_path):
    ratio = {
        "id": "R-01", "name": "比值", "kind": "level", "unit": "m", "range": [0, 9], "interval_s": 60,
        "compute": {"expr": "a / b", "inputs": {"a": "PL-01", "b": "PL-02"}},
    }  # fmt: skip
    second = {
        "id": "PL-02",
        "name": "水位2",
        "kind": "level",
        "unit": "m",
        "range": [0, 100],
        "interval_s": 60,
    }
    index = SensorIndex.build(load(tmp_path, pond_site(second, ratio)))
    computed = ComputedSensors(index)
    first = computed.derive(batch(index, [("pond-a", "PL-01", T0, 80.0, 0)]))
    assert readings(index, first) == [("pond-a", "FB-01", T0, 6.5, 0)]  # R-01 waits for PL-02
    both = computed.derive(batch(index, [("pond-a", "PL-02", T0 + 1000, 40.0, 1)]))  # uncertain
    assert readings(index, both) == [("pond-a", "R-01", T0 + 1000, 2.0, 1)]
    later = computed.derive(batch(index, [("pond-a", "PL-02", T0 + 600_000, 20.0, 0)]))  # PL-01 10 min old
    assert readings(index, later) == [("pond-a", "R-01", T0 + 600_000, 4.0, 1)]
    zero = computed.derive(batch(index, [("pond-a", "PL-02", T0 + 601_000, 0.0, 0)]))
    assert readings(index, zero) == []  # 80 / 0: no finite result, no reading
    backfill = computed.derive(batch(index, [("pond-a", "PL-01", T0 - 60_000, 70.0, 0)]))
    assert readings(index, backfill) == []  # older than the latest: derives nothing


def test_several_readings_of_an_input_in_one_batch_each_give_a_computed_reading_at_their_time(tmp_path):
    index = SensorIndex.build(load(tmp_path, pond_site()))
    computed = ComputedSensors(index)
    rows = [("pond-a", "PL-01", T0 + i * 60_000, 84.0 + i, 0) for i in (2, 0, 1)]  # out of order
    got = computed.derive(batch(index, rows))
    assert readings(index, got) == [("pond-a", "FB-01", T0 + i * 60_000, 2.5 - i, 0) for i in range(3)]


def test_a_formula_over_computed_sensors_is_evaluated_after_them_in_the_same_batch(tmp_path):
    margin = {
        "id": "M-01", "name": "裕度", "kind": "level", "unit": "m", "range": [-9, 9], "interval_s": 60,
        "compute": {"expr": "fb - minimum", "inputs": {"fb": "FB-01"}, "constants": {"minimum": 0.7}},
    }  # fmt: skip
    index = SensorIndex.build(load(tmp_path, pond_site(margin)))
    computed = ComputedSensors(index)
    assert len(computed.levels) == 2
    got = computed.derive(batch(index, [("pond-a", "PL-01", T0, 85.0, 0)]))
    assert readings(index, got) == [("pond-a", "FB-01", T0, 1.5, 0), ("pond-a", "M-01", T0, 0.8, 0)]


def test_a_reading_published_for_a_computed_sensor_is_rejected_as_computed(tmp_path):
    index = SensorIndex.build(load(tmp_path, pond_site()))
    body = {"ts": T0, "readings": [{"sensor": "FB-01", "v": 9.9}, {"sensor": "PL-01", "v": 80.0}]}
    result = PayloadDecoder(index, max_lateness_ms=3600_000).decode(
        [RawMessage("hazmon/v1/pond-a/gw-1/readings", json.dumps(body).encode(), T0)], T0
    )
    assert result.reject_counts == {"computed": 1}
    assert "computed by hazmon" in result.rejects[0].detail
    assert [index.sensor(s).id for s in result.batch.slot.tolist()] == ["PL-01"]
