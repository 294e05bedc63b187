"""`make run`: private Mosquitto and InfluxDB, the hazmon service and a simulated fleet, together.

Every child runs in its own session, so a Ctrl-C at the terminal reaches this process alone and
it stops them in order (SIGINT, once each): the fleet first, so the service can flush what it
received. (A terminal Ctrl-C reaching the fleet too would be its second SIGINT: an abort.)
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
from pathlib import Path

import httpx

from hazmon.devservers import InfluxServer, MosquittoServer, ensure_installed, free_port, wait_port

logger = logging.getLogger(__name__)


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
    ensure_installed()
    root = Path(args.data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    http_port = args.http_port if _port_free(args.http_port) else free_port()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    mqtt = MosquittoServer(root / "mosquitto")
    influx = InfluxServer(root / "influxdb")
    children: list[tuple[str, subprocess.Popen]] = []
    try:
        mqtt.start()
        influx.start()
        env = dict(
            os.environ,
            HAZMON_MQTT_URL=mqtt.url,
            HAZMON_INFLUX_URL=influx.url,
            HAZMON_DATA_DIR=str(root / "hazmon"),
            HAZMON_HTTP_PORT=str(http_port),
            HAZMON_HTTP_HOST="127.0.0.1",
        )
        password, token = _demo_login(root / "hazmon")
        hazmon_cmd = [sys.executable, "-m", "hazmon.cli", "run"]
        children.append(("hazmon", subprocess.Popen(hazmon_cmd, env=env, start_new_session=True)))
        wait_port(http_port, timeout_s=30, proc=children[0][1])
        sim_cmd = [
            sys.executable,
            "-m",
            "hazmon.cli",
            "simulate",
            "--mqtt-url",
            mqtt.url,
            "--speed",
            args.speed,
        ]
        children.append(("simulator", subprocess.Popen(sim_cmd, env=env, start_new_session=True)))
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
            f"  data and logs     {root}\n"
            "Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        last_report = 0.0
        while not stop.is_set():
            for name, proc in children:
                if proc.poll() is not None:
                    logger.error("%s exited with %s; stopping the demo", name, proc.returncode)
                    stop.set()
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                _report(base, token)
            stop.wait(0.5)
        return 0
    finally:
        for name, proc in reversed(children):
            _stop_child(proc, name)
        influx.stop()
        mqtt.stop()
        print("hazmon demo stopped", flush=True)


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
