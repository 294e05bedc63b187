"""The durable SMS outbox: once per key, merged per phone, retried, and safe across a crash."""

from __future__ import annotations

import contextlib

import pytest

from alerts.engine.conditions import Priority
from alerts.notify.channels.gateway import (
    DeliveryReceipt,
    DeliveryStatus,
    GatewayUnavailable,
    MessageRejected,
)
from alerts.notify.escalation import Notification
from alerts.notify.sms_outbox import (
    DELIVERED,
    FAILED,
    READY,
    SCHEMA,
    SENDING,
    SENT,
    Rendered,
    SmsOutbox,
    message_key,
)
from alerts.sqlite_store import SqliteStore
from tests.support.fake_sms import FakeSmsGateway

T0 = 1_795_392_000_000
S = 1_000
WANG = "+8613800138001"


def note(i: int, phone: str = WANG, alarm: str | None = None) -> tuple[Notification, Rendered]:
    alarm_id = alarm or f"A{i:06d}"
    who = f"p-{phone}"
    n = Notification(f"{alarm_id}/s0/r0/{who}", alarm_id, "jianghai-tf-01", 0, 0, "operator", who, phone, T0)
    r = Rendered("江海罐区", f"T{i}液位高报警 14.3 m ≥ 14.2 m", f"T{i} level high", Priority.HIGH, T0 + i)
    return n, r


def states(box: SmsOutbox) -> list[str]:
    return [m["state"] for m in box.messages()]


def test_the_same_notification_listed_twice_is_stored_once(tmp_path):
    box = SmsOutbox(tmp_path / "sms.sqlite")
    assert box.enqueue([note(1), note(2)], T0) == 2
    assert box.enqueue([note(1), note(2), note(3)], T0 + S) == 1
    assert box.backlog()["waiting_notifications"] == 3


def test_notifications_for_one_phone_become_one_message_sent_once(tmp_path):
    box, gw = SmsOutbox(tmp_path / "sms.sqlite"), FakeSmsGateway()
    box.enqueue([note(1), note(2), note(3)], T0)
    assert box.plan(T0 + 5 * S) == []  # the merge window is still open
    [mid] = box.plan(T0 + 20 * S)
    assert box.send_due(gw, T0 + 20 * S) == [(mid, SENT)]
    assert box.send_due(gw, T0 + 21 * S) == [] and box.plan(T0 + 21 * S) == []
    [(key, text)] = gw.sent[WANG]
    assert key == message_key(mid) and "共 3 条报警" in text


def test_a_gateway_down_for_two_minutes_delays_the_message_and_it_arrives_once(tmp_path):
    box, gw = SmsOutbox(tmp_path / "sms.sqlite"), FakeSmsGateway()
    box.enqueue([note(1)], T0)
    box.plan(T0 + 20 * S)
    gw.fail_with = GatewayUnavailable("connection refused")
    now, outcomes = T0 + 20 * S, []
    while now < T0 + 140 * S:
        outcomes += [o for _, o in box.send_due(gw, now)]
        now += S
    assert outcomes and set(outcomes) == {"retry"} and box.backlog()[READY] == 1  # the console shows it
    gw.fail_with = None
    while not gw.sent:
        box.send_due(gw, now)
        now += S
    assert len(gw.sent[WANG]) == 1 and states(box) == [SENT]
    assert now - (T0 + 140 * S) <= 300 * S  # back within one backoff step


def test_a_refused_message_fails_without_retrying(tmp_path):
    box, gw = SmsOutbox(tmp_path / "sms.sqlite"), FakeSmsGateway()
    box.enqueue([note(1)], T0)
    box.plan(T0 + 20 * S)
    gw.fail_with = MessageRejected("invalid destination")
    box.send_due(gw, T0 + 20 * S)
    assert states(box) == [FAILED] and box.send_due(gw, T0 + 600 * S) == []


def test_a_crash_between_planning_and_sending_sends_after_the_restart(tmp_path):
    path = tmp_path / "sms.sqlite"
    box = SmsOutbox(path)
    box.enqueue([note(1)], T0)
    box.plan(T0 + 20 * S)
    box.close()  # the process dies here
    gw = FakeSmsGateway()
    again = SmsOutbox(path)
    again.plan(T0 + 30 * S)
    again.send_due(gw, T0 + 30 * S)
    assert len(gw.sent[WANG]) == 1 and states(again) == [SENT]


def crash_while_sending(path) -> tuple[FakeSmsGateway, int]:
    """The gateway took the message, then the process died before recording it."""
    box, gw = SmsOutbox(path), FakeSmsGateway()
    box.enqueue([note(1)], T0)
    [mid] = box.plan(T0 + 20 * S)

    class DiesAfterSending(FakeSmsGateway):
        def send(self, to, text, key):
            gw.send(to, text, key)
            raise KeyboardInterrupt  # stands for SIGKILL: nothing after the gateway call runs

    with contextlib.suppress(KeyboardInterrupt):
        box.send_due(DiesAfterSending(), T0 + 20 * S)
    box.close()
    return gw, mid


def test_an_in_doubt_message_is_proved_sent_by_its_receipt_and_not_sent_again(tmp_path):
    gw, mid = crash_while_sending(tmp_path / "sms.sqlite")
    box = SmsOutbox(tmp_path / "sms.sqlite")
    assert states(box) == [SENDING]
    assert box.resolve_in_doubt(T0 + 60 * S) == []  # within the grace period: wait for a receipt
    receipt = DeliveryReceipt("kannel-1", DeliveryStatus.ACCEPTED, "8", key=message_key(mid))
    assert box.on_receipt(receipt, T0 + 61 * S)
    assert box.resolve_in_doubt(T0 + 600 * S) == [] and box.send_due(gw, T0 + 600 * S) == []
    assert len(gw.sent[WANG]) == 1 and states(box) == [SENT]


def test_an_in_doubt_message_without_any_receipt_is_sent_again_after_the_grace_period(tmp_path):
    gw, mid = crash_while_sending(tmp_path / "sms.sqlite")
    box = SmsOutbox(tmp_path / "sms.sqlite")
    assert box.resolve_in_doubt(T0 + 20 * S + box.in_doubt_grace_ms) == [mid]
    box.send_due(gw, T0 + 200 * S)
    assert len(gw.sent[WANG]) == 2  # a gateway that echoes no key cannot prove it: never lose it


def test_receipts_by_gateway_id_mark_delivery(tmp_path):
    box, gw = SmsOutbox(tmp_path / "sms.sqlite"), FakeSmsGateway()
    box.enqueue([note(1)], T0)
    box.plan(T0 + 20 * S)
    box.send_due(gw, T0 + 20 * S)
    assert box.on_receipt(DeliveryReceipt("fake-1", DeliveryStatus.DELIVERED, "DELIVRD"), T0 + 25 * S)
    assert states(box) == [DELIVERED]
    assert not box.on_receipt(DeliveryReceipt("nope", DeliveryStatus.DELIVERED), T0 + 26 * S)


def test_acknowledged_alarms_are_cancelled_before_they_are_sent(tmp_path):
    box = SmsOutbox(tmp_path / "sms.sqlite")
    box.enqueue([note(1), note(2)], T0)
    assert box.cancel_alarm("A000001") == 1
    [mid] = box.plan(T0 + 20 * S)
    assert box.messages()[0]["covers"] == 1 and mid


@pytest.mark.deep
def test_a_flood_of_500_alarms_to_three_officers_is_a_handful_of_texts_each(tmp_path):
    box, gw = SmsOutbox(tmp_path / "sms.sqlite"), FakeSmsGateway()
    phones = [WANG, "+8613800138002", "+8613800138003"]
    for k in range(500):  # 500 alarms within one minute
        box.enqueue([note(k, phone) for phone in phones], T0 + k * 120)
        if k % 40 == 0:
            box.plan(T0 + k * 120)
            box.send_due(gw, T0 + k * 120)
    for now in range(T0 + 60 * S, T0 + 20 * 60 * S, 5 * S):
        box.plan(now)
        box.send_due(gw, now)
    for phone in phones:
        texts = [t for _, t in gw.sent[phone]]
        assert len(texts) <= box.policy.max_messages
        covered = sum(m["covers"] for m in box.messages(phone))
        assert covered == 500
    assert box.backlog()["waiting_notifications"] == 0


def test_a_bare_reply_means_the_alarms_of_the_last_message_sent_to_that_phone(tmp_path):
    box, gw = SmsOutbox(tmp_path / "sms.sqlite"), FakeSmsGateway()
    assert box.last_alarm_ids(WANG) == []
    box.enqueue([note(1), note(2)], T0)
    box.plan(T0 + 20 * S)
    box.send_due(gw, T0 + 20 * S)
    box.enqueue([note(3)], T0 + 60 * S)
    box.plan(T0 + 80 * S)  # planned, not sent yet: not what the officer has read
    assert box.last_alarm_ids(WANG) == ["A000001", "A000002"]


def test_carried_with_lists_the_alarms_that_shared_a_text_to_that_phone(tmp_path):
    box, gw = SmsOutbox(tmp_path / "sms.sqlite"), FakeSmsGateway()
    other = "+8613800138002"
    box.enqueue([note(1), note(2), note(3, phone=other)], T0)
    box.plan(T0 + 20 * S)
    box.send_due(gw, T0 + 20 * S)
    assert box.carried_with(WANG, "A000002") == ["A000001", "A000002"]
    assert box.carried_with(other, "A000003") == ["A000003"]
    assert box.carried_with(other, "A000001") == []  # never texted to that phone
    box.close()


# ---- fallback tiers (schema version 2: channel_posts)


def v1_file_with_fallback_rows(path) -> None:
    """An outbox file as the code before fallback tiers left it: tier 1 in messages.fallback_*."""
    with SqliteStore(path, (SCHEMA,), "sms outbox v1") as v1:
        rows = [  # (fallback_state, fallback_ms, fallback_error); every SMS failed for good
            ("posted", T0, None),
            ("posting", T0, None),  # a crash between marking and posting
            ("retry", T0 + 30 * S, "wecom robot unreachable"),
            ("failed", T0, "wecom robot errcode 93000: invalid webhook url"),
        ]
        with v1._atomic() as db:
            db.executemany(
                "INSERT INTO messages (phone, text, covers, created_ms, state, next_try_ms,"
                " fallback_state, fallback_ms, fallback_error) VALUES (?, ?, 1, ?, 'failed', ?, ?, ?, ?)",
                [(WANG, f"text {i}", T0 - 60 * S, T0 - 60 * S, *r) for i, r in enumerate(rows, start=1)],
            )


def test_an_upgraded_v1_file_never_reposts_what_was_posted_and_reoffers_what_was_posting_or_retrying(
    tmp_path,
):
    path = tmp_path / "sms.sqlite"
    v1_file_with_fallback_rows(path)
    box = SmsOutbox(path)
    versions = box._conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert versions == [(1,), (2,), (3,)]
    assert [(m["fallback_state"], m["channels"][0]["state"]) for m in box.messages()] == [
        ("posted", "posted"),
        ("posting", "posting"),
        ("retry", "retry"),
        ("failed", "failed"),
    ]
    assert box.messages()[3]["fallback_error"].startswith("wecom robot errcode 93000")
    assert box.backlog()["fallback_posted"] == 1
    assert [mid for mid, _, _ in box.failover_due(1, "wecom robot", T0 + S, 60 * S)] == [2]
    box.record_post(2, 1, True, T0 + S)
    assert box.failover_due(1, "wecom robot", T0 + 29 * S, 60 * S) == []  # 3 waits for its retry time
    assert [mid for mid, _, _ in box.failover_due(1, "wecom robot", T0 + 30 * S, 60 * S)] == [3]
    box.record_post(3, 1, True, T0 + 30 * S)
    assert box.failover_due(1, "wecom robot", T0 + 10 * 60 * S, 60 * S) == []
    assert box.backlog()["fallback_posted"] == 3
    box.close()


def failed_sms(box: SmsOutbox) -> int:
    """One alarm message the gateway refused, made at T0."""
    box.enqueue([note(1)], T0 - 30 * S)
    (mid,) = box.plan(T0)
    gw = FakeSmsGateway()
    gw.fail_with = MessageRejected("bad number")
    assert box.send_due(gw, T0) == [(mid, FAILED)]
    return mid


def test_tier_two_gets_what_tier_one_left_unposted_past_the_failover_delay_once(tmp_path):
    box = SmsOutbox(tmp_path / "sms.sqlite")
    mid = failed_sms(box)
    assert box.failover_due(2, "dingtalk robot", T0, 60 * S) == []  # tier 1 has not tried
    assert [m for m, _, _ in box.failover_due(1, "wecom robot", T0, 60 * S)] == [mid]
    box.record_post(mid, 1, False, T0, "unreachable", retry_ms=30 * S)
    assert box.failover_due(2, "dingtalk robot", T0 + 59 * S, 60 * S) == []  # tier 1 still has time
    assert [m for m, _, _ in box.failover_due(2, "dingtalk robot", T0 + 60 * S, 60 * S)] == [mid]
    box.record_post(mid, 2, True, T0 + 60 * S)
    assert box.failover_due(2, "dingtalk robot", T0 + 10 * 60 * S, 60 * S) == []  # posted: once
    (row,) = box.messages()
    assert row["channels"] == [
        {"tier": 1, "channel": "wecom robot", "state": "retry", "error": "unreachable"},
        {"tier": 2, "channel": "dingtalk robot", "state": "posted", "error": None},
    ]
    assert (row["fallback_state"], row["fallback_error"]) == ("retry", "unreachable")
    assert box.backlog()["fallback_retry"] == 1 and box.backlog()["fallback2_posted"] == 1
    box.close()


def test_tier_two_gets_what_tier_one_refused_at_once(tmp_path):
    box = SmsOutbox(tmp_path / "sms.sqlite")
    mid = failed_sms(box)
    box.failover_due(1, "wecom robot", T0, 60 * S)
    box.record_post(mid, 1, False, T0, "errcode 93000")
    assert [m for m, _, _ in box.failover_due(2, "dingtalk robot", T0, 60 * S)] == [mid]
    box.record_post(mid, 2, True, T0)
    assert box.failover_due(1, "wecom robot", T0 + 10 * 60 * S, 60 * S) == []  # refused: settled
    assert box.failover_due(2, "dingtalk robot", T0 + 10 * 60 * S, 60 * S) == []
    box.close()


def test_a_message_sms_sends_late_is_no_longer_offered_to_any_tier(tmp_path):
    box, gw = SmsOutbox(tmp_path / "sms.sqlite"), FakeSmsGateway()
    box.enqueue([note(1)], T0 - 30 * S)
    (mid,) = box.plan(T0)
    gw.fail_with = GatewayUnavailable("down")
    box.send_due(gw, T0)
    assert [m for m, _, _ in box.failover_due(1, "wecom robot", T0 + 60 * S, 60 * S)] == [mid]
    box.record_post(mid, 1, False, T0 + 60 * S, "unreachable", retry_ms=30 * S)
    gw.fail_with = None
    box.send_due(gw, T0 + 90 * S)
    assert states(box) == [SENT]
    assert box.failover_due(1, "wecom robot", T0 + 10 * 60 * S, 60 * S) == []
    assert box.failover_due(2, "dingtalk robot", T0 + 10 * 60 * S, 60 * S) == []
    box.close()
