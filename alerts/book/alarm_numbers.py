"""Alarm numbers as people read and type them (A000123), with no storage behind them.

The journal hands out the numbers; SMS replies, the API and the console parse what people type.
"""

from __future__ import annotations

import re

_NUMBER_RE = re.compile(r"A?0*(\d+)")


def format_alarm_number(n: int) -> str:
    """The id people read and type in SMS replies: A000123."""
    return f"A{n:06d}"


def normalize_alarm_ref(text: str) -> str:
    """Accept what people type ("a123", " A000123 ") for an alarm number; other ids pass unchanged."""
    s = text.strip()
    m = _NUMBER_RE.fullmatch(s.upper())
    return format_alarm_number(int(m.group(1))) if m else s
