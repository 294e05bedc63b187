"""Run `hazmon run` as a real child process against given servers, so tests can SIGKILL it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hazmon.devservers import free_port


class HazmonProcess:
    """A hazmon service process with its own data dir and HTTP port; restartable."""

    def __init__(self, workdir: Path, registry: Path, mqtt_url: str, influx_url: str, **env: str):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.env = dict(
            os.environ,
            HAZMON_REGISTRY=str(registry),
            HAZMON_MQTT_URL=mqtt_url,
            HAZMON_INFLUX_URL=influx_url,
            HAZMON_DATA_DIR=str(self.workdir / "data"),
            HAZMON_HTTP_PORT=str(self.http_port),
            HAZMON_HTTP_HOST="127.0.0.1",
            **env,
        )
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, wait_connected: bool = True) -> None:
        self.starts += 1
        log = open(self.workdir / f"hazmon-{self.starts}.log", "wb")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hazmon.cli", "run"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        if wait_connected:
            self.wait_healthy(lambda h: h.get("mqtt_connected"))

    def wait_healthy(self, predicate, timeout_s: float = 30) -> dict:
        deadline = time.monotonic() + timeout_s
        last: dict = {}
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, f"hazmon exited: see {self.workdir}"
            try:
                last = httpx.get(self.base_url + "/healthz", timeout=1).json()
                if predicate(last):
                    return last
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"hazmon not healthy in {timeout_s} s: {last}")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base_url + path, timeout=5)

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def post(self, path: str, body: dict) -> httpx.Response:
        return httpx.post(self.base_url + path, json=body, timeout=5)
