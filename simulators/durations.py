"""Parse and format short durations (`90`, `30s`, `10m`, `1.5h`, `2d`) for the simulator's options."""

from __future__ import annotations

import math
import re

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_RE = re.compile(rf"^(?:{_NUMBER}|(?:{_NUMBER}(?:min|[smhd]))+)$", re.IGNORECASE)
_PART_RE = re.compile(rf"({_NUMBER})(min|[smhd]|)", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Return seconds for `90`, `90s`, `10m`, `1.5h`, `2d` or compounds like `1h30m`; ValueError if bad."""
    compact = text.strip()
    if not _DURATION_RE.match(compact):
        raise ValueError(f"bad duration {text!r}: use a number with s, m, h or d (30s, 10m, 1.5h, 1h30m)")
    seconds = sum(float(num) * _UNITS[unit.lower()] for num, unit in _PART_RE.findall(compact))
    if not math.isfinite(seconds):
        raise ValueError(f"bad duration {text!r}: not finite")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds compactly for people (`45s`, `12m30s`, `3h05m`, `2d04h`)."""
    s = round(abs(seconds))
    sign = "-" if seconds < 0 else ""
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{sign}{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{sign}{s // 86400}d{s % 86400 // 3600:02d}h"
