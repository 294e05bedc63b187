"""SMS replies as Chinese phones really send them become alarm numbers; anything else a ParseError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.notify.sms_reply import (
    MAX_REPLY_CHARS,
    ParseError,
    Reply,
    parse_reply,
    same_sensor_companions,
)
from tests.support.profile import examples


@pytest.mark.parametrize(
    "text",
    [
        "1 A000123",
        "1A000123",
        "1 a123",
        "1a123",
        "确认 A000123",
        "确认A000123",
        "确认：A000123",
        "确认: a000123",
        "1:A000123",
        "  1 A000123 \n",
        "1 A000123。",
        "１　Ａ０００１２３",  # full-width digits, letter and space
        "确认：ａ１２３",  # full-width colon and letter
        "1 123",
    ],
)
def test_one_alarm_number_in_the_forms_people_type(text):
    assert parse_reply(text) == Reply(alarm_ids=("A000123",))


@pytest.mark.parametrize(
    "text",
    [
        "1 A000123 A000124",
        "1 A000123,A000124",
        "1 A000123，A000124",
        "1 A000123、A000124",
        "确认 A000123, A000124",
        "1 a123 a124 a123",  # a repeat is one acknowledgement
        "１　Ａ０００１２３、Ａ０００１２４",
    ],
)
def test_several_alarm_numbers_in_one_reply(text):
    assert parse_reply(text) == Reply(alarm_ids=("A000123", "A000124"))


@pytest.mark.parametrize("text", ["1", "确认", " 1 ", "１", "确认：", "1。"])
def test_bare_one_or_confirm_means_all_alarms_of_the_last_message(text):
    assert parse_reply(text) == Reply(alarm_ids=(), all_recent=True)


@pytest.mark.parametrize(
    "text",
    [
        "收到",
        "ok?",
        "",
        "   ",
        "1123",  # "1" running into digits is ambiguous
        "确认收到",
        "1 A000123 好的",
        "2 A000123",
        "1 A12345678901",
        "x" * 10_000,
    ],
)
def test_anything_else_is_a_parse_error_with_a_reason(text):
    result = parse_reply(text)
    assert isinstance(result, ParseError)
    assert result.reason


def test_a_reply_longer_than_a_few_sms_is_refused_without_parsing():
    result = parse_reply("1 " + "A1 " * MAX_REPLY_CHARS)
    assert isinstance(result, ParseError)
    assert "too long" in result.reason


def test_too_many_numbers_is_refused():
    result = parse_reply("1 " + " ".join(f"A{i}" for i in range(1, 40)))
    assert isinstance(result, ParseError)
    assert "too many" in result.reason


@settings(max_examples=examples(300), deadline=None)
@given(
    st.one_of(st.text(max_size=600), st.text(alphabet="1确认Aa0239 ,，、：:;\u3000１Ａ。收到\n", max_size=40))
)
def test_any_text_gives_a_reply_or_a_parse_error_and_never_raises(text):
    result = parse_reply(text)
    assert isinstance(result, Reply | ParseError)
    if isinstance(result, Reply):
        assert result.all_recent != bool(result.alarm_ids)
        assert all(a.startswith("A") and len(a) >= 7 for a in result.alarm_ids)


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=999_999), min_size=1, max_size=5, unique=True))
def test_numbers_survive_full_width_and_mixed_separators(numbers):
    fullwidth = str.maketrans("0123456789A", "０１２３４５６７８９Ａ")
    text = "确认：" + "、".join(f"A{n}" for n in numbers).translate(fullwidth)
    assert parse_reply(text) == Reply(alarm_ids=tuple(f"A{n:06d}" for n in numbers))


GT101, GT102 = "sms-01/sensor/GT-101", "sms-01/sensor/GT-102"


@pytest.mark.parametrize(
    ("named", "expected"),
    [
        ("A000002", ("A000001", "A000005")),  # the HH named: its H and ROC of the same text
        ("A000001", ("A000002", "A000005")),  # any one of them will do
        ("A000003", ()),  # another sensor's alarm alone
        ("A000009", ()),  # not carried with the others (or its sensor unknown): only itself
    ],
)
def test_a_named_alarm_brings_the_other_alarms_of_its_sensor_and_no_other_sensors(named, expected):
    carried = {"A000001": GT101, "A000002": GT101, "A000003": GT102, "A000005": GT101, "A000009": ""}
    assert same_sensor_companions(named, carried) == expected
