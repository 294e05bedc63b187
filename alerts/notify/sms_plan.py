"""Quiet merging and per-recipient rate limits: a flood of alarms becomes a handful of texts.

Pure: `plan_messages` looks at what waits for one recipient and what was already sent to them,
and decides what to send now. Alarms that arrive together (within `merge_window_ms` of the oldest
waiting one) go out as one message; a recipient gets at most `max_messages` per `rate_window_ms`,
and whatever waits beyond that goes out, merged, as soon as the limit allows. A message lists the
most urgent alarms first and says how many it covers, so a flood of 500 alarms reads
"共 500 条报警" in a few texts instead of 500. A merged text ends with how to reply to it: one
alarm number per sensor it carries, since a reply naming one alarm acknowledges every alarm of
that sensor the text carried (alerts/notify/sms_ack.py; docs/design.md decision 22).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from alerts.engine.conditions import Priority

SECOND_MS = 1_000
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Waiting:
    """One notification waiting for its recipient (the outbox row, rendered to what people read)."""

    key: str  # idempotency key from alerts/notify/escalation.py
    alarm_id: str
    site_name: str
    line_zh: str  # e.g. "T101甲醇储罐液位高高报警 15.0 m ≥ 14.8 m"
    line_en: str
    priority: Priority
    event_ms: int  # when it happened (shown in the site's local time)
    queued_ms: int  # when it started waiting
    tz: str = "Asia/Shanghai"  # the site's time zone
    sensor: str = ""  # "site/scope/source" (sms_render.sensor_of); "" when unknown: its own sensor


#: a merged text's reply hint names at most this many numbers (one per sensor); more sensors get
#: the general form, so the hint never crowds out the alarms themselves
HINT_MAX_NUMBERS = 3


@dataclass(frozen=True, slots=True)
class Policy:
    merge_window_ms: int = 20 * SECOND_MS  # wait this long for companions of the oldest waiting alarm ...
    urgent_wait_ms: int = 5 * SECOND_MS  # ... but only this long when a critical alarm waits
    max_messages: int = 4  # per recipient ...
    rate_window_ms: int = 10 * MINUTE_MS  # ... per this window
    max_chars: int = 268  # 4 UCS-2 parts of 67 characters (alerts/sms encoding)
    # after a message, the next to the same phone waits this long, doubling with each message
    # still in the rate window: a flood in waves becomes 2-3 texts, not max_messages at once
    # and the rest held for the whole window
    spacing_ms: int = 30 * SECOND_MS


@dataclass(frozen=True, slots=True)
class Planned:
    """A text to send now, and the notification keys it covers (all marked sent together)."""

    covers: tuple[str, ...]
    text: str


def send_allowed_at(sent_ms: Sequence[int], now_ms: int, policy: Policy) -> int:
    """The earliest time a new message to this recipient respects the rate limit and spacing."""
    recent = sorted(t for t in sent_ms if t > now_ms - policy.rate_window_ms)
    if not recent:
        return now_ms
    spaced = recent[-1] + policy.spacing_ms * 2 ** (len(recent) - 1)
    if len(recent) < policy.max_messages:
        return max(now_ms, spaced)
    return max(recent[-policy.max_messages] + policy.rate_window_ms, spaced)


def plan_messages(
    waiting: Sequence[Waiting], sent_ms: Sequence[int], now_ms: int, policy: Policy, language: str = "zh"
) -> list[Planned]:
    """What to send to one recipient now: nothing, or one message covering everything waiting."""
    wake = next_wakeup_ms(waiting, sent_ms, now_ms, policy)
    if wake is None or now_ms < wake:
        return []
    ordered = sorted(waiting, key=lambda w: (-w.priority, w.event_ms, w.alarm_id))
    return [Planned(tuple(w.key for w in ordered), render(ordered, policy, language))]


def next_wakeup_ms(
    waiting: Sequence[Waiting], sent_ms: Sequence[int], now_ms: int, policy: Policy
) -> int | None:
    """When `plan_messages` may next send something to this recipient (for the scheduler)."""
    if not waiting:
        return None
    oldest = min(w.queued_ms for w in waiting)
    urgent = any(w.priority >= Priority.CRITICAL for w in waiting)
    ready_at = oldest + (policy.urgent_wait_ms if urgent else policy.merge_window_ms)
    return max(ready_at, send_allowed_at(sent_ms, now_ms, policy))


def _hhmm(ms: int, tz: str) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(ZoneInfo(tz)).strftime("%H:%M")


def hint_numbers(ordered: Sequence[Waiting]) -> list[str]:
    """One alarm number per sensor, the most urgent of each: a reply naming them all covers the text."""
    first: dict[str, str] = {}
    for w in ordered:
        first.setdefault(w.sensor or w.alarm_id, w.alarm_id)
    return list(first.values())


def reply_hint(ordered: Sequence[Waiting], zh: bool = True) -> str:
    """How to acknowledge every alarm of a merged text with one reply (in the recipient's language)."""
    numbers = hint_numbers(ordered)
    if len(numbers) > HINT_MAX_NUMBERS:
        if zh:
            return "回复\u201c确认 编号\u201d确认该编号所在测点的报警"
        return "reply '1 <number>' to acknowledge the alarms of its sensor"
    ids = " ".join(numbers)
    if zh:
        return f"回复\u201c确认 {ids}\u201d确认本条全部报警"
    return f"reply '1 {ids}' to acknowledge every alarm of this text"


def render(ordered: Sequence[Waiting], policy: Policy, language: str = "zh") -> str:
    """The text: one alarm in full, or a count, the most urgent ones that fit and how to reply.

    A merged text's reply hint is kept whole: the list of alarms gives way to it, not the reverse.
    """
    zh = language != "en"
    first = ordered[0]
    if len(ordered) == 1:
        line = first.line_zh if zh else first.line_en
        when = _hhmm(first.event_ms, first.tz)
        aid = first.alarm_id
        if zh:
            return f"【{first.site_name}】{when} {line} 编号{aid}, 回复\u201c1 {aid}\u201d确认"
        return f"[{first.site_name}] {when} {line} No.{aid}; reply '1 {aid}' to acknowledge"
    sites = sorted({w.site_name for w in ordered})
    where = sites[0] if len(sites) == 1 else (f"{len(sites)}个场所" if zh else f"{len(sites)} sites")
    head = f"【{where}】共 {len(ordered)} 条报警: " if zh else f"[{where}] {len(ordered)} alarms: "
    tail_fmt = "; 另有 {n} 条, 请查看监控平台" if zh else "; {n} more on the console"
    hint = "; " + reply_hint(ordered, zh)
    budget = max(policy.max_chars - len(hint), 0)
    body: list[str] = []
    for i, w in enumerate(ordered):
        item = f"{w.alarm_id} {_hhmm(w.event_ms, w.tz)} {w.line_zh if zh else w.line_en}"
        rest = len(ordered) - i - 1
        candidate = head + "; ".join([*body, item]) + (tail_fmt.format(n=rest) if rest else "")
        if len(candidate) > budget and body:
            break
        body.append(item)
    shown = len(body)
    text = head + "; ".join(body)
    if shown < len(ordered):
        text += tail_fmt.format(n=len(ordered) - shown)
    return (text[:budget] + hint)[: policy.max_chars]
