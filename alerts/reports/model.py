"""The report model: what a daily or shift report says about a site or a jurisdiction, computed
from the journal's rows, the disposals, the audit trail and the SMS outbox's messages.

Pure: no I/O (alerts/reports/collect.py reads the stores). The figures reuse the functions the
API uses, so a report and the API agree by construction: EEMUA 191 figures from
alerts/metrics.py `eemua_report` (GET /api/v1/alarm-metrics), disposal figures from
alerts/book/disposals.py `disposal_figures` (GET /api/v1/disposals/summary), and the KPIs of
GET /api/v1/kpis are this module's `summary`.

Judged "as of" the report's generation (`as_of_ms`): disposal states, early-warning outcomes and
ongoing outages use what the journal knew then, so a report kept for download does not change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from alerts.book.disposals import Disposal, DisposalFigures, disposal_figures
from alerts.book.records import AuditEntry
from alerts.metrics import PRIORITY_NAMES, EemuaReport, HistoryLike, eemua_report
from alerts.reports.levels import LEVELS, Level
from alerts.reports.periods import Period
from sensors.model import Site

LIMIT_KINDS = {"LL": -2, "L": -1, "H": 1, "HH": 2}  # direction and severity of a limit alarm
CROSS_GRACE_MS = 10 * 60_000  # a crossing up to 10 min after the warning's return still counts
OUTCOMES = ("crossed", "cleared", "open")
SMS_PENDING = ("ready", "sending")


@dataclass(frozen=True, slots=True)
class ReportScope:
    """Which sites a report covers: one site, or a province, city, district (of a city) or park."""

    level: Level
    name: str | None = None  # the site id or the place's name; None for `all`
    city: str | None = None  # a district's city (district names repeat across cities)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}")
        if self.level == "all":
            if self.name or self.city:
                raise ValueError("an all-sites report takes no name or city")
        elif not self.name or not self.name.strip():
            raise ValueError(f"a {self.level} report needs the {self.level}'s name")
        if self.city is not None and self.level != "district":
            raise ValueError("only a district report takes a city")

    def covers(self, site: Site) -> bool:
        """Whether the site lies in this scope (a site without that place lies in none)."""
        if self.level == "all":
            return True
        if self.level == "site":
            return site.id == self.name
        if self.level == "district" and self.city is not None and site.city != self.city:
            return False
        return getattr(site, self.level) == self.name

    @property
    def key(self) -> str:
        """A stable text for ids and file names: level, city and name."""
        return "|".join((self.level, self.city or "", self.name or ""))

    @property
    def label(self) -> str:
        if self.level == "all":
            return "全部站点"
        if self.level == "district" and self.city:
            return f"{self.city}{self.name}"
        return str(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "name": self.name, "city": self.city}


def sites_in(scope: ReportScope, sites: Iterable[Site]) -> list[Site]:
    """The registry's sites in the scope, in registry order."""
    return [s for s in sites if scope.covers(s)]


@dataclass(frozen=True, slots=True)
class EarlyWarningOutcome:
    """One early warning raised in the period, and what became of it by `as_of`."""

    alarm_id: str
    site: str
    source: str
    level: str  # the limit forecast to be crossed (HH, H, L, LL) or FAILURE
    priority: str
    raised_ms: int
    outcome: str  # crossed | cleared | open
    crossed_ms: int | None  # the limit alarm that followed
    crossed_level: str | None
    ended_ms: int | None  # when the warning returned to normal


@dataclass(frozen=True, slots=True)
class Outage:
    """A stale-data or communication-loss alarm (kind STALE) that overlapped the period."""

    alarm_id: str
    site: str
    scope: str  # sensor (one sensor silent) or device (a gateway silent: communication loss)
    source: str
    started_ms: int
    ended_ms: int | None  # None: still silent at as_of
    minutes: float  # within the period


@dataclass(frozen=True, slots=True)
class SmsFigures:
    """Alarm texts made in the period about the scope's sites only, by their state at as_of."""

    messages: int
    sent: int
    delivered: int
    failed: int
    pending: int  # ready or sending


@dataclass(frozen=True, slots=True)
class SiteRow:
    """One site's line in a jurisdiction report."""

    site: str
    name: str
    district: str | None
    city: str | None
    raises: int
    by_priority: dict[str, int]
    flood_share: float
    early_warnings: int
    crossed: int
    outages: int
    outage_minutes: float
    disposals: DisposalFigures


@dataclass(frozen=True, slots=True)
class Report:
    """Everything a report says; renderers (CSV, XLSX, PDF) only lay it out."""

    scope: ReportScope
    period: Period
    as_of_ms: int
    site_count: int
    by_priority: dict[str, int]  # raises in the period per priority
    by_kind: dict[str, int]  # raises per alarm kind (HH, STALE, EARLY_WARNING, ...)
    eemua: EemuaReport
    early_warnings: list[EarlyWarningOutcome]
    outages: list[Outage]
    disposals: DisposalFigures
    sms: SmsFigures | None  # None when SMS is off
    operator_actions: dict[str, int]  # audit rows done (outcome ok) per action
    refused_actions: int
    sites: list[SiteRow] = field(default_factory=list)


# ---- the parts


class JournalRow(HistoryLike, Protocol):
    """A history row with its alarm number (alerts.book.records.HistoryEntry fits)."""

    @property
    def alarm_id(self) -> str: ...


def early_warning_outcomes(
    rows: Sequence[JournalRow], sites: set[str], start_ms: int, end_ms: int, as_of_ms: int
) -> list[EarlyWarningOutcome]:
    """Each early warning raised in [start, end) (its first raise there), and its outcome by `as_of`:
    crossed (a limit alarm of its sensor, in its direction and at least as severe as forecast, was
    raised after it and before its return plus CROSS_GRACE_MS), cleared (it returned without one), or
    open. A FAILURE forecast counts any limit alarm of its sensor. Rows must be in time order."""
    warnings: dict[str, dict[str, Any]] = {}
    limit_raises: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for h in rows:
        site, _scope, source, kind = h.key
        if site not in sites or h.time_ms >= as_of_ms:
            continue
        aid = h.alarm_id
        if kind == "EARLY_WARNING":
            if h.type == "AlarmRaised":
                w = warnings.get(aid)
                if w is None and start_ms <= h.time_ms < end_ms:
                    level = str(h.details.get("level", ""))
                    priority = str(h.details.get("priority", "low"))
                    warnings[aid] = {"key": h.key, "raised": h.time_ms, "level": level, "prio": priority}
                elif w is not None:
                    w.pop("ended", None)  # annunciated again within the episode: open again
            elif h.type in ("AlarmReturnedToNormal", "AlarmCleared") and aid in warnings:
                warnings[aid].setdefault("ended", h.time_ms)
        elif h.type == "AlarmRaised" and kind in LIMIT_KINDS:
            limit_raises.setdefault((site, source), []).append((h.time_ms, kind))
    out = []
    for aid, w in warnings.items():
        site, _scope, source, _kind = w["key"]
        ended = w.get("ended")
        until = (ended + CROSS_GRACE_MS) if ended is not None else as_of_ms
        want = LIMIT_KINDS.get(w["level"])
        crossed = next(
            (
                (t, lvl)
                for t, lvl in limit_raises.get((site, source), ())
                if w["raised"] <= t <= until
                and (want is None or (LIMIT_KINDS[lvl] * want > 0 and abs(LIMIT_KINDS[lvl]) >= abs(want)))
            ),
            None,
        )
        outcome = "crossed" if crossed else ("cleared" if ended is not None else "open")
        out.append(
            EarlyWarningOutcome(
                alarm_id=aid,
                site=site,
                source=source,
                level=w["level"],
                priority=w["prio"],
                raised_ms=w["raised"],
                outcome=outcome,
                crossed_ms=crossed[0] if crossed else None,
                crossed_level=crossed[1] if crossed else None,
                ended_ms=ended,
            )
        )
    out.sort(key=lambda e: (e.raised_ms, e.alarm_id))
    return out


def outages(
    rows: Sequence[JournalRow], sites: set[str], start_ms: int, end_ms: int, as_of_ms: int
) -> list[Outage]:
    """STALE episodes (a silent sensor, or a silent device: communication loss) that overlap
    [start, end), with their minutes inside it; rows in time order, from before `start_ms` too."""
    spans: dict[str, dict[str, Any]] = {}
    done: list[dict[str, Any]] = []
    for h in rows:
        site, scope, source, kind = h.key
        if kind != "STALE" or site not in sites or h.time_ms >= as_of_ms:
            continue
        aid = h.alarm_id
        if h.type == "AlarmRaised" and aid not in spans:
            spans[aid] = {"aid": aid, "key": h.key, "start": h.time_ms, "end": None}
        elif h.type == "AlarmReturnedToNormal" and aid in spans:
            span = spans.pop(aid)
            span["end"] = h.time_ms
            done.append(span)
    out = []
    for span in [*done, *spans.values()]:
        site, scope, source, _kind = span["key"]
        stop = span["end"] if span["end"] is not None else as_of_ms
        if not (span["start"] < end_ms and stop > start_ms):
            continue
        inside = min(stop, end_ms) - max(span["start"], start_ms)
        out.append(
            Outage(
                alarm_id=span["aid"],
                site=site,
                scope=scope,
                source=source,
                started_ms=span["start"],
                ended_ms=span["end"],
                minutes=round(inside / 60_000, 2),
            )
        )
    out.sort(key=lambda o: (o.started_ms, o.alarm_id))
    return out


def sms_figures(messages: Iterable[Mapping[str, Any]]) -> SmsFigures:
    """Count messages (rows of SmsOutbox.messages) by state."""
    states = Counter(str(m["state"]) for m in messages)
    return SmsFigures(
        messages=sum(states.values()),
        sent=states["sent"],
        delivered=states["delivered"],
        failed=states["failed"],
        pending=sum(states[s] for s in SMS_PENDING),
    )


def _raises(rows: Sequence[HistoryLike], sites: set[str], start_ms: int, end_ms: int) -> list[HistoryLike]:
    return [
        h for h in rows if h.type == "AlarmRaised" and start_ms <= h.time_ms < end_ms and h.key[0] in sites
    ]


def _by_priority(raises: Iterable[HistoryLike]) -> dict[str, int]:
    counts = dict.fromkeys(PRIORITY_NAMES, 0)
    for h in raises:
        p = str(h.details.get("priority", "low"))
        counts[p] = counts.get(p, 0) + 1
    return counts


# ---- the report


def build_report(
    scope: ReportScope,
    sites: Sequence[Site],
    period: Period,
    as_of_ms: int,
    history: Iterable[JournalRow],
    disposals: Iterable[Disposal],
    audit: Iterable[AuditEntry],
    sms: Iterable[Mapping[str, Any]] | None,
) -> Report:
    """The report of `sites` (those of `scope`) over `period`, as of `as_of_ms`.

    `history` holds the journal's AlarmRaised, AlarmReturnedToNormal, AlarmSuppressed and AlarmCleared
    rows from a day before the period to `as_of_ms` (standing alarms, floods and outages look back);
    `disposals` those asked in the period; `sms` the alarm texts made in it (None: SMS is off).
    """
    ids = {s.id for s in sites}
    start, end = period.start_ms, period.end_ms
    rows = sorted((h for h in history if h.key[0] in ids), key=lambda h: h.time_ms)
    raises = _raises(rows, ids, start, end)
    eemua = eemua_report(rows, start, end)
    warnings = early_warning_outcomes(rows, ids, start, end, as_of_ms)
    outs = outages(rows, ids, start, end, as_of_ms)
    mine = [d for d in disposals if d.site in ids and start <= d.raised_ms < end]
    acted: Counter[str] = Counter()
    refused = 0
    for a in audit:
        if a.key is None or a.key[0] not in ids or not start <= a.time_ms < end:
            continue
        if a.outcome == "ok":
            acted[a.action] += 1
        else:
            refused += 1
    per_site = _site_rows(sites, raises, eemua, warnings, outs, mine, as_of_ms)
    return Report(
        scope=scope,
        period=period,
        as_of_ms=as_of_ms,
        site_count=len(sites),
        by_priority=_by_priority(raises),
        by_kind=dict(sorted(Counter(h.key[3] for h in raises).items())),
        eemua=eemua,
        early_warnings=warnings,
        outages=outs,
        disposals=disposal_figures(mine, as_of_ms),
        sms=None if sms is None else sms_figures(sms),
        operator_actions=dict(sorted(acted.items())),
        refused_actions=refused,
        sites=per_site,
    )


def _site_rows(
    sites: Sequence[Site],
    raises: list[HistoryLike],
    eemua: EemuaReport,
    warnings: list[EarlyWarningOutcome],
    outs: list[Outage],
    disposals: list[Disposal],
    as_of_ms: int,
) -> list[SiteRow]:
    raised: dict[str, list[HistoryLike]] = {}
    for h in raises:
        raised.setdefault(h.key[0], []).append(h)
    ews = Counter(w.site for w in warnings)
    crossed = Counter(w.site for w in warnings if w.outcome == "crossed")
    out_n = Counter(o.site for o in outs)
    out_min: Counter[str] = Counter()
    for o in outs:
        out_min[o.site] += o.minutes
    by_site: dict[str, list[Disposal]] = {}
    for d in disposals:
        by_site.setdefault(d.site, []).append(d)
    return [
        SiteRow(
            site=s.id,
            name=s.name,
            district=s.district,
            city=s.city,
            raises=len(raised.get(s.id, ())),
            by_priority=_by_priority(raised.get(s.id, ())),
            flood_share=float(eemua.flood_share.get(s.id, 0.0)),
            early_warnings=ews[s.id],
            crossed=crossed[s.id],
            outages=out_n[s.id],
            outage_minutes=round(out_min[s.id], 2),
            disposals=disposal_figures(by_site.get(s.id, ()), as_of_ms),
        )
        for s in sites
    ]


def summary(r: Report) -> dict[str, Any]:
    """The headline figures (KPIs) of a report, flat: GET /api/v1/kpis answers exactly these, and
    every renderer's summary section shows them."""
    e = r.eemua
    ew = Counter(w.outcome for w in r.early_warnings)
    d = r.disposals
    out: dict[str, Any] = {
        "sites": r.site_count,
        "raises": e.raises,
        **{f"raises_{p}": r.by_priority.get(p, 0) for p in PRIORITY_NAMES},
        "average_per_10min": round(e.rate.average, 4),
        "peak_per_10min": e.rate.peak,
        "flood_share_max": round(max(e.flood_share.values(), default=0.0), 4),
        "sites_in_flood": sum(1 for v in e.flood_share.values() if v > 0),
        "top10_share": round(e.top10_share, 4),
        "standing": len(e.standing),
        "chattering": e.chattering,
        "early_warnings": len(r.early_warnings),
        **{f"early_warnings_{o}": ew[o] for o in OUTCOMES},
        "outages": len(r.outages),
        "outage_minutes": round(sum(o.minutes for o in r.outages), 2),
        "disposals_asked": d.asked,
        "disposals_done": d.done,
        "disposals_late": d.late,
        "disposals_open": d.open,
        "disposals_overdue": d.overdue,
        "disposals_in_time_ratio": d.in_time_ratio,
        "disposal_median_minutes": d.median_minutes,
        "operator_actions": sum(r.operator_actions.values()),
        "refused_actions": r.refused_actions,
    }
    s = r.sms
    out |= {
        "sms_messages": None if s is None else s.messages,
        "sms_sent": None if s is None else s.sent,
        "sms_delivered": None if s is None else s.delivered,
        "sms_failed": None if s is None else s.failed,
        "sms_pending": None if s is None else s.pending,
    }
    return out


#: how people read the summary's keys (the renderers' first column)
SUMMARY_LABELS: dict[str, str] = {
    "sites": "站点数 sites",
    "raises": "报警次数 alarms raised",
    "raises_critical": "紧急 critical",
    "raises_high": "高 high",
    "raises_medium": "中 medium",
    "raises_low": "低 low",
    "average_per_10min": "平均每10分钟报警 average per 10 min",
    "peak_per_10min": "10分钟峰值 peak per 10 min",
    "flood_share_max": "报警泛滥时间占比(最高站点) flood share, worst site",
    "sites_in_flood": "发生报警泛滥的站点 sites with a flood",
    "top10_share": "前10报警点占比 top-10 share",
    "standing": "长期报警 standing (>24 h)",
    "chattering": "振荡报警点 chattering points",
    "early_warnings": "预警 early warnings",
    "early_warnings_crossed": "预警后越限 crossed",
    "early_warnings_cleared": "预警解除未越限 cleared",
    "early_warnings_open": "预警未结束 open",
    "outages": "数据中断 outages",
    "outage_minutes": "中断分钟 outage minutes",
    "disposals_asked": "应处置 disposals asked",
    "disposals_done": "按时处置 done in time",
    "disposals_late": "超时处置 done late",
    "disposals_open": "待处置 open",
    "disposals_overdue": "逾期未处置 overdue",
    "disposals_in_time_ratio": "按时处置率 in-time ratio",
    "disposal_median_minutes": "处置用时中位数(分钟) median minutes",
    "operator_actions": "操作记录 operator actions",
    "refused_actions": "被拒操作 refused actions",
    "sms_messages": "短信 SMS messages",
    "sms_sent": "已发送 sent",
    "sms_delivered": "已送达 delivered",
    "sms_failed": "失败 failed",
    "sms_pending": "待发送 pending",
}
