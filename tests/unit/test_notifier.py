"""The notifier on a real journal, the example rosters and a recording gateway, on a test clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.book.book import AlarmBook
from alerts.book.sqlite_journal import AlarmJournal
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from alerts.engine.lifecycle import AlarmRaised, AlarmState
from alerts.notify.channels.gateway import (
    Channel,
    GatewayUnavailable,
    MessageRejected,
    NamedChannel,
    SendResult,
    SmsGateway,
)
from alerts.notify.escalation import Chain, Routing, Step
from alerts.notify.notifier import Notifier
from alerts.notify.roster import Role, duty_lookup, find_duty
from alerts.notify.roster_yaml import load_rosters
from alerts.notify.sms_ack import SmsAcknowledger, people_by_phone_from, roster_may_ack
from alerts.notify.sms_outbox import SmsOutbox
from alerts.notify.sms_plan import Policy
from alerts.notify.sms_render import AlarmDescriber, english_line
from sensors.registry import load_registry
from tests.support.fake_sms import FakeSmsGateway

ROOT = Path(__file__).resolve().parents[2]
ROSTERS = load_rosters(ROOT / "sensors/examples/rosters")
REGISTRY = load_registry(ROOT / "sensors/examples")
SITES = {s.id: s for s in REGISTRY.sites}
SITE = "jianghai-tf-01"
T0 = int(datetime(2026, 11, 23, 2, 0, tzinfo=UTC).timestamp() * 1000)  # 10:00 in Jiangmen, day shift
SECOND, MINUTE = 1000, 60_000
CHAIN = Chain((Step("operator", 0), Step("technical_lead", 2)), reminder_min=10)
ROUTING = Routing(chains={("alarm", Priority.HIGH): CHAIN, ("alarm", Priority.CRITICAL): CHAIN})
POLICY = Policy(
    merge_window_ms=5 * SECOND, urgent_wait_ms=1 * SECOND, max_messages=3, rate_window_ms=10 * MINUTE
)


def on_duty(role: Role):
    found = find_duty(SITES[SITE], ROSTERS, role, datetime.fromtimestamp(T0 / 1000, UTC))
    assert found is not None
    return found[1]


OPERATOR = on_duty(Role.OPERATOR)[0]
LEAD = on_duty(Role.TECHNICAL_LEAD)[0]
SENSORS = [s.id for s in SITES[SITE].sensors]


class Harness:
    """The SMS gateway `gateway`, then fallback tiers `fallbacks` named robot1, robot2, ..."""

    def __init__(self, tmp: Path, gateway: SmsGateway | None = None, fallbacks: Sequence[Channel] = ()):
        self.now = T0
        self.journal = AlarmJournal(tmp / "alarms.sqlite")
        self.book = AlarmBook(self.journal, clock=lambda: self.now)
        self.outbox = SmsOutbox(tmp / "sms.sqlite", POLICY, in_doubt_grace_ms=30 * SECOND)
        self.fallbacks = [NamedChannel(f"robot{i}", c) for i, c in enumerate(fallbacks, start=1)]
        self.restart(gateway or FakeSmsGateway())

    def restart(self, gateway: SmsGateway) -> None:
        """A new notifier on the same journal and outbox, as after a restart of the service."""
        self.gateway = gateway
        acker = SmsAcknowledger(
            self.book,
            people_by_phone_from(ROSTERS),
            roster_may_ack(SITES, ROSTERS),
            self.outbox.last_alarm_ids,
            carried_with=self.outbox.carried_with,
        )
        self.notifier = Notifier(
            self.book, self.outbox, ROUTING, duty_lookup(SITES, ROSTERS), AlarmDescriber(REGISTRY),
            [NamedChannel("sms", gateway), *self.fallbacks], failover_after_ms=MINUTE,
            acknowledger=acker, clock=lambda: self.now,
        )  # fmt: skip

    def raise_alarm(
        self, source: str, priority: Priority = Priority.HIGH, kind: ConditionKind = ConditionKind.HH
    ) -> str:
        change = ConditionChange(
            site=SITE, source=source, kind=kind, active=True, time_ms=self.now, priority=priority,
            level=kind.name, value=9.5, limit=9.0, message=f"{source}液位{kind.name}报警 9.5 m ≥ 9 m",
        )  # fmt: skip
        (ev,) = [e for e in self.book.on_changes([change], now_ms=self.now) if isinstance(e, AlarmRaised)]
        return ev.alarm_id

    def run_until(self, t_ms: int, step_ms: int = SECOND) -> None:
        while self.now < t_ms:
            self.now = min(self.now + step_ms, t_ms)
            self.notifier.tick(self.now)

    def sent_to(self, phone: str) -> list[str]:
        return [text for _, text in self.gateway.sent.get(phone, [])]


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.journal.close()
    harness.outbox.close()


def test_one_alarm_texts_the_operator_once_then_escalates_to_the_lead_after_the_chain_delay(h):
    aid = h.raise_alarm(SENSORS[0])
    h.run_until(T0 + 90 * SECOND)
    (text,) = h.sent_to(OPERATOR.phone)
    assert aid in text and "江海" in text and "10:00" in text and f"回复\u201c1 {aid}\u201d确认" in text
    assert h.sent_to(LEAD.phone) == []
    h.run_until(T0 + 3 * MINUTE)
    assert len(h.sent_to(LEAD.phone)) == 1 and len(h.sent_to(OPERATOR.phone)) == 1


def test_an_sms_reply_acknowledges_and_stops_the_escalation_and_is_answered(h):
    aid = h.raise_alarm(SENSORS[0])
    h.run_until(T0 + 30 * SECOND)
    h.notifier.on_mo(OPERATOR.phone, f"1 {aid}", datetime.fromtimestamp(h.now / 1000, UTC))
    assert h.book.get(aid).acked
    h.run_until(T0 + 30 * MINUTE)
    assert h.sent_to(LEAD.phone) == []  # never escalated
    texts = h.sent_to(OPERATOR.phone)
    assert len(texts) == 2 and texts[1] == f"已确认 {aid}"  # the alarm, then the answer; no reminder
    assert h.notifier.counters["replies_ok"] == 1


def test_a_bare_1_acknowledges_every_alarm_of_the_last_message(h):
    ids = [h.raise_alarm(s) for s in SENSORS[:3]]
    h.run_until(T0 + 30 * SECOND)
    assert len(h.sent_to(OPERATOR.phone)) == 1  # merged
    h.notifier.on_mo(OPERATOR.phone, "1", datetime.fromtimestamp(h.now / 1000, UTC))
    assert all(h.book.get(a).acked for a in ids)


def test_one_reply_naming_the_hh_acknowledges_the_h_of_its_text_and_neither_escalates(h):
    # H and HH of one sensor, and H and HH of another, all in the operator's one text
    levels = ((Priority.HIGH, ConditionKind.H), (Priority.CRITICAL, ConditionKind.HH))
    h_a, hh_a = (h.raise_alarm(SENSORS[0], p, k) for p, k in levels)
    h_b, hh_b = (h.raise_alarm(SENSORS[1], p, k) for p, k in levels)
    h.run_until(T0 + 30 * SECOND)
    (text,) = h.sent_to(OPERATOR.phone)
    assert text.endswith(f"回复\u201c确认 {hh_a} {hh_b}\u201d确认本条全部报警")  # one per sensor

    h.notifier.on_mo(OPERATOR.phone, f"确认 {hh_a}", datetime.fromtimestamp(h.now / 1000, UTC))

    assert h.book.get(h_a).acked and h.book.get(hh_a).acked
    assert not h.book.get(h_b).acked and not h.book.get(hh_b).acked  # the other sensor: not named
    h.run_until(T0 + 30 * MINUTE, step_ms=5 * SECOND)
    lead = h.sent_to(LEAD.phone)  # B escalates at 2 min and is reminded every 10; A never is
    assert len(lead) == 3 and all(h_b in t and hh_b in t and h_a not in t and hh_a not in t for t in lead)
    # the operator: the one alarm text and the one answer, nothing twice
    assert h.sent_to(OPERATOR.phone) == [text, f"已确认 {hh_a}; 已确认 {h_a}(同一测点)"]


def test_a_reply_from_a_stranger_acknowledges_nothing_and_gets_no_answer(h):
    aid = h.raise_alarm(SENSORS[0])
    h.run_until(T0 + 30 * SECOND)
    h.notifier.on_mo("+8613900000000", f"1 {aid}", datetime.fromtimestamp(h.now / 1000, UTC))
    assert not h.book.get(aid).acked
    assert "+8613900000000" not in h.gateway.sent
    h.run_until(T0 + 3 * MINUTE)
    assert len(h.sent_to(LEAD.phone)) == 1  # the escalation goes on


def test_clearance_stops_the_chain_but_the_text_already_due_still_goes(h):
    aid = h.raise_alarm(SENSORS[0])
    change = ConditionChange(
        site=SITE, source=SENSORS[0], kind=ConditionKind.HH, active=False, time_ms=h.now + 2 * SECOND,
        priority=Priority.HIGH, level="HH", value=8.0, limit=9.0, message="恢复",
    )  # fmt: skip
    h.notifier.tick(h.now)  # queued, inside the merge window
    h.now += 2 * SECOND
    h.book.on_changes([change], now_ms=h.now)
    h.run_until(T0 + 30 * MINUTE)
    assert len(h.sent_to(OPERATOR.phone)) == 1  # it happened: the operator hears of it once
    assert h.sent_to(LEAD.phone) == []  # but nobody is escalated to, and there is no reminder
    assert h.book.get(aid).state is AlarmState.RTN_UNACK


def test_acknowledging_on_the_console_cancels_what_still_waits(h):
    aid = h.raise_alarm(SENSORS[0])
    h.notifier.tick(h.now)
    h.book.acknowledge(aid, "console-user", now_ms=h.now)
    h.run_until(T0 + 30 * MINUTE)
    assert h.gateway.sent == {}
    assert h.outbox.backlog()["waiting_notifications"] == 0


@pytest.mark.deep
def test_a_flood_of_500_alarms_becomes_a_few_merged_texts_that_count_them(h):
    for i in range(500):
        h.raise_alarm(f"FLOOD-{i:03d}")
        if i % 10 == 9:
            h.now += 100  # 500 alarms within a minute
    h.run_until(T0 + 10 * MINUTE)
    for phone in (OPERATOR.phone, LEAD.phone):
        texts = h.sent_to(phone)
        assert 1 <= len(texts) <= POLICY.max_messages, texts
        covered = sum(int(t.split("共 ")[1].split(" 条")[0]) for t in texts if "共 " in t)
        assert covered == 500


def test_a_limit_alarm_beside_a_stuck_detector_still_escalates_and_its_text_says_suspect(h):
    aid = h.raise_alarm(SENSORS[0], Priority.CRITICAL)
    stuck = ConditionChange(
        site=SITE, source=SENSORS[0], kind=ConditionKind.FAULT, active=True, time_ms=h.now + 1,
        priority=Priority.MEDIUM, level="stuck", message="仪表故障: 数值冻结(疑似卡死)",
    )  # fmt: skip
    h.book.on_changes([stuck], now_ms=h.now + 1)
    assert h.book.get(aid).state is AlarmState.UNACK
    h.run_until(T0 + 3 * MINUTE)
    (lead_text,) = h.sent_to(LEAD.phone)
    assert aid in lead_text and "仪表疑似故障: 数值冻结(疑似卡死)" in lead_text


def test_english_speakers_get_english_lines():
    from alerts.engine.lifecycle import Alarm

    alarm = Alarm(
        ("s", "sensor", "T1", "HH"), "A000001", priority=Priority.HIGH, level="HH", value=15.0, limit=14.8
    )
    assert english_line(alarm, None) == "T1 high-high alarm 15 >= 14.8"


class FlakyGateway(FakeSmsGateway):
    def __init__(self):
        super().__init__()
        self.down = True

    def send(self, to: str, text: str, key: str) -> SendResult:
        if self.down:
            raise GatewayUnavailable("connection refused")
        return super().send(to, text, key)


def test_a_gateway_down_holds_the_messages_shows_the_backlog_and_sends_each_once_when_back(tmp_path):
    h = Harness(tmp_path, FlakyGateway())
    h.raise_alarm(SENSORS[0])
    h.run_until(T0 + 2 * MINUTE)
    health = h.notifier.health()
    assert health["gateway_ok"] is False and health["unsent"] >= 1 and health["last_gateway_error"]
    h.gateway.down = False
    h.run_until(T0 + 2 * MINUTE + 32 * SECOND)  # backoff is capped at 30 s; one success frees the rest
    assert len(h.sent_to(OPERATOR.phone)) == 1 and len(h.sent_to(LEAD.phone)) == 1
    h.run_until(T0 + 8 * MINUTE)
    assert len(h.sent_to(OPERATOR.phone)) == 1 and len(h.sent_to(LEAD.phone)) == 1
    assert h.notifier.health()["unsent"] == 0


def test_what_sms_cannot_deliver_goes_to_the_second_channel_once(tmp_path):
    sms, robot = FakeSmsGateway(), FakeSmsGateway()
    sms.fail_with = MessageRejected("bad number")
    h = Harness(tmp_path, sms, fallbacks=[robot])
    h.raise_alarm(SENSORS[0])
    h.run_until(T0 + 5 * MINUTE)
    assert len(robot.sent[OPERATOR.phone]) == 1 and len(robot.sent[LEAD.phone]) == 1
    assert h.outbox.backlog().get("fallback_posted") == 2


def test_a_message_left_in_doubt_by_a_crash_is_sent_again_only_without_a_receipt(tmp_path):
    class CrashAfterSend(FakeSmsGateway):
        def send(self, to, text, key):
            super().send(to, text, key)
            raise KeyboardInterrupt  # the gateway took it; we die before recording that

    gw = CrashAfterSend()
    h = Harness(tmp_path, gw)
    h.raise_alarm(SENSORS[0])
    with pytest.raises(KeyboardInterrupt):
        h.run_until(T0 + MINUTE)
    assert h.outbox.backlog().get("sending") == 1
    h.restart(FakeSmsGateway())  # the restarted notifier, with a gateway that works
    h.run_until(T0 + 2 * MINUTE)
    assert len(h.sent_to(OPERATOR.phone)) == 1  # the grace passed with no receipt: sent again once
    assert h.notifier.counters["resent_in_doubt"] == 1


def test_a_robot_that_refuses_hands_each_message_to_the_next_tier_which_posts_it_once(tmp_path):
    sms, robot1, robot2 = FakeSmsGateway(), FakeSmsGateway(), FakeSmsGateway()
    sms.fail_with = MessageRejected("bad number")
    robot1.fail_with = MessageRejected("errcode 93000: invalid webhook url")
    h = Harness(tmp_path, sms, fallbacks=[robot1, robot2])
    h.raise_alarm(SENSORS[0])
    h.run_until(T0 + 5 * MINUTE)
    assert robot1.sent == {}
    assert len(robot2.sent[OPERATOR.phone]) == 1 and len(robot2.sent[LEAD.phone]) == 1
    backlog = h.outbox.backlog()
    assert backlog.get("fallback_failed") == 2 and backlog.get("fallback2_posted") == 2
    assert h.notifier.counters["fallback_failed"] == 2 and h.notifier.counters["fallback2_posted"] == 2
    row = h.outbox.messages(phone=OPERATOR.phone)[0]
    assert [(p["tier"], p["channel"], p["state"]) for p in row["channels"]] == [
        (1, "robot1", "failed"),
        (2, "robot2", "posted"),
    ]


def test_a_robot_that_is_down_hands_over_to_the_next_tier_after_the_failover_delay_each_posting_once(
    tmp_path,
):
    sms, robot1, robot2 = FlakyGateway(), FlakyGateway(), FakeSmsGateway()
    h = Harness(tmp_path, sms, fallbacks=[robot1, robot2])
    h.raise_alarm(SENSORS[0])
    h.run_until(T0 + 90 * SECOND)  # SMS down a minute: tier 1 tried, and is down too
    assert h.notifier.counters["fallback_retry"] >= 1 and robot2.sent == {}
    h.run_until(T0 + 2 * MINUTE + 10 * SECOND)  # tier 1 has not posted it a minute after it first tried
    assert len(robot2.sent[OPERATOR.phone]) == 1
    robot1.down = False  # tier 1 comes back and still posts what it owes, once
    h.run_until(T0 + 8 * MINUTE)
    assert len(robot1.sent[OPERATOR.phone]) == 1 and len(robot1.sent[LEAD.phone]) == 1
    assert len(robot2.sent[OPERATOR.phone]) == 1  # the lead's text found tier 1 up: tier 2 not needed
    assert LEAD.phone not in robot2.sent
    assert h.sent_to(OPERATOR.phone) == [] and h.notifier.health()["unsent"] == 2


def test_health_lists_the_channels_by_tier_and_names_tier_one_the_fallback(tmp_path):
    h = Harness(tmp_path, fallbacks=[FakeSmsGateway(), FakeSmsGateway()])
    health = h.notifier.health()
    assert health["gateway"] == "sms" and health["fallback"] == "robot1"
    assert health["channels"] == [
        {"name": "sms", "tier": 0},
        {"name": "robot1", "tier": 1},
        {"name": "robot2", "tier": 2},
    ]
    h.journal.close()
    h.outbox.close()
