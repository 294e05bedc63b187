"""Who is told about an alarm, and when: routing by type and priority, and the escalation chain.

Pure: given an alarm (alerts/lifecycle.Alarm), its chain and the time, `due_notifications` lists
the notifications that should exist by now, each with an idempotency key (alarm episode, step,
reminder, recipient; docs/design.md decision 4). The durable outbox stores each key once, so asking
again after a restart or on every clock tick never doubles a message. The chain stops at
acknowledgement or clearance (return to normal), and while the alarm is shelved, suppressed or
out of service. After a long outage only the latest reminder is listed, not every missed one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from alerts.engine.conditions import EVENT_TYPE, ConditionKind, Priority
from alerts.engine.lifecycle import Alarm

MINUTE_MS = 60_000

OPERATOR = "operator"  # 操作负责人 / the operator on shift
TECHNICAL_LEAD = "technical_lead"  # 技术负责人
PRINCIPAL = "principal"  # 主要负责人
REGULATOR_DUTY = "regulator_duty"  # the regulator's duty officer (district, then city)


class Recipient(Protocol):
    """A person who can be texted (the roster's Person fits)."""

    @property
    def id(self) -> str: ...

    @property
    def phone(self) -> str: ...


#: who is on duty: (site, role, at_ms) -> people (the roster answers; empty when nobody is)
DutyLookup = Callable[[str, str, int], Sequence[Recipient]]


@dataclass(frozen=True, slots=True)
class Step:
    """Notify `role` when the alarm has been unacknowledged for `after_min` minutes."""

    role: str
    after_min: float


@dataclass(frozen=True, slots=True)
class Chain:
    """An escalation chain; `reminder_min` repeats the newest step's message while unacknowledged."""

    steps: tuple[Step, ...]
    reminder_min: float | None = None

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a chain needs at least one step")
        times = [s.after_min for s in self.steps]
        if times != sorted(times) or times[0] < 0:
            raise ValueError(f"chain steps must start at >= 0 and not go back in time: {times}")
        if self.reminder_min is not None and self.reminder_min <= 0:
            raise ValueError("reminder_min must be positive")


#: Defaults after the example in issue 4 (operator -> technical lead after 5 min -> principal ->
#: regulator) and DOMAIN §5 (three responsible persons per major hazard source).
DEFAULT_CHAINS: Mapping[tuple[str, Priority], Chain] = {
    ("alarm", Priority.CRITICAL): Chain(
        (Step(OPERATOR, 0), Step(TECHNICAL_LEAD, 5), Step(PRINCIPAL, 15), Step(REGULATOR_DUTY, 30)),
        reminder_min=5,
    ),
    ("alarm", Priority.HIGH): Chain(
        (Step(OPERATOR, 0), Step(TECHNICAL_LEAD, 10), Step(PRINCIPAL, 30)), reminder_min=10
    ),
    ("alarm", Priority.MEDIUM): Chain((Step(OPERATOR, 0), Step(TECHNICAL_LEAD, 30)), reminder_min=30),
    ("alarm", Priority.LOW): Chain((Step(OPERATOR, 0),)),
    # a forecast leaves time: the technical lead judges it; the principal if nobody looks
    ("early_warning", Priority.CRITICAL): Chain(
        (Step(OPERATOR, 0), Step(TECHNICAL_LEAD, 0), Step(PRINCIPAL, 15)), reminder_min=15
    ),
    ("early_warning", Priority.HIGH): Chain((Step(OPERATOR, 0), Step(TECHNICAL_LEAD, 15)), reminder_min=30),
    ("early_warning", Priority.MEDIUM): Chain((Step(OPERATOR, 0), Step(TECHNICAL_LEAD, 60))),
    ("early_warning", Priority.LOW): Chain((Step(OPERATOR, 0),)),
    # instruments and communications: the operator, then whoever maintains them
    ("fault", Priority.HIGH): Chain((Step(OPERATOR, 0), Step(TECHNICAL_LEAD, 30)), reminder_min=60),
    ("fault", Priority.MEDIUM): Chain((Step(OPERATOR, 0), Step(TECHNICAL_LEAD, 60))),
    ("stale", Priority.HIGH): Chain((Step(OPERATOR, 0), Step(TECHNICAL_LEAD, 15)), reminder_min=60),
    ("stale", Priority.MEDIUM): Chain((Step(OPERATOR, 0), Step(TECHNICAL_LEAD, 60))),
}


@dataclass(frozen=True, slots=True)
class Routing:
    """Chains by (event type, priority), with per-site overrides; a missing entry means no SMS.

    A site's entry of None switches that kind of alarm off for the site.
    """

    chains: Mapping[tuple[str, Priority], Chain] = field(default_factory=lambda: dict(DEFAULT_CHAINS))
    sites: Mapping[str, Mapping[tuple[str, Priority], Chain | None]] = field(default_factory=dict)

    def chain_for(self, alarm: Alarm) -> Chain | None:
        kind = ConditionKind[alarm.key[3]]
        key = (EVENT_TYPE[kind], alarm.priority)
        site = self.sites.get(alarm.site)
        if site is not None and key in site:
            return site[key]
        return self.chains.get(key)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message that should exist: to `recipient` about `alarm_id`, at escalation `step`."""

    key: str  # idempotency key: alarm episode / step / reminder / recipient
    alarm_id: str
    site: str
    step: int
    reminder: int  # 0 = the step's first message
    role: str
    recipient_id: str
    phone: str
    due_ms: int
    language: str = "zh"  # the recipient's (zh or en)


def is_open(alarm: Alarm) -> bool:
    """Whether the chain still runs: raised, unacknowledged, still active and shown to people."""
    return (
        alarm.annunciated
        and alarm.active
        and not alarm.acked
        and alarm.raised_ms is not None
        and not alarm.hidden
    )


def chain_start(alarm: Alarm) -> int:
    """When the chain's clock started: the raise, or the last colour rise of a pond's warning."""
    return int(alarm.escalated_ms or alarm.raised_ms or 0)


def episode_key(alarm: Alarm) -> str:
    """The first part of a notification's key: the episode, and for a pond's warning level also
    its colour, so a rise to a new colour notifies again and a repeat of one colour does not."""
    if alarm.key[3] == ConditionKind.WARNING_LEVEL.name:
        return f"{alarm.alarm_id}@{alarm.level}"
    return alarm.alarm_id


def due_notifications(alarm: Alarm, chain: Chain, now_ms: int, duty: DutyLookup) -> list[Notification]:
    """The notifications that should exist for `alarm` at `now_ms` (keys make repeats harmless).

    Every step whose time has come is listed, addressed to whoever is on duty in that role *now*
    (a step due before a handover goes to the incoming shift). Reminders go to the newest step
    reached; only the latest reminder number is listed.
    """
    if not is_open(alarm):
        return []
    raised = chain_start(alarm)
    episode = episode_key(alarm)
    out: list[Notification] = []
    reached = [(i, s) for i, s in enumerate(chain.steps) if now_ms >= raised + s.after_min * MINUTE_MS]
    for i, step in reached:
        due = raised + int(step.after_min * MINUTE_MS)
        reminder = 0
        if chain.reminder_min is not None and i == reached[-1][0]:
            reminder = int((now_ms - due) // (chain.reminder_min * MINUTE_MS))
        for person in duty(alarm.site, step.role, now_ms):
            for r in sorted({0, reminder}):
                at = due + int(r * (chain.reminder_min or 0) * MINUTE_MS)
                out.append(
                    Notification(
                        key=f"{episode}/s{i}/r{r}/{person.id}",
                        alarm_id=alarm.alarm_id,
                        site=alarm.site,
                        step=i,
                        reminder=r,
                        role=step.role,
                        recipient_id=person.id,
                        phone=person.phone,
                        due_ms=at,
                        language=getattr(person, "language", "zh"),
                    )
                )
    return out


def next_due_ms(alarm: Alarm, chain: Chain, now_ms: int) -> int | None:
    """When this alarm's chain next needs attention (a step or a reminder), for the scheduler."""
    if not is_open(alarm):
        return None
    raised = chain_start(alarm)
    later = [raised + int(s.after_min * MINUTE_MS) for s in chain.steps]
    upcoming = [t for t in later if t > now_ms]
    if chain.reminder_min is not None:
        newest = max((t for t in later if t <= now_ms), default=None)
        if newest is not None:
            every = int(chain.reminder_min * MINUTE_MS)
            upcoming.append(newest + ((now_ms - newest) // every + 1) * every)
    return min(upcoming, default=None)
