"""Dynamic enterprise risk, 红橙黄蓝 (issue 13 item 2): a site's static grade combined with what its
monitoring says now, as a score 0-100, a colour and the reasons.

The rule (ours: no national formula is confirmed, docs/domain.md):

    score = base(grade) + weight(grade) x live, at most 100
    base    一级 15, 二级 10, 三级 5, 四级 0 (a pond by class: 一等 15 .. 五等 0): a quiet site is blue
    weight  一级 1.5, 二级 1.3, 三级 1.15, 四级 1.0: the same alarm weighs more where more is stored
    live    unacknowledged alarms on the list: critical 20, high 10, medium 4, low 1 each
          + early warnings 5 each, a dam-failure forecast (FAILURE) 25
          + data outages (stale sensors or devices) 3 each, at most 15
          + alarms not dealt with in time (no disposal by its due time, alerts/book/disposals.py) 15 each
          + the alarm rate of the last 7 days above 10 a day: 2 per alarm a day more, at most 20

    colour  red ≥ 70, or a FAILURE forecast, or a critical alarm not dealt with in time, or a
            critical alarm in progress (on the list and still active: a leak is red at once, even
            acknowledged, until the reading returns); orange ≥ 45; yellow ≥ 20; blue below

Pure numpy over count columns, one row per site; the API builds them from the alarm book and the
journal, and ranks the sites by score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOURS = ("blue", "yellow", "orange", "red")
BASE_BY_GRADE = {1: 15.0, 2: 10.0, 3: 5.0, 4: 0.0}
WEIGHT_BY_GRADE = {1: 1.5, 2: 1.3, 3: 1.15, 4: 1.0}
BASE_BY_CLASS = {1: 15.0, 2: 12.0, 3: 8.0, 4: 4.0, 5: 0.0}
WEIGHT_BY_CLASS = {1: 1.5, 2: 1.4, 3: 1.25, 4: 1.1, 5: 1.0}
POINTS_UNACK = np.array([1.0, 4.0, 10.0, 20.0])  # low, medium, high, critical
POINTS_WARNING, POINTS_FAILURE = 5.0, 25.0
POINTS_OUTAGE, MAX_OUTAGES = 3.0, 15.0
POINTS_OVERDUE = 15.0
RATE_FREE_PER_DAY, POINTS_PER_RATE, MAX_RATE = 10.0, 2.0, 20.0
RED_AT, ORANGE_AT, YELLOW_AT = 70.0, 45.0, 20.0


@dataclass(frozen=True, slots=True)
class RiskInputs:
    """Per site (n,) columns; `unack` is (n, 4): low, medium, high, critical alarms unacknowledged."""

    tailings: np.ndarray  # bool: the grade is a pond's class (1..5)
    grade: np.ndarray  # int
    unack: np.ndarray
    warnings: np.ndarray  # active early warnings on the list
    failures: np.ndarray  # active FAILURE (inverse-velocity) forecasts
    outages: np.ndarray  # stale sensors and devices on the list
    overdue: np.ndarray  # alarms of the last 7 days whose disposal is overdue
    overdue_critical: np.ndarray
    raises_7d: np.ndarray  # annunciations in the last 7 days
    critical_active: np.ndarray | None = None  # critical alarms on the list still in alarm (None: 0)


@dataclass(frozen=True, slots=True)
class Risk:
    score: np.ndarray  # (n,) float64, 0..100
    colour: np.ndarray  # (n,) int8 index into COLOURS
    parts: dict[str, np.ndarray]  # each factor's points (after the weight), for the reasons


def dynamic_risk(x: RiskInputs) -> Risk:
    """Scores, colours and each factor's points for every site."""
    g = x.grade.astype(np.int64)
    base = np.where(x.tailings, _lookup(BASE_BY_CLASS, g, 0.0), _lookup(BASE_BY_GRADE, g, 0.0))
    weight = np.where(x.tailings, _lookup(WEIGHT_BY_CLASS, g, 1.0), _lookup(WEIGHT_BY_GRADE, g, 1.0))
    rate = x.raises_7d / 7.0
    parts = {
        "grade": base,
        "unacknowledged": weight * (x.unack @ POINTS_UNACK),
        "early_warnings": weight * (POINTS_WARNING * x.warnings + POINTS_FAILURE * x.failures),
        "outages": weight * np.minimum(POINTS_OUTAGE * x.outages, MAX_OUTAGES),
        "overdue": weight * POINTS_OVERDUE * x.overdue,
        "alarm_rate": weight
        * np.minimum(POINTS_PER_RATE * np.maximum(rate - RATE_FREE_PER_DAY, 0.0), MAX_RATE),
    }
    score = np.minimum(sum(parts.values()), 100.0)
    colour = np.select([score >= RED_AT, score >= ORANGE_AT, score >= YELLOW_AT], [3, 2, 1], 0).astype(
        np.int8
    )
    override = (x.failures > 0) | (x.overdue_critical > 0)
    if x.critical_active is not None:
        override |= x.critical_active > 0
    colour = np.where(override, 3, colour).astype(np.int8)
    return Risk(score, colour, parts)


def reason_parts(x: RiskInputs, risk: Risk, i: int) -> list[dict]:
    """Why site `i` has its score, as data (each factor that adds points, largest first, with its
    counts), so every language renders it: `reasons` in Chinese, the console's English mode."""
    ranked = sorted(((float(p[i]), k) for k, p in risk.parts.items() if p[i] > 0), reverse=True)
    counts = {
        "grade": {"grade": int(x.grade[i]), "tailings": bool(x.tailings[i])},
        "unacknowledged": {
            k: int(n)
            for k, n in zip(("low", "medium", "high", "critical"), x.unack[i].tolist(), strict=True)
            if n
        },
        "early_warnings": {"warnings": int(x.warnings[i]), "failures": int(x.failures[i])},
        "outages": {"outages": int(x.outages[i])},
        "overdue": {"overdue": int(x.overdue[i])},
        "alarm_rate": {"raises_7d": int(x.raises_7d[i])},
    }
    out = [{"factor": k, "points": round(points, 1), **counts[k]} for points, k in ranked]
    if x.critical_active is not None and x.critical_active[i] > 0:
        out.insert(0, {"factor": "critical_active", "points": None, "critical": int(x.critical_active[i])})
    return out


def reasons(x: RiskInputs, risk: Risk, i: int) -> list[str]:
    """Why site `i` has its score: each factor that adds points, largest first, in words."""
    return [_chinese(p) for p in reason_parts(x, risk, i)]


def _chinese(p: dict) -> str:
    f = p["factor"]
    if f == "critical_active":
        return f"紧急报警进行中 {p['critical']} 条: 红"
    if f == "grade":
        names = (
            ("一等", "二等", "三等", "四等", "五等") if p["tailings"] else ("一级", "二级", "三级", "四级")
        )
        label = names[p["grade"] - 1] if 1 <= p["grade"] <= len(names) else str(p["grade"])
        text = f"静态等级 {label}"
    elif f == "unacknowledged":
        zh = {"low": "低", "medium": "中", "high": "高", "critical": "紧急"}
        text = "未确认报警 " + ", ".join(
            f"{zh[k]} {p[k]}" for k in ("low", "medium", "high", "critical") if k in p
        )
    elif f == "early_warnings":
        text = f"预警 {p['warnings']} 条" + (f", 溃坝预测 {p['failures']} 条" if p["failures"] else "")
    elif f == "outages":
        text = f"数据中断 {p['outages']} 处"
    elif f == "overdue":
        text = f"超时未处置报警 {p['overdue']} 条"
    else:
        text = f"近7天报警 {p['raises_7d']} 条 (日均 {p['raises_7d'] / 7:.1f})"
    return f"{text}: +{p['points']:.0f}"


def _lookup(table: dict[int, float], keys: np.ndarray, default: float) -> np.ndarray:
    lut = np.full(max(table) + 2, default)
    for k, v in table.items():
        lut[k] = v
    return lut[np.clip(keys, 0, len(lut) - 1)]
