"""The SMS routes over a bootstrapped service with a fake gateway (tests/support/api_rig.py): a reader
with a narrower scope sees only the texts and rosters of their own sites (issue 11, finding 6)."""

from __future__ import annotations

import pytest

from alerts.engine.conditions import Priority
from alerts.notify.channels.gateway import NamedChannel
from alerts.notify.escalation import Notification
from alerts.notify.roster import Jurisdiction, Person, Roster
from alerts.notify.sms_render import Rendered
from api.auth.model import Scope
from hazmon.bootstrap import Channels
from sensors.model import Registry, Site
from tests.support.api_rig import api_rig, password_of
from tests.support.fake_sms import FakeSmsGateway
from tests.unit.conftest import make_registry

T0 = 1_795_392_000_000
JIANGMEN, ZHUHAI = "+8613800138001", "+8613900139002"


def text_about(site: str, phone: str, i: int) -> tuple[Notification, Rendered]:
    alarm = f"A{i:06d}"
    n = Notification(f"{alarm}/s0/r0/{phone}", alarm, site, 0, 0, "operator", f"p{i}", phone, T0)
    return n, Rendered(f"站{site}", f"{site} 液位高报警", f"{site} level high", Priority.HIGH, T0 + i)


@pytest.fixture
def rig(tmp_path):
    """site-0 in 江门市, site-1 in 珠海市; a text about each; a roster for each city; and 赵, a
    supervisor of 江门市 only."""
    base = make_registry()
    sites = (
        Site("site-0", "站0", "chemical", 2, base.sites[0].sensors, city="江门市", district="江海区"),
        Site("site-1", "站1", "chemical", 2, base.sites[1].sensors, city="珠海市", district="金湾区"),
    )
    channels = Channels((NamedChannel("fake", FakeSmsGateway()),))
    with api_rig(tmp_path, Registry(sites), clock=lambda: T0, channels=channels) as api:
        outbox = api.service.alarms.notifier.outbox
        outbox.enqueue([text_about("site-0", JIANGMEN, 1), text_about("site-1", ZHUHAI, 2)], T0)
        assert len(outbox.plan(T0 + 3_600_000)) == 2
        for city, phone in (("江门市", JIANGMEN), ("珠海市", ZHUHAI)):
            person = Person("p", "值班", phone)
            roster = Roster(
                f"reg-{phone[-4:]}", {"p": person}, {}, name=city, jurisdiction=Jurisdiction(city)
            )
            api.service.alarms.rosters.save(roster, user="test")
        api.auth.create_user(
            "zhao", password_of("zhao"), "supervisor", Scope.jurisdiction("江门市"), actor="t"
        )
        api.tokens["zhao"] = api.auth.create_token("zhao", "test", actor="t")[1]
        yield api


def test_a_city_supervisor_reads_only_the_texts_about_their_city(rig):
    with rig.client("zhao") as client:
        texts = client.get("/api/v1/sms/messages").json()["data"]
        assert [t["phone"] for t in texts] == [JIANGMEN] and "site-1" not in texts[0]["text"]
        assert client.get("/api/v1/sms/messages", params={"phone": ZHUHAI}).json()["count"] == 0
    with rig.client("zhang") as admin:  # all sites: every text
        assert {t["phone"] for t in admin.get("/api/v1/sms/messages").json()["data"]} == {JIANGMEN, ZHUHAI}


def test_a_city_supervisor_sees_only_the_rosters_that_answer_for_their_sites(rig):
    with rig.client("zhao") as client:
        assert [r["name"] for r in client.get("/api/v1/rosters").json()["data"]] == ["江门市"]
    with rig.client("zhang") as admin:
        assert sorted(r["name"] for r in admin.get("/api/v1/rosters").json()["data"]) == ["江门市", "珠海市"]
