"""The MQTT side of a simulated fleet: one paho client, paced publishing, clean shutdown.

One client publishes for every device of the fleet (docs/contracts.md §1): MQTT v5, QoS 1, a
persistent session (clean_start=False, SessionExpiryInterval 3600 s, a stable client id), so a
broker restart or a network drop loses nothing: paho re-sends unacknowledged messages after its
own reconnect (backoff 1-30 s). At most MAX_OUTSTANDING messages are unacknowledged at a time;
beyond that publishing waits, so a slow or absent broker slows the simulation down rather than
growing a queue.

Device status and wills: MQTT allows one will per connection, and this one connection stands for
many devices. A will on one device's status topic would, after a crash, mark that device offline
and leave all the others `online`, which is wrong either way, so the fleet sets no will. It
publishes a retained `online` for every device at start and a retained `offline` for every device
on a clean stop; after a crash the statuses stay `online` and hazmon's stale-data detection is what
notices, as it would for a real gateway whose broker has not timed it out yet. An `outage` incident
publishes the device's `offline` as the broker would publish its will.

Time: the simulated clock runs `speed` simulated seconds per real second (math.inf: as fast as
possible) from `sim.start_s`, but never ahead of the wall clock: hazmon and InfluxDB reject
readings more than 5 minutes in the future, so once the simulation catches up it runs in real time.
"""

from __future__ import annotations

import logging
import math
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt_url import MqttTarget
from ingest.paho_log import paho_logger
from simulators.stream import Simulation

logger = logging.getLogger(__name__)

QOS = 1
SESSION_EXPIRY_S = 3600
#: Messages handed to paho and not yet acknowledged (PUBACK): our back-pressure bound, so at most
#: this many are in flight and a broker outage stalls the simulation instead of filling memory.
MAX_OUTSTANDING = 1000
#: paho's own in-flight window stays 0 (= unlimited): when it is > 0, paho scans its whole message
#: dict on every PUBACK (Client._update_inflight), which halved throughput here (2 200 vs 4 400
#: msgs/s); MAX_OUTSTANDING keeps the number in flight bounded instead.
PAHO_MAX_INFLIGHT = 0


class FleetError(Exception):
    """The fleet cannot run: broker unreachable, credentials refused."""


class Publisher(Protocol):
    """What the fleet loop needs from an MQTT client (PahoPublisher, or a fake in tests)."""

    @property
    def outstanding(self) -> int: ...
    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None: ...
    def flush(self, timeout_s: float) -> int: ...


class PahoPublisher:
    """One paho 2.x client publishing QoS 1 with bounded outstanding messages."""

    def __init__(
        self,
        target: MqttTarget,
        client_id: str,
        *,
        keepalive_s: int = 60,
        max_outstanding: int = MAX_OUTSTANDING,
        stop: threading.Event | None = None,
    ):
        self.target = target
        self.client_id = client_id
        self.keepalive_s = keepalive_s
        self.max_outstanding = max_outstanding
        self._stop = stop or threading.Event()
        self.published = 0
        self.acked = 0
        self.failed = 0  # PUBACK with a failure reason code (e.g. not authorized)
        self._connected = threading.Event()
        self._refused: str | None = None
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.enable_logger(paho_logger(f"{__name__}.paho"))
        client.max_inflight_messages_set(PAHO_MAX_INFLIGHT)
        client.max_queued_messages_set(0)  # unbounded in paho; MAX_OUTSTANDING bounds it here
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        if target.username is not None:
            client.username_pw_set(target.username, target.password)
        if target.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client

    # ---- callbacks (paho's network thread)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            logger.error("broker %s refused the connection: %s", self.target, reason)
            return
        logger.info(
            "connected to %s as %s (session present: %s)",
            self.target,
            self.client_id,
            getattr(flags, "session_present", "?"),
        )
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            logger.warning("disconnected from %s (%s); paho reconnects with backoff", self.target, reason)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self.acked += 1
        if getattr(reason, "is_failure", False):
            self.failed += 1

    # ---- API

    @property
    def outstanding(self) -> int:
        return self.published - self.acked

    def connect(self, timeout_s: float = 30.0) -> None:
        """Connect (persistent session) and start paho's network thread; FleetError if it fails."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(
            self.target.host,
            self.target.port,
            keepalive=self.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()
        deadline = time.monotonic() + timeout_s
        while not self._connected.wait(0.1):
            if self._refused is not None:
                self.close()
                raise FleetError(f"broker {self.target} refused the connection: {self._refused}")
            if time.monotonic() > deadline or self._stop.is_set():
                self.close()
                raise FleetError(f"cannot connect to {self.target} within {timeout_s:.0f} s")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Hand one QoS 1 message to paho, waiting while too many are unacknowledged."""
        while self.outstanding >= self.max_outstanding and not self._stop.is_set():
            time.sleep(0.0005)
        info = self.client.publish(topic, payload, qos=QOS, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            # NO_CONN is fine: the message is queued and sent after the reconnect.
            raise FleetError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        self.published += 1

    def flush(self, timeout_s: float) -> int:
        """Wait for every PUBACK (up to timeout_s); return how many are still unacknowledged.

        Counts acknowledgements from on_publish rather than calling wait_for_publish() on each
        MQTTMessageInfo: it covers every message, and wait_for_publish() raises for a message that
        was queued while disconnected (rc NO_CONN) even after paho has re-sent it.
        """
        deadline = time.monotonic() + timeout_s
        while self.outstanding > 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.outstanding

    def close(self) -> None:
        """Disconnect cleanly and stop the network thread."""
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How long and how fast to run; `speed` = math.inf runs as fast as possible."""

    speed: float = 1.0
    duration_s: float | None = None
    count: int | None = None
    rate: float | None = None  # cap on readings messages per second
    flush_timeout_s: float = 30.0
    progress_every_s: float = 1.0


@dataclass(slots=True)
class Progress:
    """A snapshot for the progress display."""

    messages: int
    readings: int
    msgs_per_s: float
    readings_per_s: float
    sim_time_s: float
    lag_s: float  # wall clock minus simulated time
    outstanding: int


class _Meter:
    """Counts and per-window rates for the progress callback."""

    def __init__(self, every_s: float, callback: Callable[[Progress], None] | None):
        self.every_s = every_s
        self.callback = callback
        self.messages = 0
        self.readings = 0
        self._t = time.monotonic()
        self._m = 0
        self._r = 0

    def maybe_report(self, sim_time_s: float, outstanding: int, force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        dt = now - self._t
        if dt < self.every_s and not force:
            return
        dt = max(dt, 1e-9)
        self.callback(
            Progress(
                self.messages,
                self.readings,
                (self.messages - self._m) / dt,
                (self.readings - self._r) / dt,
                sim_time_s,
                time.time() - sim_time_s,
                outstanding,
            )
        )
        self._t, self._m, self._r = now, self.messages, self.readings


def run_fleet(
    sim: Simulation,
    publisher: Publisher,
    options: RunOptions,
    stop: threading.Event,
    progress: Callable[[Progress], None] | None = None,
) -> dict[str, Any]:
    """Publish the simulation until duration, count or `stop`; flush; return a summary."""
    meter = _Meter(options.progress_every_s, progress)
    n_dev = sim.n_devices
    dev_msgs = [0] * n_dev
    dev_reads = [0] * n_dev
    first_ts = last_ts = None
    status = 0
    stopped_by = "signal"
    mono0 = time.monotonic()
    rate_t0 = mono0

    def wait_until(sim_t: float) -> bool:
        """Sleep until tick `sim_t` may run: not ahead of now, and not faster than `speed`."""
        while not stop.is_set():
            left = sim_t - time.time()
            if math.isfinite(options.speed):
                left = max(left, mono0 + (sim_t - sim.start_s) / options.speed - time.monotonic())
            if left <= 0:
                return True
            meter.maybe_report(sim_t, publisher.outstanding)
            stop.wait(min(left, 0.25))
        return False

    for m in sim.status_messages("online"):
        publisher.publish(m.topic, m.payload, m.retain)
        status += 1
    k = 0
    sim_t = sim.start_s
    done = False
    while not done:
        sim_t = sim.tick_time(k)
        if options.duration_s is not None and sim_t - sim.start_s >= options.duration_s - 1e-9:
            stopped_by = "duration"
            break
        if not wait_until(sim_t):
            break
        for m in sim.tick(sim_t):
            if options.rate:
                ahead = rate_t0 + meter.messages / options.rate - time.monotonic()
                if ahead > 0.002:
                    stop.wait(ahead)
            publisher.publish(m.topic, m.payload, m.retain)
            if m.readings == 0:
                status += 1
                continue
            meter.messages += 1
            meter.readings += m.readings
            dev_msgs[m.device] += 1
            dev_reads[m.device] += m.readings
            ts = round(sim_t * 1000)
            first_ts = ts if first_ts is None else first_ts
            last_ts = ts
            if options.count is not None and meter.messages >= options.count:
                stopped_by, done = "count", True
                break
            if stop.is_set():
                done = True
                break
            if meter.messages & 255 == 0:
                meter.maybe_report(sim_t, publisher.outstanding)
        meter.maybe_report(sim_t, publisher.outstanding)
        k += 1
        done = done or stop.is_set()

    unacked = publisher.flush(options.flush_timeout_s)
    for m in sim.status_messages("offline"):
        publisher.publish(m.topic, m.payload, m.retain)
        status += 1
    unacked = publisher.flush(options.flush_timeout_s)
    elapsed = time.monotonic() - mono0
    meter.maybe_report(sim_t, unacked, force=True)
    if unacked:
        logger.warning("%d messages still unacknowledged after %.0f s", unacked, options.flush_timeout_s)
    return {
        "messages": meter.messages,
        "readings": meter.readings,
        "status_messages": status,
        "first_ts_ms": first_ts,
        "last_ts_ms": last_ts,
        "elapsed_s": round(elapsed, 3),
        "msgs_per_s": round(meter.messages / elapsed, 1) if elapsed > 0 else None,
        "readings_per_s": round(meter.readings / elapsed, 1) if elapsed > 0 else None,
        "unacked": unacked,
        "stopped_by": stopped_by,
        "per_device": {
            f"{s}/{d}": {"messages": dev_msgs[i], "readings": dev_reads[i]}
            for i, (s, d) in enumerate(sim.layout.devices)
        },
    }
