"""`hazmon simulate`: run a simulated sensor fleet against an MQTT broker (add_arguments + run)."""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import orjson

import sensors
from ingest.mqtt_url import parse_mqtt_url
from sensors.model import Registry
from sensors.registry import RegistryError, load_registry
from simulators.durations import format_duration, parse_duration
from simulators.fleet import FleetError, PahoPublisher, Progress, RunOptions, run_fleet
from simulators.generate import generate_registry, registry_to_yaml
from simulators.incidents import Incident, parse_incident
from simulators.incidents import __doc__ as INCIDENTS_DOC
from simulators.realism import CLASSIC, FEATURES, Realism
from simulators.realism import __doc__ as REALISM_DOC
from simulators.stream import Simulation

logger = logging.getLogger(__name__)

EXAMPLE_REGISTRY = Path(sensors.__file__).resolve().parent / "examples"
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
#: With speed > 1 and no --backfill, start early enough for about this much wall time at full speed.
FAST_PHASE_S = 3600.0
MAX_BACKFILL_S = 30 * 86400.0  # raw retention floor (Order 40, DOMAIN §1.4)
LOG_EVERY_S = 10.0

_INCIDENT_LINES = (INCIDENTS_DOC or "").split("\n\n", 1)[1].strip().splitlines()
_REALISM_LINES = (REALISM_DOC or "").split("\n\n")[2].splitlines()  # the feature table
EPILOG = (
    "incidents (--incident, repeatable):\n"
    + "\n".join(("  " + line).rstrip() for line in _INCIDENT_LINES)
    + "\n\nrealism (--realism):\n"
    + "\n".join(("  " + line).rstrip() for line in _REALISM_LINES)
    + "\n\ntime: with --speed above 1 the simulated clock starts --backfill in the past (default: enough\n"
    "for about an hour of fast running, or --duration) and never runs ahead of the wall clock; once\n"
    "it has caught up it continues in real time. Backfilled readings older than hazmon's accepted\n"
    "lateness are rejected by its ingest, so keep --backfill within it when hazmon is listening.\n"
    "\nexit status: 0 done (also after Ctrl-C/SIGTERM, once flushed), 1 broker error, 2 bad arguments."
)


def _speed(text: str) -> float:
    if text.lower() in ("max", "inf", "fast"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed must be a number or 'max', not {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("speed must be positive")
    return value


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _incident(text: str) -> Incident:
    try:
        return parse_incident(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _realism(text: str) -> Realism:
    try:
        return Realism.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `simulate` options to a parser (the hazmon CLI's subcommand, or our own)."""
    if parser.epilog is None:
        parser.epilog = EPILOG
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
    src = parser.add_argument_group("fleet")
    src.add_argument(
        "--registry",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"registry file or folder (default: the example registry, {EXAMPLE_REGISTRY})",
    )
    src.add_argument(
        "--generate",
        nargs=2,
        type=_positive_int,
        metavar=("N_SITES", "M_SENSORS"),
        help="simulate a generated fleet of N sites with M sensors each instead of --registry",
    )
    src.add_argument(
        "--sensors-per-device",
        type=_positive_int,
        default=50,
        metavar="N",
        help="generated fleets: sensors per device, i.e. readings per message (default 50)",
    )
    src.add_argument(
        "--interval",
        type=_duration,
        default=1.0,
        metavar="DURATION",
        help="generated fleets: every sensor's reporting interval (default 1s)",
    )
    src.add_argument(
        "--write-registry",
        metavar="PATH",
        help="write the fleet's registry as YAML ('-' for stdout) and exit, unless --then-run",
    )
    src.add_argument("--then-run", action="store_true", help="after --write-registry, run the fleet too")
    src.add_argument(
        "--seed", type=int, default=0, help="random seed: same seed, same fleet and values (default 0)"
    )
    src.add_argument(
        "--incident",
        type=_incident,
        action="append",
        default=[],
        metavar="SPEC",
        help="inject an incident, KIND:SITE[/TARGET][@+START][~DURATION]; kinds: leak, seep, "
        "overfill, stuck, spike, outage, storm, creep (details below)",
    )
    src.add_argument(
        "--realism",
        type=_realism,
        default=CLASSIC,
        metavar="PROFILE",
        help="field behaviours of the quiet fleet: 'classic' (default), 'field' (all), or a comma list "
        f"of {', '.join(FEATURES)}; '-name' drops one ('field,-gaps')",
    )
    run = parser.add_argument_group("running")
    run.add_argument(
        "--mqtt-url",
        default=None,
        metavar="URL",
        help=f"broker, mqtt://[user:pass@]host[:port] or mqtts://... "
        f"(default: $HAZMON_MQTT_URL or {DEFAULT_MQTT_URL})",
    )
    run.add_argument(
        "--client-id",
        default=None,
        help="MQTT client id (default: stable per host and fleet, so the session resumes)",
    )
    run.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        metavar="X|max",
        help="simulated seconds per real second, or 'max' for as fast as possible (default 1)",
    )
    run.add_argument(
        "--backfill",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="start the simulated clock this long before now (default: 0 at speed 1, "
        "else about an hour of fast running)",
    )
    run.add_argument(
        "--duration",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="stop after this much simulated time (e.g. 10m, 6h, 2d)",
    )
    run.add_argument(
        "--count", type=_positive_int, default=None, metavar="N", help="stop after N readings messages"
    )
    run.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="MSGS_PER_S",
        help="cap on readings messages per second (use with --speed max for a steady load)",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--quiet", action="store_true", help="no progress display and no summary on stderr")
    out.add_argument(
        "--json-summary", action="store_true", help="print the summary as one JSON line on stdout at the end"
    )


def _load(args: argparse.Namespace) -> tuple[Registry, str]:
    if args.generate:
        n_sites, m_sensors = args.generate
        reg = generate_registry(
            n_sites,
            m_sensors,
            seed=args.seed,
            sensors_per_device=args.sensors_per_device,
            interval_s=args.interval,
        )
        return reg, f"generated:{n_sites}x{m_sensors}/{args.sensors_per_device}/{args.interval}"
    path = args.registry or EXAMPLE_REGISTRY
    return load_registry(path), str(Path(path).resolve())


def default_backfill_s(speed: float, duration_s: float | None) -> float:
    """How far back to start so that the fast phase lasts about FAST_PHASE_S of wall time (or --duration)."""
    if speed <= 1.0:
        return 0.0
    if math.isinf(speed):
        backfill = duration_s if duration_s is not None else FAST_PHASE_S
    else:
        backfill = (speed - 1.0) * FAST_PHASE_S
        if duration_s is not None:
            backfill = min(backfill, duration_s * (1.0 - 1.0 / speed))
    return min(backfill, MAX_BACKFILL_S)


def _client_id(source: str, seed: int) -> str:
    digest = hashlib.sha1(f"{socket.gethostname()}|{source}|{seed}".encode()).hexdigest()[:10]
    return f"hazmon-sim-{digest}"


class _Display:
    """Progress on stderr: one refreshed line on a terminal, else a log line every 10 s."""

    def __init__(self, tz: ZoneInfo, quiet: bool):
        self.tz = tz
        self.enabled = not quiet
        self.tty = sys.stderr.isatty()
        self._last_log = time.monotonic()
        self._drawn = False

    def line(self, p: Progress) -> str:
        sim = datetime.fromtimestamp(p.sim_time_s, self.tz).strftime("%Y-%m-%d %H:%M:%S")
        lag = "live" if p.lag_s < 2.0 else f"lag {format_duration(p.lag_s)}"
        return (
            f"sim {sim} ({lag}) | {p.msgs_per_s:8,.0f} msg/s | {p.readings_per_s:9,.0f} readings/s | "
            f"{p.messages:,} msgs | unacked {p.outstanding:,}"
        )

    def __call__(self, p: Progress) -> None:
        if not self.enabled:
            return
        if self.tty:
            print("\r" + self.line(p) + "\x1b[K", end="", file=sys.stderr, flush=True)
            self._drawn = True
        elif time.monotonic() - self._last_log >= LOG_EVERY_S:
            self._last_log = time.monotonic()
            logger.info("%s", self.line(p))

    def close(self) -> None:
        if self._drawn:
            print(file=sys.stderr, flush=True)


def _install_signals(stop: threading.Event) -> dict[int, Any]:
    """SIGINT/SIGTERM set `stop` (the fleet flushes and exits); a second SIGINT aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        logger.info("%s: stopping after flushing", signal.Signals(signum).name)
        stop.set()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def run(args: argparse.Namespace) -> int:
    """Run `hazmon simulate` with parsed arguments; return the exit status."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    ours = logging.getLogger("simulators")
    level = ours.level
    if args.quiet:
        ours.setLevel(logging.WARNING)
    try:
        return _run(args)
    finally:
        ours.setLevel(level)


def _run(args: argparse.Namespace) -> int:
    try:
        registry, source = _load(args)
    except (RegistryError, ValueError, OSError) as e:
        print(f"hazmon simulate: {e}", file=sys.stderr)
        return 2
    if args.write_registry:
        text = registry_to_yaml(registry, header=f"hazmon simulate fleet ({source}, seed {args.seed})")
        if args.write_registry == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            Path(args.write_registry).write_text(text, encoding="utf-8")
            logger.info(
                "wrote %d sites, %d sensors to %s",
                len(registry.sites),
                len(registry.sensors()),
                args.write_registry,
            )
        if not args.then_run:
            return 0
    try:
        target = parse_mqtt_url(args.mqtt_url or os.environ.get("HAZMON_MQTT_URL") or DEFAULT_MQTT_URL)
    except ValueError as e:
        print(f"hazmon simulate: {e}", file=sys.stderr)
        return 2
    backfill = args.backfill if args.backfill is not None else default_backfill_s(args.speed, args.duration)
    start = math.floor(time.time() - backfill)
    try:
        sim = Simulation(
            registry, start_s=start, seed=args.seed, incidents=args.incident, realism=args.realism
        )
    except ValueError as e:
        print(f"hazmon simulate: {e}", file=sys.stderr)
        return 2
    tz = ZoneInfo(registry.sites[0].timezone) if registry.sites else ZoneInfo("UTC")
    logger.info(
        "fleet: %d sites, %d devices, %d sensors (%s, realism %s); start %s (backfill %s), speed %s, "
        "tick %gs",
        len(registry.sites),
        sim.n_devices,
        sim.model.n,
        source,
        args.realism,
        datetime.fromtimestamp(start, tz).isoformat(timespec="seconds"),
        format_duration(backfill),
        "max" if math.isinf(args.speed) else f"{args.speed:g}",
        sim.tick_s,
    )
    for inc in args.incident:
        logger.info("incident %s", inc)

    stop = threading.Event()
    previous = _install_signals(stop)
    display = _Display(tz, args.quiet)
    client_id = args.client_id or _client_id(source, args.seed)
    publisher = PahoPublisher(target, client_id, stop=stop)  # Ctrl-C also ends a back-pressure wait
    try:
        try:
            publisher.connect()
        except FleetError as e:
            print(f"hazmon simulate: {e}", file=sys.stderr)
            return 1
        options = RunOptions(speed=args.speed, duration_s=args.duration, count=args.count, rate=args.rate)
        try:
            summary = run_fleet(sim, publisher, options, stop, progress=display)
        except FleetError as e:
            print(f"hazmon simulate: {e}", file=sys.stderr)
            return 1
    finally:
        display.close()
        publisher.close()
        for sig, old in previous.items():
            signal.signal(sig, old)
    summary["client_id"] = client_id
    if args.json_summary:
        print(orjson.dumps(summary).decode(), flush=True)
    if not args.quiet:
        first = summary["first_ts_ms"]
        last = summary["last_ts_ms"]
        span = (
            (
                f"{datetime.fromtimestamp(first / 1000, tz):%Y-%m-%d %H:%M:%S} .. "
                f"{datetime.fromtimestamp(last / 1000, tz):%Y-%m-%d %H:%M:%S}"
            )
            if first is not None
            else "-"
        )
        print(
            f"published {summary['messages']:,} messages, {summary['readings']:,} readings in "
            f"{summary['elapsed_s']:.1f} s ({summary['msgs_per_s'] or 0:,.0f} msg/s, "
            f"{summary['readings_per_s'] or 0:,.0f} readings/s); simulated {span}; "
            f"unacked {summary['unacked']}; stopped by {summary['stopped_by']}",
            file=sys.stderr,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (`python -m simulators`)."""
    parser = argparse.ArgumentParser(
        prog="hazmon simulate", description="Run a simulated sensor fleet against an MQTT broker."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
