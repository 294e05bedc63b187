"""A simulated fleet as a stream of MQTT messages, tick by tick; pure (no network, no clock).

`Simulation.tick(t_s)` runs the physics, the incidents and the reporting schedule for one tick
and returns the messages a real field would send at that time: one readings message per device
with sensors due, plus status changes of devices going down or coming back. The MQTT side
(simulators/fleet.py) only paces and publishes them, so everything here is testable offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sensors.model import Registry
from simulators.incidents import Incident, IncidentEngine
from simulators.payloads import MAX_ITEMS_PER_MESSAGE, DeviceLayout, build_readings_payload
from simulators.realism import CLASSIC, Realism
from simulators.schedule import DueSchedule, tick_for
from simulators.signals import FleetModel


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message to publish; `readings` = 0 marks a (retained) status message."""

    topic: str
    payload: bytes
    device: int  # index into DeviceLayout.devices
    readings: int = 0
    retain: bool = False


class Simulation:
    """The fleet of a registry: physics + incidents + schedule, producing messages per tick."""

    def __init__(
        self,
        registry: Registry,
        *,
        start_s: float,
        seed: int = 0,
        incidents: Sequence[Incident] = (),
        tick_s: float | None = None,
        realism: Realism = CLASSIC,
        model: FleetModel | None = None,
    ):
        """`model`: one already stepped up to `start_s` (a backfilled history) to go on from."""
        self.registry = registry = registry.measured()  # computed sensors are hazmon's to derive
        self.start_s = float(start_s)
        if model is not None and model.n != len(registry.sensors()):
            raise ValueError("the model given is not of this registry's measured sensors")
        self.model = model if model is not None else FleetModel(registry, seed=seed, realism=realism)
        self.layout = DeviceLayout.build(self.model.sensors)
        interval = np.array([s.interval_s for s in self.model.sensors], dtype=np.float64)
        self.schedule = DueSchedule(interval)
        self.tick_s = tick_s if tick_s is not None else tick_for(interval)
        self.engine = IncidentEngine(self.model, self.layout, incidents, self.start_s, seed=seed)
        self._silenced = np.zeros(len(self.layout.devices), dtype=bool)
        self.values: np.ndarray | None = None  # last tick's values, (n_sensors,)

    @property
    def n_devices(self) -> int:
        return len(self.layout.devices)

    def tick_time(self, k: int) -> float:
        """Simulated time of tick k (multiplied, not accumulated, so no float drift)."""
        return self.start_s + k * self.tick_s

    def status_messages(self, state: str, devices: Sequence[int] | None = None) -> list[Message]:
        """Retained `online`/`offline` for the given devices (default: all)."""
        payload = state.encode()
        idx = range(self.n_devices) if devices is None else devices
        return [Message(self.layout.status_topics[d], payload, d, retain=True) for d in idx]

    def tick(self, t_s: float) -> list[Message]:
        """Advance to `t_s` and return this tick's messages (status changes first)."""
        due = self.schedule.due(t_s)
        quiet = self.model.step(t_s)
        for muted in (self.model.silent(t_s), self.engine.muted(t_s)):
            if muted is not None:
                due = due & ~muted  # polled, but nothing came back: no reading (a gap)
        values = self.engine.apply(t_s, quiet, due)
        self.values = values
        silenced = self.engine.silenced(t_s)
        down = self.model.devices_down(t_s)
        if down is not None:
            silenced = silenced | down
        messages: list[Message] = []
        changed = silenced != self._silenced
        if changed.any():
            messages += self.status_messages("offline", np.flatnonzero(changed & silenced).tolist())
            messages += self.status_messages("online", np.flatnonzero(changed & ~silenced).tolist())
            self._silenced = silenced
        messages += self._readings(t_s, values, due, silenced)
        return messages

    def _readings(
        self, t_s: float, values: np.ndarray, due: np.ndarray, silenced: np.ndarray
    ) -> list[Message]:
        """One readings message per device with due sensors (split past MAX_ITEMS_PER_MESSAGE)."""
        lay = self.layout
        due_o = due[lay.order]  # (n_sensors,) bool, device-major
        pos = np.flatnonzero(due_o)
        if pos.size == 0:
            return []
        counts = np.add.reduceat(due_o.astype(np.int64), lay.starts[:-1]) if lay.starts.size > 1 else []
        vals = values[lay.order[pos]].tolist()
        ids = lay.ids_in_order
        picked = [ids[p] for p in pos.tolist()]
        ts_ms = round(t_s * 1000)
        out: list[Message] = []
        cursor = 0
        for d in np.flatnonzero(counts).tolist():
            c = int(counts[d])
            if not silenced[d]:
                for a in range(cursor, cursor + c, MAX_ITEMS_PER_MESSAGE):
                    b = min(a + MAX_ITEMS_PER_MESSAGE, cursor + c)
                    payload = build_readings_payload(ts_ms, picked[a:b], vals[a:b])
                    out.append(Message(lay.readings_topics[d], payload, d, readings=b - a))
            cursor += c
        return out
