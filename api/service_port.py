"""What the API needs of the running service: a Protocol, so api/ never imports the composition root.

hazmon/bootstrap.py's Service satisfies it; the API's unit tests pass lighter stand-ins.
"""

from __future__ import annotations

from typing import Protocol

from alerts.reports.service import ReportService
from alerts.service import AlarmService
from ingest.devices import DeviceRegistry
from ingest.stats import IngestStats
from ingest.store import Resolution, Series
from sensors.index import SensorIndex
from sensors.model import Registry


class ServicePort(Protocol):
    """The running hazmon as the routes see it: the registry, live counters, the alarms, history."""

    registry: Registry
    index: SensorIndex
    stats: IngestStats
    devices: DeviceRegistry
    alarms: AlarmService
    reports: ReportService | None  # None: reports are not made here

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def read_history(
        self, site: str, sensors: list[str], start_ms: int, end_ms: int, resolution: Resolution, limit: int
    ) -> list[Series]:
        """Stored readings of a site's sensors (raw, or 1-minute min/mean/max/count)."""
        ...
