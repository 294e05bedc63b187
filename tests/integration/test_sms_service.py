"""SMS in the running service: simulator -> MQTT -> hazmon -> real Kannel -> fake SMSC, and back.

Everything is a real process: Mosquitto, InfluxDB, `hazmon run`, Kannel's bearerbox and smsbox,
and Kannel's fakesmsc as the phone network. Messages are counted where they arrive: at fakesmsc.
Chains are short (seconds, through HAZMON_ROUTING) so the suite stays quick; the logic is the
same as with minutes.
"""

from __future__ import annotations

import time

import orjson
import pytest

from alerts.notify.channels.encoding import DCS_UCS2, reassemble
from sensors.registry import load_registry
from simulators.incidents import parse_incident
from simulators.stream import Simulation
from tests.support.events import MonotonicMs, wait_for
from tests.support.publisher import TestPublisher
from tests.support.service import HazmonProcess
from tests.support.simfeed import SimFeed
from tests.support.sms import (
    LEAD,
    OPERATOR,
    PRINCIPAL,
    SITE,
    ramp,
    write_roster,
    write_routing,
    write_site,
)
from tests.support.smsservers import SmppSimulator, ensure_kannel_installed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

SPEED = 60.0  # simulated seconds per wall second for the simulator's physics


@pytest.fixture(scope="module", autouse=True)
def _kannel_installed():
    ensure_kannel_installed()


def raised_at(alarm: dict) -> float:
    return alarm["raised_ms"] / 1000


def test_simulated_leak_texts_the_operator_once_escalates_and_a_reply_acknowledges_and_stops_it(
    rig_factory, capsys
):
    rig = rig_factory([("operator", 0), ("technical_lead", 0.25), ("principal", 0.75)])
    rig.svc.start()
    leak = parse_incident(f"leak:{SITE}/GT-101@+30s")
    sim = Simulation(load_registry(rig.registry), start_s=time.time(), seed=5, incidents=[leak])
    feed = SimFeed(sim, rig.pub, speed=SPEED).start()
    try:
        (alarm,) = wait_for(rig.alarms, lambda a: len(a) >= 1, timeout_s=90)
    finally:
        feed.stop()
    aid, t_raise = alarm["alarm_id"], raised_at(alarm)
    assert (alarm["source"], alarm["level"], alarm["priority"]) == ("GT-101", "HH", "critical")

    # the operator: exactly one text, with the alarm number to reply with
    (first,) = rig.inbox.wait(OPERATOR, 1)
    assert aid in first.text and "短信测试罐区" in first.text and "GT-101" not in first.text.split("编号")[1]
    # the technical lead after the chain's 15 s, and only then
    (lead,) = rig.inbox.wait(LEAD, 1, timeout_s=40)
    lead_delay = lead.at - t_raise
    assert 15 <= lead_delay < 21, lead_delay

    # the lead replies in Chinese; the alarm is acknowledged under the lead's name
    rig.kannel.send_mo(LEAD, f"确认 {aid}")
    acked = wait_for(lambda: rig.svc.get(f"/api/v1/alarms/{aid}").json(), lambda a: a["state"] == "ACK")
    history = rig.svc.get(f"/api/v1/alarms/{aid}/history").json()["data"]
    ack = next(h for h in history if h["type"] == "AlarmAcknowledged")
    assert "技术员乙 (lead) via SMS" in orjson.dumps(ack).decode()
    replies = rig.inbox.wait(LEAD, 2)
    assert replies[1].text == f"已确认 {aid}"

    # the escalation stopped: the principal (due at 45 s) never hears of it, nobody gets more
    time.sleep(max(0.0, t_raise + 50 - time.time()))
    assert rig.inbox.to(PRINCIPAL) == []
    assert len(rig.inbox.to(OPERATOR)) == 1 and len(rig.inbox.to(LEAD)) == 2
    status = rig.sms_status()
    assert status["gateway_ok"] is True and status["unsent"] == 0
    assert status["backlog"].get("delivered", 0) == 3  # the fake SMSC's DLRs came back
    sent = rig.svc.get(f"/api/v1/sms/messages?phone=%2B{LEAD[1:]}").json()["data"]
    assert [m["kind"] for m in sent] == ["reply", "alarm"] and all(m["state"] == "delivered" for m in sent)
    duty = rig.svc.get(f"/api/v1/sites/{SITE}/on-duty").json()["roles"]
    assert [p["phone"] for p in duty["technical_lead"]["people"]] == [LEAD]
    assert rig.svc.get("/api/v1/rosters").json()["data"][0]["id"] == "sms-duty"
    with capsys.disabled():
        print(  # noqa: T201 - figures for the closing note
            f"\n[sms e2e] raise -> operator {first.at - t_raise:.1f} s, -> lead {lead_delay:.1f} s"
            f" (chain 15 s), acked {acked['state']}, principal 0 texts"
        )


def test_h_and_hh_of_one_detector_arrive_in_one_text_and_one_reply_acknowledges_both(
    rig_factory, tmp_path, capsys
):
    # issue 14 item 2: the H (high) and HH (critical) of GT-101 both escalate to the lead after 12 s
    steps = [("operator", 0), ("technical_lead", 0.2)]
    rig = rig_factory(steps, n_sensors=1, sensor_keys={"limits": {"h": 20, "hh": 40}})
    routing = write_routing(tmp_path / "routing-h-hh.yaml", steps, priorities=("critical", "high"))
    rig.svc.env["HAZMON_ROUTING"] = str(routing)
    rig.svc.start()
    rig.ramp(["GT-101"])
    alarms = wait_for(rig.alarms, lambda a: len(a) >= 2, timeout_s=30)
    by_level = {a["level"]: a["alarm_id"] for a in alarms}
    h, hh = by_level["H"], by_level["HH"]
    t_raise = max(raised_at(a) for a in alarms)

    (text,) = rig.inbox.wait(OPERATOR, 1)
    assert "共 2 条报警" in text.text and h in text.text
    assert text.text.endswith(f"回复\u201c确认 {hh}\u201d确认本条全部报警")

    rig.kannel.send_mo(OPERATOR, f"确认 {hh}")
    for aid in (h, hh):
        wait_for(lambda a=aid: rig.svc.get(f"/api/v1/alarms/{a}").json(), lambda a: a["state"] == "ACK")
    history = rig.svc.get(f"/api/v1/alarms/{h}/history").json()["data"]
    ack = next(e for e in history if e["type"] == "AlarmAcknowledged")
    assert "值班员甲 (op) via SMS" in orjson.dumps(ack).decode()
    answer = rig.inbox.wait(OPERATOR, 2)[1]
    assert answer.text == f"已确认 {hh}; 已确认 {h}(同一测点)"

    # past the lead's step (12 s) for either alarm: nobody else hears of them, nothing comes twice
    time.sleep(max(0.0, t_raise + 16 - time.time()))
    assert rig.inbox.to(LEAD) == [] and rig.inbox.to(PRINCIPAL) == []
    assert len(rig.inbox.to(OPERATOR)) == 2, rig.inbox.all()
    status = rig.sms_status()
    assert status["unsent"] == 0 and status["counters"].get("replies_ok") == 1
    with capsys.disabled():
        print(  # noqa: T201 - figures for the closing note
            f"\n[sms H+HH] one text for 2 alarms, one reply acknowledged 2,"
            f" texts to the lead after its step {len(rig.inbox.to(LEAD))},"
            f" to the operator {len(rig.inbox.to(OPERATOR))} (alarm + answer)"
        )


def test_crashes_around_the_gateway_call_deliver_every_message_exactly_once(rig_factory, capsys):
    # three crashes in one run: after the message is queued (before any send), as it is being
    # sent (marked sending, gateway not called) and right after the gateway took it (no record)
    points = ["sms_after_plan", "sms_before_send", "sms_after_send"]
    rig = rig_factory([("operator", 0), ("technical_lead", 0.1)])
    restarts = []
    for point in points:
        rig.svc.env["HAZMON_CRASH_AT"] = point
        rig.svc.start()
        if not restarts:
            rig.ramp(["GT-101"])
        deadline = time.monotonic() + 60
        while rig.svc.proc.poll() is None:
            assert time.monotonic() < deadline, f"hazmon never reached {point}"
            time.sleep(0.05)
        assert rig.svc.proc.returncode == -9, f"{point}: exit {rig.svc.proc.returncode}"
        log = (rig.svc.workdir / f"hazmon-{rig.svc.starts}.log").read_text()
        assert f"fault injection: SIGKILL at {point}" in log
        restarts.append(point)
    rig.svc.env.pop("HAZMON_CRASH_AT")
    rig.svc.start()
    # both steps' messages arrive; the one left in doubt is settled by its receipt or resent
    rig.inbox.wait(OPERATOR, 1, timeout_s=60)
    rig.inbox.wait(LEAD, 1, timeout_s=60)
    rig.svc.wait_healthy(lambda h: h["alarms"]["sms"]["unsent"] == 0, timeout_s=60)
    time.sleep(3)  # a duplicate would show up now
    assert len(rig.inbox.to(OPERATOR)) == 1 and len(rig.inbox.to(LEAD)) == 1, rig.inbox.all()
    counters = rig.sms_status()["counters"]
    with capsys.disabled():
        print(  # noqa: T201
            f"\n[sms crash] SIGKILLed at {restarts}; at the SMSC: operator {len(rig.inbox.to(OPERATOR))},"
            f" lead {len(rig.inbox.to(LEAD))}; resent in doubt {counters.get('resent_in_doubt', 0)}"
        )


def test_a_flood_of_500_alarms_sends_each_recipient_a_few_merged_texts_that_count_them(rig_factory, capsys):
    rig = rig_factory([("operator", 0), ("technical_lead", 0.25)], n_sensors=500)
    rig.svc.start()
    sensors = [f"GT-{101 + j}" for j in range(500)]
    t0 = time.monotonic()
    for chunk in range(5):  # five waves within the minute
        rig.ramp(sensors[chunk * 100 : (chunk + 1) * 100])
        time.sleep(5)
    wait_for(rig.alarms, lambda a: sum(x["level"] == "HH" for x in a) == 500, timeout_s=30)
    flood_s = time.monotonic() - t0
    assert flood_s < 60

    def covered(phone: str) -> list[int]:
        texts = [m.text for m in rig.inbox.to(phone)]
        return [int(t.split("共 ")[1].split(" 条")[0]) if "共 " in t else 1 for t in texts]

    for phone in (OPERATOR, LEAD):  # every alarm reaches both, merged
        wait_for(lambda p=phone: covered(p), lambda c: sum(c) >= 500, timeout_s=120)
    time.sleep(3)
    summary = {phone: covered(phone) for phone in (OPERATOR, LEAD)}
    for phone, counts in summary.items():
        assert 1 <= len(counts) <= 4 and sum(counts) == 500, (phone, counts)
    assert rig.inbox.to(PRINCIPAL) == []
    with capsys.disabled():
        print(  # noqa: T201
            f"\n[sms flood] 500 alarms in {flood_s:.0f} s -> operator {summary[OPERATOR]},"
            f" lead {summary[LEAD]} alarms per text"
        )


def test_smpp_gateway_by_configuration_texts_and_a_reply_acknowledges(tmp_path, mosquitto, influx):
    registry = write_site(tmp_path / "registry.yaml")
    sim = SmppSimulator(tmp_path / "smsc")
    sim.start()
    svc = HazmonProcess(tmp_path / "hazmon", registry, mosquitto.url, influx.url)
    svc.env.update(
        HAZMON_SMS_GATEWAY="smpp",
        HAZMON_SMPP_PORT=str(sim.port),
        HAZMON_SMPP_PASSWORD="secret",
        HAZMON_ROSTERS=str(write_roster(tmp_path / "rosters.yaml")),
        HAZMON_ROUTING=str(write_routing(tmp_path / "routing.yaml", [("operator", 0)])),
        HAZMON_SMS_URGENT_WAIT_S="1",
    )
    pub = TestPublisher(mosquitto.port, f"gw-{tmp_path.name}")
    try:
        svc.start()
        sim.next_event("bound", timeout_s=15)
        ramp(pub, MonotonicMs(), ["GT-101"])
        parts = [sim.next_event("submit", timeout_s=20)]
        total = int(bytes.fromhex(parts[0]["sm"])[4]) if parts[0]["esm"] & 0x40 else 1
        parts += [sim.next_event("submit") for _ in range(total - 1)]
        assert {p["dst"] for p in parts} == {OPERATOR.lstrip("+")}
        text = reassemble([bytes.fromhex(p["sm"]) for p in parts], DCS_UCS2, has_udh=total > 1)
        assert "A000001" in text
        sim.send_mo(OPERATOR.lstrip("+"), "HAZMON", "1 A000001")
        wait_for(lambda: svc.get("/api/v1/alarms/A000001").json(), lambda a: a["state"] == "ACK")
        reply = sim.next_event("submit", timeout_s=20)
        assert reply["dst"] == OPERATOR.lstrip("+")
        with pytest.raises(TimeoutError):
            sim.next_event("submit", timeout_s=3)  # nothing more: once each
    finally:
        pub.close()
        svc.stop()
        sim.stop()
