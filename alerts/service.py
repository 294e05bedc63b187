"""The alarm side of the running service: pipeline thread, clock jobs, event output, their lifecycle.

Built by hazmon/bootstrap.py (the composition root); this module only starts, stops and reports.
Clock jobs run on an APScheduler BackgroundScheduler and only *post* to the pipeline thread
(the engine is not thread-safe); the EEMUA snapshot only reads the journal, so it runs on the
scheduler's own thread and never delays alarm processing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from apscheduler.schedulers.background import BackgroundScheduler

from alerts.book.alarm_events import AlarmEventWatch
from alerts.book.book import AlarmBook
from alerts.book.mqtt_out import PahoEventTransport
from alerts.book.outbox import EventOutbox, OutboxRunner
from alerts.book.sqlite_journal import AlarmJournal
from alerts.engine.alarm_engine import AlarmEngine
from alerts.engine.lifecycle import AlarmState
from alerts.forward.forwarder import Forwarder
from alerts.learning import BehaviourLearner, LearningStopped
from alerts.metrics import EemuaReport
from alerts.notify.notifier import Notifier
from alerts.notify.roster_store import RosterStore
from alerts.pipeline import ADVANCE, EXPIRE_SHELVES, REFRESH_FORECASTS, AlarmPipeline
from alerts.reports.collect import eemua_between
from alerts.stats import AlarmStats
from ingest.store import StorageError
from sensors.readings import now_ms as _now_ms

logger = logging.getLogger(__name__)

ADVANCE_EVERY_S = 1.0
EXPIRE_SHELVES_EVERY_S = 10.0
REFRESH_FORECASTS_EVERY_S = 60.0
EEMUA_EVERY_S = 60.0
LEARN_EVERY_S = 3600.0  # the learner refits what is due (new sensors hourly, the others daily)
LEARN_FIRST_AFTER_S = 10.0
FLOOD_CHECK_EVERY_S = 10.0  # a flood ends on the clock even when no alarm comes


@dataclass
class AlarmService:
    """Everything alarm-related that `hazmon run` keeps alive."""

    journal: AlarmJournal
    book: AlarmBook
    engine: AlarmEngine
    pipeline: AlarmPipeline
    stats: AlarmStats
    events: AlarmEventWatch | None = None  # the book's listener (built with the stats if not given)
    outbox: EventOutbox | None = None  # None when events are not published on MQTT
    outbox_runner: OutboxRunner | None = None
    transport: PahoEventTransport | None = None
    notifier: Notifier | None = None  # None when no SMS gateway is configured
    rosters: RosterStore | None = None
    learner: BehaviourLearner | None = None  # None: early warnings judge by trends alone
    sms_tick_s: float = 1.0
    forwarder: Forwarder | None = None  # None unless an upward target is configured (alerts/forward/)
    scheduler: BackgroundScheduler = field(
        default_factory=lambda: BackgroundScheduler(
            timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 5}
        )
    )
    _eemua: EemuaReport | None = None
    _eemua_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.events is None:
            self.events = AlarmEventWatch(self.stats, self.outbox_runner)

    # ---- lifecycle

    def start(self) -> None:
        if self.transport is not None:
            self.transport.start()
        if self.outbox_runner is not None:
            self.outbox_runner.start()
            self.outbox_runner.wake()  # publish what a previous run committed but never sent
        self.pipeline.start()
        if self.forwarder is not None:
            self.forwarder.start()
        jobs = (
            (ADVANCE, ADVANCE_EVERY_S),
            (EXPIRE_SHELVES, EXPIRE_SHELVES_EVERY_S),
            (REFRESH_FORECASTS, REFRESH_FORECASTS_EVERY_S),
        )
        for name, every_s in jobs:
            self.scheduler.add_job(self.pipeline.post, "interval", seconds=every_s, args=[name], id=name)
        self.scheduler.add_job(self.refresh_eemua, "interval", seconds=EEMUA_EVERY_S, id="eemua")
        self.scheduler.add_job(self.check_floods, "interval", seconds=FLOOD_CHECK_EVERY_S, id="floods")
        if self.notifier is not None:
            self.notifier.start()
            self.scheduler.add_job(self.notifier.tick, "interval", seconds=self.sms_tick_s, id="sms")
        if self.learner is not None:
            first = datetime.now(UTC) + timedelta(seconds=LEARN_FIRST_AFTER_S)
            self.scheduler.add_job(
                self.learn, "interval", seconds=LEARN_EVERY_S, id="learn", next_run_time=first
            )
        self.scheduler.start()
        logger.info(
            "alarm pipeline started: %d alarm points loaded, %d active; events on MQTT: %s",
            len(self.book.current(states=set(AlarmState))),
            len(self.book.active_condition_keys()),
            "yes" if self.outbox is not None else "no",
        )

    def stop(self) -> None:
        """Stop after the collector: work off what is queued, send what was committed, close."""
        if self.learner is not None:
            self.learner.stop()  # a fit in progress gives up at its next chunk: shutdown need not wait
        self.scheduler.shutdown(wait=True)  # jobs are short; an SMS send gives up within seconds
        self.pipeline.stop()
        if self.outbox_runner is not None:
            self.outbox_runner.stop()
        if self.transport is not None:
            self.transport.stop()
        if self.forwarder is not None:
            self.forwarder.stop()  # before the journal closes: it reads the journal to the end
        if self.notifier is not None:
            self.notifier.close()
        if self.rosters is not None:
            self.rosters.close()
        self.journal.close()

    # ---- learning each forecast sensor's behaviour (alerts/learning.py)

    def learn(self, now_ms: int | None = None) -> int:
        """Fit the sensors that are due from InfluxDB's history on this (the scheduler's) thread, then
        install the fit on the engine's thread and keep it on disk; returns how many rows were fitted."""
        learner = self.learner
        if learner is None:
            return 0
        now = _now_ms() if now_ms is None else now_ms
        rows = learner.due(now)
        if not len(rows):
            return 0
        started = time.perf_counter()
        try:
            model = learner.fit(rows, now)
        except StorageError as e:
            logger.warning("cannot learn sensor behaviour now (%s); trying again at the next run", e)
            return 0
        except LearningStopped as e:
            logger.info("learning interrupted by the stop (%s); it starts again with the service", e)
            return 0
        fitted = int(np.count_nonzero(model.fitted_ms >= 0))

        def install() -> None:
            learner.install(rows, model, now)
            learner.save()

        self.pipeline.queue.post_call(install)
        logger.info(
            "learned the behaviour of %d of %d sensors due in %.1f s",
            fitted,
            len(rows),
            time.perf_counter() - started,
        )
        return fitted

    def forecast_outlook(self, site: str, sensor: str) -> dict | None:
        """The forecaster's view of one sensor now (EarlyWarnings.outlook), or None."""
        slot = self.engine.index.by_site.get(site, {}).get(sensor)
        ew = self.engine.forecaster
        if slot is None or ew is None or not hasattr(ew, "outlook"):
            return None
        return ew.outlook(slot, _now_ms())

    # ---- clock listener of the book (called after each commit, under the book's lock)

    def on_events(self, events) -> None:
        self.events(events)

    def check_floods(self, now_ms: int | None = None) -> None:
        self.events.check_floods(now_ms)

    def current_floods(self) -> list[tuple[str, int, int]]:
        """Sites in flood now: (site, since ms, raises in the last 10 minutes)."""
        return self.events.current_floods()

    # ---- reports

    def eemua(self, hours: float = 24.0, now_ms: int | None = None) -> EemuaReport:
        """EEMUA 191 figures over the last `hours` (rows a day older feed standing alarms and floods)."""
        end = _now_ms() if now_ms is None else now_ms
        return eemua_between(self.journal, end - int(hours * 3_600_000), end)

    def refresh_eemua(self) -> None:
        try:
            report = self.eemua()
        except Exception:
            logger.exception("EEMUA snapshot failed")
            return
        with self._eemua_lock:
            self._eemua = report

    def health(self) -> dict:
        q = self.pipeline.queue
        out = {
            "running": self.pipeline.alive and (self.outbox_runner is None or self.outbox_runner.alive),
            "queue_readings": q.depth,
            "dropped_readings": q.dropped_readings,
            "errors": self.stats.errors,
            "active_conditions": len(self.book.active_condition_keys()),
            "on_list": len(
                self.book.current(states={AlarmState.UNACK, AlarmState.ACK, AlarmState.RTN_UNACK})
            ),
            "events_mqtt": self.outbox is not None,
            "sites_in_flood": self.events.sites_in_flood(),
            "sms": self.notifier.health() if self.notifier is not None else {"gateway": "none"},
            "learning": self.learner.health() if self.learner is not None else None,
            "forward": self.forwarder.health() if self.forwarder is not None else None,
        }
        if self.outbox is not None and self.transport is not None:
            out |= {
                "events_connected": self.transport.connected.is_set(),
                "events_cursor": self.outbox.cursor,
                "events_backlog": self.outbox.backlog(),
                "events_in_flight": self.outbox.in_flight,
            }
        return out

    def render_prometheus(self) -> str:
        q = self.pipeline.queue
        states: dict[str, int] = {}
        for a in self.book.current():
            states[a.state.value] = states.get(a.state.value, 0) + 1
        gauges: dict[str, tuple[str, float]] = {
            "hazmon_alarm_queue_readings": ("Readings waiting for the alarm engine", q.depth),
            "hazmon_alarm_pipeline_up": ("1 while the alarm engine thread runs", int(self.pipeline.alive)),
            "hazmon_alarm_sites_in_flood": (
                "Sites with more than 10 alarms in 10 minutes",
                self.events.sites_in_flood(),
            ),
        }
        counters: dict[str, tuple[str, int]] = {
            "hazmon_alarm_queue_waits_total": ("Batches that waited for room in the alarm queue", q.waits),
            "hazmon_alarm_dropped_readings_total": (
                "Readings dropped by a full alarm queue",
                q.dropped_readings,
            ),
            "hazmon_alarm_floods_total": ("Alarm floods started (per site)", self.events.floods_total),
        }
        if self.outbox is not None:
            o = self.outbox
            counters |= {
                "hazmon_alarm_events_published_total": ("Events handed to MQTT", o.published),
                "hazmon_alarm_events_acked_total": ("Events the broker acknowledged", o.acked),
                "hazmon_alarm_events_refused_total": ("Events the broker refused", o.refused),
            }
            gauges["hazmon_alarm_events_in_flight"] = (
                "Events published and not yet acknowledged",
                o.in_flight,
            )
        if self.notifier is not None:
            h = self.notifier.health()
            c = h["counters"]
            gauges |= {
                "hazmon_sms_unsent": ("SMS messages waiting for the gateway (ready or sending)", h["unsent"]),
                "hazmon_sms_waiting_notifications": (
                    "Notifications not yet merged into a message",
                    h["backlog"].get("waiting_notifications", 0),
                ),
                "hazmon_sms_oldest_unsent_age_seconds": (
                    "Age of the oldest SMS still waiting for the gateway",
                    h["oldest_unsent_age_s"] or 0,
                ),
                "hazmon_sms_gateway_up": (
                    "0 while the SMS gateway fails, else 1",
                    int(h["gateway_ok"] is not False),
                ),
                "hazmon_sms_failed": ("SMS messages that failed for good", h["backlog"].get("failed", 0)),
            }
            counters |= {
                "hazmon_sms_sent_total": ("SMS messages the gateway took", c.get("send_sent", 0)),
                "hazmon_sms_retries_total": ("SMS sends put back to retry", c.get("send_retry", 0)),
                "hazmon_sms_receipts_total": ("Delivery receipts recorded", c.get("receipts", 0)),
                "hazmon_sms_replies_ok_total": ("SMS replies that acknowledged", c.get("replies_ok", 0)),
                "hazmon_sms_replies_refused_total": ("SMS replies refused", c.get("replies_refused", 0)),
                "hazmon_sms_fallback_posted_total": (
                    "Messages posted to the second channel",
                    c.get("fallback_posted", 0),
                ),
            }
        if self.forwarder is not None:
            forward_gauges, forward_counters = self.forwarder.prometheus()
            gauges |= forward_gauges
            counters |= forward_counters
        with self._eemua_lock:
            report = self._eemua
        if report is not None:
            gauges |= {
                "hazmon_alarm_raises_24h": ("Alarms raised in the last 24 h (EEMUA snapshot)", report.raises),
                "hazmon_alarm_rate_10min_avg_24h": (
                    "Average alarms per 10 min over 24 h",
                    report.rate.average,
                ),
                "hazmon_alarm_rate_10min_peak_24h": ("Busiest 10 min over 24 h", report.rate.peak),
                "hazmon_alarm_standing": ("Alarms active for more than 24 h", len(report.standing)),
            }
        return self.stats.render_prometheus(gauges, counters, states)
