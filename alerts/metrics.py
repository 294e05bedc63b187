"""EEMUA 191 / ISA-18.2 alarm-system performance figures, from raise times and the alarm history.

Pure functions over arrays (numpy) plus a live FloodDetector; no I/O. Targets (DOMAIN.md §6):
about 1 alarm per 10 min steady state, flood = more than 10 alarms in 10 min, < 1 % of time in
flood, priorities roughly 80/15/5 % low/medium/high, no chattering and few standing alarms.
Every rate here counts annunciations (AlarmRaised, re-annunciations included), per console: a
console is a site or a set of sites watched by one operator, chosen by the caller.

Flood time uses a sliding window: instant t is in flood when more than `threshold` alarms were
raised in (t - window, t]. The batch figure (flood_intervals) and the live FloodDetector use the
same definition, so they agree exactly on in-order input.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike

TEN_MIN_MS = 600_000
DAY_MS = 86_400_000
FLOOD_THRESHOLD = 10  # more than this many raises in the window is a flood
PRIORITY_NAMES = ("critical", "high", "medium", "low")


# ---- rates and floods


@dataclass(frozen=True, slots=True)
class AlarmRate:
    """Raises per period over [start, end): the average and the busiest aligned period."""

    total: int
    periods: float  # (end - start) / period, may be fractional
    average: float  # raises per period
    peak: int  # raises in the busiest period aligned on `start`
    peak_start_ms: int | None


def alarm_rate(raise_ms: ArrayLike, start_ms: int, end_ms: int, period_ms: int = TEN_MIN_MS) -> AlarmRate:
    """Average and peak raises per `period_ms` (EEMUA: per 10 minutes), periods aligned on `start_ms`."""
    if end_ms <= start_ms:
        raise ValueError("end_ms must be after start_ms")
    r = np.asarray(raise_ms, dtype=np.int64)
    r = r[(r >= start_ms) & (r < end_ms)]
    periods = (end_ms - start_ms) / period_ms
    if r.size == 0:
        return AlarmRate(0, periods, 0.0, 0, None)
    counts = np.bincount((r - start_ms) // period_ms)  # (n_periods,) int64
    busiest = int(np.argmax(counts))
    return AlarmRate(
        int(r.size), periods, r.size / periods, int(counts[busiest]), start_ms + busiest * period_ms
    )


def flood_intervals(
    raise_ms: ArrayLike,
    start_ms: int,
    end_ms: int,
    window_ms: int = TEN_MIN_MS,
    threshold: int = FLOOD_THRESHOLD,
) -> list[tuple[int, int]]:
    """Half-open [start, end) intervals of flood within [start_ms, end_ms).

    A raise at r counts in the window for t in [r, r + window); raises before `start_ms` still
    count, so pass the preceding window too when slicing a long history.
    """
    r = np.sort(np.asarray(raise_ms, dtype=np.int64))
    if r.size <= threshold:
        return []
    t = np.concatenate([r, r + window_ms])  # (2n,) int64: every instant the window count changes
    step = np.concatenate([np.ones(r.size, np.int64), -np.ones(r.size, np.int64)])
    order = np.argsort(t, kind="stable")
    t, count = t[order], np.cumsum(step[order])
    last = np.r_[t[1:] != t[:-1], True]  # the count after every change at one instant
    t, count = t[last], count[last]
    flood = count > threshold  # on [t[k], t[k+1]); the final count is 0
    edges = np.diff(np.r_[0, flood.astype(np.int8)])
    starts, ends = t[edges == 1], t[1:][np.diff(flood.astype(np.int8)) == -1]
    out = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        s, e = max(s, start_ms), min(e, end_ms)
        if s < e:
            out.append((s, e))
    return out


def flood_share(
    raise_ms: ArrayLike,
    start_ms: int,
    end_ms: int,
    window_ms: int = TEN_MIN_MS,
    threshold: int = FLOOD_THRESHOLD,
) -> float:
    """Share of [start_ms, end_ms) spent in flood, 0..1 (ISA-18.2 target: < 1 %)."""
    if end_ms <= start_ms:
        raise ValueError("end_ms must be after start_ms")
    spans = flood_intervals(raise_ms, start_ms, end_ms, window_ms, threshold)
    return sum(e - s for s, e in spans) / (end_ms - start_ms)


def flood_share_by_console(
    raise_ms: ArrayLike,
    consoles: Sequence[Hashable],
    start_ms: int,
    end_ms: int,
    window_ms: int = TEN_MIN_MS,
    threshold: int = FLOOD_THRESHOLD,
) -> dict[Hashable, float]:
    """flood_share for each console; `consoles[i]` is the console of raise i."""
    r = np.asarray(raise_ms, dtype=np.int64)
    if len(consoles) != r.size:
        raise ValueError("one console per raise")
    groups: dict[Hashable, list[int]] = {}
    for i, c in enumerate(consoles):
        groups.setdefault(c, []).append(i)
    return {c: flood_share(r[idx], start_ms, end_ms, window_ms, threshold) for c, idx in groups.items()}


@dataclass(frozen=True, slots=True)
class FloodStarted:
    """A console went into flood at `time_ms` (the raise that made the window count exceed the threshold)."""

    console: Hashable
    time_ms: int
    count: int


@dataclass(frozen=True, slots=True)
class FloodEnded:
    """A console left flood at `time_ms` (when the window count fell back to the threshold)."""

    console: Hashable
    time_ms: int
    started_ms: int


FloodEvent = FloodStarted | FloodEnded


@dataclass(slots=True)
class _Console:
    window: deque[int] = field(default_factory=deque)  # raise times within the window, ascending
    started_ms: int | None = None  # set while in flood


class FloodDetector:
    """Live flood detection per console: a sliding window of raise times, O(1) amortised per raise.

    `add()` for each raise (in time order per console), `advance()` from a clock tick so a flood
    ends even when no raise comes. A raise older than the newest one is inserted in order (rare:
    the engine emits in event time); one older than the window is ignored.
    """

    def __init__(self, window_ms: int = TEN_MIN_MS, threshold: int = FLOOD_THRESHOLD):
        self.window_ms = window_ms
        self.threshold = threshold
        self._consoles: dict[Hashable, _Console] = {}

    def in_flood(self, console: Hashable) -> bool:
        st = self._consoles.get(console)
        return st is not None and st.started_ms is not None

    def count(self, console: Hashable) -> int:
        st = self._consoles.get(console)
        return 0 if st is None else len(st.window)

    def add(self, console: Hashable, time_ms: int) -> list[FloodEvent]:
        """Count one raise; returns the flood transitions it causes (expiries first)."""
        st = self._consoles.setdefault(console, _Console())
        out = self._expire(console, st, time_ms)
        w = st.window
        if w and time_ms < w[-1]:
            if time_ms + self.window_ms <= w[-1]:
                return out  # already outside the window of every later instant seen
            i = len(w)
            while i > 0 and w[i - 1] > time_ms:
                i -= 1
            w.insert(i, time_ms)
        else:
            w.append(time_ms)
        if st.started_ms is None and len(w) > self.threshold:
            ended = out[-1] if out else None
            if isinstance(ended, FloodEnded) and ended.time_ms == time_ms:
                # ended and restarted at the same instant: the flood never stopped
                out.pop()
                st.started_ms = ended.started_ms
            else:
                st.started_ms = time_ms
                out.append(FloodStarted(console, time_ms, len(w)))
        return out

    def advance(self, now_ms: int) -> list[FloodEvent]:
        """Drop raises that left the window by `now_ms`; returns the floods that ended."""
        out: list[FloodEvent] = []
        for console, st in self._consoles.items():
            out += self._expire(console, st, now_ms)
        return out

    def _expire(self, console: Hashable, st: _Console, now_ms: int) -> list[FloodEvent]:
        out: list[FloodEvent] = []
        w = st.window
        while w and w[0] + self.window_ms <= now_ms:
            gone = w.popleft()
            if st.started_ms is not None and len(w) <= self.threshold:
                out.append(FloodEnded(console, gone + self.window_ms, st.started_ms))
                st.started_ms = None
        return out


# ---- alarm points


@dataclass(frozen=True, slots=True)
class BadActor:
    """One of the most frequent alarm points and its share of all raises."""

    key: Hashable
    count: int
    share: float


def bad_actors(keys: Iterable[Hashable], top: int = 10) -> list[BadActor]:
    """The `top` points by raise count (ties by key), each with its share of the load."""
    counts: dict[Hashable, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:top]
    return [BadActor(k, n, n / total) for k, n in ranked]


@dataclass(frozen=True, slots=True)
class StandingAlarm:
    """An alarm active longer than the standing threshold."""

    key: Hashable
    since_ms: int
    age_ms: int


def standing_alarms(
    keys: Sequence[Hashable], active_since_ms: ArrayLike, now_ms: int, threshold_ms: int = DAY_MS
) -> list[StandingAlarm]:
    """Points active for at least `threshold_ms` at `now_ms` (EEMUA: 24 h), oldest first; NaN = inactive."""
    since = np.asarray(active_since_ms, dtype=np.float64)  # (n,) ms, NaN where not active
    if since.shape != (len(keys),):
        raise ValueError("one active_since per key")
    with np.errstate(invalid="ignore"):
        standing = np.flatnonzero(now_ms - since >= threshold_ms)
    standing = standing[np.argsort(since[standing], kind="stable")]
    return [StandingAlarm(keys[i], int(since[i]), now_ms - int(since[i])) for i in standing.tolist()]


def chattering_points(
    keys: Sequence[Hashable], raise_ms: ArrayLike, count: int = 3, window_ms: int = 60_000
) -> list[Hashable]:
    """Points with at least `count` raises within `window_ms` anywhere in the data (PAS: 3 per minute)."""
    t = np.asarray(raise_ms, dtype=np.int64)
    if t.size != len(keys):
        raise ValueError("one raise time per key")
    if t.size < count:
        return []
    labels = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    code = np.fromiter((labels[k] for k in keys), dtype=np.int64, count=t.size)
    order = np.lexsort((t, code))
    code, t = code[order], t[order]
    span = count - 1
    hit = (code[span:] == code[:-span]) & (t[span:] - t[:-span] < window_ms)  # count raises of one point
    names = list(labels)
    return [names[c] for c in np.unique(code[span:][hit]).tolist()]


def priority_distribution(priorities: Iterable[str]) -> dict[str, float]:
    """Share of raises per priority name (EEMUA/ISA target ~5 % high, 15 % medium, 80 % low)."""
    counts = dict.fromkeys(PRIORITY_NAMES, 0)
    for p in priorities:
        counts[p] = counts.get(p, 0) + 1
    total = sum(counts.values())
    return {p: (n / total if total else 0.0) for p, n in counts.items()}


# ---- a report from the journal's history


class HistoryLike(Protocol):
    """What the report reads from a history row (alerts.book.sqlite_journal.HistoryEntry fits)."""

    @property
    def time_ms(self) -> int: ...

    @property
    def key(self) -> tuple[str, str, str, str]: ...

    @property
    def type(self) -> str: ...

    @property
    def details(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class EemuaReport:
    """The EEMUA 191 figures for one period and one or more consoles."""

    start_ms: int
    end_ms: int
    raises: int
    rate: AlarmRate
    flood_share: dict[Hashable, float]
    bad_actors: list[BadActor]
    top10_share: float
    standing: list[StandingAlarm]
    chattering: int  # points flagged chattering in the period
    priorities: dict[str, float]


def _site(key: tuple[str, str, str, str]) -> Hashable:
    return key[0]


def eemua_report(
    history: Iterable[HistoryLike],
    start_ms: int,
    end_ms: int,
    *,
    console_of: Callable[[tuple[str, str, str, str]], Hashable] = _site,
    standing_ms: int = DAY_MS,
    window_ms: int = TEN_MIN_MS,
    threshold: int = FLOOD_THRESHOLD,
) -> EemuaReport:
    """Compute the figures over [start_ms, end_ms) from history rows in any order.

    Raises are AlarmRaised rows; a point is active from its raise to its AlarmReturnedToNormal
    (standing alarms are judged at `end_ms`); chattering points are those auto-suppressed for
    chattering. Rows before `start_ms` only serve the flood window and standing alarms.
    """
    rows = sorted(history, key=lambda h: h.time_ms)
    raise_t: list[int] = []
    raise_key: list[tuple[str, str, str, str]] = []
    raise_prio: list[str] = []
    since: dict[tuple[str, str, str, str], int] = {}
    chattering: set[tuple[str, str, str, str]] = set()
    for h in rows:
        if h.time_ms >= end_ms:
            break
        if h.type == "AlarmRaised":
            since.setdefault(h.key, h.time_ms)
            raise_t.append(h.time_ms)
            raise_key.append(h.key)
            raise_prio.append(str(h.details.get("priority", "low")))
        elif h.type == "AlarmReturnedToNormal":
            since.pop(h.key, None)
        elif h.type == "AlarmSuppressed" and h.details.get("chattering") and h.time_ms >= start_ms:
            chattering.add(h.key)
    t = np.asarray(raise_t, dtype=np.int64)
    in_period = (t >= start_ms) & (t < end_ms)
    idx = np.flatnonzero(in_period).tolist()
    window_idx = np.flatnonzero((t >= start_ms - window_ms) & (t < end_ms)).tolist()
    actors = bad_actors([raise_key[i] for i in idx])
    standing_keys = list(since)
    return EemuaReport(
        start_ms=start_ms,
        end_ms=end_ms,
        raises=len(idx),
        rate=alarm_rate(t[in_period], start_ms, end_ms),
        flood_share=flood_share_by_console(
            t[window_idx],
            [console_of(raise_key[i]) for i in window_idx],
            start_ms,
            end_ms,
            window_ms,
            threshold,
        ),
        bad_actors=actors,
        top10_share=sum(a.share for a in actors),
        standing=standing_alarms(standing_keys, [since[k] for k in standing_keys], end_ms, standing_ms),
        chattering=len(chattering),
        priorities=priority_distribution(raise_prio[i] for i in idx),
    )
