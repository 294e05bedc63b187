"""The running forwarder: a thread that fills the outbox, a thread per transport that empties it.

Built by hazmon/bootstrap.py only when an upward target is configured (HAZMON_FORWARD_HTTP_URL,
HAZMON_FORWARD_MQTT_URL); started and stopped with the alarm service; its state is in
`status()` (GET /api/v1/forward/status, /healthz) and `prometheus()` (/metrics).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alerts.forward.collect import ForwardCollector
from alerts.forward.senders import AckSender, BatchSender
from alerts.forward.store import ForwardStore

logger = logging.getLogger(__name__)

COLLECT_EVERY_S = 0.5  # journal rows reach the outbox within this
PRUNE_EVERY_S = 3600.0
KEEP_DELIVERED_MS = 7 * 86_400_000  # delivered records are kept a week (to look into), then pruned


@dataclass
class MqttLink:
    """The MQTT transport's lifecycle and connection flag (alerts/book/mqtt_out.py's client)."""

    start: Callable[[], None]
    stop: Callable[[], None]
    connected: Callable[[], bool]


class Forwarder:
    """The outbox, its collector and its senders, with their threads."""

    def __init__(
        self,
        outbox: ForwardStore,
        collector: ForwardCollector,
        *,
        http: BatchSender | None = None,
        mqtt: AckSender | None = None,
        mqtt_link: MqttLink | None = None,
        clock_ms: Callable[[], int],
    ):
        if http is None and mqtt is None:
            raise ValueError("a forwarder needs at least one transport")
        self.outbox = outbox
        self.collector = collector
        self.http = http
        self.mqtt = mqtt
        self.mqtt_link = mqtt_link
        self._clock_ms = clock_ms
        self._stop = threading.Event()
        self._collected = threading.Event()  # wakes the senders when records were added
        self._mqtt_wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors = 0  # unexpected errors in the loops (logged)

    # ---- lifecycle

    def start(self) -> None:
        if self.mqtt_link is not None:
            self.mqtt_link.start()
        loops: list[tuple[str, Callable[[], None]]] = [("forward-collect", self._collect_loop)]
        if self.http is not None:
            loops.append(("forward-http", self._http_loop))
        if self.mqtt is not None:
            loops.append(("forward-mqtt", self._mqtt_loop))
        for name, target in loops:
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        logger.info(
            "forwarding upward: %s; %d summary sensors",
            ", ".join(s.target for s in self.senders()),
            len(self.collector.sensors),
        )

    def stop(self) -> None:
        """Collect what the journal got last, give the senders a moment, persist, disconnect."""
        self._stop.set()
        self._collected.set()
        self._mqtt_wake.set()
        for t in self._threads:
            t.join(15)
        if self.mqtt is not None:
            try:
                self.mqtt.persist(force=True)
            except Exception:
                logger.exception("forward: cannot persist the MQTT cursor; records after it go again")
        if self.mqtt_link is not None:
            self.mqtt_link.stop()
        if self.http is not None:
            self.http.transport.close()
        self.outbox.close()

    @property
    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def senders(self) -> list[BatchSender | AckSender]:
        return [s for s in (self.http, self.mqtt) if s is not None]

    def on_mqtt_ack(self, token: int, ok: bool) -> None:
        if self.mqtt is not None:
            self.mqtt.on_ack(token, ok)
            self._mqtt_wake.set()

    # ---- loops

    def _collect_loop(self) -> None:
        next_prune = time.monotonic()
        while not self._stop.is_set():
            try:
                if self.collector.collect():
                    self._collected.set()
                    self._mqtt_wake.set()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_S
                    self._prune()
            except Exception:
                self.errors += 1
                logger.exception("forward: collecting records failed; retrying")
            self._stop.wait(COLLECT_EVERY_S)

    def _prune(self) -> None:
        upto = min(s.cursor_value() for s in self.senders())
        n = self.outbox.prune(upto, self._clock_ms() - KEEP_DELIVERED_MS)
        if n:
            logger.info("forward: pruned %d delivered records older than a week", n)

    def _http_loop(self) -> None:
        sender = self.http
        assert sender is not None
        while not self._stop.is_set():
            try:
                wait = sender.step()
            except Exception:  # the outbox itself failed (disk): log, count, retry
                self.errors += 1
                logger.exception("forward http: sending failed; retrying")
                wait = 5.0
            if wait is None:  # nothing to send: sleep until records are collected
                self._collected.wait(1.0)
                self._collected.clear()
            elif wait > 0:
                self._stop.wait(wait)

    def _mqtt_loop(self) -> None:
        sender = self.mqtt
        assert sender is not None
        while not self._stop.is_set():
            self._mqtt_wake.wait(0.5)
            self._mqtt_wake.clear()
            try:
                sender.pump()
            except Exception:
                self.errors += 1
                logger.exception("forward mqtt: publishing failed; retrying")
                self._stop.wait(1.0)
            try:
                # also while publishing fails (the broker is down): what it acknowledged before
                # must be saved, or a crash during the outage would send it again
                sender.persist()
            except Exception:
                self.errors += 1
                logger.exception("forward mqtt: cannot persist the cursor; retrying")

    # ---- state

    def status(self) -> dict[str, Any]:
        """What /api/v1/forward/status shows."""
        c = self.collector
        transports = []
        for s in self.senders():
            st = s.status()
            if s is self.mqtt and self.mqtt_link is not None:
                st["connected"] = self.mqtt_link.connected()
            transports.append(st)
        return {
            "running": self.alive,
            "records": self.outbox.last_seq(),
            "collected": c.records,
            "summary_sensors": [f"{s.site}/{s.sensor}" for s in c.sensors],
            "summary_next_minute_ms": c.summary_position,
            "summary_minutes": c.summary_minutes,
            "summary_skipped_minutes": c.skipped_minutes,
            "summaries_waiting": c.summaries_waiting or None,
            "errors": self.errors,
            "transports": transports,
        }

    def health(self) -> dict[str, Any]:
        """The short form for /healthz: running, and per transport its backlog and last error."""
        return {
            "running": self.alive,
            "transports": {
                s.name: {
                    "backlog": st["backlog"],
                    "last_success_ms": st["last_success_ms"],
                    "last_error": st["last_error"],
                }
                for s, st in ((s, s.status()) for s in self.senders())
            },
        }

    def prometheus(self) -> tuple[dict[str, tuple[str, float]], dict[str, tuple[str, int]]]:
        """Gauges and counters for /metrics, one set per transport (name in the metric)."""
        gauges: dict[str, tuple[str, float]] = {
            "hazmon_forward_up": ("1 while the forwarder's threads run", int(self.alive))
        }
        counters: dict[str, tuple[str, int]] = {
            "hazmon_forward_records_total": ("Upward records added to the outbox", self.collector.records)
        }
        for s in self.senders():
            st = s.status()
            gauges[f"hazmon_forward_{s.name}_backlog"] = (
                f"Upward records not yet delivered by {s.name}",
                st["backlog"],
            )
            counters[f"hazmon_forward_{s.name}_delivered_total"] = (
                f"Upward records delivered by {s.name}",
                st["delivered"],
            )
            counters[f"hazmon_forward_{s.name}_failures_total"] = (
                f"Failed upward deliveries by {s.name}",
                st["failures"],
            )
        return gauges, counters
