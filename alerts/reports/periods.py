"""Report periods: a local calendar day, a shift, or any [from, to), in one time zone.

Pure (zoneinfo only). A day is the local calendar day, so a report matches the paper log a control
room keeps; shifts start at the configured local times (HAZMON_SHIFTS, e.g. 08:00,20:00) and each
runs to the next start, the last one into the next day. On a daylight-saving change a day or shift
is simply shorter or longer: bounds are computed in local time, then converted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

DEFAULT_TZ = "Asia/Shanghai"
DEFAULT_SHIFTS = "08:00,20:00"
PeriodKind = Literal["day", "shift", "custom"]
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Period:
    """Half-open [start_ms, end_ms) in UTC ms, with the zone and the label people read."""

    kind: PeriodKind
    start_ms: int
    end_ms: int
    tz: str
    label: str  # 2026-12-04, 2026-12-04 08:00-20:00, or the two local times

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise ValueError("a period must end after it starts")


def parse_shifts(text: str) -> tuple[time, ...]:
    """`08:00,20:00` -> the shift start times, sorted; ValueError names what is wrong."""
    starts = []
    for part in text.split(","):
        m = _HHMM.match(part.strip())
        if not m:
            raise ValueError(f"shift start {part.strip()!r} is not HH:MM")
        starts.append(time(int(m.group(1)), int(m.group(2))))
    if len(set(starts)) != len(starts):
        raise ValueError("shift starts must differ")
    return tuple(sorted(starts))


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz)


def day_period(day: date, tz: str = DEFAULT_TZ) -> Period:
    """The local calendar day `day`."""
    zone = ZoneInfo(tz)
    start, end = _local(day, time(0), zone), _local(day + timedelta(days=1), time(0), zone)
    return Period("day", _ms(start), _ms(end), tz, day.isoformat())


def shift_period(day: date, start: time, shifts: tuple[time, ...], tz: str = DEFAULT_TZ) -> Period:
    """The shift that starts at `start` on local `day`; it ends at the next shift start."""
    if start not in shifts:
        raise ValueError(f"{start:%H:%M} is not a shift start ({', '.join(f'{s:%H:%M}' for s in shifts)})")
    zone = ZoneInfo(tz)
    i = shifts.index(start)
    end_day, end_at = (day, shifts[i + 1]) if i + 1 < len(shifts) else (day + timedelta(days=1), shifts[0])
    s, e = _local(day, start, zone), _local(end_day, end_at, zone)
    return Period("shift", _ms(s), _ms(e), tz, f"{day.isoformat()} {start:%H:%M}-{end_at:%H:%M}")


def custom_period(start_ms: int, end_ms: int, tz: str = DEFAULT_TZ) -> Period:
    """Any [start, end), labelled in local time."""
    zone = ZoneInfo(tz)
    a = datetime.fromtimestamp(start_ms / 1000, zone)
    b = datetime.fromtimestamp(end_ms / 1000, zone)
    return Period("custom", start_ms, end_ms, tz, f"{a:%Y-%m-%d %H:%M} - {b:%Y-%m-%d %H:%M}")


def last_day(now_ms: int, tz: str = DEFAULT_TZ) -> Period:
    """The last local day that has ended by `now_ms` (yesterday)."""
    today = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(tz)).date()
    return day_period(today - timedelta(days=1), tz)


def ended_shifts(now_ms: int, shifts: tuple[time, ...], tz: str = DEFAULT_TZ, count: int = 2) -> list[Period]:
    """The last `count` shifts that have ended by `now_ms`, oldest first."""
    today = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(tz)).date()
    found: list[Period] = []
    for back in range(0, 3):  # shifts of today, yesterday and the day before cover any count <= 2 x shifts
        day = today - timedelta(days=back)
        for start in reversed(shifts):
            p = shift_period(day, start, shifts, tz)
            if p.end_ms <= now_ms:
                found.append(p)
    found.sort(key=lambda p: p.start_ms)
    return found[-count:]
