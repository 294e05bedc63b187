"""Request and response models of the REST API (pydantic); conversion from domain objects lives here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from alerts.book.records import HistoryEntry
from alerts.engine.lifecycle import Alarm, local_iso
from alerts.metrics import EemuaReport

PriorityName = Literal["low", "medium", "high", "critical"]


def _not_blank(v: str, info: ValidationInfo) -> str:
    if not v.strip():
        raise ValueError(f"{info.field_name} must not be blank")
    return v


#: free text a write must carry (a reason, a comment): whitespace alone is refused by name
NonBlank = Annotated[str, AfterValidator(_not_blank)]


def _iso(ms: int | None, tz: str) -> str | None:
    return None if ms is None else local_iso(ms, tz)


class _Command(BaseModel):
    """A write; who does it is the logged-in user, never a field of the body."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AckRequest(_Command):
    comment: str = Field("", max_length=500)


AlarmNumber = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]


class SilenceRequest(_Command):
    """The alarms a console silenced (its horn only: they stay unacknowledged) and which console."""

    alarm_ids: list[AlarmNumber] = Field(min_length=1, max_length=500)
    console: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class CommentRequest(_Command):
    text: NonBlank = Field(min_length=1, max_length=2000)


class ReasonRequest(_Command):
    """Out of service: why (mandatory, it is a managed suppression)."""

    reason: NonBlank = Field(min_length=1, max_length=500)


class AuditEntryPublic(BaseModel):
    time: str
    time_ms: int
    user: str
    action: str
    outcome: str
    alarm_id: str
    site: str | None
    source: str | None
    reason: str
    error: str
    details: dict[str, Any] = {}  # what else the action recorded (a disposal's action, a console)


class AuditPublic(BaseModel):
    data: list[AuditEntryPublic]
    count: int


class ShelveRequest(_Command):
    reason: NonBlank = Field(min_length=1, max_length=500)
    minutes: float = Field(gt=0, le=24 * 60)


class AlarmPublic(BaseModel):
    alarm_id: str
    site: str
    scope: str
    source: str
    kind: str
    state: str
    priority: PriorityName
    level: str
    active: bool
    acked: bool
    value: float | None
    limit: float | None
    message: str
    raised: str | None
    raised_ms: int | None
    updated_ms: int | None
    shelved_until: str | None
    shelved_by: str
    shelve_reason: str
    suppressions: list[str]
    suspect: str  # a limit alarm standing beside an instrument fault of its sensor: the fault, else ""
    out_of_service: bool
    eta: str | None
    # for the operator's list: where, who acknowledged, when it returned, and the value now
    site_name: str = ""
    city: str | None = None
    district: str | None = None
    acked_by: str = ""
    acked_at: str | None = None
    acked_ms: int | None = None
    returned: str | None = None  # when the condition returned to normal (an inactive, listed alarm)
    returned_ms: int | None = None
    current_value: float | None = None  # the sensor's latest reading (value is the one at the raise)

    @classmethod
    def from_alarm(cls, a: Alarm, tz: str, site: Any = None, current: float | None = None) -> AlarmPublic:
        returned_ms = a.last_change_ms if not a.active and a.annunciated else None
        return cls(
            site_name=getattr(site, "name", "") or "",
            city=getattr(site, "city", None),
            district=getattr(site, "district", None),
            acked_by=a.acked_by,
            acked_at=_iso(a.acked_ms, tz),
            acked_ms=a.acked_ms,
            returned=_iso(returned_ms, tz),
            returned_ms=returned_ms,
            current_value=current,
            alarm_id=a.alarm_id,
            site=a.site,
            scope=a.scope,
            source=a.source,
            kind=a.key[3],
            state=a.state.value,
            priority=a.priority.name.lower(),  # type: ignore[arg-type]
            level=a.level,
            active=a.active,
            acked=a.acked,
            value=a.value,
            limit=a.limit,
            message=a.message,
            raised=_iso(a.raised_ms, tz),
            raised_ms=a.raised_ms,
            updated_ms=a.updated_ms,
            shelved_until=_iso(a.shelved_until_ms, tz),
            shelved_by=a.shelved_by,
            shelve_reason=a.shelve_reason,
            suppressions=list(a.suppressions),
            suspect=a.suspect,
            out_of_service=a.out_of_service,
            eta=_iso(a.eta_ms, tz),
        )


class AlarmsPublic(BaseModel):
    data: list[AlarmPublic]
    count: int


class HistoryEntryPublic(BaseModel):
    seq: int
    time: str
    time_ms: int
    type: str
    alarm_id: str
    details: dict[str, Any]
    event: dict[str, Any] | None  # the docs/contracts.md §3 event, for the types that are one

    @classmethod
    def from_entry(cls, h: HistoryEntry, tz: str) -> HistoryEntryPublic:
        return cls(
            seq=h.seq,
            time=local_iso(h.time_ms, tz),
            time_ms=h.time_ms,
            type=h.type,
            alarm_id=h.alarm_id,
            details=h.details,
            event=h.to_event().to_contract_event(tz),
        )


class HistoryPublic(BaseModel):
    data: list[HistoryEntryPublic]
    count: int


class BadActorPublic(BaseModel):
    site: str
    scope: str
    source: str
    kind: str
    count: int
    share: float


class AlarmMetricsPublic(BaseModel):
    """EEMUA 191 / ISA-18.2 figures; targets in DOMAIN.md §6."""

    start_ms: int
    end_ms: int
    raises: int
    average_per_10min: float
    peak_per_10min: int
    peak_10min_start_ms: int | None
    flood_share: dict[str, float]
    bad_actors: list[BadActorPublic]
    top10_share: float
    standing: int
    chattering: int
    priorities: dict[str, float]

    @classmethod
    def from_report(cls, r: EemuaReport) -> AlarmMetricsPublic:
        return cls(
            start_ms=r.start_ms,
            end_ms=r.end_ms,
            raises=r.raises,
            average_per_10min=r.rate.average,
            peak_per_10min=r.rate.peak,
            peak_10min_start_ms=r.rate.peak_start_ms,
            flood_share={str(k): v for k, v in r.flood_share.items()},
            bad_actors=[
                BadActorPublic(site=k[0], scope=k[1], source=k[2], kind=k[3], count=b.count, share=b.share)
                for b in r.bad_actors
                if isinstance(k := b.key, tuple)
            ],
            top10_share=r.top10_share,
            standing=len(r.standing),
            chattering=r.chattering,
            priorities=r.priorities,
        )


class FloodPublic(BaseModel):
    """A site (its console) in alarm flood: more than 10 alarms raised within 10 minutes."""

    site: str
    since: str  # local ISO 8601 with offset
    alarms_10min: int


class FloodsPublic(BaseModel):
    data: list[FloodPublic]
    count: int
