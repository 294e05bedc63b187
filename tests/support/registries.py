"""Small registries written as YAML for tests."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_registry(path: Path, n_sites: int = 3, sensors_per_site: int = 20, prefix: str = "site") -> Path:
    """A registry of level sensors (range 0-100, no limits reachable by tests) on one device per site."""
    sites = []
    for i in range(n_sites):
        sites.append(
            {
                "id": f"{prefix}-{i:02d}",
                "name": f"测试站 {i}",
                "kind": "chemical",
                "grade": 3,
                "sensors": [
                    {
                        "id": f"LT-{j:03d}",
                        "name": f"液位 {j}",
                        "kind": "level",
                        "unit": "m",
                        "range": [0, 100],
                        "interval_s": 1,
                        "device": "gw-01",
                    }
                    for j in range(sensors_per_site)
                ],
            }
        )
    path.write_text(yaml.safe_dump({"sites": sites}, allow_unicode=True), encoding="utf-8")
    return path


def write_alarm_registry(path: Path, site: str = "alarm-01", n_sensors: int = 100) -> Path:
    """One site of level sensors with reachable limits (H 80, HH 95 of 0-100), no delays, one device."""
    sensors = [
        {
            "id": f"LT-{j:03d}",
            "name": f"{j}号罐液位",
            "kind": "level",
            "unit": "%",
            "range": [0, 100],
            "interval_s": 1,
            "limits": {"h": 80, "hh": 95},
            "deadband": 1,
            "device": "gw-01",
        }
        for j in range(n_sensors)
    ]
    site_doc = {"id": site, "name": "报警测试站", "kind": "chemical", "grade": 2, "sensors": sensors}
    path.write_text(yaml.safe_dump({"sites": [site_doc]}, allow_unicode=True), encoding="utf-8")
    return path
