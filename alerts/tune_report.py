"""`hazmon tune` output: a table per site for people, one JSON object per sensor for scripts. Pure."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from alerts.engine.early_warning import EarlyWarningConfig
from alerts.engine.lifecycle import local_iso
from alerts.metrics import DAY_MS
from alerts.tune import Outcome, SensorTuning, Status, TuneConfig
from alerts.tune_settings import Setting, span
from alerts.warning_threshold import ThresholdSuggestion

NOTICE = "hazmon tune: suggestions only; nothing was changed (the registry and the service are untouched)."
NO_FORECAST = "not available: no selected sensor has early warnings (forecast: true)"
NO_FORECAST_NOTE = "not available: no selected sensor of this kind has early warnings (forecast: true)"
VERDICT = {
    Status.NO_LIMITS: "nothing to tune",
    Status.TOO_LITTLE_DATA: "too little data",
    Status.NO_CHANGE: "no change",
    Status.SUGGEST: "suggest",
    Status.UNREACHABLE: "target not reached",
}


def iso(ms: int) -> str:
    return local_iso(ms, "UTC")


def _width(text: str) -> int:
    """Display width in a terminal: CJK characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - _width(text), 0)


def _num(x: float) -> str:
    return f"{x:.4g}"


def describe_setting(setting: Setting, t: SensorTuning) -> str:
    s = t.sensor
    pct = 100 * setting.deadband / span(s) if span(s) > 0 else 0.0
    return (
        f"deadband {_num(setting.deadband)} {s.unit} ({pct:.2g} %), "
        f"on-delay {setting.on_delay_s:g} s, off-delay {setting.off_delay_s:g} s"
    )


def _short_setting(setting: Setting, unit: str) -> str:
    return f"{_num(setting.deadband)} {unit} / {setting.on_delay_s:g} s / {setting.off_delay_s:g} s"


def _counts(o: Outcome) -> str:
    return ", ".join(f"{level} {n}" for level, n in o.activations.items() if n) or "none"


def _effect(o: Outcome, t: SensorTuning) -> str:
    rate = t.rate(o)
    parts = [f"{o.total} activations ({_counts(o)}), {rate:.2f}/day" if rate is not None else f"{o.total}"]
    parts.append("chattering " + ",".join(o.chattering) if o.chattering else "no chattering")
    if o.standing:
        parts.append("standing " + ",".join(o.standing))
    if o.late:
        parts.append(f"{o.late} real excursions alarmed late ({o.missed} never)")
    return "; ".join(parts)


def format_table(
    tunings: Sequence[SensorTuning],
    config: TuneConfig,
    start_ms: int,
    end_ms: int,
    source: str,
    thresholds: Mapping[str, ThresholdSuggestion] | None = None,
) -> str:
    """The human report: a table per site, each sensor's verdict under its row, then warning thresholds."""
    lines = [
        NOTICE,
        f"history: {source}",
        f"window {iso(start_ms)} .. {iso(end_ms)} ({(end_ms - start_ms) / DAY_MS:.1f} days); "
        f"target <= {config.target_per_day:g} activation per sensor per day",
    ]
    header = (
        "sensor",
        "name",
        "days",
        "activations now",
        "/day",
        "chatter",
        "standing",
        "in alarm",
        "now db/on/off",
    )
    by_site: dict[str, list[SensorTuning]] = {}
    for t in tunings:
        by_site.setdefault(t.sensor.site, []).append(t)
    for site, rows in by_site.items():
        cells = [header]
        for t in rows:
            o = t.current
            rate = t.rate(o)
            cells.append(
                (
                    t.sensor.id,
                    t.sensor.name,
                    f"{t.observed_days:.1f}",
                    _counts(o) if o else "-",
                    f"{rate:.2f}" if rate is not None else "-",
                    ",".join(o.chattering) if o and o.chattering else "-",
                    ",".join(o.standing) if o and o.standing else "-",
                    f"{sum(o.time_in_alarm_s.values()) / 3600:.1f} h" if o else "-",
                    _short_setting(o.setting, t.sensor.unit) if o else "-",
                )
            )
        widths = [max(_width(row[i]) for row in cells) for i in range(len(header))]
        lines += ["", f"site {site}"]
        for k, row in enumerate(cells):
            lines.append("  ".join(_pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip())
            if k:
                lines += [f"    {line}" for line in _verdict_lines(rows[k - 1])]
    lines += ["", *threshold_lines(thresholds)]
    lines += ["", NOTICE]
    return "\n".join(lines)


def threshold_lines(thresholds: Mapping[str, ThresholdSuggestion] | None) -> list[str]:
    """The early-warning threshold per kind, with the warnings each step of the ladder would have raised."""
    if not thresholds:
        return [
            "warning thresholds (early warnings):",
            f"  {NO_FORECAST}",
        ]
    target = next(iter(thresholds.values())).target_per_100_days
    lines = [
        "warning thresholds (early warnings), per kind, from the probabilities they gave on this history;",
        f"target <= {target:g} false warning per 100 quiet sensor-days (no real excursion within 24 h):",
    ]
    config = EarlyWarningConfig()
    for kind, s in thresholds.items():
        if s.threshold is not None:
            verdict = f"suggest {s.threshold:g}"
        elif not s.enough_quiet:
            verdict = "not available"
        else:
            verdict = "none of the ladder is quiet enough"
        now = config.profile(kind).p_warn
        lines.append(f"  {kind}: {verdict} ({s.reason}); now {now:g}, held {s.persistence_s:g} s")
        steps = ", ".join(f"{thr:g}: {n}" for thr, n in s.warnings.items())
        lines.append(f"    warnings per threshold: {steps}")
    return lines


def _verdict_lines(t: SensorTuning) -> list[str]:
    head = f"{VERDICT[t.status]}: "
    if t.status is Status.SUGGEST and t.suggested is not None:
        out = [head + describe_setting(t.suggested.setting, t), f"  -> {_effect(t.suggested, t)}"]
        return out + ([f"  ({t.message})"] if t.message else [])
    if t.status is Status.UNREACHABLE and t.closest is not None:
        same = t.current is not None and t.closest.setting == t.current.setting
        closest = "the current setting" if same else describe_setting(t.closest.setting, t)
        return [head + t.message, f"  closest: {closest} -> {_effect(t.closest, t)}"]
    out = [head + t.message]
    if t.current is not None and t.current.standing:
        out.append(f"  standing alarm ({','.join(t.current.standing)} active >= 24 h): review the limit")
    if t.current is not None and t.current.late:
        out.append(f"  now: {t.current.late} real excursions alarmed later than the on-delay")
    return out


def _outcome_json(o: Outcome | None, t: SensorTuning) -> dict[str, Any] | None:
    if o is None:
        return None
    s = o.setting
    rate = t.rate(o)
    return {
        "deadband": s.deadband,
        "deadband_pct": round(100 * s.deadband / span(t.sensor), 4) if span(t.sensor) > 0 else None,
        "on_delay_s": s.on_delay_s,
        "off_delay_s": s.off_delay_s,
        "activations": o.activations,
        "total": o.total,
        "per_day": list(o.per_day),
        "rate_per_day": round(rate, 4) if rate is not None else None,
        "time_in_alarm_s": {k: round(v, 3) for k, v in o.time_in_alarm_s.items()},
        "chattering": list(o.chattering),
        "standing": list(o.standing),
        "late_excursions": o.late,
        "missed_excursions": o.missed,
    }


def tuning_json(
    t: SensorTuning,
    config: TuneConfig,
    start_ms: int,
    end_ms: int,
    thresholds: Mapping[str, ThresholdSuggestion] | None = None,
) -> dict[str, Any]:
    """One sensor as a JSON-ready dict (`hazmon tune --json` prints one per line)."""
    s = t.sensor
    w = (thresholds or {}).get(s.kind)
    warning: dict[str, Any]
    if w is None:
        warning = {"kind": s.kind, "threshold": None, "available": False, "reason": NO_FORECAST_NOTE}
    else:
        warning = {
            "kind": s.kind,
            "threshold": w.threshold,
            "available": w.enough_quiet,
            "current_threshold": EarlyWarningConfig().profile(s.kind).p_warn,
            "persistence_s": w.persistence_s,
            "warnings": {f"{k:g}": n for k, n in w.warnings.items()},
            "quiet_sensor_days": round(w.quiet_days, 3),
            "target_per_100_days": w.target_per_100_days,
            "reason": w.reason,
        }
    return {
        "suggestion_only": True,
        "site": s.site,
        "sensor": s.id,
        "name": s.name,
        "kind": s.kind,
        "unit": s.unit,
        "range": list(s.range),
        "window": {"start": iso(start_ms), "end": iso(end_ms)},
        "observed_days": round(t.observed_days, 4),
        "target_per_day": config.target_per_day,
        "status": t.status.value,
        "message": t.message,
        "real_excursions": t.real_excursions,
        "sustained_excursions": t.sustained_excursions,
        "current": _outcome_json(t.current, t),
        "suggested": _outcome_json(t.suggested, t),
        "closest": _outcome_json(t.closest, t),
        "warning_threshold": warning,
    }
