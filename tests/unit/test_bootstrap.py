"""hazmon/bootstrap.py: the composition root builds the whole service, each part complete when built,
from the settings or from the adapters a test hands it (no server, no connection opened)."""

from __future__ import annotations

import numpy as np

from hazmon.bootstrap import Channels, bootstrap
from hazmon.config import Settings
from ingest.store import Series
from sensors.readings import ReadingBatch
from tests.support.fake_sms import FakeSmsGateway

T0 = 1_795_392_000_000


class MemoryStore:
    """A reading store in memory: keeps encoded bodies and answers reads from them."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.schema: tuple[int, int] | None = None
        self.closed = False

    def encode(self, batch: ReadingBatch) -> bytes:
        return np.column_stack([batch.slot, batch.ts_ms, batch.value]).astype(np.float64).tobytes()

    def encoded_points(self, body: bytes) -> int:
        return len(body) // 24

    def write_encoded(self, body: bytes) -> None:
        self.bodies.append(body)

    def read(self, site, sensors, start_ms, end_ms, *, resolution="raw", limit=100_000):
        ts = np.array([start_ms], dtype=np.int64)
        return [Series(site, s, ts, {"value": np.array([1.5]), "quality": np.array([0.0])}) for s in sensors]

    def bin_means(self, site, sensors, start_ms, end_ms, step_s):
        return {}

    def ensure_schema(self, raw_days: int, rollup_days: int) -> None:
        self.schema = (raw_days, rollup_days)

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def settings(tmp_path, **kw) -> Settings:
    return Settings(data_dir=tmp_path / "var", rosters=None, **kw)


def test_bootstrap_wires_the_given_store_channels_and_clock_without_patching_afterwards(tmp_path):
    store, sms, robot = MemoryStore(), FakeSmsGateway(), FakeSmsGateway()
    service = bootstrap(
        settings(tmp_path),
        store=store,
        channels=Channels(sms, "fake", robot, "robot"),
        clock=lambda: T0,
    )
    alarms = service.alarms
    assert service.store is store and service.writer.store is store
    assert (alarms.engine.seen_since == T0).all()  # the stale-data clock starts at the given time
    assert alarms.notifier is not None
    assert alarms.notifier.gateway is sms and alarms.notifier.fallback is robot
    assert alarms.notifier.clock() == T0
    assert service.collector.batch_listeners == [alarms.pipeline.on_batch]
    assert alarms.book._on_events is alarms.events  # the book reports to the event watch it was built with
    assert alarms.rosters is not None and alarms.learner is not None
    site = service.registry.sites[0]
    sensor = site.sensors[0]
    got = service.read_history(site.id, [sensor.id], T0 - 60_000, T0, "raw", 10)
    assert got[0].sensor == sensor.id and got[0].values["value"].tolist() == [1.5]
    service.alarms.journal.close()
    service.alarms.rosters.close()
    service.alarms.notifier.close()


def test_without_an_sms_gateway_there_is_no_notifier_and_no_channel_is_built(tmp_path):
    service = bootstrap(settings(tmp_path, sms_gateway="none"), store=MemoryStore())
    assert service.alarms.notifier is None
    service.alarms.journal.close()
    service.alarms.rosters.close()
