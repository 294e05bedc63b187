"""Fixtures for the pure core: a small in-memory registry and its index."""

from __future__ import annotations

import pytest

from sensors.index import SensorIndex
from sensors.model import Limits, Registry, Sensor, Site


def make_registry(n_sites: int = 2, sensors_per_site: int = 5) -> Registry:
    sites = []
    for i in range(n_sites):
        site_id = f"site-{i}"
        sensors = tuple(
            Sensor(
                id=f"S{j}",
                site=site_id,
                name=f"传感器{j}",
                kind="level",
                unit="m",
                range=(0.0, 20.0),
                interval_s=10.0,
                limits=Limits(h=16.5, hh=18.0),
            )
            for j in range(sensors_per_site)
        )
        sites.append(Site(id=site_id, name=f"站{i}", kind="chemical", grade=2, sensors=sensors))
    # a sensor id that exists only on site-1, to tell "wrong site" from "unknown"
    only_b = Sensor(
        id="ONLY-B", site="site-1", name="b", kind="level", unit="m", range=(0.0, 1.0), interval_s=1.0
    )
    sites[1] = Site(id="site-1", name="站1", kind="chemical", grade=2, sensors=(*sites[1].sensors, only_b))
    return Registry(tuple(sites))


@pytest.fixture
def index() -> SensorIndex:
    return SensorIndex.build(make_registry())
