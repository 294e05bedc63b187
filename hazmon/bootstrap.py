"""The composition root: the only place that builds adapters and wires them together."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from alerts.book.alarm_events import AlarmEventWatch
from alerts.book.book import AlarmBook
from alerts.book.mqtt_out import PahoEventTransport
from alerts.book.outbox import EventOutbox, OutboxRunner
from alerts.book.sqlite_journal import AlarmJournal
from alerts.engine.alarm_engine import AlarmEngine
from alerts.engine.early_warning import attach_early_warnings
from alerts.engine.warm_up import warm_up_kernels
from alerts.forward.collect import ForwardCollector, SummarySensor
from alerts.forward.forwarder import Forwarder, MqttLink
from alerts.forward.http_out import HttpForwardTransport
from alerts.forward.senders import AckSender, BatchSender
from alerts.forward.store import ForwardStore
from alerts.learning import BehaviourLearner, HistorySource
from alerts.notify.channels.gateway import NamedChannel
from alerts.notify.channels.kannel import KannelSmsGateway
from alerts.notify.channels.smpp import SmppSmsGateway
from alerts.notify.channels.webhook import RobotWebhook
from alerts.notify.notifier import Notifier
from alerts.notify.roster import duty_lookup
from alerts.notify.roster_store import RosterStore
from alerts.notify.roster_yaml import RosterError
from alerts.notify.routing_yaml import load_routing
from alerts.notify.sms_ack import SmsAcknowledger, people_by_phone_from, roster_may_ack
from alerts.notify.sms_outbox import SmsOutbox
from alerts.notify.sms_plan import Policy
from alerts.notify.sms_render import AlarmDescriber
from alerts.pipeline import AlarmPipeline, WorkQueue
from alerts.reports.service import ReportService
from alerts.reports.store import ReportStore
from alerts.service import AlarmService
from alerts.stats import AlarmStats
from hazmon.config import Settings, forward_sensor_ids
from hazmon.history_audit import HistoryAudit
from ingest.collector import MqttCollector
from ingest.devices import DeviceRegistry
from ingest.history_check import HistoryCheck
from ingest.history_guard import HistoryGuard
from ingest.influx import InfluxClient
from ingest.influx_store import InfluxStore
from ingest.mqtt_url import MqttTarget, parse_mqtt_url
from ingest.payloads import MAX_FUTURE_MS, PayloadDecoder
from ingest.rollup_history import RollupHistory
from ingest.spool import Spool
from ingest.stats import IngestStats
from ingest.store import ReadingStore, Resolution, Series, StorageError
from ingest.url_credentials import redacted
from ingest.window_seed import seed_windows
from ingest.writer import BatchWriter
from sensors.computed import ComputedSensors
from sensors.index import SensorIndex
from sensors.model import Registry
from sensors.readings import now_ms as _wall_ms
from sensors.registry import load_registry

logger = logging.getLogger(__name__)

#: the learner's fit and the reports also wait while the writer's oldest batch has waited this long:
#: readings arriving on time (not `catching_up`) but more of them than the store and this process
#: keep up with while a fleet's first fit runs (the 250 000-sensor soak, bench/soak.py)
WRITER_BEHIND_S = 5.0


@dataclass
class Service:
    """Everything `hazmon run` keeps alive; start() and stop() are the lifecycle."""

    settings: Settings
    registry: Registry
    index: SensorIndex
    stats: IngestStats
    devices: DeviceRegistry
    store: ReadingStore
    writer: BatchWriter
    collector: MqttCollector
    alarms: AlarmService
    clock: Callable[[], int] = _wall_ms  # wall time, ms since the epoch
    reports: ReportService | None = None  # daily and shift reports (alerts/reports/)
    _stop: threading.Event = field(default_factory=threading.Event)
    _schema_thread: threading.Thread | None = None

    def start(self) -> None:
        self._schema_thread = threading.Thread(target=self._ensure_schema, name="store-schema", daemon=True)
        self._schema_thread.start()
        self.writer.start()
        self.alarms.start()  # before the collector: its first batch goes to a running engine
        if self.reports is not None:
            self.reports.start(self.alarms.scheduler)
        self.seed_windows()  # before any live reading
        self.collector.start()
        logger.info(
            "hazmon started: %d sites, %d sensors, broker %s, InfluxDB %s/%s",
            len(self.registry.sites),
            len(self.index),
            self.collector.target,
            redacted(self.settings.influx_url),
            self.settings.influx_db,
        )

    def seed_windows(self) -> int:
        """Fill the computed sensors' rolling windows from the store (HAZMON_SEED_WINDOWS); returns
        how many stored readings they took."""
        computed = self.collector.computed
        if not self.settings.seed_windows or computed is None or not computed.window_inputs():
            return 0
        return seed_windows(computed, self.store, self.index, self.clock())

    def stop(self) -> None:
        self._stop.set()
        self.collector.stop()  # flushes the writer too
        if self.reports is not None:
            self.reports.stop()  # before the journal closes
        self.alarms.stop()  # after the collector: no batch can arrive any more
        self.store.close()
        logger.info("hazmon stopped")

    def read_history(
        self, site: str, sensors: list[str], start_ms: int, end_ms: int, resolution: Resolution, limit: int
    ) -> list[Series]:
        """Stored readings of a site's sensors, for the API (which never talks to the store itself)."""
        return self.store.read(site, sensors, start_ms, end_ms, resolution=resolution, limit=limit)

    def _ensure_schema(self) -> None:
        """Create the database and policies, retrying while InfluxDB is not up yet (writes spool)."""
        delay = 1.0
        while not self._stop.is_set():
            try:
                s = self.settings
                self.store.ensure_schema(s.raw_retention_days, s.rollup_retention_days)
                return
            except StorageError as e:
                logger.warning("InfluxDB schema not ready (%s); retrying in %.0f s", e, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)


Clock = Callable[[], int]  # wall time, ms since the epoch


@dataclass(frozen=True, slots=True)
class Channels:
    """Where alarm texts go, in order: the SMS gateway, then each fallback tier. Empty: SMS is off."""

    tiers: tuple[NamedChannel, ...] = ()

    @property
    def kannel(self) -> KannelSmsGateway | None:
        """The Kannel adapter among them, whose HTTP callbacks the API hands to the notifier."""
        return next((c.channel for c in self.tiers if isinstance(c.channel, KannelSmsGateway)), None)


def bootstrap(
    settings: Settings,
    registry: Registry | None = None,
    *,
    store: ReadingStore | None = None,
    journal: AlarmJournal | None = None,
    channels: Channels | None = None,
    clock: Clock | None = None,
) -> Service:
    """Build the whole service from settings, in order, each part complete when built; opens no
    connection until start(). The keyword arguments replace what the settings would build (a test's
    in-memory or fake adapters): the reading store, the alarm journal, the notification channels and
    the wall clock (ms)."""
    registry = registry or load_registry(settings.registry)
    clock = clock or _wall_ms
    index = SensorIndex.build(registry)
    stats = IngestStats()
    devices = DeviceRegistry({(s.site, s.device) for s in index.sensors if s.device})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = store or build_store(settings, index)
    spool = Spool(settings.data_dir / "spool", settings.spool_max_bytes)
    writer = BatchWriter(
        store,
        spool,
        stats,
        max_points=settings.write_batch_points,
        max_age_s=settings.write_max_age_s,
    )
    target = parse_mqtt_url(settings.mqtt_url)

    def ingest_busy() -> bool:  # background work (the learner's fit, reports) waits meanwhile
        return stats.catching_up() or writer.backlog_s() > WRITER_BEHIND_S

    alarms = build_alarms(
        settings,
        registry,
        index,
        target,
        RollupHistory(store, index),
        journal=journal,
        channels=channels or build_channels(settings),
        clock=clock,
        readings=store,
        store_current=writer.store_current,
        ingest_busy=ingest_busy,
    )
    decoder = PayloadDecoder(index, max_lateness_ms=int(settings.max_lateness_s * 1000))
    history = HistoryCheck(
        index,
        decoder,
        store,
        stats,
        HistoryGuard(len(index.sensors), trust_from_ms=clock() + MAX_FUTURE_MS),
        store_current=lambda: writer.store_current(),
        on_changes=HistoryAudit(alarms.journal, clock),
    )
    collector = MqttCollector(
        target,
        settings.mqtt_client_id,
        decoder,
        writer,
        stats,
        devices,
        clock_ms=clock,
        batch_listeners=[alarms.pipeline.on_batch],
        history=history,
        computed=ComputedSensors(index),
    )
    reports = build_reports(settings, registry, alarms, clock, ingest_busy)
    return Service(
        settings, registry, index, stats, devices, store, writer, collector, alarms, clock, reports
    )


def build_reports(
    settings: Settings,
    registry: Registry,
    alarms: AlarmService,
    clock: Clock,
    ingest_busy: Callable[[], bool] | None = None,
) -> ReportService:
    """Reports from the journal and the SMS outbox, kept under `data_dir/reports` (alerts/reports/)."""
    return ReportService(
        ReportStore(settings.data_dir / "reports"),
        registry.sites,
        alarms.journal,
        alarms.notifier.outbox if alarms.notifier is not None else None,
        shifts=settings.shift_starts,
        levels=settings.report_level_list,
        keep_days=settings.report_keep_days,
        clock=clock,
        pause_while=ingest_busy,
        render_in_process=True,
    )


def build_store(settings: Settings, index: SensorIndex) -> ReadingStore:
    """The reading store the settings name (InfluxDB over its v1 API) for the sensors of ``index``."""
    client = InfluxClient(
        settings.influx_url,
        settings.influx_db,
        settings.influx_username,
        settings.influx_password.get_secret_value() if settings.influx_password else None,
    )
    return InfluxStore(client, index)


def import_rosters(settings: Settings, store: RosterStore) -> str | None:
    """Import HAZMON_ROSTERS into the store; a bad file is logged and the stored rosters kept.

    Returns the error, for /healthz: alarms must keep flowing to the rosters that were good.
    """
    if settings.rosters is None:
        return None
    try:
        store.import_yaml(settings.rosters, user="hazmon", reason=f"import {settings.rosters} at start")
    except (RosterError, OSError) as e:
        logger.error("rosters not imported, keeping the stored ones: %s", e)
        return str(e)
    return None


def build_gateway(settings: Settings) -> NamedChannel | None:
    """The SMS gateway HAZMON_SMS_GATEWAY names, not yet started (None: SMS is off)."""
    if settings.sms_gateway == "kannel":
        token = settings.sms_callback_token
        kannel = KannelSmsGateway(
            settings.kannel_sendsms_url,
            settings.kannel_username,
            settings.kannel_password.get_secret_value(),
            callback_base=settings.callback_base,
            callback_token=token.get_secret_value() if token else None,
            sender=settings.kannel_sender,
            smsc=settings.kannel_smsc,
        )
        return NamedChannel("kannel", kannel)
    if settings.sms_gateway == "smpp":
        smpp = SmppSmsGateway(
            settings.smpp_host,
            settings.smpp_port,
            settings.smpp_system_id,
            settings.smpp_password.get_secret_value(),
            source_addr=settings.smpp_source_addr,
        )
        return NamedChannel("smpp", smpp)
    return None


def build_robot(settings: Settings) -> NamedChannel | None:
    """The group-chat robot that gets what SMS cannot deliver (None when not configured)."""
    if settings.webhook_url is None:
        return None
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    robot = RobotWebhook(
        settings.webhook_url.get_secret_value(), flavor=settings.webhook_flavor, secret=secret
    )
    return NamedChannel(f"{settings.webhook_flavor} robot", robot)


def build_channels(settings: Settings) -> Channels:
    """The channels the settings name, in order: HAZMON_SMS_GATEWAY, then the group-chat robot
    (HAZMON_WEBHOOK_URL) as fallback tier 1. No SMS gateway: no channel at all."""
    gateway = build_gateway(settings)
    if gateway is None:
        return Channels()
    robot = build_robot(settings)
    return Channels((gateway,) if robot is None else (gateway, robot))


def build_notifier(
    settings: Settings,
    registry: Registry,
    book: AlarmBook,
    rosters: RosterStore,
    channels: Channels,
    clock: Clock = _wall_ms,
) -> Notifier | None:
    """Rosters, routing, the outbox and the channels; None when no SMS gateway is configured."""
    if not channels.tiers:
        logger.info("no SMS gateway configured (HAZMON_SMS_GATEWAY=none): alarms are not texted")
        return None
    roster_error = import_rosters(settings, rosters)
    by_id = rosters.load_all()
    sites = {site.id: site for site in registry.sites}
    tiers = list(channels.tiers)
    faults = {}
    if settings.crash_at is not None:  # the crash tests only: hazmon/dev is imported on request
        from hazmon.dev.faults import CrashingGateway, FaultPoints

        faults["fault_point"] = FaultPoints(settings.crash_at, settings.data_dir)
        primary = tiers[0]
        tiers[0] = NamedChannel(primary.name, CrashingGateway(primary.channel, faults["fault_point"]))
    policy = Policy(
        merge_window_ms=int(settings.sms_merge_window_s * 1000),
        urgent_wait_ms=int(settings.sms_urgent_wait_s * 1000),
        max_messages=settings.sms_max_messages,
        rate_window_ms=int(settings.sms_rate_window_s * 1000),
    )
    outbox = SmsOutbox(
        settings.data_dir / "sms.sqlite", policy, in_doubt_grace_ms=int(settings.sms_in_doubt_grace_s * 1000)
    )
    acknowledger = SmsAcknowledger(
        book,
        people_by_phone_from(by_id),
        roster_may_ack(sites, by_id),
        recent_for=outbox.last_alarm_ids,
        country_code=settings.sms_country_code,
        carried_with=outbox.carried_with,
    )
    notifier = Notifier(
        book,
        outbox,
        load_routing(settings.routing),
        duty_lookup(sites, by_id),
        AlarmDescriber(registry),
        tiers,
        failover_after_ms=int(settings.webhook_failover_after_s * 1000),
        acknowledger=acknowledger,
        **faults,
        clock=clock,
        roster_error=roster_error,
        kannel=channels.kannel,  # from the list as given: the crash wrapper hides its type
    )
    logger.info(
        "SMS via %s: %d rosters, %d people; fallback tiers: %s",
        tiers[0].name,
        len(by_id),
        sum(len(r.people) for r in by_id.values()),
        ", ".join(c.name for c in tiers[1:]) or "none",
    )
    return notifier


def build_event_output(
    settings: Settings, registry: Registry, target: MqttTarget, journal: AlarmJournal
) -> tuple[EventOutbox | None, OutboxRunner | None, PahoEventTransport | None]:
    """The alarm events published on MQTT from the journal (docs/contracts.md §3), if enabled."""
    if not settings.events_mqtt:
        return None, None, None
    events_target = parse_mqtt_url(settings.events_mqtt_url) if settings.events_mqtt_url else target

    def on_ack(mid: int, ok: bool) -> None:  # PUBACKs come only after start(), when both exist
        outbox.on_ack(mid, ok)
        runner.wake()

    transport = PahoEventTransport(events_target, f"{settings.mqtt_client_id}-events", on_ack=on_ack)
    tz = {site.id: site.timezone for site in registry.sites}
    # the cursor is opened before the book can journal anything (see EventOutbox)
    outbox = EventOutbox(journal, transport, site_tz=lambda site: tz.get(site, "Asia/Shanghai"))
    runner = OutboxRunner(outbox)
    return outbox, runner, transport


# ---- upward forwarding (issue 13 item 7; alerts/forward/, docs/design.md decision 20)


def forward_summary_sensors(settings: Settings, registry: Registry) -> list[SummarySensor]:
    """The sensors of HAZMON_FORWARD_SENSORS with their units; ValueError names one not in the registry."""
    units = {(site.id, sensor.id): sensor.unit for site in registry.sites for sensor in site.sensors}
    out = []
    for site, sensor in forward_sensor_ids(settings.forward_sensors):
        if (site, sensor) not in units:
            raise ValueError(
                f"HAZMON_FORWARD_SENSORS names {site}/{sensor}, which the registry does not have"
            )
        out.append(SummarySensor(site, sensor, units[(site, sensor)]))
    return out


def build_forwarder(
    settings: Settings,
    registry: Registry,
    journal: AlarmJournal,
    readings: ReadingStore | None,
    store_current: Callable[[], bool],
    clock: Clock,
) -> Forwarder | None:
    """The upward forwarder when a target is configured (else None): its outbox (forward.sqlite), the
    collector and a sender per transport. Opens no connection until started."""
    if not settings.forward_enabled:
        return None
    tz = {site.id: site.timezone for site in registry.sites}
    sensors = forward_summary_sensors(settings, registry)
    outbox = ForwardStore(settings.data_dir / "forward.sqlite")
    collector = ForwardCollector(
        outbox,
        journal,
        readings=readings,
        sensors=sensors,
        store_current=store_current,
        site_tz=lambda site: tz.get(site, "Asia/Shanghai"),
        summary_delay_ms=int(settings.forward_summary_delay_s * 1000),
        catchup_min=settings.forward_catchup_min,
        clock=clock,
    )
    http = None
    if settings.forward_http_url is not None:
        transport = HttpForwardTransport(
            settings.forward_http_url,
            settings.forward_key_id,
            settings.forward_signing_secret(),
            ca_file=settings.forward_ca_file,
        )
        http = BatchSender(outbox, transport, "http", clock_ms=clock)
    mqtt = link = None
    if settings.forward_mqtt_url is not None:
        mqtt_target = parse_mqtt_url(settings.forward_mqtt_url)

        def on_ack(mid: int, ok: bool) -> None:  # PUBACKs come only after start(), when it exists
            forwarder.on_mqtt_ack(mid, ok)

        client = PahoEventTransport(
            mqtt_target, f"{settings.mqtt_client_id}-forward", on_ack=on_ack, label="upward forwarding"
        )
        mqtt = AckSender(
            outbox, client, "mqtt", str(mqtt_target), settings.forward_mqtt_topic, clock_ms=clock
        )
        link = MqttLink(client.start, client.stop, client.connected.is_set)
    forwarder = Forwarder(outbox, collector, http=http, mqtt=mqtt, mqtt_link=link, clock_ms=clock)
    return forwarder


def build_alarms(
    settings: Settings,
    registry: Registry,
    index: SensorIndex,
    target: MqttTarget,
    history: HistorySource | None = None,
    *,
    journal: AlarmJournal | None = None,
    channels: Channels | None = None,
    clock: Clock = _wall_ms,
    readings: ReadingStore | None = None,
    store_current: Callable[[], bool] = lambda: True,
    ingest_busy: Callable[[], bool] | None = None,
) -> AlarmService:
    """The journal, the event output, the book, the engine restored to the journal's active
    conditions, the learner of each forecast sensor's behaviour (from `history`, kept in
    behaviour.npz), the pipeline and the notifier, in that order."""
    journal = journal or AlarmJournal(settings.data_dir / "alarms.sqlite", settings.disposal_due_min)
    stats = AlarmStats()
    outbox, runner, transport = build_event_output(settings, registry, target, journal)
    # opens its journal positions now, before the book can journal anything
    forwarder = build_forwarder(settings, registry, journal, readings, store_current, clock)
    events = AlarmEventWatch(stats, runner)
    book = AlarmBook(journal, on_events=events)
    compiled_s = warm_up_kernels()  # the first tick of a live plant must not wait for numba
    if compiled_s > 0.5:
        logger.info("engine kernels compiled in %.1f s (numba; cached for the next start)", compiled_s)
    engine = AlarmEngine(index, start_ms=clock())
    # before restore_active, which restores the forecaster's active warnings too
    ew = attach_early_warnings(engine, site_timezones={site.id: site.timezone for site in registry.sites})
    engine.restore_active(book.active_condition_keys())  # a restart neither re-raises nor loses an alarm
    learner = None
    if history is not None:
        learner = BehaviourLearner(
            ew,
            history,
            store=settings.data_dir / "behaviour.npz",
            history_before_start=True,
            pause_while=ingest_busy,
        )
        logger.info("learned behaviour of %d forecast sensors loaded from %s", learner.load(), learner.store)
    queue = WorkQueue(settings.alarm_queue_readings, settings.alarm_queue_wait_s)
    pipeline = AlarmPipeline(engine, book, queue, stats)
    rosters = RosterStore(settings.data_dir / "rosters.sqlite")
    notifier = build_notifier(settings, registry, book, rosters, channels or Channels(), clock)
    return AlarmService(
        journal,
        book,
        engine,
        pipeline,
        stats,
        events,
        outbox,
        runner,
        transport,
        notifier=notifier,
        rosters=rosters,
        learner=learner,
        sms_tick_s=settings.sms_tick_s,
        forwarder=forwarder,
    )
