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
        self.token: str | None = None  # an admin's API token, made through the CLI before the first start

    def _cli(self, *args: str, stdin: str = "") -> str:
        done = subprocess.run(
            [sys.executable, "-m", "hazmon.cli", *args],
            env=self.env, cwd=self.workdir, input=stdin, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout.strip()

    def create_user(self, username: str, role: str, *scope: str) -> str:
        """A user made with `hazmon user add` (scope: e.g. "--all-sites"); returns an API token of theirs."""
        password = f"pw-{username}-0123456789"
        self._cli("user", "add", username, "--role", role, *scope, "--password-stdin", stdin=password + "\n")
        return self._cli("user", "token", username, "--name", "tests")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, wait_connected: bool = True) -> None:
        if self.token is None:
            self.token = self.create_user("tester", "admin", "--all-sites")
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
                last = httpx.get(self.base_url + "/healthz", headers=self.headers, timeout=1).json()
                if predicate(last):
                    return last
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"hazmon not healthy in {timeout_s} s: {last}")

    def get(self, path: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else self.headers
        return httpx.get(self.base_url + path, headers=headers, timeout=5)

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

    def post(self, path: str, body: dict, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else self.headers
        return httpx.post(self.base_url + path, json=body, headers=headers, timeout=5)
