"""`hazmon tune`: wire a history source (a readings CSV or InfluxDB) to the pure analysis in alerts/tune.py.

It reads; it never writes the registry or talks to the running service. Exit status 0 with a
report, 1 when the source cannot be read, 2 for bad arguments or input.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson

from alerts.engine.early_warning import EarlyWarningConfig
from alerts.metrics import DAY_MS
from alerts.tune import SensorTuning, TuneConfig, tune
from alerts.tune_report import NOTICE, format_table, tuning_json
from alerts.warning_threshold import ProbabilityHistory, ThresholdSuggestion, warning_thresholds_by_kind
from ingest.store import StorageError
from sensors.index import SensorIndex
from sensors.model import Registry
from sensors.readings import ReadingBatch
from sensors.registry import RegistryError, load_registry


class TuneInputError(ValueError):
    """The arguments name something the registry or the readings do not have."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--registry", type=Path, required=True, metavar="REG", help="registry file or folder (CONTRACTS §2)"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--readings", type=Path, metavar="CSV", help="CSV: time,site,sensor,value[,quality] (as backtest)"
    )
    src.add_argument(
        "--from-influx",
        action="store_true",
        help="the raw history in InfluxDB (HAZMON_INFLUX_URL, HAZMON_INFLUX_DB, credentials)",
    )
    p.add_argument(
        "--rollup", action="store_true", help="with --from-influx: 1-minute means (year.readings_1m)"
    )
    p.add_argument(
        "--days", type=float, default=30.0, metavar="N", help="the last N days of the history (default 30)"
    )
    p.add_argument("--site", action="append", help="only this site (repeatable)")
    p.add_argument("--sensor", nargs="+", action="extend", metavar="ID", help="only these sensor ids")
    p.add_argument(
        "--target-per-day",
        type=float,
        default=1.0,
        metavar="X",
        help="activations per sensor per day (default 1)",
    )
    p.add_argument(
        "--min-days",
        type=float,
        default=3.0,
        metavar="N",
        help="no suggestion with less data than this (default 3)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per sensor and line")
    p.add_argument("--quiet", action="store_true", help="no progress display")


def select(registry: Registry, sites: list[str] | None, sensors: list[str] | None) -> Registry:
    """The registry cut down to the sites and sensor ids asked for; unknown names are an error."""
    known_sites = {s.id for s in registry.sites}
    if sites and (missing := sorted(set(sites) - known_sites)):
        raise TuneInputError(f"no site {', '.join(missing)} in the registry")
    chosen = [s for s in registry.sites if not sites or s.id in sites]
    if sensors:
        present = {x.id for s in chosen for x in s.sensors}
        if missing := sorted(set(sensors) - present):
            raise TuneInputError(f"no sensor {', '.join(missing)} in the selected sites")
        chosen = [replace(s, sensors=tuple(x for x in s.sensors if x.id in sensors)) for s in chosen]
    return Registry(tuple(s for s in chosen if s.sensors), registry.sources)


def csv_history(path: Path, full: SensorIndex, index: SensorIndex) -> tuple[ReadingBatch, str]:
    """The CSV's readings of the selected sensors (slots of `index`), and a line about the load."""
    from alerts.replay import load_readings_csv

    batch, load = load_readings_csv(path, full)  # the full registry: unknown means unknown
    remap = np.full(len(full), -1, dtype=np.int32)
    for slot, s in enumerate(full.sensors):
        remap[slot] = index.by_site.get(s.site, {}).get(s.id, -1)
    picked = remap[batch.slot]
    keep = picked >= 0
    kept = ReadingBatch(picked[keep], batch.ts_ms[keep], batch.value[keep], batch.quality[keep])
    rejected = sum(load.rejected.values())
    note = f"{path}: {load.rows:,} rows, {len(kept):,} readings of the selected sensors"
    if rejected:
        note += (
            f", {rejected:,} rejected (" + ", ".join(f"{r} {n}" for r, n in load.rejected.most_common()) + ")"
        )
    return kept, note


def influx_history(index: SensorIndex, start_ms: int, end_ms: int, rollup: bool) -> Iterator[ReadingBatch]:
    from hazmon.bootstrap import build_store
    from hazmon.config import Settings
    from ingest.history import read_history

    store = build_store(Settings(), index)
    try:
        yield from read_history(store, index, start_ms, end_ms, rollup=rollup)
    finally:
        store.close()


def _say(line: str) -> None:
    """A line for the person at the terminal, on stderr (stdout carries the report)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class _Progress:
    """Readings replayed so far, on stderr every few seconds for long histories."""

    def __init__(self, every_s: float = 5.0, what: str = "readings replayed"):
        self.done = 0
        self.every_s = every_s
        self.what = what
        self.started = self.last = time.perf_counter()

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every_s:
            self.last = now
            rate = self.done / (now - self.started)
            _say(f"tune: {self.done:,} {self.what}, {rate:,.0f}/s")

    def of_total(self, done: int, _total: int) -> None:
        """As alerts.replay.replay reports: readings done so far."""
        self(done - self.done)


def warning_thresholds(
    tunings: list[SensorTuning], history: ProbabilityHistory
) -> dict[str, ThresholdSuggestion]:
    """A threshold per kind from the recorded probabilities, each kind held for its own persistence."""
    config = EarlyWarningConfig()  # what attach_early_warnings uses: the service's profiles
    persistence = {t.sensor.kind: config.profile(t.sensor.kind).persist_s for t in tunings}
    return warning_thresholds_by_kind(tunings, history, persistence_s=persistence)


def run(args: argparse.Namespace) -> int:
    """The command: read, analyse, print; returns the exit status."""
    for path in (args.registry, args.readings):
        if path is not None and not path.exists():
            _say(f"hazmon tune: {path}: no such file or folder")
            return 2
    if args.rollup and not args.from_influx:
        _say("hazmon tune: --rollup goes with --from-influx")
        return 2
    try:
        registry = load_registry(args.registry)
        index = SensorIndex.build(select(registry, args.site, args.sensor))
    except (RegistryError, TuneInputError) as e:
        _say(f"hazmon tune: {e}")
        return 2
    config = TuneConfig(
        target_per_day=args.target_per_day,
        min_days=args.min_days,
        resolution_s=60.0 if args.rollup else 0.0,
    )
    days_ms = int(args.days * DAY_MS)
    forecast = np.array([s.forecast for s in index.sensors], dtype=bool)
    tz = {site.id: site.timezone for site in registry.sites}
    chunks: Iterable[ReadingBatch]
    kept: list[ReadingBatch] = []  # the readings to replay through the early warnings after the tune
    if args.readings is not None:
        try:
            batch, source = csv_history(args.readings, SensorIndex.build(registry), index)
        except (ValueError, UnicodeDecodeError) as e:
            _say(f"hazmon tune: {args.readings}: {e}")
            return 2
        if not len(batch):
            _say(f"hazmon tune: {source}: nothing to analyse")
            return 1
        end_ms = (int(batch.ts_ms[-1]) // 1000 + 1) * 1000  # the second after the last reading
        start_ms = max(end_ms - days_ms, int(batch.ts_ms[0]))
        chunks = [batch]
        kept.append(batch)  # in memory already
    else:
        end_ms = int(time.time() * 1000)
        start_ms = end_ms - days_ms
        # The early warnings are replayed after the tune (their learner needs a sensor's whole past),
        # from the forecast sensors' readings kept as the tune reads them: one read of InfluxDB, and
        # memory for those sensors only (~21 bytes a reading, twice while replaying: a month of 10-s
        # readings is ~11 MB per forecast sensor), rather than reading the history a second time.
        chunks = _keeping(influx_history(index, start_ms, end_ms, args.rollup), forecast, kept)
        source = "InfluxDB " + (
            "year.readings_1m (1-minute means: chattering and delays under a minute are not visible)"
            if args.rollup
            else "raw.readings"
        )
    progress = None if args.quiet else _Progress()
    try:
        tunings = tune(index, chunks, start_ms, end_ms, config, progress)
    except StorageError as e:
        _say(f"hazmon tune: {e}")
        return 1
    thresholds: dict[str, ThresholdSuggestion] = {}
    if forecast.any():
        from alerts.backtest import replay_probabilities

        history = ReadingBatch.concat(kept)
        kept.clear()
        ew_progress = None if args.quiet else _Progress(what="readings replayed through the early warnings")
        recorder = replay_probabilities(
            index, tz, history, start_ms, end_ms, ew_progress.of_total if ew_progress else None
        )
        thresholds = warning_thresholds(tunings, recorder)
    if args.json:
        for t in tunings:
            row = tuning_json(t, config, start_ms, end_ms, thresholds)
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        _say(f"hazmon tune: {source}")
        _say(NOTICE)
    else:
        sys.stdout.write(format_table(tunings, config, start_ms, end_ms, source, thresholds) + "\n")
    return 0


def _keeping(
    chunks: Iterable[ReadingBatch], wanted: np.ndarray, kept: list[ReadingBatch]
) -> Iterator[ReadingBatch]:
    """Pass `chunks` on, keeping the readings of the slots where `wanted` is true in `kept`."""
    for chunk in chunks:
        mine = np.flatnonzero(wanted[chunk.slot])
        if len(mine):
            kept.append(chunk.take(mine))
        yield chunk
