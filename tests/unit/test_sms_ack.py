"""SMS replies acknowledge alarms in a real journal, only for people who answer for the alarm's site."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.book.book import AlarmBook
from alerts.book.sqlite_journal import AlarmJournal
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from alerts.engine.lifecycle import AlarmRaised, AlarmState
from alerts.notify.roster import Role, find_duty
from alerts.notify.roster_yaml import load_rosters
from alerts.notify.sms_ack import (
    Reason,
    SmsAcknowledger,
    Status,
    normalize_phone,
    people_by_phone_from,
    roster_may_ack,
)
from sensors.registry import load_registry
from tests.support.profile import examples

ROOT = Path(__file__).resolve().parents[2]
ROSTERS = load_rosters(ROOT / "sensors/examples/rosters")
SITES = {s.id: s for s in load_registry(ROOT / "sensors/examples").sites}
JIANGHAI, DAYAWAN = "jianghai-tf-01", "dayawan-srs-01"
RAISED = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Jiangmen: the day shift is on
RAISED_MS = int(RAISED.timestamp() * 1000)
REPLIED = RAISED + timedelta(minutes=3)
DAYAWAN_OPERATOR = "+8613800138014"  # 罗军, dayawan-duty
JIANGHAI_REGULATOR = "+8613800138101"  # 欧阳明, 江门市江海区应急管理局
STRANGER = "+8613900000000"


def raise_alarm(book: AlarmBook, site: str, source: str, kind: ConditionKind = ConditionKind.HH) -> str:
    change = ConditionChange(
        site=site, source=source, kind=kind, active=True, time_ms=RAISED_MS,
        priority=Priority.HIGH, level=kind.name, value=9.5, limit=9.0, message=f"{source} {kind.name}",
    )  # fmt: skip
    (raised,) = [e for e in book.on_changes([change], now_ms=RAISED_MS) if isinstance(e, AlarmRaised)]
    return raised.alarm_id


def on_duty_operator(site: str):
    found = find_duty(SITES[site], ROSTERS, Role.OPERATOR, RAISED)
    assert found is not None
    return found[1][0]


@pytest.fixture
def book(tmp_path: Path):
    journal = AlarmJournal(tmp_path / "alarms.sqlite")
    yield AlarmBook(journal, clock=lambda: RAISED_MS)
    journal.close()


@pytest.fixture
def acker(book: AlarmBook) -> SmsAcknowledger:
    return SmsAcknowledger(book, people_by_phone_from(ROSTERS), roster_may_ack(SITES, ROSTERS))


def refused_audit(book: AlarmBook) -> list:
    return book.journal.audit_log(outcome="refused", newest_first=False)


def test_the_on_duty_officer_acknowledges_under_their_own_name(book, acker):
    aid = raise_alarm(book, JIANGHAI, "T101-LT")
    officer = on_duty_operator(JIANGHAI)

    out = acker.on_mo(officer.phone.removeprefix("+86"), f"1 {aid}", REPLIED)

    assert out.status is Status.OK and out.person == officer
    assert [(r.alarm_id, r.status) for r in out.results] == [(aid, Status.OK)]
    assert out.reply_text == f"已确认 {aid}"
    assert book.get(aid).acked
    user = f"{officer.name} ({officer.id}) via SMS"
    (acked,) = book.journal.history(alarm_id=aid, types=["AlarmAcknowledged"])
    assert acked.details["user"] == user
    assert acked.details["comment"] == f"SMS reply: 1 {aid}"
    (audit,) = book.journal.audit_log(alarm_id=aid)
    assert (audit.user, audit.action, audit.outcome) == (user, "acknowledge", "ok")
    assert audit.time_ms == int(REPLIED.timestamp() * 1000)
    assert acker.counters["ok"] == 1


def test_a_regulator_whose_jurisdiction_covers_the_site_may_acknowledge(book, acker):
    aid = raise_alarm(book, JIANGHAI, "T101-LT")

    out = acker.on_mo(JIANGHAI_REGULATOR, f"确认 {aid}", REPLIED)

    assert out.status is Status.OK
    assert book.get(aid).acked


def test_an_unknown_number_is_refused_audited_and_not_answered(book, acker):
    aid = raise_alarm(book, JIANGHAI, "T101-LT")

    out = acker.on_mo(STRANGER, f"1 {aid}", REPLIED)

    assert (out.status, out.reason, out.person, out.reply_text) == (
        Status.REFUSED,
        Reason.UNKNOWN_NUMBER,
        None,
        "",
    )
    assert not book.get(aid).acked
    (audit,) = refused_audit(book)
    assert audit.user == f"unknown {STRANGER}" and audit.error.startswith("unknown_number")
    assert audit.details["phone"] == STRANGER
    assert acker.counters["refused_unknown_number"] == 1


def test_a_person_of_another_site_is_refused_and_the_attempt_audited(book, acker):
    aid = raise_alarm(book, JIANGHAI, "T101-LT")

    out = acker.on_mo(DAYAWAN_OPERATOR, f"1 {aid}", REPLIED)

    assert out.status is Status.REFUSED
    assert [(r.status, r.reason) for r in out.results] == [(Status.REFUSED, Reason.OTHER_SITE)]
    assert out.reply_text == f"无法确认 {aid}: 非本站报警"
    assert not book.get(aid).acked
    (audit,) = refused_audit(book)
    assert audit.user == "罗军 (dy-luo-jun) via SMS" and audit.alarm_id == aid
    assert audit.key is not None and audit.key[0] == JIANGHAI
    assert audit.error.startswith("other_site") and JIANGHAI in audit.error
    assert acker.counters["refused_other_site"] == 1


def test_an_unknown_alarm_number_is_refused_and_audited(book, acker):
    officer = on_duty_operator(JIANGHAI)

    out = acker.on_mo(officer.phone, "1 A999999", REPLIED)

    assert [(r.alarm_id, r.reason) for r in out.results] == [("A999999", Reason.UNKNOWN_ALARM)]
    assert out.reply_text == "无法确认 A999999: 无此报警"
    (audit,) = refused_audit(book)
    assert audit.alarm_id == "A999999" and audit.error.startswith("unknown_alarm")


def test_an_already_acknowledged_alarm_is_ok_already_not_an_error(book, acker):
    aid = raise_alarm(book, JIANGHAI, "T101-LT")
    book.acknowledge(aid, user="console", now_ms=RAISED_MS + 1000)
    officer = on_duty_operator(JIANGHAI)

    out = acker.on_mo(officer.phone, f"1 {aid}", REPLIED)

    assert out.status is Status.OK_ALREADY
    assert out.reply_text == f"{aid} 此前已确认"
    assert refused_audit(book) == []
    assert acker.counters["ok_already"] == 1


def test_several_numbers_in_one_reply_each_get_their_own_outcome(book, acker):
    first = raise_alarm(book, JIANGHAI, "T101-LT")
    second = raise_alarm(book, JIANGHAI, "T102-LT")
    other = raise_alarm(book, DAYAWAN, "whatever")
    officer = on_duty_operator(JIANGHAI)

    out = acker.on_mo("86" + officer.phone[3:], f"1 {first}，{second}、{other}", REPLIED)

    assert out.status is Status.PARTIAL
    assert [r.status for r in out.results] == [Status.OK, Status.OK, Status.REFUSED]
    assert book.get(first).acked and book.get(second).acked and not book.get(other).acked
    assert out.reply_text == f"已确认 {first}; 已确认 {second}; 无法确认 {other}: 非本站报警"


def test_full_width_reply_and_number_are_understood(book, acker):
    aid = raise_alarm(book, JIANGHAI, "T101-LT")
    officer = on_duty_operator(JIANGHAI)
    fullwidth = str.maketrans("0123456789A+", "０１２３４５６７８９Ａ＋")

    out = acker.on_mo(officer.phone.translate(fullwidth), f"确认：{aid}".translate(fullwidth), REPLIED)

    assert out.status is Status.OK and book.get(aid).acked


def test_bare_one_acknowledges_the_alarms_of_the_last_message_sent_to_that_phone(book):
    first = raise_alarm(book, JIANGHAI, "T101-LT")
    second = raise_alarm(book, JIANGHAI, "T102-LT")
    officer = on_duty_operator(JIANGHAI)
    sent = {officer.phone: [first, second]}
    acker = SmsAcknowledger(
        book, people_by_phone_from(ROSTERS), roster_may_ack(SITES, ROSTERS), lambda p: sent.get(p, [])
    )

    out = acker.on_mo(officer.phone, "1", REPLIED)

    assert [r.alarm_id for r in out.results] == [first, second]
    assert book.get(first).acked and book.get(second).acked


def test_bare_one_without_a_known_last_message_is_refused(book, acker):
    officer = on_duty_operator(JIANGHAI)

    out = acker.on_mo(officer.phone, "确认", REPLIED)

    assert (out.status, out.reason) == (Status.REFUSED, Reason.NO_RECENT)
    assert refused_audit(book)[0].error.startswith("no_recent")


def test_an_unparseable_reply_is_refused_audited_and_answered_with_the_expected_form(book, acker):
    officer = on_duty_operator(JIANGHAI)

    out = acker.on_mo(officer.phone, "收到", REPLIED)

    assert (out.status, out.reason) == (Status.REFUSED, Reason.UNPARSEABLE)
    assert "1 A000123" in out.reply_text
    (audit,) = refused_audit(book)
    assert audit.error.startswith("unparseable") and audit.reason == "SMS reply: 收到"
    assert acker.counters["refused_unparseable"] == 1


def test_the_answer_is_in_english_for_a_person_whose_language_is_en(book, acker):
    aid = raise_alarm(book, JIANGHAI, "T101-LT")
    tan_yong = ROSTERS["jianghai-duty"].people["jh-tan-yong"]

    out = acker.on_mo(tan_yong.phone, f"1 {aid}", REPLIED)

    assert out.reply_text == f"Acknowledged {aid}"


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+8613800138000", "+8613800138000"),
        ("8613800138000", "+8613800138000"),
        ("13800138000", "+8613800138000"),
        ("008613800138000", "+8613800138000"),
        ("138 0013 8000", "+8613800138000"),
        ("+44 20 7946 0958", "+442079460958"),
        ("10086", None),
        ("", None),
    ],
)
def test_phone_numbers_are_normalised_to_e164_with_china_as_default(raw, e164):
    assert normalize_phone(raw) == e164


def test_roster_may_ack_is_own_site_or_regulator_jurisdiction_only():
    may_ack = roster_may_ack(SITES, ROSTERS)
    by_phone = people_by_phone_from(ROSTERS)
    operator, regulator = by_phone("+8613800138004"), by_phone(JIANGHAI_REGULATOR)
    assert operator is not None and regulator is not None
    assert may_ack(operator, JIANGHAI) and not may_ack(operator, DAYAWAN)
    assert may_ack(regulator, JIANGHAI) and not may_ack(regulator, DAYAWAN)
    assert not may_ack(operator, "no-such-site")


@settings(
    max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(phone=st.text(max_size=20), text=st.text(max_size=200))
def test_any_sender_and_text_never_raise(acker, phone, text):
    out = acker.on_mo(phone, text, REPLIED)
    assert out.status in set(Status)


def test_a_shelved_alarm_is_refused_as_not_ackable_and_the_book_audits_it(book, acker):
    aid = raise_alarm(book, JIANGHAI, "T101-LT")
    book.shelve(aid, user="console", duration_s=3600, reason="maintenance", now_ms=RAISED_MS + 1000)
    officer = on_duty_operator(JIANGHAI)

    out = acker.on_mo(officer.phone, f"1 {aid}", REPLIED)

    assert [(r.status, r.reason) for r in out.results] == [(Status.REFUSED, Reason.NOT_ACKABLE)]
    (audit,) = refused_audit(book)
    assert audit.user == f"{officer.name} ({officer.id}) via SMS" and audit.alarm_id == aid
    assert acker.counters["refused_not_ackable"] == 1


def test_a_naive_receive_time_is_taken_as_utc(book, acker):
    aid = raise_alarm(book, JIANGHAI, "T101-LT")

    acker.on_mo(on_duty_operator(JIANGHAI).phone, f"1 {aid}", REPLIED.replace(tzinfo=None))

    (audit,) = book.journal.audit_log(alarm_id=aid)
    assert audit.time_ms == int(REPLIED.timestamp() * 1000)


# ---- one text, several alarms of one sensor (issue 14 item 2)


def one_text_acker(book: AlarmBook, phone: str, carried: list[str]) -> SmsAcknowledger:
    """An acknowledger whose outbox says one text to `phone` carried `carried`."""

    def carried_with(p: str, alarm_id: str) -> list[str]:
        return sorted(carried) if p == phone and alarm_id in carried else []

    people, may_ack = people_by_phone_from(ROSTERS), roster_may_ack(SITES, ROSTERS)
    return SmsAcknowledger(book, people, may_ack, carried_with=carried_with)


def test_naming_the_hh_acknowledges_the_h_of_the_same_text_and_sensor_under_the_officer(book):
    h = raise_alarm(book, JIANGHAI, "T101-LT", ConditionKind.H)
    hh = raise_alarm(book, JIANGHAI, "T101-LT")
    other = raise_alarm(book, JIANGHAI, "T102-LT")  # another sensor in the same text
    officer = on_duty_operator(JIANGHAI)
    acker = one_text_acker(book, officer.phone, [h, hh, other])

    out = acker.on_mo(officer.phone, f"确认 {hh}", REPLIED)

    assert [(r.alarm_id, r.status, r.with_alarm) for r in out.results] == [
        (hh, Status.OK, ""),
        (h, Status.OK, hh),
    ]
    assert out.reply_text == f"已确认 {hh}; 已确认 {h}(同一测点)"
    assert book.get(h).acked and book.get(hh).acked and not book.get(other).acked
    (acked,) = book.journal.history(alarm_id=h, types=["AlarmAcknowledged"])
    user = f"{officer.name} ({officer.id}) via SMS"
    assert acked.details["user"] == user
    assert acked.details["comment"] == f"SMS reply: 确认 {hh} (same sensor as {hh}, in one text)"
    assert [(a.user, a.outcome) for a in book.journal.audit_log(alarm_id=h)] == [(user, "ok")]
    assert acker.counters["ok"] == 1 and acker.counters["ok_same_sensor"] == 1


def test_companions_already_acknowledged_cleared_or_shelved_are_left_alone_without_a_word(book):
    h, hh, roc, low = (
        raise_alarm(book, JIANGHAI, "T101-LT", kind)
        for kind in (ConditionKind.H, ConditionKind.HH, ConditionKind.ROC, ConditionKind.L)
    )
    book.acknowledge(h, user="console", now_ms=RAISED_MS + 1)
    book.shelve(roc, user="console", duration_s=3600, reason="maintenance", now_ms=RAISED_MS + 1)
    cleared = ConditionChange(
        site=JIANGHAI, source="T101-LT", kind=ConditionKind.L, active=False, time_ms=RAISED_MS + 2,
        priority=Priority.HIGH, level="L", value=9.5, limit=9.0, message="恢复",
    )  # fmt: skip
    book.on_changes([cleared], now_ms=RAISED_MS + 2)  # the L cleared, still unacknowledged
    officer = on_duty_operator(JIANGHAI)
    acker = one_text_acker(book, officer.phone, [h, hh, roc, low])

    out = acker.on_mo(officer.phone, f"1 {hh}", REPLIED)

    assert out.status is Status.OK and not refused_audit(book)
    # the cleared L still needed an acknowledgement (its text may still be due): it gets one
    assert out.reply_text == f"已确认 {hh}; 已确认 {low}(同一测点)"
    assert book.get(low).state is AlarmState.NORMAL and book.get(roc).state is AlarmState.SHELVED


def test_an_officer_of_another_site_acknowledges_no_alarm_of_the_text(book):
    h = raise_alarm(book, JIANGHAI, "T101-LT", ConditionKind.H)
    hh = raise_alarm(book, JIANGHAI, "T101-LT")
    acker = one_text_acker(book, DAYAWAN_OPERATOR, [h, hh])

    out = acker.on_mo(DAYAWAN_OPERATOR, f"确认 {hh}", REPLIED)

    assert [(r.alarm_id, r.reason) for r in out.results] == [(hh, Reason.OTHER_SITE)]
    assert not book.get(h).acked and not book.get(hh).acked
