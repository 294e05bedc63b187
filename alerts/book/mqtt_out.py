"""MQTT output of alarm events (docs/contracts.md §1 `hazmon/v1/{site}/events`): a paho 2.x client of its own.

A second client beside the collector's, so publishing never waits behind the collector's manual
acknowledgements and its persistent subscription session stays untouched. QoS 1, not retained.
paho keeps every QoS 1 message until its PUBACK and resends it after a reconnect, so a message
accepted by `publish` is delivered once the broker is back; `on_ack(mid, ok)` reports each PUBACK
(ok is False for an MQTT v5 failure reason code, e.g. 0x87 not authorized).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ingest.mqtt_url import MqttTarget
from ingest.paho_log import paho_logger

logger = logging.getLogger(__name__)

QOS = 1


class PahoEventTransport:
    """Publishes event payloads; the outbox bounds how many are unacknowledged at once."""

    def __init__(
        self,
        target: MqttTarget,
        client_id: str,
        on_ack: Callable[[int, bool], None] | None = None,
        label: str = "event output",  # names the client in the log (the upward forwarder reuses it)
    ):
        self.target = target
        self.label = label
        self.on_ack: Callable[[int, bool], None] = on_ack or (lambda _mid, _ok: None)
        self.connected = threading.Event()
        self._stopping = False
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.enable_logger(paho_logger("paho.events"))
        c.max_inflight_messages_set(0)  # unlimited in paho; EventOutbox.max_in_flight bounds it
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        if target.username:
            c.username_pw_set(target.username, target.password)
        if target.tls:
            c.tls_set()
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        self.client = c

    def start(self) -> None:
        self.client.connect_async(self.target.host, self.target.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> int:
        # while disconnected paho queues the message (rc NO_CONN) and sends it after reconnecting
        return self.client.publish(topic, payload, qos=QOS, retain=False).mid

    # ---- paho callbacks (network thread; never raise)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            logger.error("%s: broker %s refused the connection: %s", self.label, self.target, reason)
            return
        self.connected.set()
        logger.info("%s connected to %s", self.label, self.target)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        if not self._stopping:
            logger.warning("%s disconnected (%s); paho reconnects", self.label, reason)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        try:
            self.on_ack(mid, not getattr(reason, "is_failure", False))
        except Exception:
            logger.exception("%s: ack handler failed", self.label)
