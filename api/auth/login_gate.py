"""The way into a password check: a rate limit per source address and a small pool of its own.

A password check is argon2id: 64 MiB and tens of milliseconds of CPU each (argon2-cffi's RFC 9106
low-memory profile). Run on the thread pool that every route shares, a flood of logins took that
pool and gigabytes of memory, and the alarm list waited behind it. Here a login first passes a
moving-window limit per source address (the `limits` library), then runs on `workers` threads of
its own; when `max_waiting` logins already wait, the next is refused at once. Memory stays near
workers x 64 MiB whatever the flood, and the other routes keep their threads.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from api.auth.errors import AuthError

T = TypeVar("T")


class TooManyLogins(AuthError):
    """Too many logins from this address, or too many waiting overall; retry after `retry_after_s`."""

    def __init__(self, reason: str, retry_after_s: int):
        super().__init__(f"{reason}; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class LoginGate:
    """Rate limit per address, then a bounded pool: `await gate.run(address, check)`."""

    def __init__(self, *, workers: int = 2, max_waiting: int = 16, per_address: str = "20/minute"):
        self.workers = workers
        self.max_waiting = max_waiting
        self.per_address = parse(per_address)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="login")
        self._lock = threading.Lock()
        self._admitted = 0  # running or waiting for a worker
        self.refused = {"rate": 0, "busy": 0}

    async def run(self, address: str, check: Callable[[], T]) -> T:
        """Run `check` (which hashes a password) on the gate's pool, if the address and the queue allow."""
        if not self._limiter.hit(self.per_address, "login", address or "unknown"):
            reset = self._limiter.get_window_stats(self.per_address, "login", address or "unknown").reset_time
            self._count("rate")
            raise TooManyLogins("too many logins from this address", max(1, math.ceil(reset - time.time())))
        with self._lock:
            if self._admitted >= self.workers + self.max_waiting:
                self.refused["busy"] += 1
                raise TooManyLogins("too many logins at once", 1)
            self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, check)
        finally:
            with self._lock:
                self._admitted -= 1

    def _count(self, why: str) -> None:
        with self._lock:
            self.refused[why] += 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
