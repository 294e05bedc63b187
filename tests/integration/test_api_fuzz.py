"""schemathesis against a real running hazmon: generated requests on every operation find no 5xx.

The run is authenticated (an admin token), so the generated data reaches the handlers; the live
stream (endless by design) and token deletion (it could revoke the run's own token) are left out.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.events import MonotonicMs
from tests.support.publisher import TestPublisher
from tests.support.registries import write_alarm_registry
from tests.support.service import HazmonProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is a dev dependency: make venv")
def test_schemathesis_finds_no_server_error(tmp_path, mosquitto, influx, capsys):
    registry = write_alarm_registry(tmp_path / "registry.yaml", n_sensors=5)
    svc = HazmonProcess(tmp_path / "hazmon", registry, mosquitto.url, influx.url)
    svc.start()
    pub = TestPublisher(mosquitto.port, f"gw-{tmp_path.name}")
    try:
        clock = MonotonicMs()
        for k in range(5):  # some alarms to act on
            pub.publish_readings(
                "alarm-01", "gw-01", clock() + k, {f"LT-{j:03d}": 70.0 + 4 * k for j in range(5)}
            )
        pub.wait_all_acked()
        cmd = [
            SCHEMATHESIS, "run", svc.base_url + "/openapi.json",
            "-H", f"Authorization: Bearer {svc.token}",
            "--checks", "not_a_server_error",
            "--max-examples", "5",
            "--exclude-path", "/api/v1/stream",
            "--exclude-method", "DELETE",
            "--seed", "1", "--max-time", "60", "--request-timeout", "10",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=240)
    finally:
        pub.close()
        svc.stop()
    summary = [line for line in done.stdout.splitlines() if " generated," in line]
    with capsys.disabled():
        print(f"\n[schemathesis] {' / '.join(s.strip() for s in summary)}")  # noqa: T201
    assert done.returncode == 0, done.stdout[-4000:]
    log = (svc.workdir / "hazmon-1.log").read_text()
    assert "Traceback" not in log, log[log.index("Traceback") :][:3000]
