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
