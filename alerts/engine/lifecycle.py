"""The ISA-18.2 alarm state machine as pure step functions: one input in, the new alarm and its events out.

Inputs are condition changes from the engine (alerts/engine/conditions.py), operator commands and the clock.
Nothing here does I/O or keeps state: the book and its journal (alerts/book/) store what these functions
return, so the live service, a restart and a backtest all run the same transitions.

States (DOMAIN.md §6). The process state comes from two flags, `active` (the condition as last
reported) and `acked`:

    NORMAL     inactive, acknowledged        UNACK      active, unacknowledged
    ACK        active, acknowledged          RTN_UNACK  returned to normal before acknowledgement

Overlays hide an alarm from the operator and are independent flags, so removing one never undoes
another (a shelved alarm whose sensor then faults stays hidden until both are lifted). The state
shown is the strongest overlay: OUT_OF_SERVICE > SUPPRESSED > SHELVED. While hidden, condition
changes are tracked and recorded (AlarmConditionChanged) but not annunciated; when the last
overlay goes, an alarm still active is annunciated again as unacknowledged.

An *episode* runs from an AlarmRaised to its AlarmCleared and carries one alarm_id, so an SMS
reply can name it; a re-activation in RTN_UNACK stays in the same episode (AlarmRaised with
`reactivated=True`). Only AlarmRaised and AlarmReturnedToNormal become docs/contracts.md §3 events; every
other event is an audit and history record.

Errors: AlarmError ├── InvalidTransition (the state does not allow the input)
                   ├── InvalidCommand (the command itself is incomplete: no user, no reason)
                   └── UnknownAlarm (no alarm by that id; raised by the AlarmBook)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo

from alerts.engine.conditions import EVENT_TYPE, ConditionChange, ConditionKind, Priority
from sensors.warning_levels import colour_rank

#: (site, scope, source, kind name): one alarm point, as ConditionChange.key
AlarmKey = tuple[str, str, str, str]
#: makes the id of a new episode from its point and raise time
NewId = Callable[[AlarmKey, int], str]

DEFAULT_TZ = "Asia/Shanghai"  # docs/design.md decision 7: times shown to people are local
SYSTEM_USER = "system"
CHATTERING = "chattering"  # suppression reason set by chattering detection
INSTRUMENT_FAULT = "instrument fault"  # suppression reason used while the sensor itself is faulty

#: kinds that describe the process; FAULT and STALE describe the instrument and are never
#: suppressed because of an instrument fault (docs/design.md decision 6)
PROCESS_KINDS = frozenset(
    {
        ConditionKind.LL,
        ConditionKind.L,
        ConditionKind.H,
        ConditionKind.HH,
        ConditionKind.ROC,
        ConditionKind.EARLY_WARNING,
        ConditionKind.VOTE,
        ConditionKind.WARNING_LEVEL,
        ConditionKind.STATE,
        ConditionKind.MISMATCH,
    }
)
#: limit alarms: active means the reading itself is at or beyond a limit
LIMIT_KINDS = frozenset({ConditionKind.LL, ConditionKind.L, ConditionKind.H, ConditionKind.HH})


def fault_may_suppress(kind: ConditionKind, priority: Priority) -> bool:
    """Whether an instrument fault of its sensor may hide this alarm (fail safe, docs/design.md decision 6).

    A flat or pinned reading beyond a limit is the most dangerous reading there is: a gas detector
    held at 56 %LEL above HH looks "stuck" exactly when the release is steady. So a fault never
    hides a limit alarm of high or critical priority; that alarm stands, marked *suspect*, and
    escalates. A fault hides only what a faulty value could not be trusted to say on its own: rate
    of change, early warnings, and limit alarms of medium and low priority (votes already leave a
    faulty voter out).
    """
    return not (kind in LIMIT_KINDS and priority >= Priority.HIGH)


class AlarmError(Exception):
    """A domain error about alarms; the API maps these to 4xx answers."""


class InvalidTransition(AlarmError):
    """The alarm's state does not allow this input (e.g. acknowledging a NORMAL alarm)."""


class InvalidCommand(AlarmError):
    """The command is incomplete or out of bounds (no user, no reason, shelve too long)."""


class UnknownAlarm(AlarmError):
    """No current alarm has this id (it never existed, or its episode was superseded)."""


class AlarmState(StrEnum):
    """What the console shows: the process state, or the overlay hiding it."""

    NORMAL = "NORMAL"
    UNACK = "UNACK"
    ACK = "ACK"
    RTN_UNACK = "RTN_UNACK"
    SHELVED = "SHELVED"
    SUPPRESSED = "SUPPRESSED"
    OUT_OF_SERVICE = "OUT_OF_SERVICE"


#: states in which an alarm is on the operator's list (annunciated and not hidden)
ANNUNCIATED_STATES = frozenset({AlarmState.UNACK, AlarmState.ACK, AlarmState.RTN_UNACK})


class Overlay(StrEnum):
    """The strongest overlay hiding an alarm, or NONE."""

    NONE = "NONE"
    SHELVED = "SHELVED"
    SUPPRESSED = "SUPPRESSED"
    OUT_OF_SERVICE = "OUT_OF_SERVICE"


@dataclass(frozen=True, slots=True)
class ChatterPolicy:
    """When an alarm counts as chattering: `count` activations within `window_ms` (PAS: 3 per minute).

    A chattering alarm is suppressed by design until no activation came for `quiet_ms`.
    """

    count: int = 3
    window_ms: int = 60_000
    quiet_ms: int = 600_000


DEFAULT_CHATTER = ChatterPolicy()


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm point and its current episode; immutable, every step returns a new one."""

    key: AlarmKey
    alarm_id: str = ""  # the current (or last) episode; "" before the first raise
    # process state
    active: bool = False
    acked: bool = True
    acked_by: str = ""  # who acknowledged the current episode last, and when (processing time)
    acked_ms: int | None = None
    annunciated: bool = False  # an AlarmRaised went out for this episode and it has not cleared
    # what the condition said last
    priority: Priority = Priority.LOW
    level: str = ""
    value: float | None = None
    limit: float | None = None
    message: str = ""
    eta_ms: int | None = None
    eta_low_ms: int | None = None
    eta_high_ms: int | None = None
    # early warnings: chance, model and evidence (docs/contracts.md §3 `forecast`)
    forecast: Mapping[str, Any] | None = field(default=None, compare=False)
    # times: event time for the condition, processing time for `updated_ms`
    raised_ms: int | None = None
    # a tailings pond's colour rose within the episode: annunciated again then (its chain restarts)
    escalated_ms: int | None = None
    active_since_ms: int | None = None
    last_change_ms: int | None = None  # event time of the last condition change applied
    updated_ms: int | None = None
    # overlays
    shelved_until_ms: int | None = None
    shelved_by: str = ""
    shelve_reason: str = ""
    suppressions: tuple[str, ...] = ()  # reasons, e.g. ("instrument fault", "chattering")
    # a limit alarm a fault may not hide: the fault it stands beside (e.g. "stuck"), "" if none
    suspect: str = ""
    out_of_service: bool = False
    oos_by: str = ""
    oos_reason: str = ""
    # chattering
    chattering: bool = False
    activations: int = 0  # condition activations over the point's life
    recent_activations_ms: tuple[int, ...] = ()  # those within the chatter window
    last_activation_ms: int | None = None

    @property
    def site(self) -> str:
        return self.key[0]

    @property
    def scope(self) -> str:
        return self.key[1]

    @property
    def source(self) -> str:
        return self.key[2]

    @property
    def kind(self) -> ConditionKind:
        return ConditionKind[self.key[3]]

    @property
    def shelved(self) -> bool:
        return self.shelved_until_ms is not None

    @property
    def overlay(self) -> Overlay:
        if self.out_of_service:
            return Overlay.OUT_OF_SERVICE
        if self.suppressions:
            return Overlay.SUPPRESSED
        if self.shelved:
            return Overlay.SHELVED
        return Overlay.NONE

    @property
    def hidden(self) -> bool:
        return self.out_of_service or bool(self.suppressions) or self.shelved

    @property
    def process_state(self) -> AlarmState:
        if self.active:
            return AlarmState.ACK if self.acked else AlarmState.UNACK
        return AlarmState.NORMAL if self.acked else AlarmState.RTN_UNACK

    @property
    def state(self) -> AlarmState:
        overlay = self.overlay
        return self.process_state if overlay is Overlay.NONE else AlarmState(overlay.value)


# ---- events


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmEvent:
    """Something that happened to one alarm point; `time_ms` is UTC ms (event time for conditions)."""

    key: AlarmKey
    alarm_id: str
    time_ms: int

    _BASE: ClassVar[frozenset[str]] = frozenset({"key", "alarm_id", "time_ms"})

    @property
    def type(self) -> str:
        return type(self).__name__

    def details(self) -> dict[str, Any]:
        """The event's own fields as JSON-ready values (the history table's details column)."""
        out: dict[str, Any] = {}
        for name in _own_fields(type(self)):
            v = getattr(self, name)
            out[name] = v.name.lower() if isinstance(v, Priority) else _finite(v)
        return out

    def to_contract_event(self, site_tz: str = DEFAULT_TZ) -> dict[str, Any] | None:
        """The docs/contracts.md §3 event, or None: operator actions are audit records, not §3 events."""
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmRaised(AlarmEvent):
    """The alarm was annunciated: a new episode, or `reactivated` within the same one."""

    priority: Priority
    level: str
    value: float | None
    limit: float | None
    message: str
    eta_ms: int | None = None
    eta_low_ms: int | None = None
    eta_high_ms: int | None = None
    reactivated: bool = False
    escalated: bool = False  # a warning level's colour rose within the episode (WARNING_LEVEL)
    suspect: str = ""
    forecast: Mapping[str, Any] | None = field(default=None, compare=False)

    def to_contract_event(self, site_tz: str = DEFAULT_TZ) -> dict[str, Any] | None:
        kind = ConditionKind[self.key[3]]
        out = _contract_base(self, EVENT_TYPE[kind], site_tz)
        if self.suspect:
            out["suspect"] = self.suspect
        if self.escalated:
            out["escalated"] = True
        if kind is ConditionKind.EARLY_WARNING:
            out["eta"] = _iso_or_none(self.eta_ms, site_tz)
            out["eta_low"] = _iso_or_none(self.eta_low_ms, site_tz)
            out["eta_high"] = _iso_or_none(self.eta_high_ms, site_tz)
            if self.forecast:
                out["probability"] = self.forecast.get("probability")
                out["forecast"] = dict(self.forecast)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmReturnedToNormal(AlarmEvent):
    """The condition went inactive on an annunciated episode (it may still need acknowledging)."""

    priority: Priority
    level: str
    value: float | None
    limit: float | None
    message: str

    def to_contract_event(self, site_tz: str = DEFAULT_TZ) -> dict[str, Any] | None:
        return _contract_base(self, "return_to_normal", site_tz)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmCleared(AlarmEvent):
    """The episode ended: inactive and acknowledged (or ended unseen under an overlay)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmAcknowledged(AlarmEvent):
    """An operator acknowledged the alarm."""

    user: str
    comment: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmShelved(AlarmEvent):
    """An operator hid the alarm until `until_ms`, with a reason."""

    user: str
    until_ms: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmUnshelved(AlarmEvent):
    """The shelve ended, by an operator or because it `expired`."""

    user: str
    expired: bool = False
    comment: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmSuppressed(AlarmEvent):
    """The alarm was suppressed by design (instrument fault, degraded vote group, `chattering`)."""

    reason: str
    chattering: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmUnsuppressed(AlarmEvent):
    """One suppression reason was lifted."""

    reason: str
    chattering: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmMarkedSuspect(AlarmEvent):
    """The sensor of a limit alarm that a fault may not hide became faulty: the alarm stands, suspect."""

    fault: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmSuspectCleared(AlarmEvent):
    """The fault beside a suspect limit alarm ended."""

    fault: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmRemovedFromService(AlarmEvent):
    """The point was taken out of service (maintenance)."""

    user: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmReturnedToService(AlarmEvent):
    """The point was put back in service."""

    user: str
    comment: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmCommented(AlarmEvent):
    """An operator added a note."""

    user: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmUpdated(AlarmEvent):
    """An active alarm's priority, level, limit or forecast changed (escalation, new ETA)."""

    priority: Priority
    level: str
    value: float | None
    limit: float | None
    eta_ms: int | None = None
    eta_low_ms: int | None = None
    eta_high_ms: int | None = None
    forecast: Mapping[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmConditionChanged(AlarmEvent):
    """The condition changed while an overlay hid the alarm: recorded, not annunciated."""

    active: bool
    value: float | None
    hidden_by: str


#: every event class by its type name (the history table's `type` column)
EVENT_CLASSES: dict[str, type[AlarmEvent]] = {
    cls.__name__: cls
    for cls in (
        AlarmRaised,
        AlarmReturnedToNormal,
        AlarmCleared,
        AlarmAcknowledged,
        AlarmShelved,
        AlarmUnshelved,
        AlarmSuppressed,
        AlarmUnsuppressed,
        AlarmMarkedSuspect,
        AlarmSuspectCleared,
        AlarmRemovedFromService,
        AlarmReturnedToService,
        AlarmCommented,
        AlarmUpdated,
        AlarmConditionChanged,
    )
}
#: the event types that become docs/contracts.md §3 events (they override to_contract_event)
CONTRACT_EVENT_TYPES = frozenset(
    name for name, cls in EVENT_CLASSES.items() if cls.to_contract_event is not AlarmEvent.to_contract_event
)


def event_from_record(
    type_name: str, key: AlarmKey, alarm_id: str, time_ms: int, details: dict[str, Any]
) -> AlarmEvent:
    """Rebuild an event from its journaled form (type name plus `details()`); unknown keys are ignored."""
    cls = EVENT_CLASSES.get(type_name)
    if cls is None:
        raise ValueError(f"unknown alarm event type {type_name!r}")
    kw = {k: v for k, v in details.items() if k in _own_fields(cls)}
    if "priority" in kw:
        kw["priority"] = Priority[str(kw["priority"]).upper()]
    return cls(key=tuple(key), alarm_id=alarm_id, time_ms=time_ms, **kw)


_OWN_FIELDS: dict[type[AlarmEvent], tuple[str, ...]] = {}


def _own_fields(cls: type[AlarmEvent]) -> tuple[str, ...]:
    names = _OWN_FIELDS.get(cls)
    if names is None:
        names = _OWN_FIELDS[cls] = tuple(f.name for f in fields(cls) if f.name not in AlarmEvent._BASE)
    return names


_E = TypeVar("_E", bound=AlarmEvent)


def _ev(cls: type[_E], a: Alarm, t: int, **kw: Any) -> _E:
    return cls(key=a.key, alarm_id=a.alarm_id, time_ms=t, **kw)


@lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_iso(ms: int, tz: str = DEFAULT_TZ) -> str:
    """Render UTC ms as local ISO 8601 with offset; milliseconds only when there are some."""
    dt = datetime.fromtimestamp(ms // 1000, _zone(tz)).replace(microsecond=(ms % 1000) * 1000)
    return dt.isoformat(timespec="seconds" if ms % 1000 == 0 else "milliseconds")


def _iso_or_none(ms: int | None, tz: str) -> str | None:
    return None if ms is None else local_iso(ms, tz)


def _finite(v: Any) -> Any:
    # JSON has no NaN/inf; a missing reading is null in §3
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _contract_base(ev: AlarmRaised | AlarmReturnedToNormal, type_: str, tz: str) -> dict[str, Any]:
    site, _scope, source, _kind = ev.key
    return {
        "time": local_iso(ev.time_ms, tz),
        "site": site,
        "sensor": source,
        "type": type_,
        "level": ev.level,
        "priority": ev.priority.name.lower(),
        "value": _finite(ev.value),
        "limit": _finite(ev.limit),
        "alarm_id": ev.alarm_id,
        "message": ev.message,
    }


def contract_events(events: list[AlarmEvent], site_tz: str = DEFAULT_TZ) -> list[dict[str, Any]]:
    """The §3 events among `events`, in order (for MQTT out, the API and backtest output)."""
    out = []
    for ev in events:
        d = ev.to_contract_event(site_tz)
        if d is not None:
            out.append(d)
    return out


# ---- construction


def default_alarm_id(key: AlarmKey, time_ms: int) -> str:
    """A deterministic episode id (point + raise time), so a backtest gives the same ids every run."""
    return hashlib.sha1(f"{'/'.join(key)}@{time_ms}".encode()).hexdigest()[:12]


def new_alarm(key: AlarmKey, *, priority: Priority = Priority.LOW, level: str = "") -> Alarm:
    """A NORMAL point that has never been raised (e.g. to take it out of service)."""
    return Alarm(key=key, priority=priority, level=level)


def _raised(a: Alarm, t: int, reactivated: bool, escalated: bool = False) -> AlarmRaised:
    return _ev(
        AlarmRaised,
        a,
        t,
        priority=a.priority,
        level=a.level,
        value=a.value,
        limit=a.limit,
        message=a.message,
        eta_ms=a.eta_ms,
        eta_low_ms=a.eta_low_ms,
        eta_high_ms=a.eta_high_ms,
        reactivated=reactivated,
        escalated=escalated,
        suspect=a.suspect,
        forecast=a.forecast,
    )


def _annunciate(a: Alarm, t: int, new_id: NewId | None) -> tuple[Alarm, AlarmEvent]:
    """An active alarm shown to the operator: from RTN_UNACK the same episode, unacknowledged again;
    from NORMAL a new episode with its own id and raise time."""
    if a.annunciated:
        a = replace(a, acked=False, acked_by="", acked_ms=None)
        return a, _raised(a, t, reactivated=True)
    a = replace(
        a,
        alarm_id=(new_id or default_alarm_id)(a.key, t),
        acked=False,
        acked_by="",
        acked_ms=None,
        annunciated=True,
        raised_ms=t,
    )
    return a, _raised(a, t, reactivated=False)


def _reveal(a: Alarm, t: int, new_id: NewId | None) -> tuple[Alarm, list[AlarmEvent]]:
    """Annunciate what the last overlay hid: still active -> UNACK again, inactive -> NORMAL."""
    if a.hidden:
        return a, []
    if a.active:
        a, raised = _annunciate(a, t, new_id)
        return a, [raised]
    if a.annunciated:
        a = replace(a, acked=True, annunciated=False)
        return a, [_ev(AlarmCleared, a, t)]
    return a, []


def _require(text: str, what: str) -> None:
    if not text or not text.strip():
        raise InvalidCommand(f"{what} is required")


def _name(a: Alarm) -> str:
    return a.alarm_id or "/".join(a.key)


# ---- condition changes (from the engine)


def apply_condition(
    alarm: Alarm | None,
    change: ConditionChange,
    now_ms: int,
    *,
    new_id: NewId | None = None,
    policy: ChatterPolicy = DEFAULT_CHATTER,
) -> tuple[Alarm | None, list[AlarmEvent]]:
    """Apply one condition change at event time `change.time_ms`; `now_ms` is the processing clock.

    A shelve that ran out by `now_ms` is lifted first, so a late clock tick never hides a raise.
    Duplicates (same active flag) and changes older than the last one applied emit nothing: the
    engine may resend after a restart (docs/design.md decision 4).
    """
    if alarm is None:
        if not change.active:
            return None, []
        alarm = new_alarm(change.key, priority=change.priority, level=change.level)
    elif alarm.key != change.key:
        raise ValueError(f"change for {change.key} applied to alarm {alarm.key}")
    events: list[AlarmEvent] = []
    if alarm.shelved_until_ms is not None and now_ms >= alarm.shelved_until_ms:
        alarm, evs = expire_shelve(alarm, now_ms, new_id=new_id)
        events += evs
    t = change.time_ms
    if alarm.last_change_ms is not None and t < alarm.last_change_ms:
        return alarm, events
    if alarm.chattering:
        alarm, evs = _release_chattering(alarm, t, policy, new_id)
        events += evs

    if change.active == alarm.active:
        if change.active and _escalated(alarm, change):
            rose = colour_rank(change.level) > colour_rank(alarm.level)
            alarm = replace(
                alarm,
                priority=change.priority,
                level=change.level,
                value=change.value,
                limit=change.limit,
                message=change.message or alarm.message,
                eta_ms=change.eta_ms,
                eta_low_ms=change.eta_low_ms,
                eta_high_ms=change.eta_high_ms,
                forecast=change.forecast,
                last_change_ms=t,
                updated_ms=now_ms,
            )
            events.append(
                _ev(
                    AlarmUpdated,
                    alarm,
                    t,
                    priority=alarm.priority,
                    level=alarm.level,
                    value=alarm.value,
                    limit=alarm.limit,
                    eta_ms=alarm.eta_ms,
                    eta_low_ms=alarm.eta_low_ms,
                    eta_high_ms=alarm.eta_high_ms,
                    forecast=alarm.forecast,
                )
            )
            if rose and alarm.annunciated and not alarm.hidden:
                # a pond's colour rising (blue -> yellow -> orange -> red) is news: unacknowledged
                # again and notified again at the new colour (alerts/notify/escalation.py)
                alarm = replace(alarm, acked=False, acked_by="", acked_ms=None, escalated_ms=t)
                events.append(_raised(alarm, t, reactivated=True, escalated=True))
        return alarm, events

    if change.active:
        return _activate(alarm, change, now_ms, new_id, policy, events)
    return _deactivate(alarm, change, now_ms, events)


def _escalated(a: Alarm, c: ConditionChange) -> bool:
    # value alone does not count: a resend after restart must stay silent
    return (a.priority, a.level, a.limit, a.eta_ms, a.eta_low_ms, a.eta_high_ms) != (
        c.priority,
        c.level,
        c.limit,
        c.eta_ms,
        c.eta_low_ms,
        c.eta_high_ms,
    )


def _activate(
    a: Alarm,
    c: ConditionChange,
    now_ms: int,
    new_id: NewId | None,
    policy: ChatterPolicy,
    events: list[AlarmEvent],
) -> tuple[Alarm, list[AlarmEvent]]:
    t = c.time_ms
    recent = (*(x for x in a.recent_activations_ms if t - x < policy.window_ms), t)
    a = replace(
        a,
        active=True,
        priority=c.priority,
        level=c.level,
        value=c.value,
        limit=c.limit,
        message=c.message,
        eta_ms=c.eta_ms,
        eta_low_ms=c.eta_low_ms,
        eta_high_ms=c.eta_high_ms,
        forecast=c.forecast,
        active_since_ms=t,
        last_change_ms=t,
        updated_ms=now_ms,
        escalated_ms=None,
        activations=a.activations + 1,
        recent_activations_ms=recent,
        last_activation_ms=t,
    )
    if not a.chattering and len(recent) >= policy.count:
        # suppressed before annunciation, so the chattering activation itself stays silent
        a = replace(a, chattering=True, suppressions=(*a.suppressions, CHATTERING))
        events.append(_ev(AlarmSuppressed, a, t, reason=CHATTERING, chattering=True))
    if a.hidden:
        if a.annunciated:  # an RTN_UNACK episode under an overlay ends unseen; this is a new one
            a = replace(a, acked=True, annunciated=False)
            events.append(_ev(AlarmCleared, a, t))
        events.append(_ev(AlarmConditionChanged, a, t, active=True, value=a.value, hidden_by=a.overlay.value))
        return a, events
    a, raised = _annunciate(a, t, new_id)
    events.append(raised)
    return a, events


def _deactivate(
    a: Alarm, c: ConditionChange, now_ms: int, events: list[AlarmEvent]
) -> tuple[Alarm, list[AlarmEvent]]:
    t = c.time_ms
    a = replace(
        a,
        active=False,
        value=c.value,
        active_since_ms=None,
        last_change_ms=t,
        updated_ms=now_ms,
        eta_ms=None,
        eta_low_ms=None,
        eta_high_ms=None,
        forecast=None,
    )
    if a.hidden and not a.annunciated:
        events.append(
            _ev(AlarmConditionChanged, a, t, active=False, value=a.value, hidden_by=a.overlay.value)
        )
        return a, events
    events.append(
        _ev(
            AlarmReturnedToNormal,
            a,
            t,
            priority=a.priority,
            level=a.level,
            value=a.value,
            limit=a.limit,
            message=c.message or a.message,
        )
    )
    # ACK -> NORMAL; a hidden episode ends here too, since nobody can acknowledge what is hidden
    if a.acked or a.hidden:
        a = replace(a, acked=True, annunciated=False)
        events.append(_ev(AlarmCleared, a, t))
    return a, events


# ---- the clock


def _release_chattering(
    a: Alarm, now_ms: int, policy: ChatterPolicy, new_id: NewId | None
) -> tuple[Alarm, list[AlarmEvent]]:
    if not a.chattering or a.last_activation_ms is None or now_ms - a.last_activation_ms < policy.quiet_ms:
        return a, []
    a = replace(
        a,
        chattering=False,
        recent_activations_ms=(),
        updated_ms=now_ms,
        suppressions=tuple(r for r in a.suppressions if r != CHATTERING),
    )
    ev = _ev(AlarmUnsuppressed, a, now_ms, reason=CHATTERING, chattering=True)
    a, more = _reveal(a, now_ms, new_id)
    return a, [ev, *more]


def tick(
    alarm: Alarm, now_ms: int, *, new_id: NewId | None = None, policy: ChatterPolicy = DEFAULT_CHATTER
) -> tuple[Alarm, list[AlarmEvent]]:
    """Apply what the clock decides: an expired shelve ends, a chattering alarm quiet long enough is released.

    Never raises; nothing due means no events.
    """
    events: list[AlarmEvent] = []
    if alarm.shelved_until_ms is not None and now_ms >= alarm.shelved_until_ms:
        alarm, events = expire_shelve(alarm, now_ms, new_id=new_id)
    alarm, more = _release_chattering(alarm, now_ms, policy, new_id)
    return alarm, events + more


# ---- operator commands


def acknowledge(alarm: Alarm, user: str, now_ms: int, comment: str = "") -> tuple[Alarm, list[AlarmEvent]]:
    """Acknowledge: UNACK -> ACK, RTN_UNACK -> NORMAL (the episode clears)."""
    _require(user, "user")
    if alarm.hidden:
        raise InvalidTransition(f"alarm {_name(alarm)} is {alarm.state}: nothing to acknowledge")
    if alarm.acked:
        what = "already acknowledged" if alarm.active else "not in alarm"
        raise InvalidTransition(f"alarm {_name(alarm)} is {what}")
    ev: list[AlarmEvent] = [_ev(AlarmAcknowledged, alarm, now_ms, user=user, comment=comment)]
    if alarm.active:
        return replace(alarm, acked=True, acked_by=user, acked_ms=now_ms, updated_ms=now_ms), ev
    alarm = replace(alarm, acked=True, acked_by=user, acked_ms=now_ms, annunciated=False, updated_ms=now_ms)
    ev.append(_ev(AlarmCleared, alarm, now_ms))
    return alarm, ev


def shelve(
    alarm: Alarm, user: str, until_ms: int, reason: str, now_ms: int
) -> tuple[Alarm, list[AlarmEvent]]:
    """Shelve an annunciated alarm until `until_ms`; the reason is mandatory (消警 needs one)."""
    _require(user, "user")
    _require(reason, "reason")
    if until_ms <= now_ms:
        raise InvalidCommand("a shelve must end in the future")
    if alarm.hidden:
        raise InvalidTransition(f"alarm {_name(alarm)} is already {alarm.state}")
    if not alarm.annunciated:
        raise InvalidTransition(f"alarm {_name(alarm)} is not in alarm: nothing to shelve")
    alarm = replace(
        alarm, shelved_until_ms=until_ms, shelved_by=user, shelve_reason=reason, updated_ms=now_ms
    )
    return alarm, [_ev(AlarmShelved, alarm, now_ms, user=user, until_ms=until_ms, reason=reason)]


def _end_shelve(
    alarm: Alarm, user: str, now_ms: int, expired: bool, comment: str, new_id: NewId | None
) -> tuple[Alarm, list[AlarmEvent]]:
    alarm = replace(alarm, shelved_until_ms=None, shelved_by="", shelve_reason="", updated_ms=now_ms)
    ev = _ev(AlarmUnshelved, alarm, now_ms, user=user, expired=expired, comment=comment)
    alarm, more = _reveal(alarm, now_ms, new_id)
    return alarm, [ev, *more]


def unshelve(
    alarm: Alarm, user: str, now_ms: int, comment: str = "", *, new_id: NewId | None = None
) -> tuple[Alarm, list[AlarmEvent]]:
    """End a shelve early; an alarm still active is annunciated again."""
    _require(user, "user")
    if not alarm.shelved:
        raise InvalidTransition(f"alarm {_name(alarm)} is not shelved")
    return _end_shelve(alarm, user, now_ms, False, comment, new_id)


def expire_shelve(
    alarm: Alarm, now_ms: int, *, new_id: NewId | None = None
) -> tuple[Alarm, list[AlarmEvent]]:
    """End a shelve whose time ran out."""
    if alarm.shelved_until_ms is None:
        raise InvalidTransition(f"alarm {_name(alarm)} is not shelved")
    if now_ms < alarm.shelved_until_ms:
        raise InvalidTransition(f"alarm {_name(alarm)} is shelved until {alarm.shelved_until_ms}")
    return _end_shelve(alarm, SYSTEM_USER, now_ms, True, "", new_id)


def suppress(alarm: Alarm, reason: str, now_ms: int) -> tuple[Alarm, list[AlarmEvent]]:
    """Suppress by design for `reason`; reasons stack, each is lifted on its own."""
    _require(reason, "reason")
    if reason in alarm.suppressions:
        raise InvalidTransition(f"alarm {_name(alarm)} is already suppressed for {reason!r}")
    chattering = reason == CHATTERING
    alarm = replace(
        alarm,
        suppressions=(*alarm.suppressions, reason),
        chattering=alarm.chattering or chattering,
        updated_ms=now_ms,
    )
    return alarm, [_ev(AlarmSuppressed, alarm, now_ms, reason=reason, chattering=chattering)]


def unsuppress(
    alarm: Alarm, reason: str, now_ms: int, *, new_id: NewId | None = None
) -> tuple[Alarm, list[AlarmEvent]]:
    """Lift one suppression reason; with no overlay left, an active alarm is annunciated again."""
    if reason not in alarm.suppressions:
        raise InvalidTransition(f"alarm {_name(alarm)} is not suppressed for {reason!r}")
    chattering = reason == CHATTERING
    alarm = replace(
        alarm,
        suppressions=tuple(r for r in alarm.suppressions if r != reason),
        updated_ms=now_ms,
        chattering=alarm.chattering and not chattering,
        recent_activations_ms=() if chattering else alarm.recent_activations_ms,
    )
    ev = _ev(AlarmUnsuppressed, alarm, now_ms, reason=reason, chattering=chattering)
    alarm, more = _reveal(alarm, now_ms, new_id)
    return alarm, [ev, *more]


def mark_suspect(alarm: Alarm, fault: str, now_ms: int) -> tuple[Alarm, list[AlarmEvent]]:
    """Its sensor is faulty but this alarm may not be hidden: it stands, marked suspect (idempotent)."""
    _require(fault, "fault")
    if alarm.suspect == fault:
        return alarm, []
    alarm = replace(alarm, suspect=fault, updated_ms=now_ms)
    return alarm, [_ev(AlarmMarkedSuspect, alarm, now_ms, fault=fault)]


def clear_suspect(alarm: Alarm, now_ms: int) -> tuple[Alarm, list[AlarmEvent]]:
    """The fault beside a suspect alarm ended (idempotent)."""
    if not alarm.suspect:
        return alarm, []
    fault = alarm.suspect
    alarm = replace(alarm, suspect="", updated_ms=now_ms)
    return alarm, [_ev(AlarmSuspectCleared, alarm, now_ms, fault=fault)]


def remove_from_service(alarm: Alarm, user: str, reason: str, now_ms: int) -> tuple[Alarm, list[AlarmEvent]]:
    """Take the point out of service for maintenance; the reason is mandatory."""
    _require(user, "user")
    _require(reason, "reason")
    if alarm.out_of_service:
        raise InvalidTransition(f"alarm {_name(alarm)} is already out of service")
    alarm = replace(alarm, out_of_service=True, oos_by=user, oos_reason=reason, updated_ms=now_ms)
    return alarm, [_ev(AlarmRemovedFromService, alarm, now_ms, user=user, reason=reason)]


def return_to_service(
    alarm: Alarm, user: str, now_ms: int, comment: str = "", *, new_id: NewId | None = None
) -> tuple[Alarm, list[AlarmEvent]]:
    """Put the point back in service; an active condition is annunciated."""
    _require(user, "user")
    if not alarm.out_of_service:
        raise InvalidTransition(f"alarm {_name(alarm)} is not out of service")
    alarm = replace(alarm, out_of_service=False, oos_by="", oos_reason="", updated_ms=now_ms)
    ev = _ev(AlarmReturnedToService, alarm, now_ms, user=user, comment=comment)
    alarm, more = _reveal(alarm, now_ms, new_id)
    return alarm, [ev, *more]


def comment(alarm: Alarm, user: str, text: str, now_ms: int) -> tuple[Alarm, list[AlarmEvent]]:
    """Attach a note to the alarm in any state."""
    _require(user, "user")
    _require(text, "text")
    alarm = replace(alarm, updated_ms=now_ms)
    return alarm, [_ev(AlarmCommented, alarm, now_ms, user=user, text=text)]
