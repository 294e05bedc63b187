"""The way into a password check: a rate limit per source address and a small pool of its own.

A password check is argon2id: 64 MiB and tens of milliseconds of CPU each (argon2-cffi's RFC 9106
low-memory profile). Run on the thread pool that every route shares, a flood of logins took that
pool and gigabytes of memory, and the alarm list waited behind it. Here a login first passes a
moving-window limit per source address (the `limits` library), then runs on `workers` threads of
its own; when `max_waiting` logins already wait, the next is refused at once. Memory stays near
workers x 64 MiB whatever the flood, and the other routes keep their threads. The pool's threads
run at a lower scheduling priority (Linux nice is per thread), so that on a small machine the
hashing of a flood yields the CPU to the event loop that serves the alarm list and ingest. A
refusal for rate is answered after `refusal_delay_s` (a tarpit): an attacker who waits for answers,
as HTTP clients do, then costs the event loop one request a second per connection instead of
hundreds. At most `max_delayed` refusals wait at once; beyond that they are answered at once, so
the tarpit itself cannot be used to pile up connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
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

HASHING_NICENESS = 10
"""How much lower than the rest of hazmon a password check runs: nice 10 weighs about a tenth of
nice 0 in Linux's scheduler, so alarms and readings come first when the CPU is short."""


def _lower_this_threads_priority() -> None:
    """Pool initializer: raise this thread's nice value (allowed unprivileged; Linux only)."""
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + HASHING_NICENESS)


class TooManyLogins(AuthError):
    """Too many logins from this address, or too many waiting overall; retry after `retry_after_s`."""

    def __init__(self, reason: str, retry_after_s: int):
        super().__init__(f"{reason}; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class LoginGate:
    """Rate limit per address, then a bounded pool: `await gate.run(address, check)`."""

    def __init__(
        self,
        *,
        workers: int = 2,
        max_waiting: int = 16,
        per_address: str = "20/minute",
        refusal_delay_s: float = 1.0,
        max_delayed: int = 256,
    ):
        self.workers = workers
        self.max_waiting = max_waiting
        self.refusal_delay_s = refusal_delay_s
        self.max_delayed = max_delayed
        self._delayed = 0  # refusals waiting out their delay (event loop only: no lock needed)
        self.per_address = parse(per_address)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._pool = ThreadPoolExecutor(
            workers, thread_name_prefix="login", initializer=_lower_this_threads_priority
        )
        self._lock = threading.Lock()
        self._admitted = 0  # running or waiting for a worker
        self.refused = {"rate": 0, "busy": 0}

    async def run(self, address: str, check: Callable[[], T]) -> T:
        """Run `check` (which hashes a password) on the gate's pool, if the address and the queue allow."""
        if not self._limiter.hit(self.per_address, "login", address or "unknown"):
            reset = self._limiter.get_window_stats(self.per_address, "login", address or "unknown").reset_time
            self._count("rate")
            await self._tarpit()
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

    async def _tarpit(self) -> None:
        """Hold a refused caller for `refusal_delay_s`, unless `max_delayed` are already held."""
        if self.refusal_delay_s <= 0 or self._delayed >= self.max_delayed:
            return
        self._delayed += 1
        try:
            await asyncio.sleep(self.refusal_delay_s)
        finally:
            self._delayed -= 1

    def _count(self, why: str) -> None:
        with self._lock:
            self.refused[why] += 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
