"""Field device (gateway/RTU) status from retained last-will topics and from traffic seen.

The map is bounded: the devices the registry names are always kept, but a topic can name any
device, so at most `max_unknown_per_site` others per site (and `max_unknown` in all) are tracked.
Past that, their messages still count as readings; the device is just not listed, and
`untracked` counts how often that happened (a junk flood of device names once added 96 MB and
made the device list answer 100 MB).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

MAX_DEVICE_NAME = 64  # characters; a longer topic level is not a device anyone configured


@dataclass(slots=True)
class DeviceState:
    site: str
    device: str
    status: str = "unknown"  # online | offline | unknown (never announced)
    status_since_ms: int = 0
    last_message_ms: int = 0
    messages: int = 0


class DeviceRegistry:
    """Thread-safe, bounded map of (site, device) -> DeviceState."""

    def __init__(
        self,
        known: Iterable[tuple[str, str]] = (),
        *,
        max_unknown_per_site: int = 16,
        max_unknown: int = 1_000,
    ) -> None:
        self._lock = threading.Lock()
        self._known = frozenset(known)
        self.max_unknown_per_site = max_unknown_per_site
        self.max_unknown = max_unknown
        self._devices: dict[tuple[str, str], DeviceState] = {}
        self._unknown_by_site: Counter[str] = Counter()
        self.untracked = 0  # messages of devices beyond the bounds

    def _get(self, site: str, device: str) -> DeviceState | None:
        key = (site, device)
        state = self._devices.get(key)
        if state is not None:
            return state
        if key not in self._known:
            full = self._unknown_by_site[site] >= self.max_unknown_per_site
            if full or self._unknown_by_site.total() >= self.max_unknown or len(device) > MAX_DEVICE_NAME:
                self.untracked += 1
                return None
            self._unknown_by_site[site] += 1
        state = self._devices[key] = DeviceState(site, device)
        return state

    def set_status(self, site: str, device: str, status: str, at_ms: int) -> bool:
        """Record an `online`/`offline` announcement; return True if it changed."""
        with self._lock:
            state = self._get(site, device)
            if state is None:
                return False
            changed = state.status != status
            if changed:
                state.status, state.status_since_ms = status, at_ms
            return changed

    def seen(self, site: str, device: str, at_ms: int) -> None:
        """Count a readings message from a device."""
        with self._lock:
            state = self._get(site, device)
            if state is None:
                return
            state.last_message_ms = max(state.last_message_ms, at_ms)
            state.messages += 1

    def snapshot(self) -> list[DeviceState]:
        with self._lock:
            return [
                DeviceState(**{f: getattr(s, f) for f in DeviceState.__slots__})
                for s in self._devices.values()
            ]
