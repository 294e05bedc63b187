"""api/auth/login_gate.py: a rate limit per address, and password checks on a bounded pool of their
own, so a login flood neither takes the threads of the other routes nor unbounded memory."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from api.auth.login_gate import LoginGate, TooManyLogins


def run(coroutine):
    """asyncio.run on a thread of its own: the browser tests' Playwright keeps a loop running on the
    main thread of a worker that may run these tests after them."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def test_logins_beyond_the_limit_of_an_address_are_refused_with_a_retry_time_and_others_go_on():
    gate = LoginGate(per_address="3/minute")

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
