"""Payload decoding: contract examples, reject reasons, and hostile input thrown by hypothesis."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.payloads import (
    MAX_ITEMS,
    MAX_PAYLOAD_BYTES,
    PayloadDecoder,
    RawMessage,
    RejectReason,
    parse_timestamp_ms,
)
from sensors.index import SensorIndex
from tests.support.profile import examples
from tests.unit.conftest import make_registry

NOW = 1_795_392_000_000  # 2026-11-23T08:00:00+08:00
TOPIC = "hazmon/v1/site-0/gw-01/readings"
INDEX = SensorIndex.build(make_registry())


def decoder() -> PayloadDecoder:
    return PayloadDecoder(INDEX, max_lateness_ms=3600_000)


def msg(payload: bytes | dict | list, topic: str = TOPIC) -> RawMessage:
    # stdlib json, unlike orjson, can write integers beyond 64 bits: a gateway might send them
    body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    return RawMessage(topic, body, NOW)


def decode(*messages: RawMessage):
    return decoder().decode(list(messages), NOW)


# ---- the contract's own example


def test_contract_example_payload_is_accepted_with_item_timestamp_and_quality():
    payload = {
        "ts": "2026-11-23T08:00:00+08:00",
        "readings": [
            {"sensor": "S1", "v": 12.31},
            {"sensor": "S2", "v": 3.2, "ts": NOW + 123, "q": "uncertain"},
        ],
    }
    r = decode(msg(payload))
    assert len(r.batch) == 2 and not r.reject_counts
    assert r.batch.ts_ms.tolist() == [NOW, NOW + 123]
    assert r.batch.value.tolist() == [12.31, 3.2]
    assert r.batch.quality.tolist() == [0, 1]
    assert r.batch.slot.tolist() == [INDEX.slot("site-0", "S1"), INDEX.slot("site-0", "S2")]


def test_single_item_object_is_accepted():
    r = decode(msg({"sensor": "S3", "v": 1, "ts": NOW}))
    assert len(r.batch) == 1 and r.batch.value[0] == 1.0


def test_missing_timestamps_fall_back_to_receipt_time_and_are_counted():
    r = decode(msg({"readings": [{"sensor": "S1", "v": 1.0}]}))
    assert r.batch.ts_ms.tolist() == [NOW] and r.ts_from_receipt == 1


def test_iso_timestamp_without_offset_is_rejected():
    assert parse_timestamp_ms("2026-11-23T08:00:00") is None
    r = decode(msg({"ts": "2026-11-23T08:00:00", "readings": [{"sensor": "S1", "v": 1.0}]}))
    assert r.reject_counts == {"bad_timestamp": 1}


# ---- each reject reason, with the good neighbours kept


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"sensor": "S1"}, "bad_value"),
        ({"sensor": "S1", "v": "12.5"}, "bad_value"),
        ({"sensor": "S1", "v": True}, "bad_value"),
        ({"sensor": "S1", "v": None}, "bad_value"),
        ({"sensor": "S1", "v": 10**400}, "bad_value"),
        ({"sensor": "S1", "v": math.nan}, "bad_value"),
        ({"sensor": "S1", "v": math.inf}, "bad_value"),
        ({"sensor": "S1", "v": -math.inf}, "bad_value"),
        ({"v": 1.0}, "missing_sensor"),
        ({"sensor": 17, "v": 1.0}, "missing_sensor"),
        ({"sensor": "NOPE", "v": 1.0}, "unknown_sensor"),
        ({"sensor": "ONLY-B", "v": 1.0}, "wrong_site"),
        ({"sensor": "S1", "v": 1.0, "q": "great"}, "bad_quality"),
        ({"sensor": "S1", "v": 1.0, "ts": "yesterday"}, "bad_timestamp"),
        ({"sensor": "S1", "v": 1.0, "ts": []}, "bad_timestamp"),  # unhashable: once crashed the decoder
        ({"sensor": "S1", "v": 1.0, "ts": {"ms": NOW}}, "bad_timestamp"),
        ({"sensor": "S1", "v": 1.0, "q": ["good"]}, "bad_quality"),
        ({"sensor": "S1", "v": 1.0, "ts": NOW + 6 * 60_000}, "future_timestamp"),
        ({"sensor": "S1", "v": 1.0, "ts": NOW - 2 * 3600_000}, "too_late"),
        ({"sensor": "S1", "v": 1.0, "ts": 1795392000}, "too_late"),  # seconds, not ms
        ("S1=1.0", "bad_structure"),
    ],
)
def test_bad_item_is_rejected_under_its_reason_and_neighbours_are_kept(item, reason):
    good = [{"sensor": "S0", "v": 1.5}, {"sensor": "S2", "v": 2.5}]
    r = decode(msg({"ts": NOW, "readings": [good[0], item, good[1]]}))
    assert r.reject_counts == {reason: 1}
    assert r.batch.value.tolist() == [1.5, 2.5]
    assert r.rejects[-1].reason == reason and r.rejects[-1].topic == TOPIC


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (RawMessage(TOPIC, b"{not json", NOW), "invalid_json"),
        (RawMessage(TOPIC, b'{"readings": [{"sensor": "S1", "v": 1}', NOW), "invalid_json"),
        (RawMessage(TOPIC, b'{"readings": [{"sensor": "\xff\xfe", "v": 1}]}', NOW), "invalid_utf8"),
        (RawMessage(TOPIC, b"[1, 2]", NOW), "bad_structure"),
        (RawMessage(TOPIC, b'{"readings": {"S1": 1}}', NOW), "bad_structure"),
        (RawMessage(TOPIC, b" " * (MAX_PAYLOAD_BYTES + 1), NOW), "oversize"),
        (RawMessage("hazmon/v1/nowhere/gw/readings", b'{"sensor": "S1", "v": 1}', NOW), "unknown_site"),
        (RawMessage("hazmon/v1/site-0/readings", b'{"sensor": "S1", "v": 1}', NOW), "bad_topic"),
        (RawMessage("other/site-0/gw/readings", b'{"sensor": "S1", "v": 1}', NOW), "bad_topic"),
    ],
)
def test_bad_message_is_rejected_under_its_reason_and_other_messages_are_kept(message, reason):
    good = msg({"ts": NOW, "readings": [{"sensor": "S1", "v": 7.0}]})
    r = decode(good, message, good)
    assert r.reject_counts == {reason: 1}
    assert r.batch.value.tolist() == [7.0, 7.0]


def test_literal_nan_and_infinity_reject_only_their_item():
    raw = (
        b'{"ts": %d, "readings": [{"sensor": "S0", "v": NaN}, {"sensor": "S1", "v": 1e999},'
        b' {"sensor": "S2", "v": -Infinity}, {"sensor": "S3", "v": 4.5}]}' % NOW
    )
    r = decode(RawMessage(TOPIC, raw, NOW))
    assert r.reject_counts == {"bad_value": 3} and r.batch.value.tolist() == [4.5]


def test_more_than_max_items_is_rejected_as_a_whole():
    items = [{"sensor": "S1", "v": 1}] * (MAX_ITEMS + 1)
    body = json.dumps({"ts": NOW, "readings": items}, separators=(",", ":")).encode()
    assert len(body) <= MAX_PAYLOAD_BYTES
    r = decode(msg(body))
    assert r.reject_counts == {"too_many_items": 1} and len(r.batch) == 0


def test_reading_of_another_site_cannot_be_injected_through_this_sites_topic():
    r = decode(msg({"ts": NOW, "readings": [{"sensor": "ONLY-B", "v": 0.5}]}, topic=TOPIC))
    assert len(r.batch) == 0 and r.reject_counts == {"wrong_site": 1}
    ok = decode(
        msg(
            {"ts": NOW, "readings": [{"sensor": "ONLY-B", "v": 0.5}]}, topic="hazmon/v1/site-1/gw-01/readings"
        )
    )
    assert ok.batch.slot.tolist() == [INDEX.slot("site-1", "ONLY-B")]


# ---- hostile input, generated

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)
sensor_names = st.sampled_from(["S0", "S1", "S2", "S3", "S4", "ONLY-B", "NOPE", ""]) | st.text(max_size=6)
timestamps = st.one_of(
    st.none(),
    st.integers(min_value=NOW - 7_200_000, max_value=NOW + 600_000),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["2026-11-23T08:00:00+08:00", "2026-11-23T07:59:00Z", "not-a-date"]),
)
items = st.one_of(
    st.fixed_dictionaries(
        {"sensor": sensor_names, "v": json_values},
        optional={"ts": timestamps, "q": st.sampled_from(["good", "uncertain", "bad", "x", 3])},
    ),
    json_values,
)
payload_docs = st.one_of(
    st.fixed_dictionaries({"readings": st.lists(items, max_size=30)}, optional={"ts": timestamps}),
    items,
    json_values,
)


def _expected_valid(item: object, top_ts: object) -> bool:
    """An independent, item-by-item statement of the contract (docs/contracts.md §1)."""
    if not isinstance(item, dict):
        return False
    sensor, v = item.get("sensor"), item.get("v")
    if not isinstance(sensor, str) or sensor not in INDEX.by_site["site-0"]:
        return False
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        if not math.isfinite(float(v)):
            return False
    except OverflowError:
        return False
    if item.get("q") not in (None, "good", "uncertain", "bad"):
        return False
    ts = item.get("ts")
    if ts is None:  # absent or null: the message's time applies
        ts = top_ts
    if ts is None:
        ts = NOW
    else:
        ts = parse_timestamp_ms(ts)
        if ts is None:
            return False
    return NOW - 3600_000 <= ts <= NOW + 300_000


@settings(max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs=st.lists(payload_docs, min_size=1, max_size=6))
def test_generated_payloads_never_crash_and_every_item_is_either_stored_or_counted(docs):
    messages = [msg(d) for d in docs]
    r = decode(*messages)
    # one reject per refused item or per refused message; accepted + rejected covers everything
    expected = 0
    for d in docs:
        if isinstance(d, dict) and isinstance(d.get("readings"), list):
            top = d.get("ts")
            if top is not None and parse_timestamp_ms(top) is None:
                top = "invalid"
            expected += sum(_expected_valid(it, top) for it in d["readings"])
        elif isinstance(d, dict) and "sensor" in d and d.get("readings") is None:
            expected += _expected_valid(d, None)
    assert len(r.batch) == expected
    assert np.isfinite(r.batch.value).all()
    assert set(r.batch.quality.tolist()) <= {0, 1, 2}
    rejected_items = r.items - len(r.batch)
    message_rejects = r.messages - sum(
        1
        for d in docs
        if isinstance(d, dict)
        and (isinstance(d.get("readings"), list) or ("sensor" in d and d.get("readings") is None))
    )
    assert sum(r.reject_counts.values()) == rejected_items + message_rejects
    assert set(r.reject_counts) <= {x.name for x in RejectReason}


@settings(max_examples=examples(300), deadline=None)
@given(raw=st.binary(max_size=600), topic=st.text(max_size=60))
def test_arbitrary_bytes_on_arbitrary_topics_never_crash_and_are_counted(raw, topic):
    good = msg({"ts": NOW, "readings": [{"sensor": "S1", "v": 5.0}]})
    r = decode(good, RawMessage(topic, raw, NOW), good)
    values = r.batch.value.tolist()
    assert values[0] == 5.0 and values[-1] == 5.0  # the good neighbours are stored
    # the random message either contributed readings or was counted under some reason
    assert len(values) - 2 + sum(r.reject_counts.values()) >= 1


@settings(max_examples=examples(200), deadline=None)
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=50))
def test_finite_values_survive_decoding_bit_for_bit(values):
    payload = {"ts": NOW, "readings": [{"sensor": "S1", "v": v} for v in values]}
    r = decode(msg(payload))
    assert r.batch.value.tolist() == values


def test_only_a_sensors_own_device_may_write_its_readings():
    """Issue 11: another gateway of the site (or a forged one) cannot write a sensor's history; the
    sensor's own device may, its store-and-forward replays included. Sensors with no device: any."""
    from dataclasses import replace

    from sensors.model import Registry

    base = make_registry()
    site0 = base.sites[0]
    sensors = (
        replace(site0.sensors[0], device="gw-01"),
        replace(site0.sensors[1], device="gw-02"),
        *site0.sensors[2:],
    )
    index = SensorIndex.build(Registry((replace(site0, sensors=sensors), *base.sites[1:])))
    dec = PayloadDecoder(index, max_lateness_ms=3600_000)
    body = {
        "ts": NOW - 60_000,
        "readings": [{"sensor": "S0", "v": 1.0}, {"sensor": "S1", "v": 2.0}, {"sensor": "S2", "v": 3.0}],
    }
    own = dec.decode([msg(body, "hazmon/v1/site-0/gw-01/readings")], NOW)
    assert [index.sensor(s).id for s in own.batch.slot.tolist()] == ["S0", "S2"]
    assert own.reject_counts == {"wrong_device": 1}
    assert "'gw-02'" in own.rejects[0].detail
    forged = dec.decode([msg(body, "hazmon/v1/site-0/intruder/readings")], NOW)
    assert [index.sensor(s).id for s in forged.batch.slot.tolist()] == ["S2"]  # no device named: any
    assert forged.reject_counts == {"wrong_device": 2}
