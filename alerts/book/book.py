"""The alarm book: the current alarms in memory, each lifecycle step journalled before it is visible.

docs/design.md decision 2: one step (a batch of condition changes, or one operator command) is one
journal transaction: the alarm rows, their history events, the audit row and any new alarm number
commit together or not at all, and the in-memory view changes only after the commit. The book
speaks to its journal through alerts/book/journal_port.py; alerts/book/sqlite_journal.py is the
SQLite adapter.

Errors are the lifecycle's domain errors (AlarmError: UnknownAlarm, InvalidTransition,
InvalidCommand); the journal's own errors propagate as they are, because they are not the
operator's fault.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from alerts.book.alarm_numbers import format_alarm_number, normalize_alarm_ref
from alerts.book.journal_port import AlarmJournalPort, JournalTransaction
from alerts.book.records import AuditEntry
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from alerts.engine.lifecycle import (
    ANNUNCIATED_STATES,
    DEFAULT_CHATTER,
    INSTRUMENT_FAULT,
    PROCESS_KINDS,
    SYSTEM_USER,
    Alarm,
    AlarmError,
    AlarmEvent,
    AlarmKey,
    AlarmState,
    ChatterPolicy,
    InvalidCommand,
    InvalidTransition,
    NewId,
    UnknownAlarm,
    acknowledge,
    apply_condition,
    clear_suspect,
    fault_may_suppress,
    mark_suspect,
    new_alarm,
    remove_from_service,
    return_to_service,
    suppress,
    tick,
    unshelve,
    unsuppress,
)
from alerts.engine.lifecycle import comment as comment_alarm
from alerts.engine.lifecycle import shelve as shelve_alarm
from sensors.readings import now_ms as _now_ms

logger = logging.getLogger(__name__)

DEFAULT_MAX_SHELVE_S = 24 * 3600


# ---- the service


AlarmRef = str | tuple[str, str, str, str]
Step = Callable[[Alarm, int, NewId], tuple[Alarm, list[AlarmEvent]]]


def _change_order(c: ConditionChange) -> tuple[int, bool]:
    # event-time order; at one instant a fault first, so it suppresses the process alarms it explains
    return (c.time_ms, c.kind is not ConditionKind.FAULT)


class AlarmBook:
    """The alarm service: current alarms in memory, each step journaled before it becomes visible.

    Thread-safe: one lock serialises condition batches, operator commands and clock ticks.
    `on_events` (e.g. the notifier and MQTT publisher) is called after each commit, under the lock
    so that listeners see steps in order; it should only enqueue. Its failures are logged, never raised.
    """

    def __init__(
        self,
        journal: AlarmJournalPort,
        *,
        policy: ChatterPolicy = DEFAULT_CHATTER,
        max_shelve_s: float = DEFAULT_MAX_SHELVE_S,
        auto_suppress_on_fault: bool = True,
        clock: Callable[[], int] | None = None,
        on_events: Callable[[list[AlarmEvent]], None] | None = None,
    ):
        self.journal = journal
        self._policy = policy
        self._max_shelve_s = max_shelve_s
        self._auto_suppress = auto_suppress_on_fault
        self._clock = clock or _now_ms
        self._on_events = on_events
        self._lock = threading.RLock()
        self._alarms: dict[AlarmKey, Alarm] = {}
        self._by_id: dict[str, AlarmKey] = {}
        self._by_source: dict[tuple[str, str], set[AlarmKey]] = {}
        self._source_supp = journal.load_source_suppressions()
        # every alarm with its state, in list order; rebuilt lazily after a change (reads are
        # frequent: consoles poll the list, thousands of points are on it in a flood)
        self._listed: list[tuple[Alarm, AlarmState]] | None = None
        # counts the changes made visible: readers that cache what they compute from the list
        # (the API's site overview and risk ranking) recompute when it moves, not on a timer
        self.version = 0
        self._remember(journal.load_current().values())
        self._reveal_what_a_fault_may_not_hide()
        logger.info(
            "alarm book loaded %d alarm points (%d on the list) from %s",
            len(self._alarms),
            sum(a.state in ANNUNCIATED_STATES for a in self._alarms.values()),
            journal.path,
        )

    # ---- reads

    def current(
        self,
        *,
        site: str | None = None,
        source: str | None = None,
        states: Iterable[AlarmState] | None = None,
        min_priority: Priority | None = None,
    ) -> list[Alarm]:
        """Alarms worth showing (default: every state but NORMAL), highest priority and newest first."""
        wanted = set(states) if states is not None else set(AlarmState) - {AlarmState.NORMAL}
        with self._lock:
            if self._listed is None:
                ordered = sorted(
                    self._alarms.values(), key=lambda a: (-a.priority, -(a.raised_ms or 0), a.key)
                )
                self._listed = [(a, a.state) for a in ordered]
            listed = self._listed
        return [
            a
            for a, state in listed
            if state in wanted
            and (site is None or a.key[0] == site)
            and (source is None or a.key[2] == source)
            and (min_priority is None or a.priority >= min_priority)
        ]

    def get(self, ref: AlarmRef) -> Alarm:
        """The current alarm by id (A000123, a123) or by point key; UnknownAlarm if none."""
        with self._lock:
            return self._alarms[self._resolve(ref, create=False)]

    def active_condition_keys(self) -> set[AlarmKey]:
        """Points whose condition is active, hidden or not: the engine marks these after a restart."""
        with self._lock:
            return {k for k, a in self._alarms.items() if a.active}

    def source_suppressions(self) -> dict[tuple[str, str], dict[str, int]]:
        """(site, source) -> {reason: since_ms} of the sources suppressed now."""
        with self._lock:
            return {k: dict(v) for k, v in self._source_supp.items()}

    # ---- condition changes and the clock

    def on_changes(self, changes: Iterable[ConditionChange], now_ms: int | None = None) -> list[AlarmEvent]:
        """Apply the engine's condition changes (event-time order) and journal them in one transaction."""
        now = self._now(now_ms)
        with self._lock:
            staged: dict[AlarmKey, Alarm] = {}
            supp = {k: dict(v) for k, v in self._source_supp.items()}
            events: list[AlarmEvent] = []
            with self.journal.transaction() as tx:
                new_id = self._new_id(tx)
                for change in sorted(changes, key=_change_order):
                    if (
                        self._auto_suppress
                        and change.kind is ConditionKind.FAULT
                        and change.scope == "sensor"
                    ):
                        self._follow_fault(change, tx, staged, supp, events, new_id)
                    before = staged[change.key] if change.key in staged else self._alarms.get(change.key)
                    if before is None and change.active and change.kind in PROCESS_KINDS:
                        before = self._born_under(change, supp, staged)
                    after, evs = apply_condition(before, change, now, new_id=new_id, policy=self._policy)
                    if after is not None and after is not before:
                        staged[change.key] = after
                    events += evs
                self._save(tx, staged, events, now)
            self._commit(staged, events, supp)
        return events

    def expire_shelves(self, now_ms: int | None = None) -> list[AlarmEvent]:
        """Run the clock: end shelves that ran out, release chattering alarms quiet long enough."""
        now = self._now(now_ms)
        with self._lock:
            due = [a for a in self._alarms.values() if a.shelved or a.chattering]
            if not due:
                return []
            staged: dict[AlarmKey, Alarm] = {}
            events: list[AlarmEvent] = []
            with self.journal.transaction() as tx:
                new_id = self._new_id(tx)
                for a in due:
                    after, evs = tick(a, now, new_id=new_id, policy=self._policy)
                    if evs:
                        staged[a.key] = after
                        events += evs
                self._save(tx, staged, events, now)
            self._commit(staged, events)
        return events

    # ---- operator commands

    def acknowledge(
        self, alarm_id: AlarmRef, user: str, comment: str = "", now_ms: int | None = None
    ) -> Alarm:
        """Acknowledge an alarm (UNACK -> ACK, RTN_UNACK -> NORMAL)."""
        return self._command(
            "acknowledge", alarm_id, user, comment, lambda a, t, _n: acknowledge(a, user, t, comment), now_ms
        )

    def shelve(
        self, alarm_id: AlarmRef, user: str, duration_s: float, reason: str, now_ms: int | None = None
    ) -> Alarm:
        """Shelve for `duration_s` (bounded by max_shelve_s); the reason is mandatory."""

        def step(a: Alarm, t: int, _n: NewId) -> tuple[Alarm, list[AlarmEvent]]:
            if not 0 < duration_s <= self._max_shelve_s:
                raise InvalidCommand(f"shelve duration must be within (0, {self._max_shelve_s:g}] s")
            return shelve_alarm(a, user, t + round(duration_s * 1000), reason, t)

        return self._command(
            "shelve", alarm_id, user, reason, step, now_ms, details={"duration_s": duration_s}
        )

    def unshelve(self, alarm_id: AlarmRef, user: str, comment: str = "", now_ms: int | None = None) -> Alarm:
        """End a shelve early."""
        return self._command(
            "unshelve",
            alarm_id,
            user,
            comment,
            lambda a, t, n: unshelve(a, user, t, comment, new_id=n),
            now_ms,
        )

    def set_out_of_service(self, ref: AlarmRef, user: str, reason: str, now_ms: int | None = None) -> Alarm:
        """Take a point out of service; `ref` may be a point key that never alarmed."""
        return self._command(
            "remove_from_service",
            ref,
            user,
            reason,
            lambda a, t, _n: remove_from_service(a, user, reason, t),
            now_ms,
            create=True,
        )

    def return_to_service(
        self, ref: AlarmRef, user: str, comment: str = "", now_ms: int | None = None
    ) -> Alarm:
        """Put a point back in service."""
        return self._command(
            "return_to_service",
            ref,
            user,
            comment,
            lambda a, t, n: return_to_service(a, user, t, comment, new_id=n),
            now_ms,
        )

    def comment(self, ref: AlarmRef, user: str, text: str, now_ms: int | None = None) -> Alarm:
        """Attach a note to an alarm."""
        return self._command(
            "comment", ref, user, text, lambda a, t, _n: comment_alarm(a, user, text, t), now_ms
        )

    def suppress_source(
        self, site: str, source: str, reason: str, user: str = SYSTEM_USER, now_ms: int | None = None
    ) -> list[AlarmEvent]:
        """Suppress every process alarm of a source (and future ones) for `reason`; idempotent."""
        return self._source_command("suppress_source", site, source, reason, user, now_ms, on=True)

    def unsuppress_source(
        self, site: str, source: str, reason: str, user: str = SYSTEM_USER, now_ms: int | None = None
    ) -> list[AlarmEvent]:
        """Lift a source suppression; active alarms it hid are annunciated."""
        return self._source_command("unsuppress_source", site, source, reason, user, now_ms, on=False)

    # ---- internals

    def _now(self, now_ms: int | None) -> int:
        return self._clock() if now_ms is None else now_ms

    @staticmethod
    def _new_id(tx: JournalTransaction) -> NewId:
        return lambda _key, _t: format_alarm_number(tx.next_alarm_number())

    def _resolve(self, ref: AlarmRef, create: bool) -> AlarmKey:
        if isinstance(ref, tuple):
            if ref in self._alarms:
                return ref
            if create:
                if len(ref) != 4 or ref[3] not in ConditionKind.__members__:
                    raise InvalidCommand(f"not an alarm point key: {ref!r}")
                return ref
            raise UnknownAlarm(f"no alarm point {'/'.join(ref)}")
        key = self._by_id.get(normalize_alarm_ref(ref)) or self._by_id.get(ref)
        if key is None:
            raise UnknownAlarm(f"no current alarm {ref!r}")
        return key

    def _command(
        self,
        action: str,
        ref: AlarmRef,
        user: str,
        why: str,
        step: Step,
        now_ms: int | None,
        *,
        create: bool = False,
        details: Mapping[str, Any] | None = None,
    ) -> Alarm:
        now = self._now(now_ms)
        with self._lock:
            key: AlarmKey | None = None
            target = ref if isinstance(ref, str) else ""
            try:
                key = self._resolve(ref, create)
                before = self._alarms.get(key) or new_alarm(key)
                target = before.alarm_id
                with self.journal.transaction() as tx:
                    after, events = step(before, now, self._new_id(tx))
                    tx.save_alarm(after)
                    tx.append_events(events, now)
                    tx.add_audit(AuditEntry(now, user, action, "ok", target, key, why, details=details or {}))
            except AlarmError as e:
                self.journal.add_audit(
                    AuditEntry(now, user, action, "refused", target, key, why, str(e), details=details or {})
                )
                logger.info("refused %s of %s by %r: %s", action, ref, user, e)
                raise
            self._commit({key: after}, events)
        return after

    def _source_command(
        self, action: str, site: str, source: str, reason: str, user: str, now_ms: int | None, *, on: bool
    ) -> list[AlarmEvent]:
        now = self._now(now_ms)
        with self._lock:
            staged: dict[AlarmKey, Alarm] = {}
            supp = {k: dict(v) for k, v in self._source_supp.items()}
            events: list[AlarmEvent] = []
            try:
                if not reason.strip():
                    raise InvalidCommand("reason is required")
                if not on and reason not in supp.get((site, source), {}):
                    raise InvalidTransition(f"{site}/{source} is not suppressed for {reason!r}")
                with self.journal.transaction() as tx:
                    self._set_source(
                        site, source, reason, on, now, user, tx, staged, supp, events, self._new_id(tx)
                    )
                    self._save(tx, staged, events, now)
                    tx.add_audit(
                        AuditEntry(
                            now,
                            user,
                            action,
                            "ok",
                            "",
                            None,
                            reason,
                            details={"site": site, "source": source},
                        )
                    )
            except AlarmError as e:
                self.journal.add_audit(
                    AuditEntry(
                        now,
                        user,
                        action,
                        "refused",
                        "",
                        None,
                        reason,
                        str(e),
                        {"site": site, "source": source},
                    )
                )
                raise
            self._commit(staged, events, supp)
        return events

    def _reveal_what_a_fault_may_not_hide(self) -> None:
        """Journals from before the fail-safe may hold limit alarms a fault hid: annunciate them, suspect."""
        hidden = [
            a
            for a in self._alarms.values()
            if INSTRUMENT_FAULT in a.suppressions and not fault_may_suppress(a.kind, a.priority)
        ]
        if not hidden:
            return
        now = self._now(None)
        staged: dict[AlarmKey, Alarm] = {}
        events: list[AlarmEvent] = []
        with self.journal.transaction() as tx:
            new_id = self._new_id(tx)
            for a in hidden:
                a, evs = unsuppress(a, INSTRUMENT_FAULT, now, new_id=new_id)
                a, more = mark_suspect(a, self._fault_of(a.site, a.source, staged), now)
                staged[a.key] = a
                events += evs + more
            self._save(tx, staged, events, now)
        logger.warning("revealed %d limit alarms an instrument fault had hidden (fail-safe)", len(hidden))
        self._commit(staged, events)

    def _born_under(
        self,
        change: ConditionChange,
        supp: dict[tuple[str, str], dict[str, int]],
        staged: Mapping[AlarmKey, Alarm],
    ) -> Alarm | None:
        """A point raised for the first time while its source is suppressed: born hidden, or suspect."""
        reasons = supp.get((change.site, change.source))
        if not reasons:
            return None
        hide = tuple(
            r for r in reasons if r != INSTRUMENT_FAULT or fault_may_suppress(change.kind, change.priority)
        )
        suspect = self._fault_of(change.site, change.source, staged) if len(hide) < len(reasons) else ""
        return Alarm(key=change.key, suppressions=hide, suspect=suspect)

    def _fault_of(self, site: str, source: str, staged: Mapping[AlarmKey, Alarm]) -> str:
        """The fault kind (e.g. "stuck") of a faulty sensor, as its FAULT alarm point says."""
        key = (site, "sensor", source, ConditionKind.FAULT.name)
        fault = staged.get(key) or self._alarms.get(key)
        return (fault.level if fault is not None and fault.active else "") or INSTRUMENT_FAULT

    def _follow_fault(
        self,
        change: ConditionChange,
        tx: JournalTransaction,
        staged: dict[AlarmKey, Alarm],
        supp: dict[tuple[str, str], dict[str, int]],
        events: list[AlarmEvent],
        new_id: NewId,
    ) -> None:
        # docs/design.md decision 6: the officer should read "detector fault", not "gas release",
        # except where a fault may not hide the alarm (fault_may_suppress): then it reads both
        self._set_source(
            change.site,
            change.source,
            INSTRUMENT_FAULT,
            change.active,
            change.time_ms,
            SYSTEM_USER,
            tx,
            staged,
            supp,
            events,
            new_id,
            fault=change.level or INSTRUMENT_FAULT,
        )

    def _set_source(
        self,
        site: str,
        source: str,
        reason: str,
        on: bool,
        time_ms: int,
        user: str,
        tx: JournalTransaction,
        staged: dict[AlarmKey, Alarm],
        supp: dict[tuple[str, str], dict[str, int]],
        events: list[AlarmEvent],
        new_id: NewId,
        fault: str = "",
    ) -> None:
        reasons = supp.setdefault((site, source), {})
        if on == (reason in reasons):
            return  # already so: the engine may resend a fault after a restart
        if on:
            reasons[reason] = time_ms
            tx.set_source_suppression(site, source, reason, time_ms, user)
        else:
            del reasons[reason]
            tx.clear_source_suppression(site, source, reason)
        keys = self._by_source.get((site, source), set()) | {
            k for k in staged if (k[0], k[2]) == (site, source)
        }
        for key in sorted(keys):
            if ConditionKind[key[3]] not in PROCESS_KINDS:
                continue
            a = staged[key] if key in staged else self._alarms[key]
            stands = reason == INSTRUMENT_FAULT and not fault_may_suppress(ConditionKind[key[3]], a.priority)
            if stands and reason not in a.suppressions:
                a, evs = mark_suspect(a, fault or reason, time_ms) if on else clear_suspect(a, time_ms)
                if not evs:
                    continue
            elif on and reason not in a.suppressions:
                a, evs = suppress(a, reason, time_ms)
            elif not on and reason in a.suppressions:
                a, evs = unsuppress(a, reason, time_ms, new_id=new_id)
            else:
                continue
            staged[key] = a
            events += evs

    @staticmethod
    def _save(
        tx: JournalTransaction, staged: Mapping[AlarmKey, Alarm], events: list[AlarmEvent], now: int
    ) -> None:
        tx.save_alarms(staged.values())
        tx.append_events(events, now)

    def _remember(self, alarms: Iterable[Alarm]) -> None:
        self._listed = None
        self.version += 1
        for a in alarms:
            old = self._alarms.get(a.key)
            if old is not None and old.alarm_id and old.alarm_id != a.alarm_id:
                self._by_id.pop(old.alarm_id, None)
            self._alarms[a.key] = a
            if a.alarm_id:
                self._by_id[a.alarm_id] = a.key
            self._by_source.setdefault((a.site, a.source), set()).add(a.key)

    def _commit(
        self,
        staged: Mapping[AlarmKey, Alarm],
        events: list[AlarmEvent],
        supp: dict[tuple[str, str], dict[str, int]] | None = None,
    ) -> None:
        """Make a committed step visible in memory, log its transitions and tell the listeners."""
        for key, a in staged.items():
            old = self._alarms.get(key)
            old_state = old.state if old is not None else AlarmState.NORMAL
            if old_state is not a.state:
                logger.info(
                    "alarm %s %s %s->%s value=%s", a.alarm_id, "/".join(key), old_state, a.state, a.value
                )
        self._remember(staged.values())
        if supp is not None:
            self._source_supp = {k: v for k, v in supp.items() if v}
        if events and self._on_events is not None:
            try:
                self._on_events(events)
            except Exception:
                logger.exception("alarm event listener failed; the alarm state is journaled regardless")
