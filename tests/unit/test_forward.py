"""Upward forwarding (alerts/forward/): keys, signatures, minute summaries, the outbox and its cursors."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import orjson
import pytest

from alerts.book.book import AlarmBook
from alerts.book.sqlite_journal import AlarmJournal
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from alerts.forward.collect import ForwardCollector, SummarySensor
from alerts.forward.http_out import ForwardRefused, batch_body, display_url
from alerts.forward.records import minute_iso, summary_key
from alerts.forward.senders import AckSender, Backoff, BatchSender
from alerts.forward.signing import signature, signed_headers, verify
from alerts.forward.store import ForwardStore
from alerts.forward.summaries import MINUTE_MS, due_minutes, minute_stats
from hazmon.config import Settings, forward_sensor_ids
from ingest.store import StoreUnavailable
from tests.support.memory_store import MemoryStore

T0 = 1_795_392_000_000  # a whole minute


def change(sensor: str, active: bool, t: int) -> ConditionChange:
    return ConditionChange(
        "site-a", sensor, ConditionKind.H, active, t, Priority.HIGH, "H", value=17.0, limit=16.5, message="高"
    )


class Clock:
    def __init__(self, ms: int = T0 + 5_000):
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def journal(tmp_path):
    j = AlarmJournal(tmp_path / "alarms.sqlite")
    yield j
    j.close()


@pytest.fixture
def outbox(tmp_path):
    s = ForwardStore(tmp_path / "forward.sqlite")
    yield s
    s.close()


def bodies(outbox: ForwardStore) -> list[dict]:
    return [orjson.loads(r.body) for r in outbox.after(0, 10_000)]


# ---- keys and signatures


def test_summary_keys_name_the_sensor_and_the_minute_in_utc():
    assert minute_iso(T0) == "2026-11-23T00:00:00Z"
    assert summary_key("site-a", "T101-LT", T0 + MINUTE_MS) == "summary:site-a/T101-LT/2026-11-23T00:01:00Z"


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body_and_verifies_only_the_same_bytes():
    secret, body = b"0123456789abcdef", b'{"sender":"hz","records":[]}'
    expected = hmac.new(secret, b"1795392000." + body, hashlib.sha256).hexdigest()
    headers = signed_headers("hz", secret, body, 1_795_392_000.7)
    assert headers == {
        "X-Hazmon-Key-Id": "hz",
        "X-Hazmon-Timestamp": "1795392000",
        "X-Hazmon-Signature": "sha256=" + expected,
    }
    sig = signature(secret, "1795392000", body)
    assert verify(secret, "1795392000", body, sig, now_s=1_795_392_100)
    assert not verify(secret, "1795392000", body + b" ", sig, now_s=1_795_392_100)  # tampered
    assert not verify(b"another-secret-16", "1795392000", body, sig, now_s=1_795_392_100)
    assert not verify(secret, "1795392000", body, sig, now_s=1_795_392_000 + 301)  # replayed late
    assert not verify(secret, "-5", body, sig, now_s=1_795_392_000)


def test_a_batch_wraps_stored_records_without_encoding_them_again():
    body = batch_body("hz", [b'{"key":"a"}', b'{"key":"b"}'])
    assert orjson.loads(body) == {"sender": "hz", "records": [{"key": "a"}, {"key": "b"}]}
    assert display_url("https://u:pw@up.example/in?token=x") == "https://u:***@up.example/in"


# ---- summaries


def test_due_minutes_wait_for_the_delay_catch_up_in_bounds_and_skip_what_is_too_old():
    assert due_minutes(T0, T0 + 60_000 + 29_999, 30_000, 60).minutes == []  # closed, but not delay_ms ago
    assert due_minutes(T0, T0 + 90_000, 30_000, 60).minutes == [T0]
    # down 3 minutes: all three, oldest first
    assert due_minutes(T0, T0 + 3 * MINUTE_MS + 30_000, 30_000, 60).minutes == [
        T0 + i * MINUTE_MS for i in range(3)
    ]
    # down 100 minutes with a 60-minute window: 40 skipped, then at most 10 a call
    due = due_minutes(T0, T0 + 100 * MINUTE_MS + 30_000, 30_000, 60)
    assert due.skipped == 40 and due.minutes[0] == T0 + 40 * MINUTE_MS and len(due.minutes) == 10
    assert due.next_position == T0 + 50 * MINUTE_MS


def test_minute_stats_leave_out_bad_and_missing_values_and_other_minutes():
    ts = np.array([T0 - 1, T0, T0 + 10_000, T0 + 20_000, T0 + 30_000, T0 + 59_999, T0 + 60_000])
    values = np.array([99.0, 1.0, 5.0, np.nan, 50.0, 3.0, 99.0])
    quality = np.array([0, 0, 1, 0, 2, 0, 0])
    stats = minute_stats(ts, values, quality, T0)
    assert stats == {
        "count": 3,
        "bad": 2,
        "min": 1.0,
        "max": 5.0,
        "mean": 3.0,
        "last": 3.0,
        "last_ms": T0 + 59_999,
    }
    empty = minute_stats(ts, values, quality, T0 + 5 * MINUTE_MS)
    assert empty["count"] == 0 and empty["mean"] is None and empty["last_ms"] is None


# ---- the collector: journal and store into the outbox, once


def test_lifecycle_and_disposal_records_reach_the_outbox_once_with_stable_keys(journal, outbox):
    clock = Clock()
    collector = ForwardCollector(outbox, journal, clock=clock)
    book = AlarmBook(journal)
    book.on_changes([change("S1", True, T0)], T0)
    aid = book.current(source="S1")[0].alarm_id
    book.acknowledge(aid, "zhang", comment="现场确认", now_ms=T0 + 1000)
    book.on_changes([change("S1", False, T0 + 2000)], T0 + 2000)  # inactive and acked: cleared
    journal.dispose(aid, "zhang", "process", "降低进料", "李四", "", T0 + 3000)
    assert collector.collect() == 5
    assert collector.collect() == 0  # nothing twice
    got = bodies(outbox)
    assert [r["kind"] for r in got] == ["raise", "acknowledge", "return_to_normal", "clear", "disposal"]
    seqs = [h.seq for h in journal.history(alarm_id=aid, newest_first=False)]
    assert [r["key"] for r in got[:4]] == [
        f"alarm:{aid}:raise:{seqs[0]}",
        f"alarm:{aid}:acknowledge:{seqs[1]}",
        f"alarm:{aid}:return_to_normal:{seqs[2]}",
        f"alarm:{aid}:clear:{seqs[3]}",
    ]
    assert got[0]["event"]["type"] == "alarm" and got[0]["time"].endswith("+08:00")
    assert got[1]["details"] == {"user": "zhang", "comment": "现场确认"} and got[1]["event"] is None
    disposal = got[4]
    assert disposal["key"] == f"disposal:{aid}"
    assert (disposal["cause"], disposal["action"], disposal["person"], disposal["late"]) == (
        "process", "降低进料", "李四", False,
    )  # fmt: skip


def test_a_restarted_collector_resumes_where_its_position_was_and_new_ones_start_at_the_end(
    tmp_path, journal
):
    book = AlarmBook(journal)
    book.on_changes([change("S0", True, T0)], T0)  # before forwarding was enabled: stays home
    path = tmp_path / "forward.sqlite"
    outbox = ForwardStore(path)
    ForwardCollector(outbox, journal, clock=Clock())
    book.on_changes([change("S1", True, T0 + 1)], T0 + 1)
    outbox.close()  # "SIGKILL" before any collect

    outbox = ForwardStore(path)
    collector = ForwardCollector(outbox, journal, clock=Clock())
    assert collector.collect() == 1
    assert [r["source"] for r in bodies(outbox)] == ["S1"]
    outbox.close()


def test_summaries_come_once_per_closed_minute_and_wait_while_the_store_is_behind(journal, outbox):
    store = MemoryStore()
    for i in range(6):  # minute T0: 0, 10, ... 50 s; minute T0+1: one reading
        store.put("site-a", "LT-1", [T0 + i * 10_000], [float(i)])
    store.put("site-a", "LT-1", [T0 + MINUTE_MS + 5_000], [7.0])
    clock, current = Clock(T0 + 1000), [False]
    sensors = [SummarySensor("site-a", "LT-1", "m"), SummarySensor("site-a", "LT-2", "m")]
    collector = ForwardCollector(
        outbox, journal, readings=store, sensors=sensors, store_current=lambda: current[0],
        summary_delay_ms=5_000, clock=clock,
    )  # fmt: skip
    clock.ms = T0 + 2 * MINUTE_MS + 5_000  # two minutes closed and their delay passed
    assert collector.collect() == 0 and "store behind" in collector.summaries_waiting
    current[0] = True
    assert collector.collect() == 4
    assert collector.collect() == 0
    got = {r["key"]: r for r in bodies(outbox)}
    first = got["summary:site-a/LT-1/2026-11-23T00:00:00Z"]
    assert (first["count"], first["min"], first["max"], first["mean"], first["last"]) == (
        6,
        0.0,
        5.0,
        2.5,
        5.0,
    )
    assert got["summary:site-a/LT-1/2026-11-23T00:01:00Z"]["last"] == 7.0
    assert got["summary:site-a/LT-2/2026-11-23T00:00:00Z"]["count"] == 0  # a silent sensor's gap shows
    assert collector.summary_position == T0 + 2 * MINUTE_MS
    store.fail = StoreUnavailable("down")
    clock.ms += MINUTE_MS
    assert collector.collect() == 0 and collector.summary_position == T0 + 2 * MINUTE_MS  # retried later


# ---- senders


class FakeBatches:
    name = "fake"

    def __init__(self) -> None:
        self.down = False
        self.got: list[list[str]] = []

    def deliver(self, batch) -> None:
        if self.down:
            raise ForwardRefused(503, "receiver answered 503")
        self.got.append([orjson.loads(b)["key"] for b in batch])

    def close(self) -> None:
        pass


def fill(outbox: ForwardStore, n: int, start: int = 0) -> None:
    records = [{"key": f"k{i}", "kind": "raise", "site": "site-a"} for i in range(start, start + n)]
    outbox.append(records, {}, T0)


def test_the_http_cursor_moves_only_on_acceptance_and_retries_back_off_to_a_cap(tmp_path):
    path = tmp_path / "forward.sqlite"
    outbox = ForwardStore(path)
    transport = FakeBatches()
    sender = BatchSender(outbox, transport, "http", batch=2, backoff=Backoff(1, 8), clock_ms=Clock())
    assert sender.step() is None  # nothing to send
    fill(outbox, 3)
    transport.down = True
    assert [sender.step() for _ in range(5)] == [1, 2, 4, 8, 8]
    assert sender.cursor == 0 and sender.status()["backlog"] == 3
    assert "503" in sender.status()["last_error"]
    transport.down = False
    assert sender.step() == 0 and sender.step() == 0 and sender.step() is None
    assert transport.got == [["k0", "k1"], ["k2"]]
    assert sender.status()["backlog"] == 0 and sender.status()["delivered"] == 3
    fill(outbox, 1, start=3)
    outbox.close()  # "SIGKILL": the next process starts at the persisted cursor
    outbox = ForwardStore(path)
    again = BatchSender(outbox, transport, "http", clock_ms=Clock())
    again.step()
    assert transport.got[-1] == ["k3"]
    outbox.close()


def test_the_same_key_is_kept_once_and_a_new_transport_starts_after_what_is_there(outbox):
    fill(outbox, 2)
    fill(outbox, 3)  # k0, k1 again: ignored
    assert [r.key for r in outbox.after(0, 10)] == ["k0", "k1", "k2"]
    assert BatchSender(outbox, FakeBatches(), "late", clock_ms=Clock()).cursor == outbox.last_seq()
    assert outbox.prune(upto_seq=2, before_ms=T0 + 1) == 2 and outbox.count_after(0) == 1


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, str]] = []

    def publish(self, topic: str, payload: bytes) -> int:
        self.sent.append((len(self.sent) + 1, topic, orjson.loads(payload)["key"]))
        return len(self.sent)


def test_mqtt_records_go_once_per_process_and_the_cursor_follows_the_acks_in_order(tmp_path):
    path = tmp_path / "forward.sqlite"
    outbox = ForwardStore(path)
    pub = FakePublisher()
    sender = AckSender(
        outbox, pub, "mqtt", "mqtt://up", "up/{site}/{kind}", persist_every_s=0, clock_ms=Clock()
    )
    fill(outbox, 3)
    assert sender.pump() == 3 and sender.pump() == 0
    assert [t for _, t, _ in pub.sent] == ["up/site-a/raise"] * 3
    sender.on_ack(2)
    sender.persist()
    assert sender.cursor_value() == 0  # the first is still in flight
    sender.on_ack(1)
    sender.persist()
    outbox.close()  # "SIGKILL" with the third unacknowledged
    outbox = ForwardStore(path)
    pub2 = FakePublisher()
    AckSender(outbox, pub2, "mqtt", "mqtt://up", "up/{site}/{kind}", clock_ms=Clock()).pump()
    assert [k for _, _, k in pub2.sent] == ["k2"]
    outbox.close()


# ---- settings


def test_forward_settings_refuse_what_cannot_work(tmp_path):
    assert forward_sensor_ids("a/x, b/y ,a/x") == [("a", "x"), ("b", "y")]
    with pytest.raises(ValueError, match="not site/sensor"):
        forward_sensor_ids("a-x")
    with pytest.raises(ValueError, match="needs the signing secret"):
        Settings(forward_http_url="https://up.example/in")
    with pytest.raises(ValueError, match="at least 16"):
        Settings(forward_http_url="https://up.example/in", forward_secret="short")
    secret = tmp_path / "secret"
    secret.write_text("0123456789abcdef0123\n")
    s = Settings(forward_http_url="https://up.example/in", forward_secret_file=secret)
    assert s.forward_signing_secret() == b"0123456789abcdef0123" and s.forward_enabled
    with pytest.raises(ValueError, match="needs a target"):
        Settings(forward_sensors="a/x")
    assert not Settings().forward_enabled


# ---- wiring and the route


def test_bootstrap_wires_forwarding_only_when_configured_and_the_status_is_for_all_sites_readers(tmp_path):
    from tests.support.api_rig import api_rig
    from tests.unit.conftest import make_registry

    registry = make_registry()
    site, sensor = registry.sites[0].id, registry.sites[0].sensors[0].id
    with api_rig(tmp_path / "off", registry) as api, api.client() as client:
        assert api.service.alarms.forwarder is None
        assert client.get("/api/v1/forward/status").status_code == 404
    on = {"forward_mqtt_url": "mqtt://127.0.0.1:1", "forward_sensors": f"{site}/{sensor}"}
    with api_rig(tmp_path / "on", registry, clock=lambda: T0, **on) as api:
        forwarder = api.service.alarms.forwarder
        assert forwarder is not None
        try:
            with api.client("li") as client:  # an operator of one site
                assert client.get("/api/v1/forward/status").status_code == 403
            with api.client() as client:
                status = client.get("/api/v1/forward/status").json()
            assert status["summary_sensors"] == [f"{site}/{sensor}"]
            assert status["summary_next_minute_ms"] == T0
            assert [(t["name"], t["backlog"], t["connected"]) for t in status["transports"]] == [
                ("mqtt", 0, False)
            ]
            assert api.service.alarms.health()["forward"]["transports"]["mqtt"]["backlog"] == 0
        finally:
            forwarder.outbox.close()
    bad = {"forward_mqtt_url": "mqtt://h", "forward_sensors": f"{site}/nope"}
    with (
        pytest.raises(ValueError, match="registry does not have"),
        api_rig(tmp_path / "bad", registry, **bad),
    ):
        pass


def test_the_http_transport_signs_the_exact_bytes_sends_url_credentials_as_basic_auth_and_counts_only_2xx():
    import httpx

    from alerts.forward.http_out import ForwardError, HttpForwardTransport

    secret = b"0123456789abcdef"
    seen: list[httpx.Request] = []
    status = [204]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status[0], text="busy")

    t = HttpForwardTransport(
        "https://plat:pw@up.example/in?tenant=7", "plant-a", secret, clock=lambda: 1_795_392_000.0,
        transport=httpx.MockTransport(handler),
    )  # fmt: skip
    t.deliver([b'{"key":"k1"}'])
    r = seen[0]
    assert str(r.url) == "https://up.example/in?tenant=7" and r.headers["Authorization"].startswith("Basic ")
    assert verify(
        secret, r.headers["X-Hazmon-Timestamp"], r.content, r.headers["X-Hazmon-Signature"], 1_795_392_000
    )
    assert orjson.loads(r.content) == {"sender": "plant-a", "records": [{"key": "k1"}]}
    status[0] = 503
    with pytest.raises(ForwardRefused) as refused:
        t.deliver([b'{"key":"k2"}'])
    assert refused.value.status == 503 and "pw" not in str(refused.value)
    assert t.name == "http https://up.example/in" and isinstance(refused.value, ForwardError)
    t.close()
