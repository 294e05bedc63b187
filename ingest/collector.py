"""MQTT collector: paho-mqtt client that hands raw messages to a decoding thread.

Delivery: MQTT v5, QoS 1, a persistent session (clean_start=False with a session expiry) under
a stable client id, and manual acknowledgement. A message is acknowledged only once its
readings are durable (in InfluxDB or the spool), so a crash of hazmon at any moment leaves the
unacknowledged messages with the broker, which redelivers them on reconnect; duplicates are
harmless because a point is keyed by series and timestamp (docs/design.md decision 4).

paho's callbacks run on its network thread and never raise: they only append to the inbox.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.devices import DeviceRegistry
from ingest.history_check import HistoryCheck
from ingest.mqtt_url import MqttTarget
from ingest.paho_log import paho_logger
from ingest.payloads import PayloadDecoder, RawMessage, ReadingBatch, Reject, RejectReason, split_topic
from ingest.stats import IngestStats
from ingest.writer import BatchWriter
from sensors.computed import ComputedSensors
from sensors.readings import now_ms as _now_ms

logger = logging.getLogger(__name__)

READINGS_FILTER = "hazmon/v1/+/+/readings"
STATUS_FILTER = "hazmon/v1/+/+/status"
RECEIVE_MAXIMUM = 65535  # MQTT v5 maximum: acks wait for the InfluxDB flush, so keep the window wide


class MqttCollector:
    """Subscribes to readings and device status, decodes in batches, acks once durable."""

    def __init__(
        self,
        target: MqttTarget,
        client_id: str,
        decoder: PayloadDecoder,
        writer: BatchWriter,
        stats: IngestStats,
        devices: DeviceRegistry,
        session_expiry_s: int = 7 * 24 * 3600,
        batch_interval_s: float = 0.02,
        clock_ms: Callable[[], int] = _now_ms,
        batch_listeners: list[Callable[[ReadingBatch], None]] | None = None,
        history: HistoryCheck | None = None,
        computed: ComputedSensors | None = None,
    ):
        self.target = target
        self.decoder = decoder
        self.writer = writer
        self.stats = stats
        self.devices = devices
        self.session_expiry_s = session_expiry_s
        self.batch_interval_s = batch_interval_s
        self.clock_ms = clock_ms
        self.batch_listeners = list(batch_listeners or [])  # each accepted batch, after the writer has it
        self.history = history  # refuses and audits readings that would change stored values
        self.computed = computed  # derives the readings of computed sensors from their inputs
        self._inbox: list[tuple[RawMessage, int, int]] = []  # (message, mid, connection epoch)
        self._inbox_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._epoch = 0
        self._processor: threading.Thread | None = None
        self.connected = threading.Event()

        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        c.enable_logger(paho_logger("paho"))
        if target.username:
            c.username_pw_set(target.username, target.password)
        if target.tls:
            c.tls_set()
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self.client = c

    # ---- lifecycle

    def start(self) -> None:
        """Connect in the background (retrying until the broker is up) and start processing."""
        self._processor = threading.Thread(target=self._process_loop, name="ingest-decoder", daemon=True)
        self._processor.start()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self.client.connect_async(
            self.target.host, self.target.port, keepalive=30, clean_start=False, properties=props
        )
        self.client.loop_start()

    def stop(self) -> None:
        """Stop taking messages, flush what was decoded and disconnect (unacked ones stay queued)."""
        self._stopping.set()
        self._wake.set()
        if self._processor:
            self._processor.join(10)
        self.writer.stop()
        self.client.disconnect()
        self.client.loop_stop()

    # ---- paho callbacks (network thread; must never raise)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            if reason_code.is_failure:
                logger.error("MQTT connection to %s refused: %s", self.target, reason_code)
                if reason_code.value in (0x86, 0x87, 0x8C):  # bad credentials / not authorized / bad auth
                    logger.critical("broker refused our credentials; fix HAZMON_MQTT_URL")
                return
            with self._inbox_lock:
                self._epoch += 1
            client.subscribe([(READINGS_FILTER, 1), (STATUS_FILTER, 1)])
            self.stats.mqtt_connected = True
            self.connected.set()
            logger.info("MQTT connected to %s (session present: %s)", self.target, flags.session_present)
        except Exception:
            logger.exception("on_connect failed")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.stats.mqtt_connected = False
        self.connected.clear()
        if not self._stopping.is_set():
            logger.warning("MQTT disconnected (%s); paho will reconnect", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        try:
            try:
                topic = msg.topic
            except UnicodeDecodeError:
                topic = msg._topic.decode("utf-8", errors="replace")
            raw = RawMessage(topic, msg.payload, self.clock_ms(), bool(msg.retain))
            with self._inbox_lock:
                self._inbox.append((raw, msg.mid if msg.qos else -1, self._epoch))
            self._wake.set()
        except Exception:
            logger.exception("on_message failed; message will be redelivered")

    # ---- processing thread

    def _process_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            time.sleep(self.batch_interval_s)  # let a few messages gather: bigger batches, fewer calls
            try:
                self.process_pending()
            except Exception:
                logger.exception("ingest processing error")
        self.process_pending()

    def process_pending(self) -> None:
        """Decode everything in the inbox and queue it for storage."""
        with self._inbox_lock:
            taken, self._inbox = self._inbox, []
        if not taken:
            return
        now = self.clock_ms()
        readings: list[RawMessage] = []
        acks: list[tuple[int, int]] = []
        for raw, mid, epoch in taken:
            if mid >= 0:
                acks.append((mid, epoch))
            if raw.topic.endswith("/status"):
                self._handle_status(raw)  # a retained status (a gateway's last will) is its current state
            elif raw.retained:
                # a reading the broker kept and replays at every subscribe: without its own ts it
                # would be stored again at the time of receipt, with a fresh timestamp
                self._reject(
                    raw, RejectReason.retained, "retained readings are ignored: publish with retain=0"
                )
            else:
                readings.append(raw)
        result = self.decoder.decode(readings, now)
        if len(result.batch):
            self.stats.note_take(len(result.batch), now - int(result.batch.ts_ms.max()))
        if self.history is not None:
            self.history.apply(result, readings)
        self.stats.add_decode(result)
        if self.computed:
            derived = self.computed.derive(result.batch)
            if len(derived):
                result.batch = ReadingBatch.concat([result.batch, derived])
                self.stats.add(readings_computed=len(derived))
        for raw in readings:
            parts = split_topic(raw.topic)
            if parts and parts[0] in self.decoder.index.by_site:
                self.devices.seen(parts[0], parts[1], raw.received_ms)
        for listener in self.batch_listeners:
            try:
                listener(result.batch)
            except Exception:
                logger.exception("batch listener failed")
        self.writer.submit(result.batch, lambda: self._ack(acks))

    def _handle_status(self, raw: RawMessage) -> None:
        self.stats.add(messages_received=1)
        parts = split_topic(raw.topic)
        status = raw.payload.decode("utf-8", errors="replace").strip().lower()
        if parts is None or parts[0] not in self.decoder.index.by_site:
            reason, detail = RejectReason.unknown_site, "status for a site that is not in the registry"
        elif status not in ("online", "offline"):
            reason, detail = RejectReason.bad_status, "status payload must be 'online' or 'offline'"
        else:
            self.stats.add(status_messages=1)
            if self.devices.set_status(parts[0], parts[1], status, raw.received_ms):
                logger.info("device %s/%s is %s", parts[0], parts[1], status)
            return
        self._reject(raw, reason, detail)

    def _reject(self, raw: RawMessage, reason: RejectReason, detail: str) -> None:
        self.stats.add_reject(
            Reject(
                raw.received_ms,
                raw.topic,
                reason.name,
                detail,
                raw.payload[:256].decode("utf-8", errors="replace"),
            )
        )

    def _ack(self, acks: list[tuple[int, int]]) -> None:
        """Acknowledge messages of the current connection; older ones will be redelivered anyway."""
        with self._inbox_lock:
            epoch = self._epoch
        for mid, msg_epoch in acks:
            if msg_epoch == epoch:
                self.client.ack(mid, 1)
