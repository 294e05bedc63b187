"""Field device (gateway/RTU) status from retained last-will topics and from traffic seen."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(slots=True)
class DeviceState:
    site: str
    device: str
    status: str = "unknown"  # online | offline | unknown (never announced)
    status_since_ms: int = 0
    last_message_ms: int = 0
    messages: int = 0


class DeviceRegistry:
    """Thread-safe map of (site, device) -> DeviceState."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: dict[tuple[str, str], DeviceState] = {}

    def _get(self, site: str, device: str) -> DeviceState:
        key = (site, device)
        state = self._devices.get(key)
        if state is None:
            state = self._devices[key] = DeviceState(site, device)
        return state

    def set_status(self, site: str, device: str, status: str, at_ms: int) -> bool:
        """Record an `online`/`offline` announcement; return True if it changed."""
        with self._lock:
            state = self._get(site, device)
            changed = state.status != status
            if changed:
                state.status, state.status_since_ms = status, at_ms
            return changed

    def seen(self, site: str, device: str, at_ms: int) -> None:
        """Count a readings message from a device."""
        with self._lock:
            state = self._get(site, device)
            state.last_message_ms = max(state.last_message_ms, at_ms)
            state.messages += 1

    def snapshot(self) -> list[DeviceState]:
        with self._lock:
            return [
                DeviceState(**{f: getattr(s, f) for f in DeviceState.__slots__})
                for s in self._devices.values()
            ]
