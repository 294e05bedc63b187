"""hazmon/bootstrap.py: the composition root builds the whole service, each part complete when built,
from the settings or from the adapters a test hands it (no server, no connection opened)."""

from __future__ import annotations

from alerts.notify.channels.gateway import NamedChannel
from alerts.notify.channels.kannel import KannelSmsGateway
from alerts.notify.channels.webhook import RobotWebhook
from hazmon.bootstrap import Channels, bootstrap, build_channels
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
        channels=Channels((NamedChannel("fake", sms), NamedChannel("robot", robot))),
        clock=lambda: T0,
    )
    alarms = service.alarms
    assert service.store is store and service.writer.store is store
    assert (alarms.engine.seen_since == T0).all()  # the stale-data clock starts at the given time
    assert alarms.notifier is not None
    assert [(c.name, c.channel) for c in alarms.notifier.channels] == [("fake", sms), ("robot", robot)]
    assert alarms.notifier.gateway is sms and alarms.notifier.kannel is None
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


def test_the_channels_the_settings_name_are_the_sms_gateway_then_the_robot_and_kannel_is_found_among_them(
    tmp_path,
):
    config = settings(
        tmp_path,
        sms_gateway="kannel",
        sms_callback_token="callback-token-1",
        webhook_url="http://127.0.0.1:9/cgi-bin/webhook/send?key=robot-key",
        webhook_flavor="dingtalk",
        crash_at="sms_before_send",
    )
    channels = build_channels(config)
    (sms, robot) = channels.tiers
    assert sms.name == "kannel" and isinstance(sms.channel, KannelSmsGateway)
    assert robot.name == "dingtalk robot" and isinstance(robot.channel, RobotWebhook)
    assert channels.kannel is sms.channel
    alarms = bootstrap(config, store=MemoryStore(), channels=channels).alarms
    notifier = alarms.notifier
    assert notifier is not None
    # the crash tests' wrapper hides the adapter's type: the API still gets Kannel's callbacks through
    assert notifier.gateway is not sms.channel and notifier.kannel is sms.channel
    tiers = [(c["name"], c["tier"]) for c in notifier.health()["channels"]]
    assert tiers == [("kannel", 0), ("dingtalk robot", 1)]
    notifier.close()
    alarms.journal.close()
    alarms.rosters.close()


def test_without_an_sms_gateway_no_robot_is_built_either(tmp_path):
    channels = build_channels(
        settings(tmp_path, sms_gateway="none", webhook_url="http://127.0.0.1:9/send?key=robot-key")
    )
    assert channels.tiers == () and channels.kannel is None


def test_the_rolling_windows_of_the_example_registry_are_seeded_from_the_store_unless_turned_off(tmp_path):
    store = MemoryStore()
    minutes = range(1, 24 * 60 + 1)
    store.put("renhua-tsf-01", "RG-01", [T0 - m * 60_000 for m in minutes], [2.0] * len(minutes))
    service = bootstrap(settings(tmp_path), store=store, clock=lambda: T0)
    assert service.seed_windows() == 24 * 60  # the gauge's last day: the 24 h rainfall's window
    asked = {(c.site, c.start_ms) for c in store.calls}
    # each input over its longest window and two of the window's 60 buckets
    assert ("renhua-tsf-01", T0 - 86_400_000 * 62 // 60) in asked
    assert ("dayawan-srs-01", T0 - 8 * 3_600_000 * 62 // 60) in asked
    off = bootstrap(settings(tmp_path / "off", seed_windows=False), store=MemoryStore(), clock=lambda: T0)
    assert off.seed_windows() == 0 and off.store.calls == []
    for s in (service, off):
        s.alarms.journal.close()
        s.alarms.rosters.close()
