"""A value computed from the running service at most once per interval, whoever asks: a console
polled by many users (2 000 sites of rows) costs one computation per interval, not one per request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from api.service_port import ServicePort
from sensors.readings import now_ms as _now_ms

T = TypeVar("T")


class Recent(Generic[T]):
    """The last value of `compute(service, now_ms)` and when it was computed, at most `max_age_ms` old."""

    def __init__(self, max_age_ms: int, compute: Callable[[ServicePort, int], T]):
        self.max_age_ms = max_age_ms
        self._compute = compute
        self._lock = threading.Lock()
        self._key: object = None
        self._time_ms = 0
        self._value: T | None = None

    def get(self, service: ServicePort) -> tuple[int, T]:
        """(when it was computed, the value), recomputed for another service or once too old."""
        with self._lock:
            now = _now_ms()
            if self._key is not service or now - self._time_ms > self.max_age_ms:
                self._value, self._key, self._time_ms = self._compute(service, now), service, now
            return self._time_ms, self._value  # type: ignore[return-value]
