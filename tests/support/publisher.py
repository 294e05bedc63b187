"""A field-gateway stand-in that publishes a known set of readings and waits for every PUBACK."""

from __future__ import annotations

import threading
import time

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class TestPublisher:
    """QoS 1, persistent session, unlimited local queue: survives a broker restart without loss."""

    __test__ = False  # not a pytest class

    def __init__(self, port: int, client_id: str):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(200)
        self.client.reconnect_delay_set(0.1, 1)
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set() if not rc.is_failure else None
        self.client.on_disconnect = lambda *a: self.connected.clear()
        # paho flags a message queued while disconnected with rc=NO_CONN although it sends it
        # after reconnecting, so acknowledgements are tracked from PUBACKs, not from the infos
        self._acked: set[int] = set()
        self._acked_lock = threading.Lock()
        self.client.on_publish = self._on_publish
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()
        assert self.connected.wait(10), "publisher could not connect"
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._acked_lock:
            self._acked.add(mid)

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=1, retain=retain))

    def publish_readings(self, site: str, device: str, ts_ms: int, values: dict[str, float]) -> None:
        body = {"ts": ts_ms, "readings": [{"sensor": s, "v": v} for s, v in values.items()]}
        self.publish(f"hazmon/v1/{site}/{device}/readings", orjson.dumps(body))

    def wait_all_acked(self, timeout_s: float = 60) -> None:
        assert len(self.infos) < 65535, "message ids would wrap; publish fewer messages per publisher"
        wanted = {info.mid for info in self.infos}
        deadline = time.monotonic() + timeout_s
        while True:
            with self._acked_lock:
                pending = wanted - self._acked
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(pending)} messages still unacknowledged after {timeout_s} s")
            time.sleep(0.01)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
