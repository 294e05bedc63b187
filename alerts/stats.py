"""Alarm pipeline counters and latency histograms, rendered as Prometheus text for /metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from alerts.engine.lifecycle import AlarmEvent
from ingest.stats import Histogram

ENGINE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class AlarmStats:
    """Thread-safe counters of the alarm pipeline (engine thread, book listener, outbox)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.batches = 0
        self.readings = 0
        self.conditions = 0  # condition changes the engine emitted (readings and clock)
        self.errors = 0
        self.events: dict[str, int] = {}  # AlarmEvent type -> count journaled
        self.batch_latency = Histogram(ENGINE_BUCKETS_S)  # engine + journal commit, per batch
        self.queue_wait = Histogram()  # enqueue to processing start, per batch

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def observe_batch(self, readings: int, seconds: float, waited_s: Iterable[float]) -> None:
        with self._lock:
            self.batches += 1
            self.readings += readings
            self.batch_latency.observe(seconds)
            for w in waited_s:
                self.queue_wait.observe(w)

    def count_events(self, events: Iterable[AlarmEvent]) -> None:
        with self._lock:
            for e in events:
                self.events[e.type] = self.events.get(e.type, 0) + 1

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "batches": self.batches,
                "readings": self.readings,
                "conditions": self.conditions,
                "errors": self.errors,
                "events": dict(self.events),
            }

    def render_prometheus(
        self,
        gauges: Mapping[str, tuple[str, float]],
        counters: Mapping[str, tuple[str, int]],
        states: Mapping[str, int],
    ) -> str:
        """The alarm part of /metrics; `gauges`/`counters` map a metric name to (help, value)."""
        with self._lock:
            lines: list[str] = []
            own = {
                "hazmon_alarm_batches_total": ("Reading batches the alarm engine processed", self.batches),
                "hazmon_alarm_readings_total": ("Readings the alarm engine processed", self.readings),
                "hazmon_alarm_conditions_total": ("Condition changes the engine emitted", self.conditions),
                "hazmon_alarm_errors_total": ("Failures in the alarm pipeline (logged)", self.errors),
            }
            for name, (help_text, value) in {**own, **counters}.items():
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]
            lines += [
                "# HELP hazmon_alarm_events_total Alarm lifecycle events journaled, by type",
                "# TYPE hazmon_alarm_events_total counter",
            ]
            lines += [f'hazmon_alarm_events_total{{type="{t}"}} {n}' for t, n in sorted(self.events.items())]
            for name, (help_text, value) in gauges.items():
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
            lines += [
                "# HELP hazmon_alarms Alarm points by state (NORMAL excluded)",
                "# TYPE hazmon_alarms gauge",
            ]
            lines += [f'hazmon_alarms{{state="{s}"}} {n}' for s, n in sorted(states.items())]
            lines += self.batch_latency.render(
                "hazmon_alarm_batch_seconds", "Engine plus journal commit time per reading batch"
            )
            lines += self.queue_wait.render(
                "hazmon_alarm_queue_wait_seconds", "Time a reading batch waited for the alarm engine"
            )
        return "\n".join(lines) + "\n"
