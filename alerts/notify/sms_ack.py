"""Acknowledge alarms from an officer's SMS reply (issue 4 item 6).

The gateway hands over each mobile-originated (MO) message; SmsAcknowledger finds who sent it (by
phone, from the rosters), parses the reply (alerts/notify/sms_reply.py) and acknowledges each alarm through
the AlarmBook, so the journal records the ack under the person's name like a console ack. A phone
number is weak identity, so a person may only acknowledge alarms of sites they answer for: their own
site's roster, or a regulator roster whose jurisdiction covers the site. Every refusal is audited in
the journal and counted; nothing here raises for what an SMS contains.

One text may carry several alarms of one sensor (H and HH of a gas detector, merged by
alerts/notify/sms_plan.py). A reply naming any of them acknowledges the others of that sensor
which a text to the same phone carried with it, each journalled under the officer like the one
named; those already acknowledged, cleared and acknowledged, or hidden are left alone without a
word. Alarms of other sensors in the text are not touched (docs/design.md decision 22).
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from alerts.book.book import AlarmBook
from alerts.book.records import AuditEntry
from alerts.engine.lifecycle import Alarm, AlarmKey, InvalidTransition, UnknownAlarm
from alerts.notify.roster import E164_RE, Person, Roster, SiteLike, regulator_rosters
from alerts.notify.sms_render import sensor_of
from alerts.notify.sms_reply import ParseError, parse_reply, same_sensor_companions

logger = logging.getLogger(__name__)

ACTION = "acknowledge"
_AUDIT_TEXT_CHARS = 200  # what of an unparseable text the audit keeps


class Status(StrEnum):
    """What happened to one alarm number of a reply (or to the whole reply)."""

    OK = "ok"
    OK_ALREADY = "ok_already"  # acknowledged before: the officer's intent is met, not an error
    REFUSED = "refused"
    PARTIAL = "partial"  # whole reply only: some numbers acknowledged, some refused


class Reason(StrEnum):
    """Why a reply, or one alarm number in it, was refused (the audit `error` starts with it)."""

    UNKNOWN_NUMBER = "unknown_number"
    UNPARSEABLE = "unparseable"
    NO_RECENT = "no_recent"  # "1" alone, but we know of no message sent to this phone
    UNKNOWN_ALARM = "unknown_alarm"
    OTHER_SITE = "other_site"
    NOT_ACKABLE = "not_ackable"  # e.g. shelved or suppressed: the book refused the transition


@dataclass(frozen=True, slots=True)
class AlarmResult:
    """The outcome for one alarm number."""

    alarm_id: str
    status: Status
    reason: Reason | None = None
    site: str | None = None
    # not named in the reply: acknowledged because it is of the same sensor as this named alarm
    # and a text carried both
    with_alarm: str = ""


@dataclass(frozen=True, slots=True)
class AckOutcome:
    """The outcome of one MO message; `reply_text` is what the gateway may send back ("" = nothing)."""

    status: Status
    phone: str
    person: Person | None
    results: tuple[AlarmResult, ...] = ()
    reason: Reason | None = None
    reply_text: str = ""


PeopleByPhone = Callable[[str], Person | None]
MayAck = Callable[[Person, str], bool]
RecentFor = Callable[[str], list[str]]
#: (phone, alarm number) -> the alarm numbers the texts to that phone carried with it (the outbox's)
CarriedWith = Callable[[str, str], list[str]]


def normalize_phone(raw: str, country_code: str = "86") -> str | None:
    """E.164 from what gateways deliver: +8613800138000, 008613800138000, 8613800138000, 13800138000."""
    s = re.sub(r"[\s\-().]", "", unicodedata.normalize("NFKC", raw or ""))
    if s.startswith("00"):
        s = "+" + s[2:]
    elif not s.startswith("+"):
        # Chinese mobile numbers have 11 digits and start with 1; with the country code they are 13.
        if len(s) == 11 + len(country_code) and s.startswith(country_code):
            s = "+" + s
        elif len(s) == 11 and s.startswith("1"):
            s = f"+{country_code}{s}"
    return s if E164_RE.match(s) else None


def people_by_phone_from(rosters: Mapping[str, Roster]) -> PeopleByPhone:
    """Look a person up by E.164 phone across all rosters (first roster wins on a shared phone)."""
    by_phone: dict[str, Person] = {}
    for roster in rosters.values():
        for person in roster.people.values():
            by_phone.setdefault(person.phone, person)
    return by_phone.get


def roster_may_ack(sites: Mapping[str, SiteLike], rosters: Mapping[str, Roster]) -> MayAck:
    """Allow a person to ack alarms of site S if S's roster, or a regulator roster over S, lists them.

    Matched by phone, not person id: the phone is what the SMS proves, and one officer may appear
    under different ids in two rosters.
    """

    def may_ack(person: Person, site_id: str) -> bool:
        site = sites.get(site_id)
        if site is None:
            return False
        candidates = [rosters[site.roster]] if site.roster is not None and site.roster in rosters else []
        candidates += regulator_rosters(rosters.values(), site.city, site.district)
        return any(p.phone == person.phone for r in candidates for p in r.people.values())

    return may_ack


_TEXTS = {
    "zh": {
        Status.OK: "已确认 {id}",
        Status.OK_ALREADY: "{id} 此前已确认",
        "same_sensor": "已确认 {id}(同一测点)",
        Reason.UNKNOWN_ALARM: "无法确认 {id}: 无此报警",
        Reason.OTHER_SITE: "无法确认 {id}: 非本站报警",
        Reason.NOT_ACKABLE: "无法确认 {id}: 报警当前不可确认",
        Reason.UNPARSEABLE: "未能识别回复。请回复“1 报警编号”确认, 如“1 A000123”",
        Reason.NO_RECENT: "没有待确认的报警短信, 请回复“1 报警编号”",
        "sep": "; ",
    },
    "en": {
        Status.OK: "Acknowledged {id}",
        Status.OK_ALREADY: "{id} was already acknowledged",
        "same_sensor": "Acknowledged {id} (same sensor)",
        Reason.UNKNOWN_ALARM: "Cannot acknowledge {id}: no such alarm",
        Reason.OTHER_SITE: "Cannot acknowledge {id}: not an alarm of your site",
        Reason.NOT_ACKABLE: "Cannot acknowledge {id}: the alarm cannot be acknowledged now",
        Reason.UNPARSEABLE: 'Reply not understood. Reply "1 <alarm number>", e.g. "1 A000123"',
        Reason.NO_RECENT: 'No alarm message to acknowledge; reply "1 <alarm number>"',
        "sep": "; ",
    },
}


def _clause(r: AlarmResult) -> str | Status | Reason:
    """Which of `_TEXTS` answers for one result."""
    if r.with_alarm:
        return "same_sensor"
    return r.reason if r.status is Status.REFUSED and r.reason else r.status


def reply_text(results: tuple[AlarmResult, ...], language: str = "zh") -> str:
    """The short answer to send back, one clause per alarm number."""
    texts = _TEXTS.get(language, _TEXTS["zh"])
    parts = [texts[_clause(r)] for r in results]
    return str(texts["sep"]).join(str(p).format(id=r.alarm_id) for p, r in zip(parts, results, strict=True))


def _overall(results: tuple[AlarmResult, ...]) -> Status:
    statuses = {r.status for r in results}
    if len(statuses) == 1:
        return statuses.pop()
    if Status.REFUSED in statuses:
        return Status.PARTIAL
    return Status.OK


class SmsAcknowledger:
    """Turn MO replies into AlarmBook acknowledgements, auditing and counting every refusal."""

    def __init__(
        self,
        book: AlarmBook,
        people_by_phone: PeopleByPhone,
        may_ack: MayAck,
        recent_for: RecentFor | None = None,
        country_code: str = "86",
        carried_with: CarriedWith | None = None,
    ):
        self.book = book
        self._people_by_phone = people_by_phone
        self._may_ack = may_ack
        self._recent_for = recent_for
        self._carried_with = carried_with
        self._country_code = country_code
        #: "ok", "ok_already", "ok_same_sensor" (not named, acknowledged with) and "refused_<reason>"
        self.counters: Counter[str] = Counter()
        self._counters_lock = threading.Lock()

    def on_mo(self, from_number: str, text: str, received_at: datetime) -> AckOutcome:
        """Handle one reply: acknowledge what the sender may, refuse (audited) the rest."""
        if received_at.tzinfo is None:  # gateways stamp in UTC; a naive time must not shift by the host zone
            received_at = received_at.replace(tzinfo=UTC)
        now = round(received_at.timestamp() * 1000)
        text = text if isinstance(text, str) else ""  # a gateway may hand over None for an empty body
        phone = normalize_phone(from_number, self._country_code) or str(from_number)[:32]
        person = self._people_by_phone(phone)
        if person is None:
            # No reply text: answering strangers would cost money and confirm the number is live.
            self._refuse_message(now, f"unknown {phone}", Reason.UNKNOWN_NUMBER, phone, text)
            logger.warning("SMS reply from unknown number %s refused", phone)
            return AckOutcome(Status.REFUSED, phone, None, reason=Reason.UNKNOWN_NUMBER)
        user = f"{person.name} ({person.id}) via SMS"
        parsed = parse_reply(text)
        if isinstance(parsed, ParseError):
            self._refuse_message(now, user, Reason.UNPARSEABLE, phone, text, parsed.reason)
            return self._message_refused(phone, person, Reason.UNPARSEABLE)
        ids = parsed.alarm_ids
        if parsed.all_recent:
            ids = tuple(self._recent_for(phone)) if self._recent_for is not None else ()
            if not ids:
                self._refuse_message(now, user, Reason.NO_RECENT, phone, text)
                return self._message_refused(phone, person, Reason.NO_RECENT)
        comment = f"SMS reply: {text.strip()[:_AUDIT_TEXT_CHARS]}"
        results = tuple(self._ack_one(ref, person, user, comment, phone, now) for ref in ids)
        if not parsed.all_recent:  # a bare "1" already means every alarm of the last text
            results += self._ack_same_sensor(results, person, user, comment, phone, now)
        return AckOutcome(
            _overall(results), phone, person, results, reply_text=reply_text(results, person.language)
        )

    # ---- internals

    def _ack_one(
        self, ref: str, person: Person, user: str, comment: str, phone: str, now: int
    ) -> AlarmResult:
        try:
            alarm = self.book.get(ref)
        except UnknownAlarm as e:
            self._audit(now, user, ref, None, Reason.UNKNOWN_ALARM, str(e), comment, phone)
            return self._count(AlarmResult(ref, Status.REFUSED, Reason.UNKNOWN_ALARM))
        aid, site = alarm.alarm_id or ref, alarm.site
        if not self._may_ack(person, site):
            error = f"{person.name} ({person.id}) does not answer for site {site}"
            self._audit(now, user, aid, alarm.key, Reason.OTHER_SITE, error, comment, phone)
            logger.warning("SMS ack of %s (site %s) by %s refused: other site", aid, site, person.id)
            return self._count(AlarmResult(aid, Status.REFUSED, Reason.OTHER_SITE, site))
        if alarm.acked:
            return self._count(AlarmResult(aid, Status.OK_ALREADY, None, site))
        try:
            self.book.acknowledge(aid, user=user, comment=comment, now_ms=now)
        except UnknownAlarm:  # gone between get and acknowledge; the book audited it
            return self._count(AlarmResult(aid, Status.REFUSED, Reason.UNKNOWN_ALARM, site))
        except InvalidTransition:
            # the book audited the refusal; an ack that raced ours still meets the officer's intent
            if self.book.get(aid).acked:
                return self._count(AlarmResult(aid, Status.OK_ALREADY, None, site))
            return self._count(AlarmResult(aid, Status.REFUSED, Reason.NOT_ACKABLE, site))
        return self._count(AlarmResult(aid, Status.OK, None, site))

    def _ack_same_sensor(
        self, named: tuple[AlarmResult, ...], person: Person, user: str, comment: str, phone: str, now: int
    ) -> tuple[AlarmResult, ...]:
        """Acknowledge the other alarms of each named alarm's sensor that a text to `phone` carried."""
        if self._carried_with is None:
            return ()
        done = {r.alarm_id for r in named}
        out: list[AlarmResult] = []
        for r in named:
            if r.status not in (Status.OK, Status.OK_ALREADY):
                continue  # refused (another site, unknown, shelved): its companions stay as they are
            alarms: dict[str, Alarm] = {}
            for ref in dict.fromkeys([r.alarm_id, *self._carried_with(phone, r.alarm_id)]):
                try:
                    alarm = self.book.get(ref)
                except UnknownAlarm:  # its episode ended and another began: nothing left to acknowledge
                    continue
                alarms[alarm.alarm_id] = alarm
            sensors = {aid: sensor_of(a) for aid, a in alarms.items()}
            for aid in same_sensor_companions(r.alarm_id, sensors):
                if aid not in done:
                    done.add(aid)
                    result = self._ack_companion(alarms[aid], r.alarm_id, person, user, comment, now)
                    out += [result] if result is not None else []
        return tuple(out)

    def _ack_companion(
        self, alarm: Alarm, named: str, person: Person, user: str, comment: str, now: int
    ) -> AlarmResult | None:
        """Acknowledge one alarm the officer did not name; None when there is nothing to do or say.

        Already acknowledged (or cleared and acknowledged) and hidden alarms are left alone: the
        officer's intent is met or the alarm is not theirs to see now, and an error about an alarm
        they did not name would only confuse. The site check is the named alarm's (same sensor, same
        site) and is made again all the same: a roster may change between the two.
        """
        if alarm.acked or alarm.hidden or not self._may_ack(person, alarm.site):
            return None
        why = f"{comment} (same sensor as {named}, in one text)"
        try:
            self.book.acknowledge(alarm.alarm_id, user=user, comment=why, now_ms=now)
        except (UnknownAlarm, InvalidTransition):  # gone or acknowledged meanwhile; the book audited it
            return None
        self._bump("ok_same_sensor")
        return AlarmResult(alarm.alarm_id, Status.OK, None, alarm.site, with_alarm=named)

    def _count(self, result: AlarmResult) -> AlarmResult:
        name = f"refused_{result.reason}" if result.status is Status.REFUSED else str(result.status)
        self._bump(name)
        return result

    def _bump(self, name: str) -> None:
        with self._counters_lock:  # gateways may deliver MO messages on several threads
            self.counters[name] += 1

    def _message_refused(self, phone: str, person: Person, reason: Reason) -> AckOutcome:
        text = str(_TEXTS.get(person.language, _TEXTS["zh"])[reason])
        return AckOutcome(Status.REFUSED, phone, person, reason=reason, reply_text=text)

    def _refuse_message(
        self, now: int, user: str, reason: Reason, phone: str, text: str, detail: str = ""
    ) -> None:
        self._bump(f"refused_{reason}")
        error = f"{reason}: {detail}" if detail else str(reason)
        self._audit(now, user, "", None, reason, error, f"SMS reply: {text[:_AUDIT_TEXT_CHARS]}", phone)

    def _audit(
        self,
        now: int,
        user: str,
        alarm_id: str,
        key: AlarmKey | None,
        reason: Reason,
        error: str,
        comment: str,
        phone: str,
    ) -> None:
        """Write one refused acknowledgement to the journal's audit, like the book does for its own."""
        error = error if error.startswith(str(reason)) else f"{reason}: {error}"
        entry = AuditEntry(
            now, user, ACTION, "refused", alarm_id, key, comment, error, {"via": "sms", "phone": phone}
        )
        self.book.journal.add_audit(entry)
