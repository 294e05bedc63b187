"""Parse an officer's SMS reply to an alarm ("1 A000123", "确认A000123") into alarm numbers (pure),
and say which alarms a number acknowledges: it, and its sensor's others that a text carried with it.

Our alarm texts say 回复“1 A000123”确认 (alerts/notify/sms_plan.py). People answer from Chinese phones: the
IME may give full-width digits, letters, spaces and colons, and they join numbers with , ， or 、.
NFKC folds the full-width forms, so one grammar covers them. A bare "1" or "确认" means "every alarm
in the last message sent to me". Anything else is a ParseError with a reason, never an exception:
the gateway hands us whatever arrived.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from alerts.book.alarm_numbers import normalize_alarm_ref

#: A few concatenated SMS; anything longer is not a reply to us and is not worth normalising.
MAX_REPLY_CHARS = 480
#: More numbers than one alarm message lists is a mistake, not an acknowledgement.
MAX_NUMBERS = 20

# "1" must not run into digits ("1123" could be "1 123" or alarm 1123): a separator, a colon, the
# letter A or the end has to follow it. "确认" may be followed by anything.
_COMMAND_RE = re.compile(r"(?:确认|1(?=[\s:,、;Aa]|$))[\s:,、;]*(.*)", re.DOTALL)
_SEPARATOR_RE = re.compile(r"[\s,、;]+")
_NUMBER_RE = re.compile(r"[Aa]?\d{1,9}", re.ASCII)
_TRAILING = "。.!"


@dataclass(frozen=True, slots=True)
class Reply:
    """An acknowledgement: these alarm numbers, or (all_recent) those of the last message sent."""

    alarm_ids: tuple[str, ...] = ()
    all_recent: bool = False


@dataclass(frozen=True, slots=True)
class ParseError:
    """The text is not an acknowledgement; `reason` says why (for the audit and the log)."""

    reason: str


def parse_reply(text: str) -> Reply | ParseError:
    """Read an SMS reply as an acknowledgement of alarm numbers."""
    if not isinstance(text, str):
        return ParseError("not text")
    if len(text) > MAX_REPLY_CHARS:
        return ParseError(f"too long ({len(text)} characters)")
    s = unicodedata.normalize("NFKC", text).strip().rstrip(_TRAILING).strip()
    if not s:
        return ParseError("empty reply")
    m = _COMMAND_RE.fullmatch(s)
    if m is None:
        return ParseError("does not start with 1 or 确认 followed by alarm numbers")
    rest = m.group(1).strip()
    if not rest:
        return Reply(all_recent=True)
    tokens = [t for t in _SEPARATOR_RE.split(rest) if t]
    bad = [t for t in tokens if not _NUMBER_RE.fullmatch(t)]
    if bad:
        return ParseError(f"not an alarm number: {bad[0][:20]!r}")
    if len(tokens) > MAX_NUMBERS:
        return ParseError(f"too many alarm numbers ({len(tokens)} > {MAX_NUMBERS})")
    ids = dict.fromkeys(normalize_alarm_ref(t) for t in tokens)  # ordered, without repeats
    return Reply(alarm_ids=tuple(ids))


def same_sensor_companions(named: str, sensor_by_alarm: Mapping[str, str]) -> tuple[str, ...]:
    """The alarms a reply naming `named` acknowledges besides it: those of the same sensor.

    `sensor_by_alarm` maps `named` and the alarms a text carried together with it to their sensor
    (sms_render.sensor_of). H and HH of one gas detector arrive in one text, and the officer names
    one of them; leaving the other unacknowledged would escalate a situation already taken in
    hand. Alarms of other sensors are not included: the officer named one sensor (decision 22).
    """
    sensor = sensor_by_alarm.get(named)
    if not sensor:
        return ()
    return tuple(a for a, s in sensor_by_alarm.items() if a != named and s == sensor)
