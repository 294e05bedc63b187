"""`hazmon backtest` (docs/contracts.md §4): recorded readings through the service's own engine, on
event time.

The same AlarmEngine, early warnings and ISA-18.2 alarm book as `hazmon run`, with the journal in
memory and no servers. Differences from live, on purpose: a sensor that never appears in the CSV is
not judged stale (the recording simply does not cover it), and the clock is the readings' time.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np
import orjson

from alerts.book.book import AlarmBook
from alerts.book.sqlite_journal import AlarmJournal
from alerts.calibration import Calibration, ForecastLog, Outcomes, calibrate, format_calibration
from alerts.engine.alarm_engine import AlarmEngine, EngineConfig
from alerts.engine.early_warning import EarlyWarnings, attach_early_warnings
from alerts.engine.lifecycle import AlarmEvent, AlarmRaised
from alerts.learning import BehaviourLearner, ReadingsHistory
from alerts.metrics import EemuaReport, eemua_report
from alerts.probability_log import ProbabilityRecorder
from alerts.replay import LoadReport, load_readings_csv, replay, with_computed
from sensors.computed import ComputedSensors
from sensors.index import SensorIndex
from sensors.readings import ReadingBatch
from sensors.registry import load_registry

CHUNK_MS = 60_000  # the live scheduler's clock-driven checks run about this often


@dataclass(slots=True)
class BacktestSummary:
    """What a backtest did, for the printed summary and for callers (tests, scripts)."""

    load: LoadReport
    sensors: int = 0
    sites: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    replay_s: float = 0.0
    events: Counter = field(default_factory=Counter)  # (type, level) -> count
    eemua: EemuaReport | None = None
    calibration: Calibration | None = None
    out: str = ""

    @property
    def readings_per_s(self) -> float:
        return self.load.accepted / self.replay_s if self.replay_s > 0 else 0.0


class Progress:
    """A progress line on stderr for long replays: redrawn in place on a terminal, sparse in a log."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 0.5, after_s: float = 1.0):
        self.stream = stream = stream or sys.stderr
        self.tty = stream.isatty()
        self.every_s = every_s if self.tty else 10.0
        self.started = time.perf_counter()
        self.after_s = after_s
        self._last = 0.0
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.started < self.after_s or now - self._last < self.every_s:
            return
        self._last = now
        rate = done / max(now - self.started, 1e-9)
        eta = (total - done) / rate if rate > 0 else 0.0
        line = f"backtest: {done:,}/{total:,} readings ({100 * done / total:.0f} %), {rate:,.0f}/s"
        line += f", {eta:.0f} s left"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def event_time_engine(
    index: SensorIndex, site_timezones: Mapping[str, str], batch: ReadingBatch
) -> tuple[AlarmEngine, EarlyWarnings, BehaviourLearner]:
    """The service's engine with its early warnings, and a learner of behaviour from `batch` itself.

    Replay `batch` through it with ``replay(..., on_clock=learner.maybe_refit)``: the learner then runs
    on event time and learns only from readings before each refit, as the service would have.
    """
    start_ms = int(batch.ts_ms[0]) if len(batch) else 0
    engine = AlarmEngine(index, EngineConfig(stale_if_never_heard=False), start_ms=start_ms)
    ew = attach_early_warnings(engine, site_timezones)
    learner = BehaviourLearner(ew, ReadingsHistory(batch))  # learns on event time, from the past only
    return engine, ew, learner


def replay_probabilities(
    index: SensorIndex,
    site_timezones: Mapping[str, str],
    batch: ReadingBatch,
    start_ms: int | None = None,
    end_ms: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ProbabilityRecorder:
    """Replay a time-sorted `batch` (slots of `index`) as backtest does; the early warnings' probability
    of every forecast sensor at each judgement in [start_ms, end_ms) (for `hazmon tune`).

    Only the forecast sensors' readings are replayed: a sensor's probability depends on its own
    readings alone (its trends, its learned behaviour, its own fault code and noise), so the others
    would change nothing but the time taken. Readings before `start_ms` still count: they warm the
    trends up and teach the learner, as the service's past would have.
    """
    forecast = np.array([s.forecast for s in index.sensors], dtype=bool)
    wanted = forecast[batch.slot]
    mine = batch if wanted.all() else batch.take(np.flatnonzero(wanted))
    engine, ew, learner = event_time_engine(index, site_timezones, mine)
    recorder = ProbabilityRecorder(index, ew.slots, start_ms, end_ms, mature=ew.mature)
    ew.on_judged = recorder
    replay(engine, mine, lambda _changes, _now: None, CHUNK_MS, 0, progress, on_clock=learner.maybe_refit)
    return recorder


def run_backtest(
    registry_path: str | Path,
    readings_path: str | Path,
    out_path: str | Path,
    *,
    tail_ms: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestSummary:
    """Replay `readings_path` through the engine and alarm book; write §3 events as JSON lines."""
    registry = load_registry(registry_path)
    index = SensorIndex.build(registry)
    tz = {site.id: site.timezone for site in registry.sites}
    batch, load = load_readings_csv(readings_path, index)
    batch = with_computed(batch, ComputedSensors(index), CHUNK_MS)  # as the live ingest derives them
    summary = BacktestSummary(load, sensors=len(index), sites=len(registry.sites), out=str(out_path))
    start_ms = int(batch.ts_ms[0]) if len(batch) else 0
    engine, ew, learner = event_time_engine(index, tz, batch)
    log = ForecastLog(ew.slots, ew.horizon_s, engine.limits, ew.config.keep_frac * ew.p_warn)
    ew.on_judged = log
    warnings: list[dict] = []
    journal = AlarmJournal(":memory:")
    with open(out_path, "wb") as out:

        def write(events: list[AlarmEvent]) -> None:
            for ev in events:
                if (
                    isinstance(ev, AlarmRaised)
                    and ev.key[3] == "EARLY_WARNING"
                    and not ev.reactivated
                    and ev.limit is not None
                ):
                    warnings.append(
                        {
                            "slot": index.by_site[ev.key[0]][ev.key[2]],
                            "t_s": ev.time_ms / 1000,
                            "limit": ev.limit,
                            "up": ev.level in ("H", "HH"),
                            "low_s": (ev.eta_low_ms if ev.eta_low_ms is not None else ev.time_ms) / 1000,
                            "high_s": ev.eta_high_ms / 1000 if ev.eta_high_ms is not None else float("inf"),
                            "horizon_s": float((ev.forecast or {}).get("horizon_s") or float("inf")),
                        }
                    )
                d = ev.to_contract_event(tz.get(ev.key[0], "Asia/Shanghai"))
                if d is not None:
                    out.write(orjson.dumps(d) + b"\n")
                    summary.events[(d["type"], d["level"])] += 1

        book = AlarmBook(journal, clock=lambda: start_ms, on_events=write)

        def on_changes(changes: list, now_ms: int) -> None:
            if changes:
                book.on_changes(changes, now_ms)

        began = time.perf_counter()
        replay(engine, batch, on_changes, CHUNK_MS, tail_ms, progress, on_clock=learner.maybe_refit)
        summary.replay_s = time.perf_counter() - began
    if len(batch):
        summary.first_ms, summary.last_ms = int(batch.ts_ms[0]), int(batch.ts_ms[-1])
        end = summary.last_ms + tail_ms + 1
        summary.eemua = eemua_report(journal.history(limit=10**9, newest_first=False), start_ms, end)
        outcomes = Outcomes(batch.slot.astype(np.intp), batch.ts_ms, batch.value)
        summary.calibration = calibrate(log, outcomes, warnings)
    journal.close()
    return summary


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def format_summary(s: BacktestSummary) -> str:
    """The human summary printed after a backtest."""
    lines = []
    rej = ", ".join(f"{reason} {n}" for reason, n in s.load.rejected.most_common())
    lines.append(
        f"readings: {s.load.accepted:,} replayed of {s.load.rows:,} rows"
        + (f" ({sum(s.load.rejected.values()):,} rejected: {rej})" if rej else "")
        + f"; registry {s.sites} sites, {s.sensors} sensors"
    )
    lines += [f"  {example}" for example in s.load.examples[:5]]
    if s.first_ms is not None and s.last_ms is not None:
        hours = (s.last_ms - s.first_ms) / 3_600_000
        lines.append(f"event time: {_iso(s.first_ms)} .. {_iso(s.last_ms)} ({hours:.1f} h)")
    lines.append(f"replay: {s.replay_s:.2f} s, {s.readings_per_s:,.0f} readings/s")
    total = sum(s.events.values())
    by_type: dict[str, Counter] = {}
    for (typ, level), n in s.events.items():
        by_type.setdefault(typ, Counter())[level] += n
    lines.append(f"events: {total} -> {s.out}")
    for typ in ("alarm", "early_warning", "fault", "stale", "return_to_normal"):
        if typ in by_type:
            levels = ", ".join(f"{lv} {n}" for lv, n in sorted(by_type[typ].items()))
            lines.append(f"  {typ}: {sum(by_type[typ].values())} ({levels})")
    if s.calibration is not None and (s.calibration.judged or s.calibration.warnings):
        lines += format_calibration(s.calibration)
    if s.eemua is not None and s.eemua.raises:
        e = s.eemua
        flood = max(e.flood_share.values(), default=0.0)
        lines.append(
            f"EEMUA 191: {e.raises} raises, {e.rate.average:.2f} per 10 min (peak {e.rate.peak}), "
            f"time in flood {100 * flood:.1f} %, top-10 share {100 * e.top10_share:.0f} %, "
            f"standing {len(e.standing)}, chattering {e.chattering}"
        )
        for a in e.bad_actors[:3]:
            site, _scope, source, kind = a.key
            lines.append(f"  bad actor: {site}/{source} {kind} x{a.count}")
    return "\n".join(lines)
