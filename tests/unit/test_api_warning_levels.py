"""GET /api/v1/sites/{site}/warning-levels (issue 12): a pond's colour, its items and points, and its
one alarm, over the service bootstrap() builds (tests/support/api_rig.py)."""

from __future__ import annotations

import time

import numpy as np

from sensors.model import Registry
from sensors.readings import ReadingBatch
from tests.support.api_rig import api_rig
from tests.unit.conftest import make_registry
from tests.unit.test_pond_warnings import registry


def test_a_pond_shows_its_colour_items_points_and_alarm_and_other_sites_answer_404(tmp_path):
    pond = registry()
    with api_rig(tmp_path, Registry((*pond.sites, make_registry().sites[0]))) as api:
        engine, book = api.service.alarms.engine, api.service.alarms.book
        now = time.time_ns() // 1_000_000
        slots = np.array([engine.index.slot("tsf-1", s) for s in ("PL-01", "PZ-A1", "PZ-A2", "PZ-A3")])
        changes = engine.process(
            ReadingBatch(
                slots.astype(np.int32),
                np.full(4, now - 1_000, dtype=np.int64),
                np.array([240.0, 5.9, 5.9, 5.9]),
                np.zeros(4, dtype=np.int8),
            )
        )
        book.on_changes(changes, now)
        with api.client() as client:
            body = client.get("/api/v1/sites/tsf-1/warning-levels").json()
            assert (body["level"], body["ready"], body["state"]) == ("ORANGE", True, "UNACK")
            assert body["message"].startswith("某尾矿库 橙色预警: 浸润线A断面 橙色")
            item = next(i for i in body["items"] if i["id"] == "phreatic-A")
            assert item["level"] == "ORANGE"
            assert [(p["sensor"], p["level"], p["value"]) for p in item["points"]] == [
                ("PZ-A1", "YELLOW", 5.9),
                ("PZ-A2", "YELLOW", 5.9),
                ("PZ-A3", "YELLOW", 5.9),
            ]
            alone = next(i for i in body["items"] if i["id"] == "PL-01")  # its own item
            assert alone["level"] is None and alone["points"][0]["heard"] is True
            assert client.get("/api/v1/sites/site-0/warning-levels").status_code == 404
            assert client.get("/api/v1/sites/nowhere/warning-levels").status_code == 404
