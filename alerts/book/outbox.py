"""The event outbox: docs/contracts.md §3 events go out from the alarm journal, in journal order, at
least once.

The journal is the outbox (the transactional-outbox pattern): a step's events are in its history
table as soon as the step commits, so publishing reads them from there, after the commit, and
never has to be told what to send. A persisted cursor (journal table publish_cursors) holds the
last history seq whose event the transport acknowledged (MQTT: the PUBACK), so

- normal path: each event is handed to the transport once (`_sent` in memory runs ahead of the
  cursor), even while acknowledgements are outstanding;
- crash: everything after the persisted cursor is sent again on restart, so an event committed
  but not acknowledged before a SIGKILL is published afterwards (at least once). The cursor is
  written at most every `persist_every_s` while events flow, and at once when the outbox falls
  idle, so a restart repeats at most that much.

The transport (alerts/book/mqtt_out.py, or a fake in tests) must resend what it accepted until it is
acknowledged (paho does so for QoS 1 across reconnects) and call `on_ack` for each token.
A refused acknowledgement (e.g. MQTT v5 "not authorized") is counted and not retried: the broker
would refuse it again, and holding the cursor would stall every later event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import orjson

from alerts.ack_window import AckWindow
from alerts.book.records import HistoryEntry
from alerts.book.sqlite_journal import AlarmJournal
from alerts.engine.lifecycle import CONTRACT_EVENT_TYPES, DEFAULT_TZ

logger = logging.getLogger(__name__)

EVENTS_TOPIC = "hazmon/v1/{site}/events"  # docs/contracts.md §1: QoS 1, not retained


class EventTransport(Protocol):
    """Where events go; `publish` returns a token that a later `on_ack(token, ok)` names."""

    def publish(self, topic: str, payload: bytes) -> int: ...


def events_topic(site: str) -> str:
    return EVENTS_TOPIC.format(site=site)


def render_event(entry: HistoryEntry, site_tz: str = DEFAULT_TZ) -> bytes | None:
    """The §3 JSON of a journaled event, or None if the event is not a contract event."""
    body = entry.to_event().to_contract_event(site_tz)
    return None if body is None else orjson.dumps(body)


class EventOutbox:
    """Reads unsent contract events from the journal, hands them to the transport, tracks acks."""

    def __init__(
        self,
        journal: AlarmJournal,
        transport: EventTransport,
        *,
        name: str = "mqtt-events",
        site_tz: Callable[[str], str] = lambda _site: DEFAULT_TZ,
        max_in_flight: int = 1000,
        persist_every_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.journal = journal
        self.transport = transport
        self.name = name
        self._site_tz = site_tz
        cursor = journal.open_cursor(name)  # persisted: everything <= it was acknowledged
        self._window = AckWindow(
            cursor, max_in_flight=max_in_flight, persist_every_s=persist_every_s, clock=clock
        )
        self._count_lock = threading.Lock()
        self.published = 0
        self.acked = 0
        self.refused = 0
        self.skipped = 0  # rows that could not be rendered (logged)

    # ---- state

    @property
    def cursor(self) -> int:
        """The persisted cursor."""
        return self._window.cursor

    @property
    def in_flight(self) -> int:
        return self._window.in_flight

    def backlog(self) -> int:
        """Contract events journaled but not yet acknowledged (in flight included)."""
        return self.journal.count_after(self._window.acked_upto, CONTRACT_EVENT_TYPES)

    # ---- work

    def pump(self) -> int:
        """Send what the journal holds beyond what was sent, up to the in-flight bound; return the count."""
        n = 0
        while True:
            room, after = self._window.room()
            if room <= 0:
                return n
            rows = self.journal.history_after(after, CONTRACT_EVENT_TYPES, limit=min(room, 500))
            if not rows:
                return n
            for row in rows:
                try:
                    payload = render_event(row, self._site_tz(row.key[0]))
                except Exception:
                    logger.exception("cannot render journal event %d; skipped", row.seq)
                    payload = None
                # publish outside any lock: paho calls on_ack holding its own lock, which publish takes
                token = None if payload is None else self.transport.publish(events_topic(row.key[0]), payload)
                early = self._window.handed(row.seq, token)
                if token is None:
                    self.skipped += 1
                else:
                    self.published += 1
                    if early is not None:
                        self._count_ack(row.seq, early)
                n += 1

    def on_ack(self, token: int, ok: bool = True) -> None:
        """The transport's acknowledgement of `token` (any thread)."""
        seq = self._window.acknowledge(token, ok)
        if seq is not None:
            self._count_ack(seq, ok)

    def _count_ack(self, seq: int, ok: bool) -> None:
        with self._count_lock:  # the network thread and the pump both count
            if ok:
                self.acked += 1
                return
            self.refused += 1
        logger.warning("event at journal seq %d was refused by the broker; not retried", seq)

    def persist(self, force: bool = False) -> bool:
        """Write the cursor if it moved and is due (or `force`); return True if written."""
        return self._window.persist(lambda seq: self.journal.set_cursor(self.name, seq), force)


class OutboxRunner:
    """A thread that pumps the outbox when woken (a committed step, an ack) and persists its cursor."""

    def __init__(self, outbox: EventOutbox, idle_s: float = 0.5):
        self.outbox = outbox
        self.idle_s = idle_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="alarm-events-out", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, drain_s: float = 2.0) -> None:
        """Send what is left, wait up to `drain_s` for acknowledgements, persist the cursor."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        deadline = time.monotonic() + drain_s
        try:
            self.outbox.pump()
            while self.outbox.in_flight and time.monotonic() < deadline:
                time.sleep(0.02)
            self.outbox.persist(force=True)
        except Exception:
            logger.exception("event outbox: final flush failed; unsent events go out after restart")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.idle_s)
            self._wake.clear()
            try:
                self.outbox.pump()
                self.outbox.persist()
            except Exception:
                self.errors += 1
                logger.exception("event outbox error; retrying")
                self._stop.wait(1.0)
