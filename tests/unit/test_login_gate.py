"""api/auth/login_gate.py: a rate limit per address, and password checks on a bounded pool of their
own, so a login flood neither takes the threads of the other routes nor unbounded memory."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from api.auth.login_gate import LoginGate, TooManyLogins


def run(coroutine):
    """asyncio.run on a thread of its own: the browser tests' Playwright keeps a loop running on the
    main thread of a worker that may run these tests after them."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def test_logins_beyond_the_limit_of_an_address_are_refused_with_a_retry_time_and_others_go_on():
    gate = LoginGate(per_address="3/minute", refusal_delay_s=0)

    async def attempts() -> list[str]:
        out = []
        for address in ["198.51.100.9"] * 4 + ["10.1.2.3"]:
            try:
                out.append(await gate.run(address, lambda a=address: a))
            except TooManyLogins as e:
                assert 50 <= e.retry_after_s <= 60
                out.append("refused")
        return out

    assert run(attempts()) == ["198.51.100.9"] * 3 + ["refused", "10.1.2.3"]
    assert gate.refused == {"rate": 1, "busy": 0}
    gate.close()


def test_no_more_checks_run_at_once_than_the_gate_has_workers_and_a_full_queue_refuses_at_once():
    gate = LoginGate(workers=2, max_waiting=3, per_address="1000/minute")
    release = threading.Event()
    running, most = [0], [0]
    lock = threading.Lock()

    def slow_check() -> str:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        release.wait(5)
        with lock:
            running[0] -= 1
        return "ok"

    async def flood() -> list[str]:
        async def one(i: int) -> str:
            try:
                return await gate.run(f"192.0.2.{i}", slow_check)
            except TooManyLogins:
                return "busy"

        tasks = [asyncio.create_task(one(i)) for i in range(8)]
        for _ in range(500):  # until all eight have asked: two run, three wait, three were refused
            await asyncio.sleep(0.002)
            if gate.refused["busy"] == 3 and running[0] == 2:
                break
        release.set()
        return await asyncio.gather(*tasks)

    results = run(flood())
    assert most[0] == 2
    assert sorted(results) == ["busy"] * 3 + ["ok"] * 5
    assert gate.refused["busy"] == 3
    gate.close()


def test_a_refusal_for_rate_is_answered_after_the_tarpit_delay_until_too_many_are_held():
    gate = LoginGate(per_address="1/minute", refusal_delay_s=0.1, max_delayed=2)

    async def four_refusals() -> list[float]:
        await gate.run("203.0.113.5", lambda: None)  # the address's one login this minute

        async def refused_after() -> float:
            t0 = time.monotonic()
            try:
                await gate.run("203.0.113.5", lambda: None)
            except TooManyLogins:
                return time.monotonic() - t0
            raise AssertionError("not refused")

        return sorted(await asyncio.gather(*(refused_after() for _ in range(4))))

    waits = run(four_refusals())
    assert waits[0] < 0.05 and waits[1] < 0.05  # beyond the two held, refused at once
    assert 0.08 <= waits[2] <= waits[3] < 1.0
    assert gate.refused["rate"] == 4
    gate.close()


def test_password_checks_run_at_a_lower_scheduling_priority_than_the_event_loop():
    gate = LoginGate()
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    in_pool = run(gate.run("192.0.2.1", lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    assert in_pool >= min(own + 10, 19)
    gate.close()
