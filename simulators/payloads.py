"""Topics, readings payloads (docs/contracts.md §1) and the sensor-to-device layout of a fleet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from sensors.model import Sensor

TOPIC_ROOT = "hazmon/v1"
#: Device of sensors the registry gives none: they still need a topic level (docs/contracts.md §1).
DEFAULT_DEVICE = "sim-gw"
#: Items per message; well under the contract's 10 000 items and 256 KiB (an item is ~40 bytes).
MAX_ITEMS_PER_MESSAGE = 2000


def readings_topic(site: str, device: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{device}/readings"


def status_topic(site: str, device: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{device}/status"


def build_readings_payload(ts_ms: int, sensor_ids: Sequence[str], values: Sequence[float]) -> bytes:
    """Encode one device's readings at one time: `{"ts": ms, "readings": [{"sensor", "v"}, ...]}`."""
    return orjson.dumps(
        {"ts": ts_ms, "readings": [{"sensor": s, "v": v} for s, v in zip(sensor_ids, values, strict=True)]}
    )


@dataclass(frozen=True, slots=True)
class DeviceLayout:
    """Sensors grouped by (site, device), so one tick's values split into one message per device.

    `order` lists sensor slots device by device; device d owns `order[starts[d]:starts[d + 1]]`.
    """

    devices: tuple[tuple[str, str], ...]  # (site, device), first-seen order
    device_of_slot: np.ndarray  # (n_sensors,) int64
    order: np.ndarray  # (n_sensors,) int64: slots sorted by device, registry order within a device
    starts: np.ndarray  # (n_devices + 1,) int64
    ids_in_order: tuple[str, ...]  # sensor id of order[i]
    readings_topics: tuple[str, ...]
    status_topics: tuple[str, ...]

    @classmethod
    def build(cls, sensors: Sequence[Sensor]) -> DeviceLayout:
        index: dict[tuple[str, str], int] = {}
        device_of_slot = np.empty(len(sensors), dtype=np.int64)
        for slot, s in enumerate(sensors):
            device_of_slot[slot] = index.setdefault((s.site, s.device or DEFAULT_DEVICE), len(index))
        order = np.argsort(device_of_slot, kind="stable")
        counts = np.bincount(device_of_slot, minlength=len(index))
        starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        devices = tuple(index)
        return cls(
            devices=devices,
            device_of_slot=device_of_slot,
            order=order,
            starts=starts,
            ids_in_order=tuple(sensors[i].id for i in order.tolist()),
            readings_topics=tuple(readings_topic(s, d) for s, d in devices),
            status_topics=tuple(status_topic(s, d) for s, d in devices),
        )

    def device_index(self, site: str, device: str) -> int:
        """Index of a (site, device); ValueError if the fleet has no such device."""
        return self.devices.index((site, device))
