"""The sensor registry: sites, sensors and limits, and the sensor index used by the engine."""

from sensors.index import SensorIndex
from sensors.model import Limits, Quality, Registry, Sensor, Site
from sensors.registry import RegistryError, RegistryIssue, load_registry

__all__ = [
    "Limits",
    "Quality",
    "Registry",
    "RegistryError",
    "RegistryIssue",
    "Sensor",
    "SensorIndex",
    "Site",
    "load_registry",
]
