"""Compile the engine's numba kernels before the first real tick, on a fleet of nine sensors.

Why: numba compiles a kernel at its first call for the argument types it sees (a few seconds for
all of them on a cold cache, after an install or an upgrade); that first call must not be the first
alarm of a live plant. `warm_up_kernels` drives a tiny engine through the round shapes the service
sees (full rounds, partial rounds, rows never heard, a held spike, a fault, a vote, a creep fit), so
every kernel is compiled (or loaded from numba's cache, well under a second) at start.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from alerts.engine import jit
from alerts.engine.alarm_engine import AlarmEngine, EngineConfig
from alerts.engine.early_warning import attach_early_warnings
from sensors.index import SensorIndex
from sensors.model import Limits, Registry, Sensor, Site
from sensors.readings import ReadingBatch

_done = threading.Event()
_lock = threading.Lock()
T0_MS = 1_795_392_000_000


def _fleet() -> SensorIndex:
    def sensor(i: int, kind: str, unit: str, hi: float, **kw) -> Sensor:
        return Sensor(
            id=f"W{i}", site="warm", name=f"warm {i}", kind=kind, unit=unit, range=(0.0, hi), interval_s=1.0,
            limits=Limits(l=0.1 * hi, h=0.8 * hi, hh=0.9 * hi), device="gw", **kw,
        )  # fmt: skip

    sensors = [sensor(i, "level", "m", 20.0, forecast=True) for i in range(3)]
    sensors += [sensor(i, "gas", "%LEL", 100.0, group="G") for i in range(3, 6)]
    sensors += [sensor(i, "displacement", "mm", 500.0, forecast=True) for i in range(6, 9)]
    site = Site(id="warm", name="warm", kind="chemical", grade=4, sensors=tuple(sensors))
    return SensorIndex.build(Registry(sites=(site,)))


def warm_up_kernels() -> float:
    """Compile (or load) every compiled kernel once per process; returns the seconds it took (0 after)."""
    if not jit.ENABLED or _done.is_set():
        return 0.0
    with _lock:
        if _done.is_set():
            return 0.0
        started = time.perf_counter()
        index = _fleet()
        n = len(index)
        engine = AlarmEngine(index, EngineConfig(stale_if_never_heard=False), start_ms=T0_MS)
        attach_early_warnings(engine)
        rng = np.random.default_rng(0)
        x = np.array([8.0, 8.0, 8.0, 5.0, 5.0, 5.0, 100.0, 100.0, 100.0])
        for k in range(40):
            x = x + rng.normal(0, 0.05, n)
            value = x.copy()
            q = np.zeros(n, np.int8)
            slot = np.arange(n, dtype=np.int32)
            if k < 3:  # sensors heard one after the other
                slot = slot[: 3 * (k + 1)]
            elif k % 5 == 0:  # a partial round
                slot = slot[::2]
            if k == 30:
                value[0] += 15.0  # a jump held as a possible spike
                q[1] = 2  # a bad-quality reading: a fault
                value[3:6] = 95.0  # the gas group votes
            t = T0_MS + k * 1000 + np.arange(len(slot), dtype=np.int64)
            engine.process(ReadingBatch(slot, t, value[slot], q[slot]))
            engine.advance(T0_MS + (k + 1) * 1000)
        _done.set()
        return time.perf_counter() - started
