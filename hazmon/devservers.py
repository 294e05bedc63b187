"""Private Mosquitto and InfluxDB instances for the demo, benchmarks and integration tests.

Each server gets its own config, data folder and free loopback port and runs as a foreground
child process, so nothing depends on (or disturbs) system services. Recipes and pitfalls:
../shared/COMPONENTS.md §4 (Mosquitto) and §5 (InfluxDB).
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

logger = logging.getLogger(__name__)

MOSQUITTO_BIN = "/usr/sbin/mosquitto"
INFLUXD_BIN = "/usr/bin/influxd"
INSTALL_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install-system-deps.sh"


class ServerError(RuntimeError):
    """A development server could not be installed or started."""


def _ephemeral_low() -> int:
    """The first port the kernel hands out as the source port of outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


PORT_RESERVATIONS = Path(os.environ.get("TMPDIR", "/tmp")) / f"hazmon-ports-{os.getuid()}"
RESERVATION_TTL_S = 1800.0


def free_port() -> int:
    """A free loopback TCP port below the kernel's ephemeral range, handed out once per half hour.

    A server stopped and started again on its port (InfluxDB in the no-loss tests, Kannel's boxes)
    must find it free: a port from the ephemeral range may meanwhile be the source port of any
    client's connection, and the restart fails with "address already in use". A port that is
    free now may still be taken before its server binds it (the demo binds its API only after a
    backfill), and parallel test workers pick from the same range: so each port handed out is
    reserved machine-wide by a file created exclusively, and no caller gets it again for
    RESERVATION_TTL_S.
    """
    low = max(1025, _ephemeral_low())
    for _ in range(400):
        port = random.randrange(10_000, low) if low > 10_000 else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = s.getsockname()[1]
        if _reserve(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # the kernel's choice, as a last resort
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reserve(port: int) -> bool:
    """Claim `port` for this caller unless another claimed it within the TTL (or claims can't be kept)."""
    try:
        PORT_RESERVATIONS.mkdir(mode=0o700, exist_ok=True)
        marker = PORT_RESERVATIONS / str(port)
        try:
            if time.time() - marker.stat().st_mtime > RESERVATION_TTL_S:
                marker.unlink(missing_ok=True)  # an old claim; two callers racing here both retry O_EXCL
        except FileNotFoundError:
            pass
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    except OSError:
        return True  # no writable temp folder: the bind check above is all there is
    os.close(fd)
    return True


def wait_port(port: int, timeout_s: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"process exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise ServerError(f"port {port} did not open within {timeout_s} s")


def ensure_installed() -> None:
    """Install Mosquitto and InfluxDB from Debian's packages when they are missing."""
    if Path(MOSQUITTO_BIN).exists() and Path(INFLUXD_BIN).exists():
        return
    if os.geteuid() != 0 and not shutil.which("sudo"):
        raise ServerError(
            "mosquitto/influxd are missing and we are not root: run scripts/install-system-deps.sh"
        )
    cmd = ["bash", str(INSTALL_SCRIPT)]
    if os.geteuid() != 0:
        cmd.insert(0, "sudo")
    logger.info("installing Mosquitto and InfluxDB: %s", " ".join(cmd))
    subprocess.run(cmd, check=True)


class _ChildServer:
    """A server process with start/stop/kill/restart on a fixed port and data folder."""

    name = "server"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self._log = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _wait_ready(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self._log = open(self.root / f"{self.name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self._command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except Exception:
            self.kill()
            raise ServerError(
                f"{self.name} failed to start; see {self.root / (self.name + '.log')}"
            ) from None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to save anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class MosquittoServer(_ChildServer):
    """Mosquitto 2 with persistence, so a restart keeps persistent sessions and their queues."""

    name = "mosquitto"

    def __init__(self, root: Path, port: int | None = None, autosave_interval_s: int = 1):
        super().__init__(root)
        self.port = port or free_port()
        self.data = self.root / "data"
        self.data.mkdir(exist_ok=True)
        self.config = self.root / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            "persistence true\n"
            f"persistence_location {self.data}/\n"
            f"autosave_interval {autosave_interval_s}\n"
            "autosave_on_changes false\n"
            # hazmon acknowledges after its InfluxDB flush, so it needs a wide in-flight window,
            # and a persistent session must not drop readings while hazmon restarts (default 1000)
            "max_inflight_messages 0\n"
            "max_queued_messages 0\n"
            "max_queued_bytes 0\n"
            "user root\n"  # as root, keep write access to the data dir (COMPONENTS.md §4 pitfall)
        )

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return [MOSQUITTO_BIN, "-c", str(self.config)]

    def _wait_ready(self) -> None:
        wait_port(self.port, proc=self.proc)


class InfluxServer(_ChildServer):
    """InfluxDB 1.x (Debian's 1.6) on loopback with reporting disabled and a fast CQ interval."""

    name = "influxd"

    def __init__(
        self,
        root: Path,
        http_port: int | None = None,
        cq_run_interval: str = "1s",
        wal_fsync_delay: str = "0s",
        index_version: str = "inmem",
    ):
        super().__init__(root)
        self.http_port = http_port or free_port()
        self.rpc_port = free_port()
        self.config = self.root / "influxd.conf"
        self.config.write_text(f"""\
reporting-enabled = false
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{self.root}/meta"
  logging-enabled = false
[data]
  dir = "{self.root}/data"
  wal-dir = "{self.root}/wal"
  wal-fsync-delay = "{wal_fsync_delay}"
  query-log-enabled = false
  index-version = "{index_version}"
  cache-max-memory-size = "1g"
[coordinator]
  log-queries-after = "0s"
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.http_port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = true
  log-enabled = false
  run-interval = "{cq_run_interval}"
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[logging]
  level = "warn"
  suppress-logo = true
""")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _command(self) -> list[str]:
        return [INFLUXD_BIN, "-config", str(self.config)]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerError(f"influxd exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/ping", timeout=0.5).status_code == 204:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.03)
        raise ServerError("influxd did not answer /ping within 30 s")
