"""A SCADA stand-in that subscribes to hazmon's event topics and keeps every event with its arrival time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

EVENTS_FILTER = "hazmon/v1/+/events"


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    topic: str
    event: dict
    received_s: float  # time.monotonic() at arrival
    retained: bool


class EventSubscriber:
    """QoS 1 subscriber on hazmon/v1/+/events; `events` grows as they arrive."""

    __test__ = False

    def __init__(self, port: int, client_id: str):
        self.events: list[ReceivedEvent] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(EVENTS_FILTER, qos=1)
        c.on_subscribe = lambda *a: self._subscribed.set()
        c.on_message = self._on_message
        c.connect("127.0.0.1", port, keepalive=10)
        c.loop_start()
        self.client = c
        assert self._subscribed.wait(10), "event subscriber could not subscribe"

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        ev = ReceivedEvent(msg.topic, orjson.loads(msg.payload), time.monotonic(), bool(msg.retain))
        with self._lock:
            self.events.append(ev)

    def snapshot(self) -> list[ReceivedEvent]:
        with self._lock:
            return list(self.events)

    def wait_for(self, predicate: Callable[[list[ReceivedEvent]], bool], timeout_s: float = 15) -> list:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.snapshot()
            if predicate(got):
                return got
            time.sleep(0.02)
        got = self.snapshot()
        summary = [(e.event["sensor"], e.event["type"], e.event["level"]) for e in got]
        raise AssertionError(f"events not as expected after {timeout_s} s: {summary}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(fetch, predicate, timeout_s: float = 15, interval_s: float = 0.1):
    """Poll `fetch()` until `predicate(value)`; the last value is in the error otherwise."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if predicate(value):
            return value
        time.sleep(interval_s)
    raise AssertionError(f"condition not met in {timeout_s} s; last value: {value}")


class MonotonicMs:
    """Wall-clock ms that never repeat: the engine drops a reading no newer than the sensor's last."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        self._last = max(time.time_ns() // 1_000_000, self._last + 1)
        return self._last
