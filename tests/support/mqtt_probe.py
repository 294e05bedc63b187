"""A paho 2.x client for broker tests that records what the broker answered: CONNACK, SUBACK
and PUBACK reason codes, messages received, disconnects."""

from __future__ import annotations

import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

NOT_AUTHORIZED = 135  # MQTT v5 reason code 0x87, also paho's name for a 3.1.1 CONNACK rc 5


class Probe:
    """One MQTT connection. `v5=False` speaks 3.1.1. `persistent` asks for a session that
    outlives the connection (v5: clean_start=False and a 1 h expiry, as hazmon does)."""

    def __init__(
        self,
        port: int,
        client_id: str,
        user: str | None = None,
        password: str | None = None,
        *,
        v5: bool = True,
        persistent: bool = False,
        tls_ca: str | None = None,
        tls_default_trust: bool = False,
    ):
        self.port, self.v5, self.persistent = port, v5, persistent
        if v5:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        else:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                clean_session=not persistent,
            )  # fmt: skip
        if user is not None:
            self.client.username_pw_set(user, password)
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca)
        elif tls_default_trust:
            self.client.tls_set()  # as hazmon's collector does for mqtts:// (trust from SSL_CERT_FILE)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.pubacks: dict[int, int] = {}
        self.subacks: queue.Queue[list[int]] = queue.Queue()
        self.connacks: queue.Queue[tuple[int, bool]] = queue.Queue()
        self.disconnects = 0
        self._acked = threading.Condition()
        c = self.client
        c.on_connect = lambda _c, _u, flags, rc, _p: self.connacks.put((rc.value, flags.session_present))
        c.on_disconnect = self._on_disconnect
        c.on_message = lambda _c, _u, m: self.messages.put(m)
        c.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subacks.put([rc.value for rc in codes])
        c.on_publish = self._on_publish

    def _on_disconnect(self, *_args) -> None:
        self.disconnects += 1

    def _on_publish(self, _c, _u, mid: int, rc, _p) -> None:
        with self._acked:
            self.pubacks[mid] = getattr(rc, "value", rc)  # 3.1.1: always success
            self._acked.notify_all()

    def connect(self, timeout_s: float = 5) -> tuple[int, bool]:
        """(CONNACK reason code, session present); 0 = accepted."""
        kw = {}
        if self.v5:
            kw["clean_start"] = not self.persistent
            if self.persistent:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = 3600
                kw["properties"] = props
        self.client.reconnect_delay_set(60, 120)  # a refused client must not retry during the test
        self.client.connect("127.0.0.1", self.port, keepalive=30, **kw)
        self.client.loop_start()
        try:
            return self.connacks.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no CONNACK on port {self.port}") from None

    def subscribe(self, *filters: str) -> list[int]:
        """SUBACK reason codes (0/1 = granted QoS, >= 128 refused)."""
        self.client.subscribe([(f, 1) for f in filters])
        return self.subacks.get(timeout=5)

    def publish(self, topic: str, payload: bytes | str = b"x", retain: bool = False) -> int:
        return self.client.publish(topic, payload, qos=1, retain=retain).mid

    def puback(self, mid: int, timeout_s: float = 5) -> int:
        """The PUBACK reason code of a QoS 1 publish (v5: 135 when the ACL refused it)."""
        with self._acked:
            assert self._acked.wait_for(lambda: mid in self.pubacks, timeout_s), f"no PUBACK for {mid}"
            return self.pubacks[mid]

    def received(self, settle_s: float = 0.0) -> list[tuple[str, bytes]]:
        """Everything received so far, after waiting `settle_s` for stragglers."""
        time.sleep(settle_s)
        out = []
        while True:
            try:
                m = self.messages.get_nowait()
            except queue.Empty:
                return out
            out.append((m.topic, m.payload))

    def wait_for(self, count: int, timeout_s: float = 10) -> list[tuple[str, bytes]]:
        got: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            try:
                m = self.messages.get(timeout=0.05)
            except queue.Empty:
                continue
            got.append((m.topic, m.payload))
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
