"""The shipped broker config against a real Mosquitto 2: who may connect, publish and read.

Issue 11, finding 4: with the old anonymous broker, a client took over hazmon's persistent session
by its client id (7 930 of 19 990 readings lost), published for any site and forged alarm events.
Here the broker runs deploy/mosquitto/mosquitto.conf (only its port and paths changed,
tests/support/shipped_stack.py) with the password file and ACL that deploy/make-secrets.sh made
from the example registry.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from ingest.collector import READINGS_FILTER, STATUS_FILTER
from tests.support.mqtt_probe import NOT_AUTHORIZED, Probe
from tests.support.shipped_stack import (
    EVENTS_READER_USER,
    EVENTS_USER,
    INGEST_USER,
    REPO,
    ShippedMosquitto,
    make_secrets,
    make_test_ca,
    open_to_broker,
    world_traversable_dir,
)

pytestmark = pytest.mark.integration

SITE_A, SITE_B = "jianghai-tf-01", "gaolan-lpg-01"  # sites of the example registry
GATEWAY = {SITE_A: "tf-gw-01", SITE_B: "lpg-gw-01"}  # a device of each, as its sensors name it
OTHER_GATEWAY_OF_A = "tf-gw-02"  # another device of SITE_A in the registry
HAZMON_CLIENT_ID = "hazmon-ingest"  # HAZMON_MQTT_CLIENT_ID's default: the session to protect


@pytest.fixture(scope="module")
def secrets():
    root = world_traversable_dir("hazmon-secrets-")
    try:
        made = make_secrets(root)
        open_to_broker(made.passwd.parent, root)
        yield made
    finally:
        shutil.rmtree(root)


@pytest.fixture(scope="module")
def tls_dir():
    path = world_traversable_dir("hazmon-tls-")
    try:
        make_test_ca(path)
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def start_broker(secrets):
    started: list[tuple[Path, ShippedMosquitto | None]] = []

    def start(tls_dir=None) -> ShippedMosquitto:
        root = world_traversable_dir("hazmon-broker-")
        started.append((root, None))
        broker = ShippedMosquitto(root, secrets, tls_dir)
        started[-1] = (root, broker)
        broker.start()
        return broker

    yield start
    for root, broker in started:
        if broker is not None:
            broker.stop()
        shutil.rmtree(root)


@pytest.fixture
def broker(start_broker) -> ShippedMosquitto:
    return start_broker()


@pytest.fixture
def probe(broker, secrets):
    """probe(who, client_id=..., **Probe options): a client logged in as `who`: "hazmon" (the
    ingest user), "events", "events-reader", a site id (its gateway GATEWAY[site]), "anonymous"
    or (user, pw)."""
    made: list[Probe] = []

    def make(who, client_id: str | None = None, port: int | None = None, **kw) -> Probe:
        if who == "hazmon":
            user, password = INGEST_USER, secrets.env["MQTT_INGEST_PASSWORD"]
        elif who == "events":
            user, password = EVENTS_USER, secrets.env["MQTT_EVENTS_PASSWORD"]
        elif who == "events-reader":
            user, password = EVENTS_READER_USER, secrets.env["MQTT_EVENTS_READER_PASSWORD"]
        elif who == "anonymous":
            user, password = None, None
        elif isinstance(who, tuple):
            user, password = who
        else:
            user, password = secrets.gateways[(who, GATEWAY[who])]
        p = Probe(port or broker.port, client_id or f"probe-{len(made)}", user, password, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def readings_topic(site: str, device: str | None = None) -> str:
    return f"hazmon/v1/{site}/{device or GATEWAY[site]}/readings"


def hazmon_session(probe, **kw) -> Probe:
    """hazmon's ingest session as ingest/collector.py opens it: persistent, both filters."""
    hazmon = probe("hazmon", client_id=HAZMON_CLIENT_ID, persistent=True, **kw)
    assert hazmon.connect()[0] == 0
    assert hazmon.subscribe(READINGS_FILTER, STATUS_FILTER) == [1, 1]
    return hazmon


# ---------------------------------------------------------------------------------- (a) publish


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt3.1.1"])
def test_a_gateway_publishes_under_its_own_site_and_device_only(broker, probe, v5):
    hazmon = hazmon_session(probe)
    reader = probe("events-reader")
    assert reader.connect()[0] == 0
    reader.subscribe("hazmon/v1/+/events")
    gateway = probe(SITE_A, v5=v5)
    assert gateway.connect()[0] == 0
    attempts = {  # topic: may the gateway of SITE_A publish there?
        readings_topic(SITE_A): True,
        f"hazmon/v1/{SITE_A}/{GATEWAY[SITE_A]}/status": True,
        readings_topic(SITE_A, OTHER_GATEWAY_OF_A): False,  # another gateway of its own site
        f"hazmon/v1/{SITE_A}/{OTHER_GATEWAY_OF_A}/status": False,
        readings_topic(SITE_A, "rtu-9"): False,  # a device the registry does not name
        readings_topic(SITE_B): False,  # another site's readings
        f"hazmon/v1/{SITE_B}/{GATEWAY[SITE_B]}/status": False,
        f"hazmon/v1/{SITE_A}/events": False,  # forged alarm events, its own site's too
        f"hazmon/v1/{SITE_B}/events": False,
        f"hazmon/v1/{SITE_A}/{GATEWAY[SITE_A]}/other": False,  # nothing outside the contract's topics
    }
    per_topic = 10
    mids = {(t, i): gateway.publish(t, f"{t}#{i}".encode()) for t in attempts for i in range(per_topic)}
    codes = {key: gateway.puback(mid) for key, mid in mids.items()}
    allowed = {f"{t}#{i}".encode() for (t, i) in mids if attempts[t]}
    delivered = hazmon.wait_for(len(allowed)) + hazmon.received(settle_s=0.5)
    refused = [key for key, rc in codes.items() if rc == NOT_AUTHORIZED]
    print(  # noqa: T201 - figures for the closing note
        f"\n[{'v5' if v5 else '3.1.1'}] gateway of {SITE_A}: {len(mids)} publishes, "
        f"{len(refused)} refused in the PUBACK, {len(delivered)} delivered to hazmon, "
        f"{len(reader.received())} events delivered to an events reader"
    )
    assert {payload for _topic, payload in delivered} == allowed  # exactly its own site's
    assert len(delivered) == len(allowed) == 2 * per_topic
    assert reader.received() == []  # no forged event reached anyone
    if v5:  # MQTT v5 tells the gateway; 3.1.1 has no way to (its PUBACK says success)
        assert set(refused) == {key for key in mids if not attempts[key[0]]}


# ---------------------------------------------------------------------------------- (b) session


def test_gateway_credentials_cannot_take_over_hazmons_session(broker, probe):
    # hazmon subscribed once and is offline (restarting): the broker queues its readings
    first = hazmon_session(probe)
    first.close()
    gateway = probe(SITE_A)
    assert gateway.connect()[0] == 0
    queued = [gateway.publish(readings_topic(SITE_A), f"queued-{i}") for i in range(200)]
    assert all(gateway.puback(mid) == 0 for mid in queued)

    # the attack, now with a gateway's password: hazmon's client id with a clean start,
    # which would discard hazmon's session and its queue
    intruder = probe(SITE_B, client_id=HAZMON_CLIENT_ID)
    rc, session_present = intruder.connect()
    assert rc == 0 and not session_present  # admitted, but as its own user: a session of its own
    assert intruder.subscribe(READINGS_FILTER) == [1]
    intruder.close()

    hazmon = probe("hazmon", client_id=HAZMON_CLIENT_ID, persistent=True)
    rc, session_present = hazmon.connect()
    assert rc == 0 and session_present
    got = hazmon.wait_for(200)
    assert sorted(p for _t, p in got) == sorted(f"queued-{i}".encode() for i in range(200))

    # while hazmon is online: the same id again must not disconnect it
    live_intruder = probe(SITE_B, client_id=HAZMON_CLIENT_ID, persistent=True)
    assert live_intruder.connect()[0] == 0
    assert live_intruder.subscribe(READINGS_FILTER) == [1]
    live = [gateway.publish(readings_topic(SITE_A), f"live-{i}") for i in range(200)]
    assert all(gateway.puback(mid) == 0 for mid in live)
    got_live = hazmon.wait_for(200)
    disconnects = hazmon.disconnects
    assert len(got_live) == 200 and disconnects == 0
    assert live_intruder.received(settle_s=0.5) == []  # and it reads nothing of anyone's
    broker.stop()  # flushes the broker's log (stdout, block-buffered in a file)
    connected_as = re.findall(r"New client connected from \S+ as (\S+) \(.*u'gw\.", broker.log_text)
    user_a, user_b = (f"gw.{site}.{GATEWAY[site]}" for site in (SITE_A, SITE_B))
    assert connected_as == [user_a, user_b, user_b]  # ids replaced by user names
    print(  # noqa: T201 - figures for the closing note
        f"\nsession: 200 queued while hazmon was offline, {len(got)} delivered to it after an intruder "
        f"connected under its client id; 200 published while it was online beside a second intruder, "
        f"{len(got_live)} delivered; intruders got 0; hazmon disconnected {disconnects} times"
    )


# ---------------------------------------------------------------------------------- (c) anonymous


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt3.1.1"])
def test_anonymous_and_bad_password_connections_are_refused(broker, probe, secrets, v5):
    hazmon = hazmon_session(probe)
    refused = {
        "anonymous": probe("anonymous", client_id="anon", v5=v5),
        "anonymous as hazmon's id": probe("anonymous", client_id=HAZMON_CLIENT_ID, v5=v5),
        "hazmon's user, wrong password": probe((INGEST_USER, "not-the-password"), v5=v5),
        "unknown user": probe(("gw-nowhere", secrets.gateways[(SITE_A, GATEWAY[SITE_A])][1]), v5=v5),
    }
    codes = {name: p.connect()[0] for name, p in refused.items()}
    print(f"\n[{'v5' if v5 else '3.1.1'}] CONNACK codes: {codes}")  # noqa: T201
    assert all(rc >= 128 for rc in codes.values()), codes
    assert codes["anonymous"] == NOT_AUTHORIZED
    assert hazmon.disconnects == 0


# ---------------------------------------------------------------------------------- (d) subscribe


def test_a_gateway_reads_neither_other_sites_nor_events(broker, probe):
    hazmon = hazmon_session(probe)
    reader = probe("events-reader")
    assert reader.connect()[0] == 0
    reader.subscribe("hazmon/v1/+/events")
    snoop = probe(SITE_A)
    assert snoop.connect()[0] == 0
    filters = [
        readings_topic(SITE_B),
        f"hazmon/v1/{SITE_B}/#",
        READINGS_FILTER,
        "hazmon/v1/+/events",
        f"hazmon/v1/{SITE_A}/events",
        "#",
    ]
    subacks = snoop.subscribe(*filters)
    other = probe(SITE_B)
    events = probe("events")
    assert other.connect()[0] == 0 and events.connect()[0] == 0
    mids = [other.publish(readings_topic(SITE_B), f"b-{i}") for i in range(20)]
    event_mids = [events.publish(f"hazmon/v1/{site}/events", f"{site}-event") for site in (SITE_A, SITE_B)]
    assert all(other.puback(m) == 0 for m in mids)
    assert all(events.puback(m) == 0 for m in event_mids)  # hazmon's events user may publish them
    assert len(hazmon.wait_for(20)) == 20  # the readings did flow ...
    assert len(reader.wait_for(2)) == 2  # ... and so did the events
    snooped = snoop.received(settle_s=0.5)
    print(  # noqa: T201 - figures for the closing note
        f"\nsnooping gateway's SUBACKs {dict(zip(filters, subacks, strict=True))}; "
        f"20 readings + 2 events published, it got {len(snooped)}"
    )
    assert snooped == []


# ---------------------------------------------------------------------------------- TLS, healthcheck


def test_the_documented_tls_listener_works_with_the_same_rules(start_broker, probe, tls_dir, monkeypatch):
    broker = start_broker(tls_dir)
    # hazmon's collector calls tls_set() with no CA: a private CA is trusted through SSL_CERT_FILE
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_dir / "ca.crt"))
    hazmon = hazmon_session(probe, port=broker.tls_port, tls_default_trust=True)
    gateway = probe(SITE_A, port=broker.tls_port, tls_ca=str(tls_dir / "ca.crt"))
    assert gateway.connect()[0] == 0
    own = [gateway.publish(readings_topic(SITE_A), f"tls-{i}") for i in range(10)]
    other = [gateway.publish(readings_topic(SITE_B), f"forged-{i}") for i in range(10)]
    assert [gateway.puback(m) for m in own] == [0] * 10
    assert [gateway.puback(m) for m in other] == [NOT_AUTHORIZED] * 10
    assert sorted(p for _t, p in hazmon.wait_for(10) + hazmon.received(0.3)) == sorted(
        f"tls-{i}".encode() for i in range(10)
    )
    anonymous = probe("anonymous", port=broker.tls_port, tls_ca=str(tls_dir / "ca.crt"))
    assert anonymous.connect()[0] == NOT_AUTHORIZED
    intruder = probe(SITE_B, client_id=HAZMON_CLIENT_ID, port=broker.tls_port, tls_ca=str(tls_dir / "ca.crt"))
    assert intruder.connect()[0] == 0
    time.sleep(0.3)
    assert hazmon.disconnects == 0
    assert hazmon.client.socket().version() in ("TLSv1.2", "TLSv1.3")


def test_the_compose_healthcheck_logs_in_as_its_own_user(broker, secrets):
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    kind, command = compose["services"]["mosquitto"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    command = command.replace("$$", "$").replace("-p 1883", f"-p {broker.port}")  # compose's $$ is $

    def run(password: str) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/bin:/bin", "MQTT_HEALTHCHECK_PASSWORD": password}
        return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=10)

    healthy = run(secrets.env["MQTT_HEALTHCHECK_PASSWORD"])
    assert healthy.returncode == 0 and healthy.stdout.startswith("mosquitto version"), healthy
    assert run("wrong").returncode != 0
