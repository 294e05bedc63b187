"""`make bench-engine`: one alarm-engine tick at 10 k, 100 k and 1 M sensors, against plain Python.

A tick is one new sample for every sensor of a generated fleet (simulators/generate.py: real
limits, 2oo3 gas groups, gateways), as one ReadingBatch in slot order with per-sensor phases
inside the second, then the clock-driven checks at the end of the second:
`engine.process(batch)` + `engine.advance(now)`: limits, delays, rate of change, instrument
health, stale data, votes and, when alerts/engine/forecast.py exists, the early-warning step (trend
update, limit-crossing forecast, inverse velocity; `ForecastRound`, the engine's forecaster).
Values are a vectorised mean-reverting random walk; a few sensors hover at their H limit, a
few readings are spikes or bad quality, so some conditions change, as in a real fleet.

The baseline (bench/engine_baseline.py) applies the same rules one Python object per sensor.
It runs on the same readings in the same invocation; its condition changes are compared with
the engine's, and `ratio` = baseline tick / engine tick at `ratio_n` sensors.

Replay: a fleet's readings over many samples as one time-sorted batch, fed to the engine in
60 s event-time chunks exactly as `hazmon backtest` does (CSV parsing excluded).

Progress goes to stderr (`--profile` adds a cProfile of the engine tick per size); the last
line on stdout is JSON: tick_ms_<N>, ratio, ratio_n, replay_readings_per_s, then the details
(process/advance/forecast ms per size, baseline ticks, targets_met, peak RSS, bench seconds).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import pstats
import resource
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# run as a script, bench/ is first on the path and bench/ingest.py would shadow the ingest package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from alerts.engine import forecast as _forecast  # noqa: E402
from alerts.engine.alarm_engine import AlarmEngine, EngineConfig  # noqa: E402
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority  # noqa: E402
from alerts.engine.early_warning import attach_early_warnings  # noqa: E402
from alerts.replay import replay  # noqa: E402
from bench.engine_baseline import PlainFleet  # noqa: E402
from bench.learned import install_learned, time_refit  # noqa: E402
from sensors.index import SensorIndex  # noqa: E402
from sensors.readings import ReadingBatch  # noqa: E402
from simulators.generate import generate_registry  # noqa: E402

T0 = 1_795_392_000_000  # 2026-11-23T16:00:00Z, on a whole minute
INTERVAL_MS = 1_000  # generated sensors report every second
SENSORS_PER_SITE = 50
SENSORS_PER_DEVICE = 25  # two gateways per site
TARGETS = {  # from issue 15: at most for ticks, at least for the others
    "tick_ms_100000": 5.0,
    "tick_ms_1000000": 50.0,
    "ratio": 100.0,
    "replay_readings_per_s": 500_000.0,
}


def log(msg: str) -> None:
    print(f"[bench-engine] {msg}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory now (MB): differences of it measure what a step keeps."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def build_index(n: int, seed: int = 1) -> SensorIndex:
    t0 = time.perf_counter()
    sites = max(1, n // SENSORS_PER_SITE)
    registry = generate_registry(sites, SENSORS_PER_SITE, seed=seed, sensors_per_device=SENSORS_PER_DEVICE)
    index = SensorIndex.build(registry)
    log(f"fleet of {len(index):,} sensors ({sites:,} sites) generated in {time.perf_counter() - t0:.1f} s")
    return index


# ---- readings


class Workload:
    """One sample per sensor per tick: an Ornstein-Uhlenbeck walk around the middle of the normal band.

    Same seed, same readings: the engine and the baseline see identical batches.
    """

    def __init__(self, index: SensorIndex, seed: int = 42):
        n = len(index)
        self.n = n
        self.rng = np.random.default_rng(seed)
        lim = np.array(
            [
                [np.nan if v is None else v for v in (s.limits.ll, s.limits.l, s.limits.h, s.limits.hh)]
                for s in index.sensors
            ],
            dtype=np.float64,
        ).reshape(n, 4)
        lo, hi = index.range_lo, index.range_hi
        low = np.where(np.isnan(lim[:, 1]), np.where(np.isnan(lim[:, 0]), lo, lim[:, 0]), lim[:, 1])
        high = np.where(np.isnan(lim[:, 2]), np.where(np.isnan(lim[:, 3]), hi, lim[:, 3]), lim[:, 2])
        self.center = (low + high) / 2
        # one sensor in a thousand hovers at its H limit: alarms come and go through deadband and delays
        near = (self.rng.random(n) < 0.001) & ~np.isnan(lim[:, 2])
        self.center[near] = lim[near, 2]
        self.span = hi - lo
        self.mid_range = (lo + hi) / 2
        self.sigma = 0.002 * self.span
        self.noise_sd = self.sigma / math.sqrt(1 - 0.95**2)  # the walk's stationary spread
        self.x = self.center.copy()
        self.phase = self.rng.integers(0, INTERVAL_MS, n)  # each sensor samples at its own moment
        self.slot = np.arange(n, dtype=np.int32)
        self.good = np.zeros(n, dtype=np.int8)
        self.events = max(1, n // 100_000)  # spikes and bad-quality readings per tick

    def tick(self, k: int, events: bool = True) -> tuple[ReadingBatch, int]:
        """The readings of second k (in slot order, as gateways deliver them) and the clock after it."""
        self.x += 0.05 * (self.center - self.x) + self.sigma * self.rng.standard_normal(self.n)
        value = self.x.copy()
        quality = self.good
        if events:
            spiky = self.rng.integers(0, self.n, self.events)
            value[spiky] += np.where(value[spiky] > self.mid_range[spiky], -0.2, 0.2) * self.span[spiky]
            quality = self.good.copy()
            quality[self.rng.integers(0, self.n, self.events)] = 2
        ts = T0 + k * INTERVAL_MS + self.phase
        return ReadingBatch(self.slot, ts, value, quality), T0 + (k + 1) * INTERVAL_MS


# ---- forecast trend in the tick (when alerts/engine/forecast.py exists)


class ForecastRound:
    """engine.forecaster for the bench: forecast.py's trend updates each round, forecasts per batch.

    Sensors with `forecast: true` get an EW trend (`update_trend`) and a limit-crossing forecast
    (`forecast_crossing`); displacement sensors also get the inverse-velocity failure time
    (`update_inverse_velocity`, `failure_time`). Flips of a warning become EARLY_WARNING changes.
    A cheaper alternative to alerts/engine/early_warning.py (`--forecaster trend`), through the same hooks:
    `on_round` updates the trends of the round's sensors (the whole state at once when the round has
    every sensor), `on_batch_end` forecasts once per batch, only for trends that are significant (a
    warning needs a significant trend) or warned before; `refresh` forecasts on the clock alone.
    """

    def __init__(self, index: SensorIndex):
        fc = _forecast
        sensors = index.sensors
        self.n_all = len(sensors)
        self.slots = np.flatnonzero(np.fromiter((s.forecast for s in sensors), bool, len(sensors)))
        self.row_of = np.full(len(sensors), -1, dtype=np.intp)
        self.row_of[self.slots] = np.arange(len(self.slots))
        self.sensors = [sensors[i] for i in self.slots.tolist()]
        tau, self.horizon, daily = fc.sensor_params(self.sensors)
        self.trend = fc.TrendState.empty(tau, daily)
        self.limits_lo, self.limits_hi = fc.limit_arrays(self.sensors)
        creep = np.array([s.kind == "displacement" for s in self.sensors], dtype=bool)
        self.creep_rows = np.flatnonzero(creep)
        self.creep_of = np.full(len(self.slots), -1, dtype=np.intp)
        self.creep_of[self.creep_rows] = np.arange(len(self.creep_rows))
        self.creep = fc.InverseVelocityState.empty(len(self.creep_rows))
        self.fail_age_s = 2.0 * self.creep.step_s + self.creep.disp.tau_s  # failure_time's default max age
        self.warn = np.zeros(len(self.slots), dtype=bool)
        self.fail_warn = np.zeros(len(self.creep_rows), dtype=bool)
        self.newest_ms = -1  # newest sample since the last forecast (the time of the warnings)
        self.spent_s = 0.0  # time in this forecaster (part of the engine tick)

    # ---- the engine's hooks

    def on_round(self, slot: np.ndarray, t: np.ndarray, x: np.ndarray, changes: list) -> None:
        a = time.perf_counter()
        self._update(slot, t, x)
        self.spent_s += time.perf_counter() - a

    def on_batch_end(self, now_ms: int, changes: list) -> None:
        a = time.perf_counter()
        if self.newest_ms >= 0:  # the batch applied samples: forecast at the newest of them
            self._forecast(self.newest_ms, changes)
            self.newest_ms = -1
        self.spent_s += time.perf_counter() - a

    def refresh(self, now_ms: int, changes: list) -> None:
        self._forecast(now_ms, changes)

    def restore_active(self, slot: int) -> None:
        row = self.row_of[slot]
        if row >= 0:
            self.warn[row] = True

    # ---- work

    def _update(self, slot: np.ndarray, t: np.ndarray, x: np.ndarray) -> None:
        fc = _forecast
        if slot.size == self.n_all and bool(np.all(slot[1:] > slot[:-1])):  # every sensor, in order
            rows = None
            t_s, xs = t.take(self.slots) / 1000.0, x.take(self.slots)
        else:
            rows = self.row_of[slot]
            sel = np.flatnonzero(rows >= 0)
            if not len(sel):
                return
            rows, t_s, xs = rows[sel], t[sel] / 1000.0, x[sel]
        fc.update_trend(self.trend, rows, t_s, xs)
        if len(self.creep_rows):
            if rows is None:
                fc.update_inverse_velocity(self.creep, None, t_s[self.creep_rows], xs[self.creep_rows])
            else:
                cr = self.creep_of[rows]
                has = np.flatnonzero(cr >= 0)
                if len(has):
                    fc.update_inverse_velocity(self.creep, cr[has], t_s[has], xs[has])
        self.newest_ms = max(self.newest_ms, int(t.max()))

    def _forecast(self, now_ms: int, changes: list) -> None:
        fc = _forecast
        now_s = now_ms / 1000.0
        # forecast_crossing warns only on a significant trend (same test, same arithmetic): forecast
        # those and the ones that warned before
        st = fc.trend_stats(self.trend)
        with np.errstate(invalid="ignore"):
            judge = np.abs(st.slope) > 3.0 * st.slope_se
            judge &= st.n_eff >= 10.0
            judge &= st.span_s >= 0.5 * self.trend.tau_s
        judge |= self.warn
        rows = np.flatnonzero(judge)
        warn = np.zeros(len(self.slots), dtype=bool)
        if len(rows):
            cross = fc.forecast_crossing(
                self.trend.take(rows),
                now_s,
                self.limits_lo[rows],
                self.limits_hi[rows],
                self.horizon[rows],
            )
            warn[rows] = cross.warn
            eta = np.full(len(self.slots), np.inf)
            eta[rows] = cross.eta_s
            for r in np.flatnonzero(warn != self.warn).tolist():
                changes.append(self._change(r, bool(warn[r]), now_ms, "EARLY_WARNING", float(eta[r])))
        self.warn = warn
        if len(self.creep_rows):
            # a failure-time warning needs a fit fed recently (failure_time's freshness test)
            with np.errstate(invalid="ignore"):
                fresh = now_s - self.creep.t_fed <= self.fail_age_s
            rows = np.flatnonzero(fresh | self.fail_warn)
            fail_warn = np.zeros(len(self.creep_rows), dtype=bool)
            if len(rows):
                fail_warn[rows] = fc.failure_time(self.creep.take(rows), now_s).warn
            for c in np.flatnonzero(fail_warn != self.fail_warn).tolist():
                changes.append(
                    self._change(int(self.creep_rows[c]), bool(fail_warn[c]), now_ms, "FAILURE_TIME")
                )
            self.fail_warn = fail_warn

    def _change(self, row: int, on: bool, t_ms: int, level: str, eta_s: float = math.inf) -> ConditionChange:
        s = self.sensors[row]
        eta = int(eta_s * 1000) if on and math.isfinite(eta_s) else None
        return ConditionChange(
            s.site,
            s.id,
            ConditionKind.EARLY_WARNING,
            on,
            t_ms,
            Priority.MEDIUM,
            level,
            message=f"{s.name}趋势预警{'' if on else '解除'}",
            eta_ms=eta,
        )


class Timed:
    """A forecaster with a stopwatch: forwards the engine's hooks, adds up the time spent in them."""

    def __init__(self, forecaster):
        self.inner = forecaster
        self.spent_s = 0.0

    def _timed(self, hook, *args) -> None:
        a = time.perf_counter()
        hook(*args)
        self.spent_s += time.perf_counter() - a

    def on_round(self, slot, t, x, changes) -> None:
        self._timed(self.inner.on_round, slot, t, x, changes)

    def on_batch_end(self, now_ms, changes) -> None:
        self._timed(self.inner.on_batch_end, now_ms, changes)

    def refresh(self, now_ms, changes) -> None:
        self._timed(self.inner.refresh, now_ms, changes)

    def restore_active(self, slot) -> None:
        self.inner.restore_active(slot)


FORECASTERS = ("early_warning", "trend", "none")


def attach_forecaster(engine: AlarmEngine, kind: str, learned: Workload | None = None) -> None:
    """The forecast step of the tick.

    early_warning: alerts/engine/early_warning.py as the service attaches it (with `learned`, every forecast
    sensor has a fitted behaviour for that workload, as in a service that has learned); trend:
    ForecastRound (trend update per round, forecast per batch); none: the engine alone.
    """
    if kind == "early_warning":
        ew = attach_early_warnings(engine)
        if learned is not None:
            t0 = time.perf_counter()
            n = install_learned(ew, learned.center, learned.noise_sd, T0)
            log(f"learned behaviour installed on {n:,} of {len(ew.slots):,} forecast sensors "
                f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        engine.attach_forecaster(Timed(ew))
    elif kind == "trend":
        engine.attach_forecaster(ForecastRound(engine.index))


# ---- timing


def change_key(c) -> tuple:
    return (c.site, c.scope, c.source, c.kind.name, c.active, c.time_ms, c.level)


def run_engine(
    index: SensorIndex, warmup: int, ticks: int, profile: bool, forecaster: str, learned: bool = True
) -> dict:
    work = Workload(index)
    gc.collect()
    rss0 = current_rss_mb()
    t0 = time.perf_counter()
    engine = AlarmEngine(index, start_ms=T0)
    attach_forecaster(engine, forecaster, work if learned else None)
    log(f"engine for {len(index):,} sensors built in {time.perf_counter() - t0:.1f} s")
    proc_ms, adv_ms, fc_ms, keys = [], [], [], []
    for k in range(warmup + ticks):
        batch, now = work.tick(k, events=k >= warmup - 2)
        spent = engine.forecaster.spent_s if engine.forecaster else 0.0
        a = time.perf_counter()
        changes = engine.process(batch)
        b = time.perf_counter()
        changes += engine.advance(now)
        c = time.perf_counter()
        keys.append(Counter(change_key(ch) for ch in changes))
        if k >= warmup:
            proc_ms.append((b - a) * 1e3)
            adv_ms.append((c - b) * 1e3)
            fc_ms.append(((engine.forecaster.spent_s if engine.forecaster else 0.0) - spent) * 1e3)
    tick_ms = [p + a for p, a in zip(proc_ms, adv_ms, strict=True)]
    gc.collect()
    engine_mb = current_rss_mb() - rss0  # the engine's state after its ticks (the readings excluded)
    out = {
        "engine_bytes_per_sensor": engine_mb * 2**20 / len(index),
        "tick_ms": statistics.median(tick_ms),
        "process_ms": statistics.median(proc_ms),
        "advance_ms": statistics.median(adv_ms),
        "forecast_ms": statistics.median(fc_ms),
        "keys": keys,
        "changes": sum(sum(c.values()) for c in keys),
    }
    log(
        f"engine {len(index):>9,} sensors: tick {out['tick_ms']:.1f} ms median of {ticks} "
        f"(process {out['process_ms']:.1f}, of which forecast {out['forecast_ms']:.1f}, "
        f"+ advance {out['advance_ms']:.1f}; "
        f"min {min(tick_ms):.1f}, max {max(tick_ms):.1f}); {out['changes']} condition changes; "
        f"engine state {out['engine_bytes_per_sensor']:,.0f} bytes per sensor"
    )
    if profile:
        prof = cProfile.Profile()
        for k in range(warmup + ticks, warmup + ticks + 5):
            batch, now = work.tick(k)
            prof.enable()
            engine.process(batch)
            engine.advance(now)
            prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(25)
        log(f"profile of 5 ticks at {len(index):,} sensors:\n{text.getvalue()}")
    return out


def run_baseline(index: SensorIndex, warmup: int, ticks: int, forecaster: str) -> dict:
    t0 = time.perf_counter()
    trend = forecaster != "none"
    fleet = PlainFleet(index.sensors, start_ms=T0, trend=trend, cadence=forecaster == "early_warning")
    log(f"baseline for {len(index):,} sensors built in {time.perf_counter() - t0:.1f} s")
    work = Workload(index)
    tick_ms, keys = [], []
    for k in range(warmup + ticks):
        batch, now = work.tick(k, events=k >= warmup - 2)
        a = time.perf_counter()
        columns = (batch.slot, batch.ts_ms, batch.value, batch.quality)
        readings = zip(*(c.tolist() for c in columns), strict=True)
        changes = fleet.process(readings)
        changes += fleet.advance(now)
        b = time.perf_counter()
        keys.append(Counter(change_key(ch) for ch in changes))
        if k >= warmup:
            tick_ms.append((b - a) * 1e3)
    out = {"tick_ms": statistics.median(tick_ms), "keys": keys}
    log(f"baseline {len(index):>7,} sensors: tick {out['tick_ms']:.1f} ms median of {ticks}")
    return out


def compare(engine_keys: list[Counter], baseline_keys: list[Counter], early_warnings: bool = True) -> bool:
    """The engine and the baseline must raise the same condition changes on the same readings.

    early_warnings=False leaves EARLY_WARNING changes out (the baseline does not reproduce
    alerts/engine/early_warning.py's warning rules, only its work).
    """
    n = min(len(engine_keys), len(baseline_keys))
    e, b = sum(engine_keys[:n], Counter()), sum(baseline_keys[:n], Counter())
    if not early_warnings:
        e, b = (Counter({k: v for k, v in c.items() if k[3] != "EARLY_WARNING"}) for c in (e, b))
    what = "condition changes" if early_warnings else "condition changes (early warnings not compared)"
    if e == b:
        log(f"baseline agrees with the engine: {sum(e.values())} {what} over {n} ticks")
        return True
    log(
        f"MISMATCH over {n} ticks: engine {sum(e.values())}, baseline {sum(b.values())} changes; "
        f"engine only {list((e - b).elements())[:5]}, baseline only {list((b - e).elements())[:5]}"
    )
    return False


# ---- replay


def run_replay(
    n_sensors: int, samples: int, forecaster: str, baseline_readings: int, learned: bool = True
) -> dict:
    index = build_index(n_sensors, seed=7)
    work = Workload(index, seed=7)
    parts = [work.tick(k, events=k >= 25)[0] for k in range(samples)]
    whole = ReadingBatch.concat(parts)
    batch = whole.take(np.argsort(whole.ts_ms, kind="stable"))  # as load_readings_csv returns it
    engine = AlarmEngine(index, EngineConfig(stale_if_never_heard=False), start_ms=T0)
    attach_forecaster(engine, forecaster, work if learned else None)
    seen = []
    a = time.perf_counter()
    n = replay(engine, batch, lambda changes, now: seen.append(len(changes)))
    elapsed = time.perf_counter() - a
    rate = n / elapsed
    log(
        f"replay: {n:,} readings ({n_sensors:,} sensors x {samples} samples, 60 s chunks) in "
        f"{elapsed:.2f} s = {rate:,.0f} readings/s; {sum(seen)} condition changes"
    )
    out = {"readings_per_s": rate, "readings": n}
    if baseline_readings > 0:  # the plain fleet through the same loop, on the first readings
        part = batch.take(slice(0, min(baseline_readings, len(batch))))
        fleet = PlainFleet(
            index.sensors,
            start_ms=T0,
            trend=forecaster != "none",
            cadence=forecaster == "early_warning",
            stale_if_never_heard=False,
        )
        a = time.perf_counter()
        replay(_PlainEngine(fleet), part, lambda changes, now: None)
        base_rate = len(part) / (time.perf_counter() - a)
        log(f"baseline replay: {len(part):,} readings at {base_rate:,.0f} readings/s")
        out["baseline_readings_per_s"] = base_rate
    return out


class _PlainEngine:
    """A PlainFleet behind the engine's process/advance, for alerts.replay's loop."""

    def __init__(self, fleet: PlainFleet):
        self.fleet = fleet

    def process(self, batch: ReadingBatch) -> list:
        columns = (batch.slot, batch.ts_ms, batch.value, batch.quality)
        return self.fleet.process(zip(*(c.tolist() for c in columns), strict=True))

    def advance(self, now_ms: int) -> list:
        return self.fleet.advance(now_ms)

    def refresh_forecasts(self, now_ms: int) -> list:
        """The plain fleet judges its forecasts as readings come (process): nothing waits for the clock."""
        return []


# ---- refit of the learned behaviour


def run_refits(n: int, n_1min: int, days: float) -> dict:
    """Seconds to refit `n` sensors from `days` of history on their own grids, and (worst case) on
    1-minute grids, measured on `n_1min` sensors and scaled to `n` (labelled _est)."""
    out: dict[str, object] = {}
    for size, step in ((n, None), (n_1min, 60.0)):
        if size <= 0:
            continue
        index = build_index(size, seed=11)
        engine = AlarmEngine(index, start_ms=T0)
        ew = attach_early_warnings(engine)
        work = Workload(index, seed=11)
        rss0 = peak_rss_mb()
        r = time_refit(ew, work.center, work.noise_sd, T0, days, step)
        grid = "1-minute grid" if step else "their own grids"
        log(
            f"refit of {r['fitted']:,} of {r['sensors']:,} forecast sensors ({len(index):,} in the fleet), "
            f"{days:g} days on {grid} {r['sensors_by_step_s']}: {r['grid_cells']:,} cells "
            f"in {r['fit_s']:.1f} s "
            f"(+ {r['history_s']:.1f} s making the history); peak RSS {rss0:,.0f} -> {peak_rss_mb():,.0f} MB"
        )
        if step is None:
            out[f"refit_s_{size}"] = round(r["fit_s"], 1)
            out[f"refit_forecast_sensors_{size}"] = r["sensors"]
            out["refit_share_of_day"] = round(r["fit_s"] / 86_400, 4)
        else:
            per = r["fit_s"] / max(r["sensors"], 1)
            fleet = n if n > 0 else size
            out[f"refit_1min_s_{size}"] = round(r["fit_s"], 1)
            out[f"refit_1min_s_est_{fleet}"] = round(per * fleet, 0)
        del index, engine, ew, work
        gc.collect()
    return out


# ---- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="fleet sizes, comma separated")
    parser.add_argument("--warmup", type=int, default=24, help="ticks before timing (spike check needs 20)")
    parser.add_argument(
        "--baseline-budget-s", type=float, default=60.0, help="run the baseline at a size only if it fits"
    )
    parser.add_argument("--replay-sensors", type=int, default=2_000)
    parser.add_argument("--replay-samples", type=int, default=500)
    parser.add_argument(
        "--baseline-replay-readings", type=int, default=100_000, help="replay readings for the baseline rate"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile 5 extra engine ticks per size")
    parser.add_argument(
        "--no-learned", action="store_true", help="time the early warnings before any behaviour is learned"
    )
    parser.add_argument("--refit-sensors", type=int, default=100_000, help="fleet refitted (0: skip)")
    parser.add_argument("--refit-days", type=float, default=30.0, help="history per sensor for the refit")
    parser.add_argument(
        "--refit-1min-sensors",
        type=int,
        default=4_000,
        help="sensors refitted on a 1-minute grid each (the worst case), scaled to --refit-sensors",
    )
    parser.add_argument(
        "--forecaster",
        choices=FORECASTERS,
        default="early_warning",
        help="the forecast step of the tick: alerts/engine/early_warning.py (default), the "
        "bench's ForecastRound on alerts/engine/forecast.py, or none",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    sizes = [int(s) for s in args.sizes.split(",")]
    forecaster = args.forecaster
    forecast = forecaster != "none"
    log(f"forecast in the tick: {forecaster}")

    figures: dict[str, object] = {}
    ratios: dict[int, float] = {}
    agrees: dict[int, bool] = {}
    baseline_ms_per_sensor = None
    for n in sizes:
        gc.collect()
        rss_before = current_rss_mb()
        index = build_index(n)
        gc.collect()
        index_mb = current_rss_mb() - rss_before  # the registry and its index: the sensors' descriptions
        ticks = 100 if n <= 10_000 else 30 if n <= 100_000 else 16  # 16: a steadier median on a noisy box
        eng = run_engine(index, args.warmup, ticks, args.profile, forecaster, learned=not args.no_learned)
        figures[f"tick_ms_{n}"] = round(eng["tick_ms"], 2)
        figures[f"process_ms_{n}"] = round(eng["process_ms"], 2)
        figures[f"engine_bytes_per_sensor_{n}"] = round(eng["engine_bytes_per_sensor"])
        figures[f"index_bytes_per_sensor_{n}"] = round(index_mb * 2**20 / n)
        figures[f"advance_ms_{n}"] = round(eng["advance_ms"], 2)
        if forecast:
            figures[f"forecast_ms_{n}"] = round(eng["forecast_ms"], 2)
        b_ticks = 10 if n <= 10_000 else 5
        estimate = (baseline_ms_per_sensor or 0.0) * n * (args.warmup + b_ticks)
        if estimate / 1e3 <= args.baseline_budget_s:
            base = run_baseline(index, args.warmup, b_ticks, forecaster)
            baseline_ms_per_sensor = base["tick_ms"] / n
            figures[f"baseline_tick_ms_{n}"] = round(base["tick_ms"], 1)
            ratios[n] = base["tick_ms"] / eng["tick_ms"]
            agrees[n] = compare(eng["keys"], base["keys"], early_warnings=forecaster != "early_warning")
        else:
            log(f"baseline skipped at {n:,} sensors (about {estimate / 1e3:.0f} s)")
            # per-sensor cost of the largest baseline run, scaled: the ratio is an estimate
            est = baseline_ms_per_sensor * n
            figures[f"baseline_tick_ms_est_{n}"] = round(est, 1)
            figures[f"ratio_est_{n}"] = round(est / eng["tick_ms"], 1)
        del index, eng
        gc.collect()
        log(f"peak RSS so far {peak_rss_mb():,.0f} MB")

    replay = run_replay(
        args.replay_sensors,
        args.replay_samples,
        forecaster,
        args.baseline_replay_readings,
        not args.no_learned,
    )
    if args.refit_sensors > 0:
        figures.update(run_refits(args.refit_sensors, args.refit_1min_sensors, args.refit_days))
    if ratios:
        ratio_n = max(ratios)
        figures["ratio"] = round(ratios[ratio_n], 1)
        figures["ratio_n"] = ratio_n
        for n, r in sorted(ratios.items()):
            figures[f"ratio_{n}"] = round(r, 1)
        figures["baseline_agrees"] = all(agrees.values())
    figures["replay_readings_per_s"] = round(replay["readings_per_s"])
    if "baseline_readings_per_s" in replay:
        figures["baseline_replay_readings_per_s"] = round(replay["baseline_readings_per_s"])
        figures["replay_ratio"] = round(replay["readings_per_s"] / replay["baseline_readings_per_s"], 1)
    figures["forecast_in_tick"] = forecaster
    figures["learned_behaviour"] = forecaster == "early_warning" and not args.no_learned
    figures["targets_met"] = {
        k: k in figures and bool(figures[k] <= v if k.startswith("tick") else figures[k] >= v)
        for k, v in TARGETS.items()
    }
    figures["peak_rss_mb"] = round(peak_rss_mb())
    figures["bench_s"] = round(time.perf_counter() - started, 1)
    log(f"done in {figures['bench_s']} s")
    first = [f"tick_ms_{n}" for n in sizes] + ["ratio", "ratio_n", "replay_readings_per_s"]
    print(json.dumps({**{k: figures[k] for k in first if k in figures}, **figures}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
