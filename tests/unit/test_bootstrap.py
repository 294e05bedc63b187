"""hazmon/bootstrap.py: the composition root builds the whole service, each part complete when built,
from the settings or from the adapters a test hands it (no server, no connection opened)."""

from __future__ import annotations

from hazmon.bootstrap import Channels, bootstrap
from hazmon.config import Settings
from tests.support.fake_sms import FakeSmsGateway
from tests.support.memory_store import MemoryStore

T0 = 1_795_392_000_000


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
    store.put(site.id, sensor.id, [T0 - 30_000], [1.5])
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
