"""Quiet merging and rate limits: together-arriving alarms become one text, a flood a handful."""

from __future__ import annotations

import re
from dataclasses import replace

from alerts.engine.conditions import Priority
from alerts.notify.sms_plan import Policy, Waiting, next_wakeup_ms, plan_messages, send_allowed_at

T0 = 1_795_392_000_000  # 2026-11-23 08:00 in Shanghai
S = 1_000
POLICY = Policy()


def waiting(n: int, every_ms: int, priority=Priority.HIGH, start=T0) -> list[Waiting]:
    return [
        Waiting(
            key=f"A{i:06d}/s0/r0/wang",
            alarm_id=f"A{i:06d}",
            site_name="江海罐区",
            line_zh=f"T{i}液位高报警 14.3 m ≥ 14.2 m",
            line_en=f"T{i} level high 14.3 m >= 14.2 m",
            priority=priority,
            event_ms=start + i * every_ms,
            queued_ms=start + i * every_ms,
        )
        for i in range(n)
    ]


def run(items: list[Waiting], until_ms: int, tick_ms: int = 5 * S, policy: Policy = POLICY):
    """A clock tick every 5 s: what arrived waits, the plan sends, sent items leave the queue."""
    sent: list[tuple[int, tuple[str, ...], str]] = []
    done: set[str] = set()
    for now in range(T0, until_ms, tick_ms):
        queue = [w for w in items if w.queued_ms <= now and w.key not in done]
        for p in plan_messages(queue, [t for t, _, _ in sent], now, policy):
            sent.append((now, p.covers, p.text))
            done.update(p.covers)
    return sent


def test_a_single_alarm_reads_with_site_time_line_and_how_to_acknowledge():
    [p] = plan_messages(waiting(1, 0), [], T0 + 20 * S, POLICY)
    assert (
        p.text == "【江海罐区】08:00 T0液位高报警 14.3 m ≥ 14.2 m 编号A000000, 回复\u201c1 A000000\u201d确认"
    )
    [en] = plan_messages(waiting(1, 0), [], T0 + 20 * S, POLICY, language="en")
    assert en.text.startswith("[江海罐区] 08:00 T0 level high") and "reply '1 A000000'" in en.text


def test_alarms_arriving_together_wait_for_each_other_and_go_as_one_message():
    items = waiting(3, 4 * S)
    assert plan_messages(items, [], T0 + 19 * S, POLICY) == []  # the merge window is still open
    [p] = plan_messages(items, [], T0 + 20 * S, POLICY)
    assert len(p.covers) == 3 and p.text.startswith("【江海罐区】共 3 条报警: ")


def test_a_critical_alarm_waits_only_seconds():
    items = waiting(1, 0, Priority.CRITICAL)
    assert plan_messages(items, [], T0 + 5 * S, POLICY) != []
    assert next_wakeup_ms(items, [], T0, POLICY) == T0 + 5 * S


def test_a_flood_of_500_alarms_in_a_minute_is_a_handful_of_messages_that_say_how_many_they_cover():
    items = waiting(500, 120)  # 500 alarms within 60 s
    sent = run(items, T0 + 15 * 60 * S)
    assert sum(len(c) for _, c, _ in sent) == 500  # every alarm covered, once
    assert len({k for _, c, _ in sent for k in c}) == 500
    assert len(sent) <= POLICY.max_messages
    for _, covers, text in sent:
        count = re.search(r"共 (\d+) 条报警", text)
        assert count and int(count.group(1)) == len(covers) and len(text) <= POLICY.max_chars
        if len(covers) > 5:
            assert "另有" in text
        # 500 sensors: the general form of the reply hint, whole, after the alarms that fit
        assert text.endswith("; 回复\u201c确认 编号\u201d确认该编号所在测点的报警")


def test_the_rate_limit_holds_over_any_window():
    # a steady trickle: one alarm every 30 s for an hour
    items = waiting(120, 30 * S)
    sent = run(items, T0 + 70 * 60 * S)
    times = [t for t, _, _ in sent]
    for t in times:
        assert sum(1 for u in times if t <= u < t + POLICY.rate_window_ms) <= POLICY.max_messages
    assert sum(len(c) for _, c, _ in sent) == 120


def test_send_allowed_at_is_when_the_oldest_message_of_the_window_leaves_it():
    sent = [T0, T0 + 60 * S, T0 + 120 * S, T0 + 180 * S]
    assert send_allowed_at(sent, T0 + 200 * S, POLICY) == T0 + POLICY.rate_window_ms
    # under the limit, only the spacing holds: 30 s doubled per message in the window (3 -> 120 s)
    assert send_allowed_at(sent[:3], T0 + 200 * S, POLICY) == T0 + 240 * S
    assert send_allowed_at(sent[:3], T0 + 300 * S, POLICY) == T0 + 300 * S


def test_the_spacing_between_texts_to_one_phone_doubles_and_starts_empty():
    assert send_allowed_at([], T0, POLICY) == T0
    assert send_allowed_at([T0], T0 + 1 * S, POLICY) == T0 + 30 * S
    assert send_allowed_at([T0, T0 + 30 * S], T0 + 31 * S, POLICY) == T0 + 90 * S


def test_a_critical_flood_in_waves_is_two_or_three_texts_all_sent_within_two_minutes():
    # five waves of 100 critical alarms, 10 s apart
    items = [
        Waiting(f"k{i}", f"A{i:06d}", "某罐区", f"GT-{i}可燃气体高高报警", f"GT-{i} HH", Priority.CRITICAL,
                T0 + (i // 100) * 10 * S, T0 + (i // 100) * 10 * S)
        for i in range(500)
    ]  # fmt: skip
    sent = run(items, T0 + 2 * 60 * S)
    assert 2 <= len(sent) <= 3
    assert sum(len(c) for _, c, _ in sent) == 500
    assert sent[0][0] - T0 <= 5 * S  # the first goes out within the urgent wait


def test_the_most_urgent_come_first_in_a_merged_message():
    critical = replace(waiting(1, 0, Priority.CRITICAL)[0], key="A000009/s0/r0/wang", alarm_id="A000009")
    items = [*waiting(3, S), replace(critical, event_ms=T0 + 10 * S, queued_ms=T0 + 10 * S)]
    [p] = plan_messages(items, [], T0 + 30 * S, POLICY)
    assert p.covers[0] == "A000009/s0/r0/wang"
    assert p.text.split(": ", 1)[1].startswith("A000009 08:00")


def one_sensor(*levels: tuple[str, str, Priority], sensor: str = "sms-01/sensor/GT-101") -> list[Waiting]:
    """Alarms of one gas detector, raised a second apart: (alarm number, level, priority)."""
    return [
        Waiting(f"{aid}/s0/r0/wang", aid, "短信测试罐区", f"GT-101可燃气体{lvl}报警 45 %LEL", f"GT-101 {lvl}",
                prio, T0 + i * S, T0 + i * S, sensor=sensor)
        for i, (aid, lvl, prio) in enumerate(levels)
    ]  # fmt: skip


def test_h_and_hh_of_one_sensor_in_one_text_say_which_one_number_acknowledges_both():
    items = one_sensor(("A000001", "高", Priority.HIGH), ("A000002", "高高", Priority.CRITICAL))
    [p] = plan_messages(items, [], T0 + 20 * S, POLICY)
    assert p.text == (
        "【短信测试罐区】共 2 条报警: A000002 08:00 GT-101可燃气体高高报警 45 %LEL; "
        "A000001 08:00 GT-101可燃气体高报警 45 %LEL; 回复\u201c确认 A000002\u201d确认本条全部报警"
    )
    [en] = plan_messages(items, [], T0 + 20 * S, POLICY, language="en")
    assert en.text.endswith("; reply '1 A000002' to acknowledge every alarm of this text")


def test_a_text_of_several_sensors_names_one_number_per_sensor_and_the_hint_survives_long_lines():
    gt101 = one_sensor(("A000001", "高" * 60, Priority.HIGH), ("A000002", "高高" * 30, Priority.CRITICAL))
    gt102 = one_sensor(("A000003", "高" * 60, Priority.HIGH), sensor="sms-01/sensor/GT-102")
    [p] = plan_messages([*gt101, *gt102], [], T0 + 20 * S, POLICY)
    assert len(p.text) <= POLICY.max_chars
    assert p.text.endswith("另有 1 条, 请查看监控平台; 回复\u201c确认 A000002 A000003\u201d确认本条全部报警")
