"""Run the simulator's physics (simulators/stream.Simulation) against a real broker, faster than real time.

Every message is stamped with the wall clock when it is sent, as a live field would: the
service's stale checks run on the wall clock. `crossed_at` records when a watched sensor's first
reading at or above a level went out, so a test can time what the service does after it.
"""

from __future__ import annotations

import threading
import time

import orjson

from simulators.stream import Simulation
from tests.support.events import MonotonicMs
from tests.support.publisher import TestPublisher


class SimFeed:
    """The simulation in a thread until stopped (or `max_sim_s` of simulated time)."""

    def __init__(
        self,
        sim: Simulation,
        pub: TestPublisher,
        speed: float = 60.0,
        watch: tuple[str, float] | None = None,
        max_sim_s: float = 3600.0,
    ):
        self.sim, self.pub, self.speed, self.watch, self.max_sim_s = sim, pub, speed, watch, max_sim_s
        self.crossed_at: float | None = None  # time.monotonic() of the first watched reading >= level
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sim-feed")

    def start(self) -> SimFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        clock = MonotonicMs()
        wall0 = time.monotonic()
        k = 0
        while (
            not self._stop.is_set() and (t_sim := self.sim.tick_time(k)) <= self.sim.start_s + self.max_sim_s
        ):
            time.sleep(max(0.0, wall0 + (t_sim - self.sim.start_s) / self.speed - time.monotonic()))
            for msg in self.sim.tick(t_sim):
                if not msg.readings:
                    continue
                body = orjson.loads(msg.payload)
                body["ts"] = clock()
                self.pub.publish(msg.topic, orjson.dumps(body))
                if self.watch is not None and self.crossed_at is None:
                    sensor, level = self.watch
                    for item in body.get("readings", []):
                        if item.get("sensor") == sensor and item.get("v", -1e300) >= level:
                            self.crossed_at = time.monotonic()
            k += 1
