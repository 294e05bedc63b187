"""The sensor index: (site, sensor) <-> array slot, and per-slot columns for vectorised work.

The engine and the ingest path keep one array element per sensor; this index is the only place
that knows which element belongs to which sensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensors.model import Registry, Sensor, Site


@dataclass(frozen=True, slots=True)
class SensorIndex:
    """Slots are assigned in registry order: slot i is `sensors[i]`."""

    sensors: tuple[Sensor, ...]
    by_site: dict[str, dict[str, int]]  # site -> sensor id -> slot
    site_ids: tuple[str, ...]
    site_of_slot: np.ndarray  # (n_sensors,) int32: index into site_ids
    range_lo: np.ndarray  # (n_sensors,) float64
    range_hi: np.ndarray  # (n_sensors,) float64
    interval_s: np.ndarray  # (n_sensors,) float64
    sites: tuple[Site, ...] = ()  # the registry's, for what is declared per site (warning items)

    @classmethod
    def build(cls, registry: Registry) -> SensorIndex:
        sensors = registry.sensors()
        site_ids = tuple(site.id for site in registry.sites)
        site_pos = {s: i for i, s in enumerate(site_ids)}
        by_site: dict[str, dict[str, int]] = {s: {} for s in site_ids}
        for slot, sensor in enumerate(sensors):
            by_site[sensor.site][sensor.id] = slot
        n = len(sensors)
        return cls(
            sensors=sensors,
            by_site=by_site,
            site_ids=site_ids,
            site_of_slot=np.fromiter((site_pos[s.site] for s in sensors), dtype=np.int32, count=n),
            range_lo=np.fromiter((s.range[0] for s in sensors), dtype=np.float64, count=n),
            range_hi=np.fromiter((s.range[1] for s in sensors), dtype=np.float64, count=n),
            interval_s=np.fromiter((s.interval_s for s in sensors), dtype=np.float64, count=n),
            sites=registry.sites,
        )

    def __len__(self) -> int:
        return len(self.sensors)

    def slot(self, site: str, sensor: str) -> int:
        """Return the slot of a sensor; KeyError if the site has no such sensor."""
        return self.by_site[site][sensor]

    def sensor(self, slot: int) -> Sensor:
        return self.sensors[slot]
