"""Reports from a real service (issue 13 item 6): hazmon with Mosquitto, InfluxDB and Kannel, a
gateway raising critical gas alarms (texted through Kannel), a disposal, an acknowledgement and a
silent gateway (an outage); then the district's report asked through the API, made on the worker,
downloaded in all three formats, its PDF pages rendered to PNG (artifacts/reports/), and its figures
compared with what the API answers for the same period: /alarm-metrics, /disposals/summary,
/kpis and /sms/messages (as a supervisor of that district).
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
import yaml

from tests.support.events import wait_for
from tests.support.sms import OPERATOR, SITE
from tests.support.smsservers import ensure_kannel_installed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CITY, DISTRICT = "江门市", "江海区"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "reports"


@pytest.fixture(scope="module", autouse=True)
def _kannel_installed():
    ensure_kannel_installed()


def _in_district(registry: Path) -> None:
    doc = yaml.safe_load(registry.read_text(encoding="utf-8"))
    doc["sites"][0] |= {"city": CITY, "district": DISTRICT, "province": "广东省"}
    registry.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


def _publish(rig, values: dict[str, float], age_ms: int = 0) -> None:
    rig.pub.publish_readings(SITE, "gds-01", rig.clock() - age_ms, values)
    rig.pub.wait_all_acked()


def test_a_district_report_of_a_real_service_equals_the_api_and_renders_in_three_formats(rig_factory):
    rig = rig_factory([("operator", 0)])  # a critical alarm texts the operator at once
    _in_district(rig.registry)
    supervisor = rig.svc.create_user("sup-jh", "supervisor", "--city", CITY, "--district", DISTRICT)
    stranger = rig.svc.create_user("view-fs", "viewer", "--city", "佛山市")
    rig.svc.start()
    svc = rig.svc
    from_ms = int(time.time() * 1000) - 60_000  # the ramp stamps its readings over the seconds before
    # the baseline is stamped before the ramp's first step: the engine drops a reading no newer
    # than its sensor's last, and the ramp stamps its steps over the 5.2 s before it is sent
    _publish(rig, {"GT-101": 5.0, "GT-102": 5.0, "GT-103": 5.0}, age_ms=10_000)
    rig.ramp(["GT-101", "GT-102"])
    alarms = wait_for(rig.alarms, lambda a: len([x for x in a if x["level"] == "HH"]) == 2, timeout_s=30)
    rig.inbox.wait(OPERATOR, 1)
    first, second = sorted(a["alarm_id"] for a in alarms if a["level"] == "HH")
    body = {"cause": "process", "action": "关闭进料阀", "person": "值班长"}
    assert svc.post(f"/api/v1/alarms/{first}/dispose", body).status_code == 200
    assert svc.post(f"/api/v1/alarms/{second}/ack", {}).status_code == 200
    # the gateway falls silent: a communication loss (STALE), then it comes back with normal values
    wait_for(rig.alarms, lambda a: any(x["kind"] == "STALE" for x in a), timeout_s=90, interval_s=0.5)
    time.sleep(3)  # an outage of a few seconds
    # back at the gateway's period: the engine holds a lone jump from the alarm level as a possible
    # spike until the next sample confirms it, so the return takes two readings
    _publish(rig, {"GT-101": 5.0, "GT-102": 5.0, "GT-103": 5.0})
    time.sleep(1)
    _publish(rig, {"GT-101": 5.0, "GT-102": 5.0, "GT-103": 5.0})
    wait_for(rig.alarms, lambda a: not any(x["kind"] == "STALE" and x["active"] for x in a), timeout_s=30)

    def texts():
        return svc.get("/api/v1/sms/messages?limit=5000", token=supervisor).json()["data"]

    # settled (the receipts in) before the report, so the API's answers later are the same
    wait_for(texts, lambda m: m and all(x["state"] in ("delivered", "failed") for x in m), timeout_s=30)
    to_ms = int(time.time() * 1000)
    time.sleep(0.05)

    asked = svc.post(
        "/api/v1/reports",
        {
            "level": "district",
            "name": DISTRICT,
            "city": CITY,
            "period": "custom",
            "from": from_ms,
            "to": to_ms,
        },
    )
    assert asked.status_code == 202, asked.text
    rid = asked.json()["id"]
    row = wait_for(lambda: svc.get(f"/api/v1/reports/{rid}").json(), lambda r: r["state"] != "pending", 30)
    assert row["state"] == "ready", row
    k = row["summary"]
    assert (k["sites"], k["raises_critical"], k["disposals_done"]) == (1, 2, 1)
    assert k["disposals_asked"] >= 2  # the two critical alarms, and the silent gateway's (high) if it was
    assert k["outages"] >= 1 and k["outage_minutes"] > 0 and k["operator_actions"] >= 2

    # the same figures as the API's, for the same period
    q = f"from={from_ms}&to={to_ms}"
    metrics = svc.get(f"/api/v1/alarm-metrics?{q}").json()  # the district is every site here
    assert (k["raises"], k["peak_per_10min"], k["standing"], k["chattering"]) == (
        metrics["raises"],
        metrics["peak_per_10min"],
        metrics["standing"],
        metrics["chattering"],
    )
    assert k["average_per_10min"] == round(metrics["average_per_10min"], 4)
    assert k["top10_share"] == round(metrics["top10_share"], 4)
    assert k["flood_share_max"] == round(max(metrics["flood_share"].values(), default=0.0), 4)
    assert k["raises_critical"] == round(metrics["priorities"]["critical"] * metrics["raises"])
    (summary,) = svc.get(f"/api/v1/disposals/summary?by=district&{q}").json()["data"]
    for name in ("asked", "done", "late", "open", "overdue"):
        assert k[f"disposals_{name}"] == summary[name], name
    assert (k["disposals_in_time_ratio"], k["disposal_median_minutes"]) == (
        summary["in_time_ratio"],
        summary["median_minutes"],
    )
    kpis = svc.get(f"/api/v1/kpis?district={DISTRICT}&city={CITY}&{q}").json()
    assert kpis["kpis"] == k
    theirs = svc.get(f"/api/v1/kpis?district={DISTRICT}&city={CITY}&{q}", token=supervisor).json()
    assert theirs["kpis"] == k and theirs["sites"] == kpis["sites"]
    assert svc.get(f"/api/v1/kpis?district={DISTRICT}&city={CITY}", token=stranger).status_code == 404
    states = Counter(m["state"] for m in texts() if from_ms <= m["created_ms"] < to_ms)
    assert k["sms_messages"] == sum(states.values()) >= 1
    assert (k["sms_sent"], k["sms_delivered"], k["sms_failed"]) == (
        states["sent"],
        states["delivered"],
        states["failed"],
    )
    assert k["sms_pending"] == states["ready"] + states["sending"]

    # the three files, in the caller's scope only
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    files = {}
    for fmt in ("csv", "xlsx", "pdf"):
        r = svc.get(f"/api/v1/reports/{rid}/{fmt}")
        assert r.status_code == 200 and len(r.content) == row["files"][fmt]["bytes"], fmt
        files[fmt] = r.content
        (ARTIFACTS / f"district-report.{fmt}").write_bytes(r.content)
        assert svc.get(f"/api/v1/reports/{rid}/{fmt}", token=stranger).status_code == 404
    missing = svc.get("/api/v1/reports/r0000000000000000", token=stranger)
    assert svc.get(f"/api/v1/reports/{rid}", token=stranger).json() == missing.json()
    assert rid in [r["id"] for r in svc.get("/api/v1/reports", token=supervisor).json()["data"]]
    assert svc.get("/api/v1/reports", token=stranger).json()["count"] == 0

    rows = list(csv.reader(io.StringIO(files["csv"].decode("utf-8-sig"))))
    in_csv = {row[1]: row[2] for row in rows if len(row) == 3 and row[1] in k}
    assert in_csv == {key: "" if v is None else str(v) for key, v in k.items()}
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(files["xlsx"]))["概要 Summary"]
    assert {r[1]: r[2] for r in sheet.iter_rows(values_only=True) if r[1] in k} == k

    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(files["pdf"])
    text = ""
    for i in range(len(doc)):
        image = doc[i].render(scale=1.5).to_pil()
        image.save(ARTIFACTS / f"district-report-{i + 1}.png")
        low, high = image.convert("L").getextrema()
        assert low < 64 and high > 200, f"page {i + 1} is blank"
        text += "".join(doc[i].get_textpage().get_text_range().split())
    assert f"{CITY}{DISTRICT}报表" in text and "短信测试罐区" in text
    for key in ("raises", "raises_critical", "disposals_asked", "sms_messages"):
        assert f"{key}{k[key]}" in text, key  # the summary's key and value, side by side


def test_the_daily_report_of_a_200_site_district_takes_under_10_s_and_equals_the_api(
    tmp_path, mosquitto, influx
):
    """The acceptance of issue 13 item 6: a real hazmon whose journal holds a generated day of a
    200-site district (tests/support/report_day.py, what `make bench-report` times) makes that day's
    report in all three formats in under 10 s from the request, and its figures are the API's."""
    import random

    import orjson

    from alerts.book.sqlite_journal import AlarmJournal
    from alerts.reports.periods import day_period
    from tests.support.report_day import dispose_most, make_day, make_sites, registry_doc
    from tests.support.service import HazmonProcess

    sites = make_sites(200)
    day = day_period(date(2026, 12, 3))
    registry = tmp_path / "registry.json"
    registry.write_bytes(orjson.dumps(registry_doc(sites)))
    svc = HazmonProcess(tmp_path / "hazmon", registry, mosquitto.url, influx.url, HAZMON_REPORT_LEVELS="none")
    journal = AlarmJournal(svc.workdir / "data" / "alarms.sqlite", disposal_due_min=30)
    rng = random.Random(3)
    make_day(journal, sites, day.start_ms, 40, rng)
    dispose_most(journal, day.start_ms, rng)
    journal.close()
    svc.start()
    try:
        started = time.monotonic()
        asked = svc.post(
            "/api/v1/reports", {"level": "district", "name": DISTRICT, "city": CITY, "day": "2026-12-03"}
        )
        assert asked.status_code == 202, asked.text
        rid = asked.json()["id"]
        row = wait_for(
            lambda: svc.get(f"/api/v1/reports/{rid}").json(), lambda r: r["state"] != "pending", 30, 0.05
        )
        took = time.monotonic() - started
        assert row["state"] == "ready", row
        assert took < 10, f"the 200-site daily report took {took:.1f} s"
        k = row["summary"]
        assert k["sites"] == 200 and k["raises"] > 8000 and k["early_warnings_crossed"] == 200

        q = f"from={day.start_ms}&to={day.end_ms}"
        metrics = svc.get(f"/api/v1/alarm-metrics?{q}").json()
        assert (k["raises"], k["peak_per_10min"], k["standing"], k["chattering"]) == (
            metrics["raises"], metrics["peak_per_10min"], metrics["standing"], metrics["chattering"]
        )  # fmt: skip
        assert (k["average_per_10min"], k["top10_share"]) == (
            round(metrics["average_per_10min"], 4),
            round(metrics["top10_share"], 4),
        )
        assert k["flood_share_max"] == round(max(metrics["flood_share"].values()), 4)
        (summary,) = svc.get(f"/api/v1/disposals/summary?by=district&{q}").json()["data"]
        assert [k[f"disposals_{n}"] for n in ("asked", "done", "late", "open", "overdue")] == [
            summary[n] for n in ("asked", "done", "late", "open", "overdue")
        ]
        assert (k["disposals_in_time_ratio"], k["disposal_median_minutes"]) == (
            summary["in_time_ratio"],
            summary["median_minutes"],
        )
        kpis = svc.get(f"/api/v1/kpis?district={DISTRICT}&city={CITY}&{q}").json()
        assert kpis["kpis"] == k and len(kpis["sites"]) == 200

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        import pypdfium2 as pdfium

        for fmt in ("csv", "xlsx", "pdf"):
            r = svc.get(f"/api/v1/reports/{rid}/{fmt}")
            assert r.status_code == 200 and len(r.content) == row["files"][fmt]["bytes"]
            (ARTIFACTS / f"district-200-sites.{fmt}").write_bytes(r.content)
        doc = pdfium.PdfDocument(ARTIFACTS / "district-200-sites.pdf")
        assert len(doc) >= 5  # a line per site
        text = ""
        for i in range(len(doc)):
            image = doc[i].render(scale=1).to_pil()
            image.save(ARTIFACTS / f"district-200-sites-{i + 1}.png")
            assert image.convert("L").getextrema()[0] < 64, f"page {i + 1} is blank"
            text += "".join(doc[i].get_textpage().get_text_range().split())
        assert f"{CITY}{DISTRICT}日报2026-12-03" in text and f"raises{k['raises']}" in text
        assert all(s.name in text for s in sites)  # every site's line, its Chinese name embedded
    finally:
        svc.stop()
