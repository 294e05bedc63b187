"""`make bench-computed`: the tick of 100 000 sensors of which 20 000 are computed (issue 12).

The fleet is bench/engine.py's generated one (2 000 sites x 50 sensors, learned early warnings),
with the last 10 sensors of each site turned into computed sensors over measured ones of the
same site, in seven formula shapes (a scaled offset of one input, the mean of two, the maximum of
two, a design value minus a scaled input; and three over rolling windows of one input: its 15 min
and 8 h means, as a STEL and a TWA, and its slope over 1 h), all keeping the computed sensor in its
normal band. The last three of each site's ten are windowed: 6 000 of the 20 000.
Each tick: the 80 000 measured readings, the computed ones derived from them (sensors/computed.py),
then the engine on all 100 000 (process + advance), as the service runs them. The baseline,
measured in the same run, is the same engine tick on the same fleet with every sensor measured
(100 000 published readings, nothing derived): `ratio` is computed tick / all-measured tick.
The last line on stdout is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# run as a script, bench/ is first on the path and bench/ingest.py would shadow the ingest package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from alerts.engine.alarm_engine import AlarmEngine  # noqa: E402
from bench.engine import SENSORS_PER_DEVICE, SENSORS_PER_SITE, T0, Workload, attach_forecaster, log  # noqa: E402
from sensors.computed import ComputedSensors  # noqa: E402
from sensors.formula import parse_formula  # noqa: E402
from sensors.index import SensorIndex  # noqa: E402
from sensors.model import Registry  # noqa: E402
from sensors.readings import ReadingBatch  # noqa: E402
from simulators.generate import generate_registry  # noqa: E402

COMPUTED_PER_SITE = 10
# Each shape maps its inputs' deviations from their centre onto the computed sensor's own centre
# and span, so a computed sensor is as quiet as a measured one (the baseline fleet is quiet): the
# bench measures the cost of deriving, not of alarms the formulas would invent.
SHAPES = [
    ("(a - ca) * s + cc", "a"),
    ("((a - ca) + (b - cb)) / 2 * s + cc", "ab"),
    ("max(a - ca, b - cb) * s + cc", "ab"),
    ("cc - (ca - a) * s", "a"),
]
# the last three computed sensors of a site are windowed (sensors/windows.py); the first seven keep
# the shapes above as before
WINDOWED = [
    ("(mean_over(a, 900) - ca) * s + cc", "a"),  # a STEL
    ("(mean_over(a, 28800) - ca) * s + cc", "a"),  # a TWA
    # a velocity, scaled into the band: the bench's noise is fast
    ("cc + rate_over(a, 3600) * s * 1e-6", "a"),
]


def with_computed(registry: Registry, center: np.ndarray, span: np.ndarray) -> Registry:
    """The same fleet with the last COMPUTED_PER_SITE sensors of each site computed from its first
    ones; `center` and `span` by slot (bench/engine.py's Workload of the all-measured fleet)."""
    sites, slot = [], 0
    for site in registry.sites:
        n_measured = len(site.sensors) - COMPUTED_PER_SITE
        measured = site.sensors[:n_measured]
        computed = []
        for i, sensor in enumerate(site.sensors[n_measured:]):
            first_windowed = COMPUTED_PER_SITE - len(WINDOWED)
            expr, names = SHAPES[i % len(SHAPES)] if i < first_windowed else WINDOWED[i - first_windowed]
            picks = [(i + j) % n_measured for j in range(len(names))]
            own = slot + n_measured + i
            constants = {"cc": float(center[own])}
            constants.update({f"c{n}": float(center[slot + p]) for n, p in zip(names, picks, strict=True)})
            constants["s"] = float(span[own] / span[slot + picks[0]])
            inputs = {n: measured[p].id for n, p in zip(names, picks, strict=True)}
            formula = parse_formula({"expr": expr, "inputs": inputs, "constants": constants})
            computed.append(replace(sensor, formula=formula, device=None))
        sites.append(replace(site, sensors=(*measured, *computed)))
        slot += len(site.sensors)
    return replace(registry, sites=tuple(sites))


def run(index: SensorIndex, warmup: int, ticks: int, derive: bool) -> dict:
    engine = AlarmEngine(index, start_ms=T0)
    work = Workload(index)
    attach_forecaster(engine, "early_warning", work)
    computed = ComputedSensors(index) if derive else None
    measured = ~computed.is_computed if computed is not None else None
    derive_ms, tick_ms = [], []
    for k in range(warmup + ticks):
        batch, now = work.tick(k, events=k >= warmup - 2)
        a = time.perf_counter()
        if computed is not None:
            batch = batch.take(measured[batch.slot])
            batch = ReadingBatch.concat([batch, computed.derive(batch)])
        b = time.perf_counter()
        engine.process(batch)
        engine.advance(now)
        c = time.perf_counter()
        if k >= warmup:
            derive_ms.append((b - a) * 1e3)
            tick_ms.append((c - a) * 1e3)
    return {
        "tick_ms": statistics.median(tick_ms),
        "derive_ms": statistics.median(derive_ms),
        "readings": len(batch),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sensors", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=20)
    args = parser.parse_args()
    registry = generate_registry(
        max(1, args.sensors // SENSORS_PER_SITE),
        SENSORS_PER_SITE,
        seed=1,
        sensors_per_device=SENSORS_PER_DEVICE,
    )
    plain = SensorIndex.build(registry)
    quiet = Workload(plain)
    mixed = SensorIndex.build(with_computed(registry, quiet.center, quiet.span))
    n_computed = sum(s.formula is not None for s in mixed.sensors)
    n_windowed = sum(s.formula is not None and bool(s.formula.windows) for s in mixed.sensors)
    baseline = run(plain, args.warmup, args.ticks, derive=False)
    log(f"all measured: tick {baseline['tick_ms']:.1f} ms")
    result = run(mixed, args.warmup, args.ticks, derive=True)
    log(
        f"{n_computed:,} computed ({n_windowed:,} windowed): "
        f"tick {result['tick_ms']:.1f} ms, deriving {result['derive_ms']:.2f} ms"
    )
    print(
        json.dumps(
            {
                "sensors": len(mixed),
                "computed": n_computed,
                "windowed": n_windowed,
                "tick_ms": round(result["tick_ms"], 2),
                "derive_ms": round(result["derive_ms"], 3),
                "baseline_tick_ms_all_measured": round(baseline["tick_ms"], 2),
                "ratio": round(result["tick_ms"] / baseline["tick_ms"], 3),
                "target_tick_ms": 20.0,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
