"""A report as titled tables: the one layout every format renders (CSV sections, XLSX sheets, PDF
tables), so the three files of a report show the same rows in the same order.

Pure. Times are local to the period's zone; shares stay numbers (0..1) so a spreadsheet can sum them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from alerts.metrics import PRIORITY_NAMES
from alerts.reports.levels import LEVEL_ZH
from alerts.reports.model import SUMMARY_LABELS, Report, summary

Cell = str | int | float | None
KIND_ZH = {"day": "日报", "shift": "班报", "custom": "报表"}


@dataclass(frozen=True, slots=True)
class Table:
    """One section: a short name (sheet name, at most 31 characters), a title and rows."""

    name: str
    title: str
    header: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


def title(r: Report) -> str:
    """`江门市江海区 日报 2026-12-04`: what the report is, in one line."""
    return f"{r.scope.label} {KIND_ZH[r.period.kind]} {r.period.label}"


def local(ms: int | None, tz: str) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")


def header_lines(r: Report) -> list[tuple[str, str]]:
    """The report's identity: scope, period, zone, when it was made."""
    tz = r.period.tz
    return [
        ("报表 report", title(r)),
        ("范围 scope", f"{LEVEL_ZH[r.scope.level]} {r.scope.label} ({r.site_count} 个站点 sites)"),
        ("时段 period", f"{local(r.period.start_ms, tz)} - {local(r.period.end_ms, tz)} ({tz})"),
        ("截至 as of", local(r.as_of_ms, tz)),
    ]


def tables(r: Report) -> list[Table]:
    """Every section of the report, in reading order."""
    tz = r.period.tz
    kpis = summary(r)
    out = [
        Table("概要 Summary", "概要 Summary", ("指标 figure", "key", "值 value"),
              [(SUMMARY_LABELS[k], k, v) for k, v in kpis.items()]),
        Table(
            "站点 Sites",
            "按站点 Per site",
            ("站点 site", "名称 name", "区县 district", "报警 raises", *PRIORITY_NAMES, "泛滥占比 flood",
             "预警 warnings", "越限 crossed", "中断 outages", "中断分钟 minutes", "应处置 asked",
             "逾期 overdue", "超时 late", "按时率 in time"),
            [
                (s.site, s.name, s.district, s.raises, *(s.by_priority.get(p, 0) for p in PRIORITY_NAMES),
                 round(s.flood_share, 4), s.early_warnings, s.crossed, s.outages, s.outage_minutes,
                 s.disposals.asked, s.disposals.overdue, s.disposals.late, s.disposals.in_time_ratio)
                for s in r.sites
            ],
        ),
        Table(
            "优先级 Priorities",
            "报警按优先级和类型 Alarms by priority and kind",
            ("类别 group", "名称 name", "次数 raises"),
            [("priority", p, r.by_priority.get(p, 0)) for p in PRIORITY_NAMES]
            + [("kind", k, n) for k, n in r.by_kind.items()],
        ),
        Table(
            "坏点 Bad actors",
            "最频繁报警点 Top bad actors (EEMUA 191)",
            ("序号 rank", "站点 site", "范围 scope", "来源 source", "类型 kind", "次数 count", "占比 share"),
            [
                (i + 1, *(b.key if isinstance(b.key, tuple) else (str(b.key), "", "", "")), b.count,
                 round(b.share, 4))
                for i, b in enumerate(r.eemua.bad_actors)
            ],
        ),
        Table(
            "预警 Early warnings",
            "预警及结果 Early warnings and their outcomes",
            ("报警号 alarm", "站点 site", "传感器 sensor", "预测越限 level", "优先级 priority",
             "预警时间 raised", "结果 outcome", "越限时间 crossed", "越限 level", "解除 ended"),
            [
                (w.alarm_id, w.site, w.source, w.level, w.priority, local(w.raised_ms, tz), w.outcome,
                 local(w.crossed_ms, tz), w.crossed_level or "", local(w.ended_ms, tz))
                for w in r.early_warnings
            ],
        ),
        Table(
            "中断 Outages",
            "数据中断和通信中断 Stale data and communication loss",
            ("报警号 alarm", "站点 site", "范围 scope", "来源 source", "开始 started", "结束 ended",
             "时段内分钟 minutes"),
            [
                (o.alarm_id, o.site, o.scope, o.source, local(o.started_ms, tz), local(o.ended_ms, tz),
                 o.minutes)
                for o in r.outages
            ],
        ),
        Table(
            "操作 Actions",
            "操作记录 Operator actions (audit)",
            ("操作 action", "次数 count"),
            [*r.operator_actions.items(), ("refused", r.refused_actions)],
        ),
    ]  # fmt: skip
    return out
