"""Upward forwarding under outages (issue 13 item 7): the receiver SIGKILLed and kept down for two
minutes mid-stream, the upstream broker stopped as long, and hazmon itself SIGKILLed once during the
outage; afterwards every record arrived exactly once, over HTTP (signature checked) and over MQTT.

The receiver is killed in the worst moment: it has stored a batch and not answered yet, so hazmon
sends that batch again and the receiver drops it by key (counted, asserted to be exactly that
batch). Real processes throughout: Mosquitto for the field, a second Mosquitto as the higher platform's
broker, InfluxDB, `hazmon run`, and the HTTP receiver (tests/support/forward_receiver.py), which
stores records keyed by key and counts every delivery. A field thread publishes six level sensors
every second, one of them across HH and back every few seconds (raises, returns to normal); the
test acknowledges and disposes alarms through the API as an operator would (acknowledgements,
clears, disposals). The expected records are what hazmon's own journal holds (lifecycle events and
disposals) and one summary per chosen sensor and closed minute, checked against what the field
published. The outage lasts FORWARD_OUTAGE_S seconds (120; set it lower to iterate locally).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from alerts.forward.http_out import ForwardError, HttpForwardTransport
from hazmon.devservers import MosquittoServer, free_port, wait_port
from tests.support.events import MonotonicMs, wait_for
from tests.support.publisher import TestPublisher
from tests.support.registries import write_alarm_registry
from tests.support.service import HazmonProcess

OUTAGE_S = float(os.environ.get("FORWARD_OUTAGE_S", "120"))
pytestmark = [pytest.mark.integration, pytest.mark.timeout(int(OUTAGE_S) + 240)]

SITE = "fwd-01"
SENSORS = [f"LT-{j:03d}" for j in range(6)]
SUMMARISED = ["LT-000", "LT-001"]
DELAY_S = 5  # HAZMON_FORWARD_SUMMARY_DELAY_S
SECRET = "forward-test-secret-0123456789"
LIFECYCLE = {
    "AlarmRaised": "raise",
    "AlarmReturnedToNormal": "return_to_normal",
    "AlarmAcknowledged": "acknowledge",
    "AlarmCleared": "clear",
}
MINUTE_MS = 60_000


class Field:
    """Publishes every sensor each second; sensor `(step % 6)` toggles across HH every `toggle_s`.
    Keeps what it published per summarised sensor (the summaries' ground truth)."""

    def __init__(self, pub: TestPublisher, toggle_s: float = 3.0):
        self.pub = pub
        self.toggle_s = toggle_s
        self.level = dict.fromkeys(SENSORS, 50.0)
        self.published: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self._clock = MonotonicMs()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        step, next_toggle = 0, time.monotonic() + self.toggle_s
        while not self._stop.wait(1.0):
            if time.monotonic() >= next_toggle:
                sensor = SENSORS[step % len(SENSORS)]
                self.level[sensor] = 50.0 if self.level[sensor] > 90 else 96.0 + step % 3
                step, next_toggle = step + 1, next_toggle + self.toggle_s
            t = self._clock()
            with self._lock:
                for s in SUMMARISED:
                    self.published[s].append((t, self.level[s]))
            self.pub.publish_readings(SITE, "gw-01", t, dict(self.level))

    def snapshot(self) -> dict[str, list[tuple[int, float]]]:
        with self._lock:
            return {s: list(v) for s, v in self.published.items()}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class ReceiverProcess:
    """tests/support/forward_receiver.py as a child process on a fixed port; SIGKILL and restart."""

    def __init__(self, root: Path):
        self.port = free_port()
        self.db = root / "received.sqlite"
        self.secret_file = root / "secret"
        self.secret_file.write_text(SECRET + "\n")
        self.hang_flag = root / "hang"  # while it exists, batches are stored and never answered
        self.root = root
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, *extra: str) -> None:
        self.starts += 1
        log = open(self.root / f"receiver-{self.starts}.log", "wb")  # noqa: SIM115 - owned by the child
        args = ["--port", str(self.port), "--db", str(self.db), "--secret-file", str(self.secret_file)]
        args += ["--hang-flag", str(self.hang_flag), *extra]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forward_receiver", *args],
            stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        wait_port(self.port, proc=self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def rows(self, sql: str) -> list[tuple]:
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


class UpstreamSubscriber:
    """The higher platform on MQTT: a persistent QoS 1 session that counts every record by key."""

    def __init__(self, port: int, client_id: str):
        self.deliveries: Counter[str] = Counter()
        self.first_at: dict[str, float] = {}  # monotonic time of a key's first delivery
        self.bodies: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("hazmon/upward/v1/#", qos=1)
        c.on_subscribe = lambda *a: self._subscribed.set()
        c.on_message = self._on_message
        c.reconnect_delay_set(0.2, 1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        c.connect_async("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        c.loop_start()
        self.client = c
        assert self._subscribed.wait(10), "upstream subscriber could not subscribe"

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        record = orjson.loads(msg.payload)
        with self._lock:
            self.deliveries[record["key"]] += 1
            self.first_at.setdefault(record["key"], time.monotonic())
            self.bodies[record["key"]] = record  # kept once by key, as the platform's contract says

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.deliveries)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def journal_keys(data_dir: Path) -> set[str]:
    """The records hazmon's journal says must have gone upward: lifecycle events and disposals."""
    conn = sqlite3.connect(data_dir / "alarms.sqlite")
    try:
        history = conn.execute("SELECT seq, alarm_id, type FROM history").fetchall()
        disposals = conn.execute(
            "SELECT alarm_id FROM audit WHERE action = 'dispose' AND outcome = 'ok'"
        ).fetchall()
    finally:
        conn.close()
    keys = {f"alarm:{aid}:{LIFECYCLE[t]}:{seq}" for seq, aid, t in history if t in LIFECYCLE}
    return keys | {f"disposal:{aid}" for (aid,) in disposals}


def operator_round(svc: HazmonProcess, disposed: set[str]) -> None:
    """Acknowledge what is unacknowledged and dispose every alarm that asks for it, once."""
    for a in svc.get(f"/api/v1/alarms?site={SITE}").json()["data"]:
        if a["state"] in ("UNACK", "RTN_UNACK"):
            svc.post(f"/api/v1/alarms/{a['alarm_id']}/ack", {"comment": "现场确认"})
    for d in svc.get(f"/api/v1/disposals?site={SITE}&state=open").json()["data"]:
        if d["alarm_id"] not in disposed:
            body = {"cause": "process", "action": "降低进料", "person": "李四"}
            assert svc.post(f"/api/v1/alarms/{d['alarm_id']}/dispose", body).status_code == 200
            disposed.add(d["alarm_id"])


def stream_for(svc: HazmonProcess, seconds: float, disposed: set[str]) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        operator_round(svc, disposed)
        time.sleep(min(2.0, max(0.0, end - time.monotonic())))


@pytest.fixture
def rig(tmp_path, mosquitto, influx):
    registry = write_alarm_registry(tmp_path / "registry.yaml", SITE, n_sensors=len(SENSORS))
    upstream = MosquittoServer(tmp_path / "upstream")
    upstream.start()
    receiver = ReceiverProcess(tmp_path)
    receiver.start()
    svc = HazmonProcess(
        tmp_path / "hazmon", registry, mosquitto.url, influx.url,
        HAZMON_FORWARD_HTTP_URL=f"http://127.0.0.1:{receiver.port}/upward?tenant=t1",
        HAZMON_FORWARD_SECRET_FILE=str(receiver.secret_file),
        HAZMON_FORWARD_KEY_ID="plant-a",
        HAZMON_FORWARD_MQTT_URL=upstream.url,
        HAZMON_FORWARD_SENSORS=",".join(f"{SITE}/{s}" for s in SUMMARISED),
        HAZMON_FORWARD_SUMMARY_DELAY_S=str(DELAY_S),
    )  # fmt: skip
    sub = UpstreamSubscriber(upstream.port, f"platform-{tmp_path.name}")
    pub = TestPublisher(mosquitto.port, f"gw-{tmp_path.name}")
    yield svc, receiver, upstream, sub, pub
    pub.close()
    sub.close()
    svc.stop()
    receiver.kill()
    upstream.stop()


def test_receiver_down_two_minutes_and_a_crash_lose_nothing_and_double_nothing(rig, capsys):
    svc, receiver, upstream, sub, pub = rig
    began = time.monotonic()
    svc.start()
    first_minute = (time.time_ns() // 1_000_000) // MINUTE_MS * MINUTE_MS
    field = Field(pub)
    disposed: set[str] = set()
    try:
        stream_for(svc, 20, disposed)
        assert receiver.rows("SELECT count(*) FROM records")[0][0] > 0  # flowing before the outage

        # mid-stream, and in the worst moment: a batch stored but not yet answered
        receiver.hang_flag.touch()  # a batch stored after this is never answered
        (before,) = receiver.rows("SELECT count(*) FROM batches")[0]
        wait_for(
            lambda: receiver.rows("SELECT count(*) FROM batches")[0][0], lambda n: n > before, timeout_s=20
        )
        receiver.kill()
        receiver.hang_flag.unlink()
        (cut_off,) = receiver.rows("SELECT max(id) FROM batches")[0]
        upstream.stop()
        down_at = time.monotonic()
        stream_for(svc, OUTAGE_S / 3, disposed)
        status = svc.get("/api/v1/forward/status").json()
        http = next(t for t in status["transports"] if t["name"] == "http")
        assert http["backlog"] > 0 and http["last_error"] and "tenant" not in http["target"]
        assert SECRET not in str(status)
        assert "hazmon_forward_http_backlog" in svc.get("/metrics").text

        svc.kill()  # hazmon too, with a backlog in its outbox
        svc.start()
        stream_for(svc, max(0.0, down_at + OUTAGE_S - time.monotonic()), disposed)
        upstream.start()
        receiver.start()
        up_at, up_ms = time.monotonic(), time.time_ns() // 1_000_000
        stream_for(svc, 10, disposed)
    finally:
        field.stop()
    published = field.snapshot()

    # caught up: nothing waits, and every minute that closed before the outage ended is summarised
    outage_end_minute = up_ms // MINUTE_MS * MINUTE_MS

    def delivered(s: dict) -> bool:
        return all(t["backlog"] == 0 and t.get("in_flight", 0) == 0 for t in s["transports"])

    def forward_status() -> dict:
        return svc.get("/api/v1/forward/status").json()

    wait_for(forward_status, delivered, timeout_s=60, interval_s=0.2)
    caught_up_s = time.monotonic() - up_at
    status = wait_for(
        forward_status,
        lambda s: delivered(s) and s["summary_next_minute_ms"] >= outage_end_minute,
        timeout_s=30,
        interval_s=0.2,
    )
    time.sleep(2)  # a doubled delivery would arrive now

    expected = journal_keys(svc.workdir / "data")
    minutes = range(first_minute, status["summary_next_minute_ms"], MINUTE_MS)
    summary_keys = set()
    for s in SUMMARISED:
        for m in minutes:
            iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(m / 1000))
            summary_keys.add(f"summary:{SITE}/{s}/{iso}")
    expected |= summary_keys
    # the clock may close one more minute during the sleep: its summary is on time, not extra
    next_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(status["summary_next_minute_ms"] / 1000))
    closed_since = {f"summary:{SITE}/{s}/{next_iso}" for s in SUMMARISED}

    # HTTP: each expected key stored once, no other, signatures good; sent again only the batch the
    # kill cut off (stored, never answered), and the receiver kept it once
    stored = dict(receiver.rows("SELECT key, deliveries FROM records"))
    assert receiver.rows("SELECT count(*) FROM batches WHERE signature_ok = 0") == [(0,)]
    assert receiver.rows("SELECT DISTINCT sender, key_id FROM batches") == [("plant-a", "plant-a")]
    lost = expected - set(stored)
    extra = set(stored) - expected - closed_since
    assert not lost, f"lost over HTTP: {sorted(lost)[:10]}"
    assert not extra, f"unexpected over HTTP: {sorted(extra)[:10]}"
    redelivered = {k for k, n in stored.items() if n > 1}
    first_batch = dict(receiver.rows("SELECT key, batch FROM records"))
    assert redelivered == {k for k, b in first_batch.items() if b == cut_off}, (
        "a record came twice outside the kill"
    )
    assert all(n <= 2 for n in stored.values())

    # MQTT: the same records, each kept once by key. QoS 1 is at least once: a record whose PUBACK
    # was lost when the upstream broker stopped is published again after it returns (the broker
    # had already passed it on), and the platform drops the copy by key (docs/contracts.md §8).
    # So a second delivery may only be of a record first delivered before that stop.
    got = sub.snapshot()
    assert expected <= set(got) <= expected | closed_since, (
        f"MQTT lost {sorted(expected - set(got))[:5]}, extra {sorted(set(got) - expected)[:5]}"
    )
    mqtt_again = {k for k, n in got.items() if n > 1}
    late = {k for k in mqtt_again if sub.first_at[k] >= down_at}
    assert not late, f"MQTT doubled outside the broker's stop: {sorted(late)[:10]}"
    assert all(n <= 2 for n in got.values())

    # summaries say what the field published in each minute
    bodies = {
        k: orjson.loads(b) for k, b in receiver.rows("SELECT key, body FROM records WHERE kind = 'summary'")
    }
    for s in SUMMARISED:
        for m in minutes:
            points = [(t, v) for t, v in published.get(s, []) if m <= t < m + MINUTE_MS]
            iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(m / 1000))
            r = bodies[f"summary:{SITE}/{s}/{iso}"]
            assert r["count"] == len(points), (s, iso, r, len(points))
            if points:
                assert (r["max"], r["last"]) == (max(v for _, v in points), points[-1][1]), (s, iso, r)

    logs = b"".join(p.read_bytes() for p in svc.workdir.glob("hazmon-*.log"))
    assert b"forward http: " in logs and SECRET.encode() not in logs  # retries logged, the secret never

    kinds = Counter(k.split(":")[2] if k.startswith("alarm:") else k.split(":")[0] for k in expected)
    with capsys.disabled():
        print(  # noqa: T201
            f"\n[forward outage] receiver and upstream broker down {up_at - down_at:.0f} s,"
            " hazmon SIGKILLed once during it;"
            f" expected {len(expected)} records {dict(kinds)}; HTTP stored {len(stored)}, lost {len(lost)},"
            f" stored twice 0, sent again {len(redelivered)} (the batch the kill cut off, dropped by key);"
            f" MQTT received {len(got)} keys, lost 0, kept once each,"
            f" sent again {len(mqtt_again)} (PUBACK lost at the broker's stop, dropped by key);"
            f" caught up {caught_up_s:.1f} s after the receiver returned;"
            f" test {time.monotonic() - began:.0f} s"
        )


def test_an_https_receiver_is_verified_against_the_configured_ca(tmp_path):
    """HAZMON_FORWARD_CA_FILE: a platform's own CA verifies its receiver; without it, nothing is sent."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    receiver = ReceiverProcess(tmp_path)
    receiver.start("--tls-cert", str(cert), "--tls-key", str(key))
    url = f"https://127.0.0.1:{receiver.port}/upward"
    record = orjson.dumps({"key": "summary:s/x/2026-12-04T17:15:00Z", "kind": "summary", "site": "s"})
    try:
        untrusting = HttpForwardTransport(url, "plant-a", SECRET.encode())
        with pytest.raises(ForwardError, match="CERTIFICATE_VERIFY_FAILED"):
            untrusting.deliver([record])
        untrusting.close()
        trusting = HttpForwardTransport(url, "plant-a", SECRET.encode(), ca_file=cert)
        trusting.deliver([record])
        trusting.close()
        assert receiver.rows("SELECT key, deliveries FROM records") == [
            ("summary:s/x/2026-12-04T17:15:00Z", 1)
        ]
        assert receiver.rows("SELECT signature_ok FROM batches") == [(1,)]
    finally:
        receiver.kill()
