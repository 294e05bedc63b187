"""A value computed from the running service at most once per interval, whoever asks: a console
polled by many users (2 000 sites of rows) costs one computation per interval, not one per request.

With a `version` (e.g. the alarm book's change counter) the value is also recomputed as soon as the
version moves, but not more often than every `min_age_ms`: a raise shows on the map and in the
ranking within a fraction of a second, and a flood of changes still costs a bounded rate."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from api.service_port import ServicePort
from sensors.readings import now_ms as _now_ms

T = TypeVar("T")


class Recent(Generic[T]):
    """The last value of `compute(service, now_ms)` and when it was computed, at most `max_age_ms` old."""

    def __init__(
        self,
        max_age_ms: int,
        compute: Callable[[ServicePort, int], T],
        *,
        version: Callable[[ServicePort], object] | None = None,
        min_age_ms: int = 200,
    ):
        self.max_age_ms = max_age_ms
        self.min_age_ms = min_age_ms
        self._compute = compute
        self._version = version
        self._lock = threading.Lock()
        self._key: object = None
        self._seen: object = None
        self._time_ms = 0
        self._value: T | None = None

    def get(self, service: ServicePort) -> tuple[int, T]:
        """(when it was computed, the value), recomputed for another service, once too old, or once
        its version moved (at most every `min_age_ms`)."""
        with self._lock:
            now = _now_ms()
            seen = self._version(service) if self._version is not None else None
            age = now - self._time_ms
            if (
                self._key is not service
                or age > self.max_age_ms
                or (seen != self._seen and age >= self.min_age_ms)
            ):
                self._value, self._key, self._time_ms = self._compute(service, now), service, now
                self._seen = seen
            return self._time_ms, self._value  # type: ignore[return-value]
