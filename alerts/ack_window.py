"""The acknowledgement window of an outbox read in sequence order by an asynchronous transport.

Both outboxes that publish over MQTT QoS 1 (the alarm events, alerts/book/outbox.py; the upward
forwarder, alerts/forward/senders.py) hand rows to a transport whose `publish` returns a token and
whose PUBACK arrives later on the network thread, possibly before `publish` has even returned.
This class keeps what that needs, once: how far rows were handed over (`sent`, ahead of the
cursor), which tokens are outstanding, acknowledgements that came early, how far everything is
acknowledged (every row up to the oldest one still outstanding), and when the persisted cursor is
due (at most every `persist_every_s` while acknowledgements are outstanding, at once when none
is). Pure: the caller reads rows, publishes, counts and writes the cursor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class AckWindow:
    """Thread-safe bookkeeping between a persisted cursor and the rows handed to a transport."""

    def __init__(
        self,
        cursor: int,
        *,
        max_in_flight: int = 1000,
        persist_every_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._lock = threading.Lock()
        self._max_in_flight = max_in_flight
        self._persist_every_s = persist_every_s
        self._clock = clock
        self._cursor = cursor  # persisted: every row <= it was acknowledged
        self._sent = cursor  # handed to the transport up to here
        self._in_flight: dict[int, int] = {}  # token -> row seq
        self._early: dict[int, bool] = {}  # acknowledged before publish() returned its token
        self._acked_upto = cursor  # what the persisted cursor may move to
        self._persisted_at = clock()

    @property
    def cursor(self) -> int:
        """The persisted cursor."""
        with self._lock:
            return self._cursor

    @property
    def acked_upto(self) -> int:
        with self._lock:
            return self._acked_upto

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def room(self) -> tuple[int, int]:
        """(how many more rows may be handed over now, the seq handed over last)."""
        with self._lock:
            return self._max_in_flight - len(self._in_flight), self._sent

    def handed(self, seq: int, token: int | None) -> bool | None:
        """Row `seq` was handed over as `token` (None: skipped, nothing outstanding). Returns the
        acknowledgement if it already came (True ok, False refused), else None."""
        with self._lock:
            self._sent = seq
            early = None if token is None else self._early.pop(token, None)
            if token is not None and early is None:
                self._in_flight[token] = seq
            self._update()
            return early

    def acknowledge(self, token: int, ok: bool) -> int | None:
        """The transport's acknowledgement of `token`: the seq of the handed row it settles (count
        it), or None if it came before `handed` (which then returns it)."""
        with self._lock:
            seq = self._in_flight.pop(token, None)
            if seq is None:
                self._early[token] = ok
                return None
            self._update()
            return seq

    def _update(self) -> None:
        self._acked_upto = min(self._in_flight.values()) - 1 if self._in_flight else self._sent

    def persist(self, write: Callable[[int], None], force: bool = False) -> bool:
        """Call `write(cursor)` if the acknowledged position moved and is due (or `force`)."""
        with self._lock:
            target = self._acked_upto
            due = force or not self._in_flight or self._clock() - self._persisted_at >= self._persist_every_s
            if target <= self._cursor or not due:
                return False
        write(target)  # outside the lock: a database write
        with self._lock:
            self._cursor = max(self._cursor, target)
            self._persisted_at = self._clock()
        return True
