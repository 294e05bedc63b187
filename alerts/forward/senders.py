"""Deliver the forward outbox through one transport each, at least once, with a persisted cursor.

Each transport has its own cursor in the outbox (ForwardStore deliveries): the last record it had
acknowledged. Normal path: a record is handed to the transport once, and the cursor moves when the
transport acknowledges (HTTP: a 2xx; MQTT: the PUBACK). A failure keeps the cursor and retries
with capped exponential backoff. After a crash everything beyond the persisted cursor is sent
again, so a record acknowledged but not yet recorded as such goes out twice: the receiver drops
it by its key (docs/contracts.md §8). That crash window is the only way a record repeats.

- BatchSender: a synchronous transport (HTTP) that takes a batch and answers for all of it.
- AckSender: an asynchronous one (MQTT QoS 1): publish returns a token, `on_ack(token, ok)` comes
  later from the network thread; paho resends unacknowledged messages itself across reconnects,
  so a record is never published twice by one process (as alerts/book/outbox.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alerts.ack_window import AckWindow
from alerts.forward.store import ForwardStore

logger = logging.getLogger(__name__)


class BatchTransport(Protocol):
    name: str

    def deliver(self, bodies: Sequence[bytes]) -> None:
        """Deliver the batch or raise (the exception's text is shown as the last error)."""
        ...

    def close(self) -> None: ...


class TopicTransport(Protocol):
    def publish(self, topic: str, payload: bytes) -> int:
        """Hand one message over; the returned token comes back in on_ack."""
        ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff: first, 2 x first, ... at most `cap_s`."""

    first_s: float = 1.0
    cap_s: float = 15.0

    def delay(self, failures: int) -> float:
        return 0.0 if failures <= 0 else min(self.cap_s, self.first_s * 2 ** (failures - 1))


class _Status:
    """Counters and the last outcome of a sender, for /api/v1/forward/status and /metrics."""

    def __init__(self, name: str, target: str, outbox: ForwardStore, clock_ms: Callable[[], int]):
        self.name = name
        self.target = target
        self.outbox = outbox
        self._clock_ms = clock_ms
        self.delivered = 0  # records acknowledged by this process
        self.failures = 0  # failed attempts since start
        self.consecutive_failures = 0
        self.refused = 0  # records the upstream refused for good (MQTT reason code)
        self.last_success_ms: int | None = None
        self.last_error: str | None = None
        self.last_error_ms: int | None = None

    def _ok(self, n: int) -> None:
        self.delivered += n
        self.consecutive_failures = 0
        self.last_success_ms = self._clock_ms()

    def _failed(self, error: str) -> None:
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = error
        self.last_error_ms = self._clock_ms()

    def cursor_value(self) -> int:
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        cursor = self.cursor_value()
        return {
            "name": self.name,
            "target": self.target,
            "cursor": cursor,
            "backlog": self.outbox.count_after(cursor),
            "delivered": self.delivered,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "refused": self.refused,
            "last_success_ms": self.last_success_ms,
            "last_error": self.last_error,
            "last_error_ms": self.last_error_ms,
        }


class BatchSender(_Status):
    """Sends the outbox in batches through a synchronous transport; call `step` from one thread."""

    def __init__(
        self,
        outbox: ForwardStore,
        transport: BatchTransport,
        name: str,
        *,
        batch: int = 100,
        backoff: Backoff = Backoff(),
        clock_ms: Callable[[], int],
    ):
        super().__init__(name, transport.name, outbox, clock_ms)
        self.transport = transport
        self.batch = batch
        self.backoff = backoff
        self.cursor = outbox.open_delivery(name)

    def cursor_value(self) -> int:
        return self.cursor

    def step(self) -> float | None:
        """Send the next batch; returns how long to wait before the next step (None: nothing to send)."""
        rows = self.outbox.after(self.cursor, self.batch)
        if not rows:
            return None
        try:
            self.transport.deliver([r.body for r in rows])
        except Exception as e:  # any failure keeps the records; the error is shown, never the secret
            self._failed(str(e) or e.__class__.__name__)
            wait = self.backoff.delay(self.consecutive_failures)
            logger.warning("forward %s: %d records not delivered (%s); retrying in %.0f s", self.name,
                           len(rows), self.last_error, wait)  # fmt: skip
            return wait
        self.outbox.set_delivered(self.name, rows[-1].seq)
        self.cursor = rows[-1].seq
        self._ok(len(rows))
        return 0.0


def record_topic(template: str, site: str, kind: str) -> str:
    return template.format(site=site, kind=kind)


class AckSender(_Status):
    """Publishes each record as one message and moves the cursor on acknowledgements (MQTT QoS 1)."""

    def __init__(
        self,
        outbox: ForwardStore,
        transport: TopicTransport,
        name: str,
        target: str,
        topic: str,
        *,
        max_in_flight: int = 1000,
        persist_every_s: float = 0.5,
        clock_ms: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__(name, target, outbox, clock_ms)
        self.transport = transport
        self.topic = topic
        self._count_lock = threading.Lock()
        self._window = AckWindow(
            outbox.open_delivery(name),
            max_in_flight=max_in_flight,
            persist_every_s=persist_every_s,
            clock=clock,
        )

    def cursor_value(self) -> int:
        return self._window.acked_upto

    @property
    def in_flight(self) -> int:
        return self._window.in_flight

    def status(self) -> dict[str, Any]:
        return super().status() | {"in_flight": self.in_flight}

    def pump(self) -> int:
        """Publish what lies beyond what was sent, up to the in-flight bound; returns the count."""
        n = 0
        while True:
            room, after = self._window.room()
            if room <= 0:
                return n
            rows = self.outbox.after(after, min(room, 500))
            if not rows:
                return n
            for row in rows:
                # publish outside any lock: paho calls on_ack holding its own lock, which publish takes
                token = self.transport.publish(record_topic(self.topic, row.site, row.kind), row.body)
                early = self._window.handed(row.seq, token)
                if early is not None:
                    self._count(early)
                n += 1

    def on_ack(self, token: int, ok: bool = True) -> None:
        """The transport's acknowledgement of `token` (any thread)."""
        if self._window.acknowledge(token, ok) is not None:
            self._count(ok)

    def _count(self, ok: bool) -> None:
        with self._count_lock:  # the network thread and the pump both count
            if ok:
                self._ok(1)
            else:  # e.g. MQTT v5 "not authorized": the broker would refuse it again; holding would stall all
                self.refused += 1
                self._failed("upstream broker refused a record (not retried)")

    def persist(self, force: bool = False) -> bool:
        """Write the cursor if it moved and is due (or `force`); True if written."""
        return self._window.persist(lambda seq: self.outbox.set_delivered(self.name, seq), force)
