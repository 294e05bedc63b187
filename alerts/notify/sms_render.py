"""What an officer reads about one alarm: the site's name and one short line, in Chinese or English.

Pure. The Chinese line is the engine's own message (it names the sensor, the value and the limit,
e.g. "T101甲醇储罐液位高高报警 15 m ≥ 14.8 m"); the English line is built from the alarm's fields,
because the engine writes its messages in Chinese only. The time and the alarm number are added
by alerts/sms_plan.render, which may merge several alarms into one text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from alerts.engine.conditions import FAULT_ZH_BY_LEVEL, ConditionKind, Priority
from alerts.engine.lifecycle import Alarm
from sensors.model import Registry, Sensor, Site


@dataclass(frozen=True, slots=True)
class Rendered:
    """What the people see of one notification (from the alarm and the registry)."""

    site_name: str
    line_zh: str
    line_en: str
    priority: Priority
    event_ms: int
    language: str = "zh"
    tz: str = "Asia/Shanghai"  # the site's, for the time shown
    # the alarm's sensor ("site/scope/source"): a merged text tells one reply per sensor (sms_plan.render)
    sensor: str = ""


K = ConditionKind
_LEVEL_EN = {K.HH: "high-high", K.H: "high", K.L: "low", K.LL: "low-low"}


def _num(x: float | None) -> str:
    return "?" if x is None else f"{x:.4g}"


def _local(ms: int | None, tz: str) -> str:
    if ms is None:
        return "?"
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M")


def english_line(alarm: Alarm, sensor: Sensor | None, tz: str = "Asia/Shanghai") -> str:
    """One line in English from the alarm's fields, e.g. "T101-LT level high-high 15 m >= 14.8 m"."""
    name = alarm.source if sensor is None else f"{sensor.id}"
    unit = f" {sensor.unit}" if sensor is not None and sensor.unit else ""
    kind = alarm.kind
    if kind in _LEVEL_EN:
        sign = ">=" if kind in (K.H, K.HH) else "<="
        return f"{name} {_LEVEL_EN[kind]} alarm {_num(alarm.value)}{unit} {sign} {_num(alarm.limit)}{unit}"
    if kind is K.ROC:
        return f"{name} rate of change above {_num(alarm.limit)}{unit}/min"
    if kind is K.FAULT:
        return f"{name} instrument fault: {alarm.level or 'fault'}"
    if kind is K.STALE:
        what = "device" if alarm.scope == "device" else "sensor"
        return f"{name} no data ({what} silent)"
    if kind is K.VOTE:
        return f"detector group {name} voted alarm: {_num(alarm.value)} detectors in alarm"
    if kind is K.EARLY_WARNING:
        if alarm.level == "FAILURE":
            return f"early warning: {name} accelerating, failure forecast {_local(alarm.eta_ms, tz)}"
        return (
            f"early warning: {name} expected to reach {alarm.level} {_num(alarm.limit)}{unit} at "
            f"{_local(alarm.eta_ms, tz)}, now {_num(alarm.value)}{unit}"
        )
    return f"{name} {alarm.level or kind.name}"


def sensor_of(alarm: Alarm) -> str:
    """The sensor an alarm is about (its point without the condition kind): H and HH share it."""
    site, scope, source, _kind = alarm.key
    return f"{site}/{scope}/{source}"


class AlarmDescriber:
    """Renders alarms of one registry; built once by the composition root."""

    def __init__(self, registry: Registry):
        self._sites: Mapping[str, Site] = {s.id: s for s in registry.sites}
        self._sensors: Mapping[tuple[str, str], Sensor] = {s.key: s for s in registry.sensors()}

    def __call__(self, alarm: Alarm, language: str = "zh") -> Rendered:
        site = self._sites.get(alarm.site)
        tz = site.timezone if site is not None else "Asia/Shanghai"
        sensor = self._sensors.get((alarm.site, alarm.source))
        line_zh = alarm.message or english_line(alarm, sensor, tz)
        line_en = english_line(alarm, sensor, tz)
        if alarm.suspect:  # a limit alarm its instrument's fault may not hide: say both
            line_zh += f"（仪表疑似故障: {FAULT_ZH_BY_LEVEL.get(alarm.suspect, alarm.suspect)}）"
            line_en += f" (instrument suspect: {alarm.suspect})"
        return Rendered(
            site_name=site.name if site is not None else alarm.site,
            line_zh=line_zh,
            line_en=line_en,
            priority=alarm.priority,
            event_ms=int(alarm.raised_ms or alarm.updated_ms or 0),
            language=language,
            tz=tz,
            sensor=sensor_of(alarm),
        )
