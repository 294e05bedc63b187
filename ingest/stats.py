"""Ingest counters and latency histograms, rendered as Prometheus text for /metrics."""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Iterable

from ingest.payloads import DecodeResult, Reject, RejectReason

# A take of many readings whose newest is this old means ingest works off a backlog (a broker queue
# after a restart, a gateway's store-and-forward): background work (the learner's fit) waits then.
CATCH_UP_LAG_MS = 60_000
CATCH_UP_MIN_READINGS = 500
CATCH_UP_HOLD_S = 5.0  # one backlogged take marks ingest as catching up for this long

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Cumulative-bucket histogram in the Prometheus style."""

    def __init__(self, buckets: Iterable[float] = LATENCY_BUCKETS_S):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def render(self, name: str, help_text: str) -> list[str]:
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        cumulative = 0
        for bound, c in zip(self.buckets, self.counts, strict=False):
            cumulative += c
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum {self.sum:.6f}")
        lines.append(f"{name}_count {self.count}")
        return lines


class IngestStats:
    """Thread-safe counters shared by the collector and the writer."""

    def __init__(self, keep_rejects: int = 200):
        self._lock = threading.Lock()
        self.messages_received = 0
        self.readings_received = 0
        self.readings_accepted = 0
        self.readings_computed = 0  # readings of computed sensors, derived from accepted ones
        self.ts_from_receipt = 0
        self.rejected: dict[str, int] = dict.fromkeys((r.name for r in RejectReason if r), 0)
        self.recent_rejects: deque[Reject] = deque(maxlen=keep_rejects)
        self.points_written = 0
        self.points_spooled = 0
        self.points_replayed = 0
        self.points_refused = 0  # refused by InfluxDB itself (4xx), e.g. a field type conflict
        self.write_failures = 0
        self.callback_errors = 0
        self.spool_refusals = 0  # bodies the spool could not take (full, or its disk refusing)
        self.spool_error: str | None = None  # the last refusal while readings are held for it
        self.batches_withheld = 0  # flushes never acknowledged: not durable when the writer stopped
        self.status_messages = 0
        self.history_rewrites = 0  # values changed by the sensor's own device (audited), not refused
        self.history_unverified = 0  # readings at held-or-unknown timestamps the store could not check
        self.write_latency = Histogram()
        self.spool_bytes = 0
        self.spool_segments = 0
        self.pending_points = 0
        self.mqtt_connected = False
        self.influx_up = False
        self.newest_age_ms = 0  # how old the newest reading of the last take was on receipt
        self._catching_up_until = 0.0  # time.monotonic()

    def note_take(self, readings: int, newest_age_ms: int, mono_now: float | None = None) -> None:
        """Record one decoded take: a big take of only old readings means a backlog is being drained."""
        now = time.monotonic() if mono_now is None else mono_now
        with self._lock:
            self.newest_age_ms = max(0, newest_age_ms)
            if readings >= CATCH_UP_MIN_READINGS and newest_age_ms > CATCH_UP_LAG_MS:
                self._catching_up_until = now + CATCH_UP_HOLD_S

    def catching_up(self, mono_now: float | None = None) -> bool:
        """True while ingest drains a backlog (a backlogged take in the last CATCH_UP_HOLD_S)."""
        now = time.monotonic() if mono_now is None else mono_now
        with self._lock:
            return now < self._catching_up_until

    def add_decode(self, result: DecodeResult) -> None:
        with self._lock:
            self.messages_received += result.messages
            self.readings_received += result.items
            self.readings_accepted += len(result.batch)
            self.ts_from_receipt += result.ts_from_receipt
            for reason, n in result.reject_counts.items():
                self.rejected[reason] = self.rejected.get(reason, 0) + n
            self.recent_rejects.extend(result.rejects)

    def add_reject(self, reject: Reject) -> None:
        """Count one message-level reject found outside the decoder (e.g. a bad status payload)."""
        with self._lock:
            self.rejected[reject.reason] = self.rejected.get(reject.reason, 0) + 1
            self.recent_rejects.append(reject)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def observe_write(self, seconds: float) -> None:
        with self._lock:
            self.write_latency.observe(seconds)

    def snapshot(self) -> dict:
        """Plain numbers for /healthz and tests."""
        with self._lock:
            return {
                "messages_received": self.messages_received,
                "readings_received": self.readings_received,
                "readings_accepted": self.readings_accepted,
                "readings_computed": self.readings_computed,
                "readings_rejected": sum(self.rejected.values()),
                "rejected_by_reason": {k: v for k, v in self.rejected.items() if v},
                "ts_from_receipt": self.ts_from_receipt,
                "points_written": self.points_written,
                "points_spooled": self.points_spooled,
                "points_replayed": self.points_replayed,
                "points_refused": self.points_refused,
                "write_failures": self.write_failures,
                "pending_points": self.pending_points,
                "spool_bytes": self.spool_bytes,
                "spool_segments": self.spool_segments,
                "spool_error": self.spool_error,
                "spool_refusals": self.spool_refusals,
                "batches_withheld": self.batches_withheld,
                "history_rewrites": self.history_rewrites,
                "history_unverified": self.history_unverified,
                "mqtt_connected": self.mqtt_connected,
                "influx_up": self.influx_up,
                "newest_age_ms": self.newest_age_ms,
            }

    def latest_rejects(self, limit: int = 100) -> list[Reject]:
        with self._lock:
            return list(self.recent_rejects)[-limit:][::-1]

    def render_prometheus(self) -> str:
        """The /metrics body."""
        with self._lock:
            counters = [
                (
                    "hazmon_mqtt_messages_received_total",
                    "MQTT readings/status messages received",
                    self.messages_received,
                ),
                ("hazmon_readings_received_total", "Reading items received", self.readings_received),
                (
                    "hazmon_readings_accepted_total",
                    "Reading items accepted after validation",
                    self.readings_accepted,
                ),
                (
                    "hazmon_readings_computed_total",
                    "Readings of computed sensors derived from accepted ones",
                    self.readings_computed,
                ),
                (
                    "hazmon_readings_ts_from_receipt_total",
                    "Accepted items that carried no timestamp",
                    self.ts_from_receipt,
                ),
                (
                    "hazmon_points_written_total",
                    "Points written to InfluxDB (directly or by spool replay)",
                    self.points_written,
                ),
                (
                    "hazmon_points_spooled_total",
                    "Points spooled to disk while InfluxDB was unreachable",
                    self.points_spooled,
                ),
                (
                    "hazmon_points_replayed_total",
                    "Spooled points replayed into InfluxDB",
                    self.points_replayed,
                ),
                ("hazmon_points_refused_total", "Points InfluxDB refused (4xx)", self.points_refused),
                ("hazmon_write_failures_total", "Failed InfluxDB write attempts", self.write_failures),
                (
                    "hazmon_spool_refusals_total",
                    "Batches the spool could not take (full or its disk refusing): held unacknowledged",
                    self.spool_refusals,
                ),
                (
                    "hazmon_batches_withheld_total",
                    "Flushes never acknowledged because they were not durable when the writer stopped",
                    self.batches_withheld,
                ),
                (
                    "hazmon_history_rewrites_total",
                    "Stored values changed by the sensor's own device (store-and-forward replay), audited",
                    self.history_rewrites,
                ),
                (
                    "hazmon_history_unverified_total",
                    "Readings at timestamps that may hold a value, let through unchecked: the store lagged",
                    self.history_unverified,
                ),
            ]
            lines: list[str] = []
            for name, help_text, value in counters:
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]
            lines += [
                "# HELP hazmon_readings_rejected_total Rejected items or messages by reason",
                "# TYPE hazmon_readings_rejected_total counter",
            ]
            lines += [f'hazmon_readings_rejected_total{{reason="{r}"}} {n}' for r, n in self.rejected.items()]
            gauges = [
                ("hazmon_spool_bytes", "Bytes waiting in the disk spool", self.spool_bytes),
                ("hazmon_spool_segments", "Batches waiting in the disk spool", self.spool_segments),
                ("hazmon_pending_points", "Accepted points not yet written or spooled", self.pending_points),
                ("hazmon_mqtt_connected", "1 while connected to the broker", int(self.mqtt_connected)),
                ("hazmon_influx_up", "1 while the last InfluxDB write succeeded", int(self.influx_up)),
                (
                    "hazmon_spool_ok",
                    "0 while readings are held because the spool cannot take them",
                    int(self.spool_error is None),
                ),
            ]
            for name, help_text, value in gauges:
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
            lines += self.write_latency.render(
                "hazmon_write_latency_seconds", "Duration of one InfluxDB write request"
            )
        return "\n".join(lines) + "\n"
