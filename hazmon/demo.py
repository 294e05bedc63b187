"""`make run`: private Mosquitto and InfluxDB, the hazmon service and a simulated fleet, together.

The demo tells a story (issue 14 item 7): it first writes a week of the fleet's simulated history
straight into InfluxDB (simulators/backfill.py, with a progress line), so trends, the learned
behaviour of the early warnings and the rolling windows have data from the first minute; then it
starts hazmon, and the same fleet model goes on live over MQTT (so the trend continues where the
history ends) playing a scripted day on a loop (simulators/scenario.py DEMO_DAY), whose chapters are
printed as they begin. It reports when the first alarm is active and when the week's trend answers.

hazmon runs in its own session, so a Ctrl-C at the terminal reaches this process alone and it stops
in order: the fleet first (in a thread here), so the service can flush what it received, then the
service (SIGINT), then the servers.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from hazmon.devservers import InfluxServer, MosquittoServer, ensure_installed, free_port, wait_port
from ingest.influx import InfluxClient
from ingest.mqtt_url import parse_mqtt_url
from ingest.store import StorageError
from sensors.model import Registry
from sensors.registry import load_registry
from simulators.backfill import BackfillProgress, backfill, format_progress
from simulators.cli import EXAMPLE_REGISTRY
from simulators.fleet import FleetError, PahoPublisher, Progress, RunOptions, run_fleet
from simulators.scenario import DEMO_DAY, ChapterStart, Scenario
from simulators.signals import FleetModel
from simulators.stream import Simulation

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000
SEED = 0
#: Loops of the scripted day the fleet is given (a day of wall time at 30 min a loop); then it is quiet.
STORY_LOOPS = 48
#: The sensor whose week the demo checks for its "7-day trend" milestone (any sensor would do).
TREND_PROBE = ("jianghai-tf-01", "T101-LT")
ROSTERS = EXAMPLE_REGISTRY / "rosters"


def _stop_child(proc: subprocess.Popen, name: str, timeout_s: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("%s did not stop in %.0f s; killing it", name, timeout_s)
        proc.kill()
        proc.wait()


def run_demo(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    ensure_installed()
    root = Path(args.data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    http_port = args.http_port if _port_free(args.http_port) else free_port()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    mqtt = MosquittoServer(root / "mosquitto")
    influx = InfluxServer(root / "influxdb")
    hazmon: subprocess.Popen | None = None
    fleet: _Fleet | None = None
    try:
        mqtt.start()
        influx.start()
        registry = load_registry(EXAMPLE_REGISTRY)
        model = FleetModel(registry.measured(), seed=SEED)
        client = InfluxClient(influx.url)
        try:
            client.ensure_schema()  # hazmon's defaults (docs/contracts.md §5); it finds them made
            _backfill_history(client, model, args.history_days, stop, t0)
            if stop.is_set():
                return 0
            env = dict(
                os.environ,
                HAZMON_MQTT_URL=mqtt.url,
                HAZMON_INFLUX_URL=influx.url,
                HAZMON_DATA_DIR=str(root / "hazmon"),
                HAZMON_HTTP_PORT=str(http_port),
                HAZMON_HTTP_HOST="127.0.0.1",
                HAZMON_REGISTRY=str(EXAMPLE_REGISTRY),  # the fleet's and the story's registry
            )
            password, token = _demo_login(root / "hazmon")
            hazmon_cmd = [sys.executable, "-m", "hazmon.cli", "run"]
            hazmon = subprocess.Popen(hazmon_cmd, env=env, start_new_session=True)
            wait_port(http_port, timeout_s=60, proc=hazmon)
            # the seconds hazmon took to start, so the live fleet begins where the history ends
            now_ms = int(time.time() * 1000)
            if args.history_days > 0:
                backfill(client, model, now_ms - args.history_days * DAY_MS, now_ms, seed=SEED, stop=stop)
        except StorageError as e:
            print(f"hazmon demo: the history could not be written to InfluxDB: {e}", file=sys.stderr)
            return 1
        finally:
            client.close()
        scenario = None if args.quiet_fleet else DEMO_DAY
        fleet = _Fleet(registry, model, scenario, mqtt.url, stop)
        try:
            fleet.start()
        except FleetError as e:
            print(f"hazmon demo: the simulated fleet cannot publish: {e}", file=sys.stderr)
            return 1
        base = f"http://127.0.0.1:{http_port}"
        print(
            "\n"
            "hazmon demo is running\n"
            f"  login             user demo, password {password}\n"
            "                    (a new password each run; POST /api/v1/auth/login)\n"
            f"  console           {base}/console/\n"
            f"  API               {base}/docs\n"
            f"  health / metrics  {base}/healthz  {base}/metrics\n"
            f"  rejected readings {base}/api/v1/ingest/rejects\n"
            f"  MQTT broker       {mqtt.url}   (topics hazmon/v1/#)\n"
            f"  InfluxDB          {influx.url}   (database hazmon, measurement readings)\n"
            f"  data and logs     {root}\n" + _story_text(scenario) + "Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        milestones = _Milestones(base, token, t0, args.history_days)
        last_report = time.monotonic()
        while not stop.is_set():
            if hazmon.poll() is not None:
                logger.error("hazmon exited with %s; stopping the demo", hazmon.returncode)
                stop.set()
            elif not fleet.alive:
                logger.error("the simulated fleet stopped (%s); stopping the demo", fleet.error)
                stop.set()
            milestones.check()
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                _report(base, token)
            stop.wait(0.5 if milestones.pending else 2.0)
        return 0
    finally:
        stop.set()
        if fleet is not None:
            fleet.join()
        if hazmon is not None:
            _stop_child(hazmon, "hazmon")
        influx.stop()
        mqtt.stop()
        print("hazmon demo stopped", flush=True)


def _backfill_history(
    client: InfluxClient, model: FleetModel, days: int, stop: threading.Event, t0: float
) -> None:
    """Write the week (or `days`) before now; a line that keeps its place on a terminal shows progress."""
    if days <= 0:
        return
    tty = sys.stderr.isatty()
    last_line = [0.0]

    def show(p: BackfillProgress) -> None:
        if tty:
            print("\r" + format_progress(p) + "\x1b[K", end="", file=sys.stderr, flush=True)
        elif time.monotonic() - last_line[0] >= 5.0 or p.written == p.total:
            last_line[0] = time.monotonic()
            print(format_progress(p), file=sys.stderr, flush=True)

    end_ms = int(time.time() * 1000)
    print(
        f"writing {days} days of the fleet's simulated history into InfluxDB ...", file=sys.stderr, flush=True
    )
    r = backfill(client, model, end_ms - days * DAY_MS, end_ms, seed=SEED, progress=show, stop=stop)
    if tty:
        print(file=sys.stderr)
    already = f"; {r.resumed_sensors} sensors resumed after what was stored" if r.resumed_sensors else ""
    print(
        f"backfill done: {r.readings:,} readings and {r.rollup_points:,} 1-minute rollup points in "
        f"{r.elapsed_s:.1f} s{already} ({time.monotonic() - t0:.0f} s after start)",
        file=sys.stderr,
        flush=True,
    )


class _Fleet:
    """The live fleet on a thread: the backfilled model goes on over MQTT, telling the story's chapters."""

    def __init__(
        self,
        registry: Registry,
        model: FleetModel,
        scenario: Scenario | None,
        mqtt_url: str,
        stop: threading.Event,
    ):
        self.start_s = float(int(time.time()))
        incidents = scenario.incidents(STORY_LOOPS) if scenario else []
        self.sim = Simulation(registry, start_s=self.start_s, seed=SEED, incidents=incidents, model=model)
        self.scenario = scenario
        self.stop = stop
        self.publisher = PahoPublisher(parse_mqtt_url(mqtt_url), "hazmon-demo-fleet", stop=stop)
        self.error: str | None = None
        self._told_s = -1.0
        self._rosters = _load_rosters()
        self._thread = threading.Thread(target=self._run, name="demo-fleet", daemon=True)

    def start(self) -> None:
        self.publisher.connect()
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self) -> None:
        if self._thread.is_alive():
            self._thread.join(45.0)
        self.publisher.close()

    def _run(self) -> None:
        try:
            run_fleet(self.sim, self.publisher, RunOptions(speed=1.0), self.stop, progress=self._narrate)
        except FleetError as e:
            self.error = str(e)
        except Exception as e:  # a bug in the fleet must stop the demo, not leave it silently quiet
            logger.exception("the demo's fleet failed")
            self.error = repr(e)

    def _narrate(self, p: Progress) -> None:
        if self.scenario is None:
            return
        now = p.sim_time_s - self.start_s + 1.0  # a chapter is told as its first tick runs
        for c in self.scenario.starting(self._told_s, now):
            _tell(c, self._rosters)
        self._told_s = max(self._told_s, now)


def _story_text(scenario: Scenario | None) -> str:
    if scenario is None:
        return ""
    lines = [
        f"The scripted day ({scenario.name}): 24 h told in {scenario.loop_s / 60:.0f} min, on a loop; "
        "chapters (minute of the loop):"
    ]
    for c in scenario.chapters:
        lines.append(f"  {c.offset_s / 60:5.1f}  {scenario.story_clock(c.offset_s)}  {c.title}")
    return "\n".join(lines) + "\n"


def _tell(c: ChapterStart, rosters: dict) -> None:
    """Print a chapter as it begins (with who hands over to whom, for a shift change)."""
    head = f"[story {c.story_clock}, loop {c.loop + 1}] {c.chapter.title}"
    lines = [head] + [f"    incident {i}" for i in c.incidents]
    if c.chapter.shift_change:
        lines += _handover_lines(rosters, c.story_clock)
    print("\n".join(lines), flush=True)


def _load_rosters() -> dict:
    """The example duty rosters (alerts/notify/roster_yaml.py), for the shift changes of the story."""
    from alerts.notify.roster_yaml import RosterError, load_rosters

    try:
        return load_rosters(ROSTERS)
    except (RosterError, OSError) as e:
        logger.warning("example rosters not read (%s): shift changes are told without names", e)
        return {}


def _handover_lines(rosters: dict, story_clock: str) -> list[str]:
    """Who leads each site's shift before and after the story's hour, today, by the example rosters."""
    from alerts.notify.roster import Role, on_duty

    out = []
    hour, minute = (int(x) for x in story_clock.split(":"))
    for roster in rosters.values():
        if Role.OPERATOR not in roster.rotas:
            continue
        zone = ZoneInfo(roster.timezone)
        at = datetime.now(zone).replace(hour=hour, minute=minute, second=0, microsecond=0)
        before = ", ".join(p.name for p in on_duty(roster, Role.OPERATOR, at - timedelta(minutes=30)))
        after = ", ".join(p.name for p in on_duty(roster, Role.OPERATOR, at + timedelta(minutes=30)))
        if before != after:
            out.append(f"    {roster.name}: shift leader {before or '-'} hands over to {after or '-'}")
    return out


class _Milestones:
    """Reports, once each, when the first alarm is active and when the week's trend answers."""

    def __init__(self, base: str, token: str, t0: float, days: int):
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}
        self.t0 = t0
        self.days = days
        self.alarm_seen = False
        self.trend_seen = days <= 0  # no history, no trend to wait for

    @property
    def pending(self) -> bool:
        return not (self.alarm_seen and self.trend_seen)

    def check(self) -> None:
        try:
            if not self.trend_seen:
                self._check_trend()
            if not self.alarm_seen:
                self._check_alarm()
        except (httpx.HTTPError, ValueError, KeyError, IndexError):
            pass  # asked again on the next round

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.t0:.0f} s after `hazmon demo` started"

    def _check_alarm(self) -> None:
        r = httpx.get(
            self.base + "/api/v1/alarms",
            params={"active_only": "true", "limit": 1},
            headers=self.headers,
            timeout=2,
        )
        data = r.json()["data"] if r.status_code == 200 else []
        if data:
            a = data[0]
            self.alarm_seen = True
            print(
                f"first active alarm {self._elapsed()}: {a.get('alarm_id')} {a.get('site')} "
                f"{a.get('source')} {a.get('kind')} {a.get('level') or ''} ({a.get('priority')})",
                flush=True,
            )

    def _check_trend(self) -> None:
        site, sensor = TREND_PROBE
        now = int(time.time() * 1000)
        start = now - self.days * DAY_MS
        r = httpx.get(
            f"{self.base}/api/v1/sites/{site}/sensors/{sensor}/history",
            params={"start": start, "end": now},
            headers=self.headers,
            timeout=5,
        )
        if r.status_code != 200:
            return
        t = r.json()["series"]["t_ms"]
        if t and t[0] - start < 3_600_000:
            self.trend_seen = True
            print(
                f"{self.days}-day trend of {site}/{sensor} answers {self._elapsed()}: {len(t):,} points",
                flush=True,
            )


def _demo_login(data_dir: Path) -> tuple[str, str]:
    """The demo's admin, with a fresh random password each run (never a default one), and a token."""
    from api.auth.errors import UnknownUser
    from api.auth.model import Scope
    from api.auth.store import AuthStore

    password = secrets.token_urlsafe(12)
    with AuthStore(data_dir / "auth.sqlite") as store:
        try:
            store.get_user("demo")
            store.set_password("demo", password, actor="hazmon demo")
        except UnknownUser:
            store.create_user(
                "demo", password, "admin", Scope.everything(), display_name="演示", actor="hazmon demo"
            )
        _, token = store.create_token("demo", f"demo-report-{int(time.time())}", actor="hazmon demo")
    return password, token


def _report(base: str, token: str) -> None:
    try:
        headers = {"Authorization": f"Bearer {token}"}
        s = httpx.get(base + "/api/v1/ingest/stats", headers=headers, timeout=2).json()
        logger.info(
            "demo: %s readings accepted, %s rejected, %s written, spool %s bytes",
            s["readings_accepted"],
            s["readings_rejected"],
            s["points_written"],
            s["spool_bytes"],
        )
    except (httpx.HTTPError, ValueError, KeyError):
        pass


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
