"""Reports (issue 13 item 6): periods, the pure model (early-warning outcomes, outages, disposals,
SMS, the EEMUA figures of alerts/metrics.py), the CSV and XLSX files, and the API's scope rules.
The PDF is rendered to images in the deep test below and in tests/integration/test_reports.py."""

from __future__ import annotations

import csv
import io
import time as wall
from datetime import date, time
from zoneinfo import ZoneInfo

import pytest

from alerts.book.disposals import Disposal
from alerts.book.records import HistoryEntry
from alerts.engine.conditions import ConditionChange, ConditionKind, Priority
from alerts.metrics import eemua_report
from alerts.reports import service as report_service
from alerts.reports.layout import tables
from alerts.reports.model import ReportScope, build_report, sites_in, summary
from alerts.reports.periods import day_period, ended_shifts, last_day, parse_shifts, shift_period
from alerts.reports.renderers import render_csv, render_pdf, render_xlsx
from alerts.reports.service import scope_groups
from sensors.model import Registry, Site
from tests.support.api_rig import api_rig
from tests.unit.conftest import make_registry

MIN = 60_000
SH = ZoneInfo("Asia/Shanghai")
DAY = day_period(date(2026, 12, 3))
T0 = DAY.start_ms


def _sites() -> list[Site]:
    return [
        Site("jh-1", "江海化工一厂", "chemical", 2, (), district="江海区", city="江门市", province="广东省"),
        Site("jh-2", "江海储罐区", "chemical", 3, (), district="江海区", city="江门市", province="广东省"),
        Site("pj-1", "蓬江仓库", "chemical", 3, (), district="蓬江区", city="江门市", province="广东省"),
    ]


class Journal:
    """History rows made in time order, as the journal keeps them."""

    def __init__(self) -> None:
        self.rows: list[HistoryEntry] = []

    def add(self, t: int, aid: str, site: str, source: str, kind: str, typ: str = "AlarmRaised", **d) -> None:
        scope = "device" if source.startswith("gw") else "sensor"
        self.rows.append(HistoryEntry(len(self.rows) + 1, t, t, aid, (site, scope, source, kind), typ, d))


def test_a_day_is_the_local_calendar_day_and_shifts_run_to_the_next_start():
    assert (DAY.start_ms, DAY.end_ms - DAY.start_ms) == (1796227200000, 86_400_000)  # 2026-12-03 00:00 +08:00
    shifts = parse_shifts("20:00, 08:00")
    assert shifts == (time(8), time(20))
    night = shift_period(date(2026, 12, 3), time(20), shifts)
    assert (night.start_ms - T0, night.end_ms - T0, night.label) == (
        20 * 3_600_000,
        32 * 3_600_000,
        "2026-12-03 20:00-08:00",
    )
    now = T0 + 33 * 3_600_000  # 2026-12-04 09:00 local
    assert [p.label for p in ended_shifts(now, shifts)] == [
        "2026-12-03 08:00-20:00",
        "2026-12-03 20:00-08:00",
    ]
    assert last_day(now).label == "2026-12-03"
    for bad in ("8", "25:00", "08:00,08:00"):
        with pytest.raises(ValueError):
            parse_shifts(bad)


def test_scopes_cover_their_places_and_a_district_is_of_its_city():
    sites = [*_sites(), Site("x", "同名区", "chemical", 3, (), district="江海区", city="别的市")]
    assert [s.id for s in sites_in(ReportScope("district", "江海区", "江门市"), sites)] == ["jh-1", "jh-2"]
    assert [s.id for s in sites_in(ReportScope("city", "江门市"), sites)] == ["jh-1", "jh-2", "pj-1"]
    assert [s.key for s in scope_groups("district", sites)] == [
        "district|江门市|江海区",
        "district|江门市|蓬江区",
        "district|别的市|江海区",
    ]
    with pytest.raises(ValueError):
        ReportScope("city")


def _report(j: Journal, disposals=(), sms=None, as_of=DAY.end_ms + 5 * MIN):
    scope = ReportScope("district", "江海区", "江门市")
    return build_report(scope, sites_in(scope, _sites()), DAY, as_of, j.rows, list(disposals), [], sms)


def test_early_warnings_are_judged_crossed_cleared_or_open():
    j = Journal()
    j.add(T0 + 10 * MIN, "A1", "jh-1", "LT-1", "EARLY_WARNING", level="HH", priority="medium")
    j.add(T0 + 20 * MIN, "A2", "jh-1", "LT-1", "H", level="H", priority="medium")  # not as far as HH
    j.add(T0 + 30 * MIN, "A3", "jh-1", "LT-1", "HH", level="HH", priority="high")  # the forecast came true
    j.add(T0 + 40 * MIN, "A4", "jh-1", "LT-2", "EARLY_WARNING", level="H", priority="low")
    j.add(T0 + 50 * MIN, "A4", "jh-1", "LT-2", "EARLY_WARNING", "AlarmReturnedToNormal")
    j.add(T0 + 70 * MIN, "A5", "jh-1", "LT-2", "L", level="L", priority="medium")  # other direction
    j.add(T0 + 80 * MIN, "A6", "jh-2", "PT-1", "EARLY_WARNING", level="LL", priority="low")
    j.add(T0 - 60 * MIN, "A7", "jh-2", "PT-2", "EARLY_WARNING", level="H")  # raised the day before
    j.add(T0 + 90 * MIN, "A8", "pj-1", "PT-1", "EARLY_WARNING", level="H")  # another district
    r = _report(j)
    assert [(w.alarm_id, w.outcome, w.crossed_level) for w in r.early_warnings] == [
        ("A1", "crossed", "HH"),
        ("A4", "cleared", None),
        ("A6", "open", None),
    ]
    k = summary(r)
    assert (k["early_warnings"], k["early_warnings_crossed"], k["early_warnings_open"]) == (3, 1, 1)


def test_outages_overlapping_the_day_count_their_minutes_inside_it():
    j = Journal()
    j.add(T0 - 30 * MIN, "S1", "jh-1", "gw-1", "STALE", priority="high")  # began the evening before
    j.add(T0 + 15 * MIN, "S1", "jh-1", "gw-1", "STALE", "AlarmReturnedToNormal")
    j.add(T0 + 60 * MIN, "S2", "jh-2", "LT-9", "STALE", priority="medium")
    j.add(T0 + 100 * MIN, "S2", "jh-2", "LT-9", "STALE", "AlarmReturnedToNormal")
    j.add(DAY.end_ms - 10 * MIN, "S3", "jh-2", "gw-2", "STALE", priority="high")  # still silent
    j.add(T0 - 90 * MIN, "S4", "jh-1", "LT-3", "STALE")
    j.add(T0 - 80 * MIN, "S4", "jh-1", "LT-3", "STALE", "AlarmReturnedToNormal")  # over before the day
    r = _report(j)
    assert [(o.alarm_id, o.scope, o.minutes, o.ended_ms is None) for o in r.outages] == [
        ("S1", "device", 15.0, False),
        ("S2", "sensor", 40.0, False),
        ("S3", "device", 10.0, True),
    ]
    assert summary(r)["outage_minutes"] == 65.0


def test_the_eemua_figures_are_those_of_alerts_metrics_and_priorities_count_raises():
    j = Journal()
    for k in range(12):  # a flood at jh-1: 12 raises in 6 minutes
        j.add(T0 + 60 * MIN + k * 30_000, f"F{k}", "jh-1", f"GT-{k % 3}", "H", priority="high")
    j.add(T0 + 200 * MIN, "C1", "jh-2", "GT-9", "HH", priority="critical")
    j.add(T0 + 210 * MIN, "X1", "pj-1", "GT-1", "HH", priority="critical")  # outside the district
    r = _report(j)
    mine = [h for h in j.rows if h.key[0] != "pj-1"]
    expected = eemua_report(mine, DAY.start_ms, DAY.end_ms)
    k = summary(r)
    assert (k["raises"], k["peak_per_10min"], k["top10_share"]) == (13, 12, round(expected.top10_share, 4))
    assert k["flood_share_max"] == round(max(expected.flood_share.values()), 4) > 0
    assert (k["raises_high"], k["raises_critical"], k["sites_in_flood"]) == (12, 1, 1)
    assert r.by_kind == {"H": 12, "HH": 1}
    assert [s.raises for s in r.sites] == [12, 1]


def test_disposals_and_sms_are_counted_as_of_the_report():
    def disposal(aid: str, raised: int, done: int | None, site: str = "jh-1") -> Disposal:
        return Disposal(aid, site, "sensor", "S", "HH", 3, "HH", T0 + raised, T0 + raised + 30 * MIN,
                        None if done is None else T0 + done)  # fmt: skip

    ds = [
        disposal("D1", 0, 10 * MIN),  # in time, 10 min
        disposal("D2", 0, 50 * MIN),  # late, 50 min
        disposal("D3", 0, None),  # overdue at as_of
        disposal("D4", 24 * 60 * MIN - 10 * MIN, None),  # open: due 20 min after midnight
        disposal("D5", 0, None, site="pj-1"),  # another district
    ]
    sms = [{"state": s} for s in ("sent", "delivered", "delivered", "failed", "ready", "sending")]
    k = summary(_report(Journal(), ds, sms))
    assert [k[f"disposals_{x}"] for x in ("asked", "done", "late", "open", "overdue")] == [4, 1, 1, 1, 1]
    assert (k["disposals_in_time_ratio"], k["disposal_median_minutes"]) == (0.5, 30.0)
    assert [k[f"sms_{x}"] for x in ("messages", "sent", "delivered", "failed", "pending")] == [6, 1, 2, 1, 2]
    assert summary(_report(Journal()))["sms_messages"] is None  # SMS off


def test_the_csv_has_a_bom_and_every_section_and_the_xlsx_a_sheet_per_section():
    j = Journal()
    j.add(T0 + 10 * MIN, "A1", "jh-1", "LT-1", "HH", level="HH", priority="high")
    r = _report(j, [], [{"state": "sent"}])
    data = render_csv(r)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["报表 report", "江门市江海区 日报 2026-12-03"]
    titles = [row[0] for row in rows if row and row[0].startswith("# ")]
    assert titles == [f"# {t.title}" for t in tables(r)]
    assert ["高 high", "raises_high", "1"] in rows and any("江海化工一厂" in row for row in rows)
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(render_xlsx(r)))
    assert wb.sheetnames == [t.name for t in tables(r)]
    values = {row[1]: row[2] for row in wb["概要 Summary"].iter_rows(values_only=True) if row[1]}
    assert (values["raises"], values["sms_sent"]) == (1, 1)


@pytest.mark.deep
def test_the_pdf_embeds_the_cjk_font_and_renders_pages_with_the_figures():
    import pypdfium2 as pdfium

    j = Journal()
    for k in range(300):  # enough rows for several pages
        j.add(T0 + k * MIN, f"A{k}", "jh-1", f"LT-{k % 40}", "H", level="H", priority="medium")
    doc = pdfium.PdfDocument(render_pdf(_report(j)))
    assert len(doc) >= 2
    text = "".join("".join(doc[i].get_textpage().get_text_range().split()) for i in range(len(doc)))
    assert "江门市江海区日报2026-12-03" in text and "江海化工一厂" in text and "300" in text
    page = doc[0].render(scale=1).to_pil().convert("L")
    assert page.getextrema()[0] < 64  # dark glyphs on white: not a blank page


# ---- the API


def _yesterday_ms() -> int:
    return last_day(wall.time_ns() // 1_000_000).start_ms


@pytest.fixture
def rig(tmp_path, monkeypatch):
    # the PDF (about a second) is left to the deep and integration tests
    monkeypatch.setattr(report_service, "RENDERERS", {"csv": render_csv, "xlsx": render_xlsx})
    base = make_registry()
    site0 = Site("site-0", "站0", "chemical", 2, base.sites[0].sensors, city="江门市", district="江海区")
    site1 = Site("site-1", "站1", "chemical", 2, base.sites[1].sensors, city="江门市", district="蓬江区")
    with api_rig(tmp_path, Registry((site0, site1)), report_levels="none") as api:
        yield api


def _raise(
    book, site: str, sensor: str, kind: ConditionKind, t: int, prio: Priority, level: str = ""
) -> None:
    book.on_changes([ConditionChange(site, sensor, kind, True, t, prio, level or kind.name)], t)


def _wait_ready(client, rid: str, timeout_s: float = 30.0) -> dict:
    deadline = wall.monotonic() + timeout_s
    while wall.monotonic() < deadline:
        row = client.get(f"/api/v1/reports/{rid}").json()
        if row["state"] != "pending":
            return row
        wall.sleep(0.02)
    raise AssertionError(f"report {rid} still pending after {timeout_s} s")


def test_a_report_asked_twice_is_made_once_and_its_figures_are_the_kpis_and_metrics(rig):
    book = rig.service.alarms.book
    y = _yesterday_ms()
    _raise(book, "site-0", "S0", ConditionKind.HH, y + 60 * MIN, Priority.HIGH)
    _raise(book, "site-0", "S1", ConditionKind.EARLY_WARNING, y + 70 * MIN, Priority.MEDIUM, "HH")
    _raise(book, "site-1", "S0", ConditionKind.H, y + 80 * MIN, Priority.MEDIUM)
    body = {"level": "district", "name": "江海区", "city": "江门市", "period": "day"}
    with rig.client("zhang") as c:
        first = c.post("/api/v1/reports", json=body)
        assert first.status_code == 202, first.text
        row = _wait_ready(c, first.json()["id"])
        assert row["state"] == "ready" and set(row["files"]) == {"csv", "xlsx"}
        again = c.post("/api/v1/reports", json=body)
        assert again.status_code == 200 and again.json()["id"] == row["id"]
        assert [r["id"] for r in c.get("/api/v1/reports").json()["data"]] == [row["id"]]
        start, end = row["period"]["start_ms"], row["period"]["end_ms"]
        kpis = c.get(f"/api/v1/kpis?district=江海区&city=江门市&from={start}&to={end}").json()
        assert kpis["kpis"] | {"disposals_open": 0, "disposals_overdue": 0} == row["summary"] | {
            "disposals_open": 0,
            "disposals_overdue": 0,
        }  # states may move on between the two
        assert (row["summary"]["raises"], row["summary"]["early_warnings"]) == (2, 1)
        download = c.get(f"/api/v1/reports/{row['id']}/csv")
        assert download.status_code == 200 and download.content.startswith(b"\xef\xbb\xbf")
        assert "站0" in download.content.decode("utf-8-sig")
        assert c.get(f"/api/v1/reports/{row['id']}/pdf").status_code == 409  # not rendered in this rig
        whole = c.post("/api/v1/reports", json={"level": "all", "period": "day"})
        metrics = c.get(f"/api/v1/alarm-metrics?from={start}&to={end}").json()
        full = _wait_ready(c, whole.json()["id"])["summary"]
        assert (
            (full["raises"], full["peak_per_10min"], full["top10_share"])
            == (
                metrics["raises"],
                metrics["peak_per_10min"],
                round(metrics["top10_share"], 4),
            )
            == (3, 1, 1.0)
        )


def test_reports_and_kpis_outside_the_callers_scope_are_404_like_missing_ones(rig):
    with rig.client("zhang") as admin:
        rid = admin.post("/api/v1/reports", json={"level": "site", "name": "site-1"}).json()["id"]
        mine = admin.post("/api/v1/reports", json={"level": "site", "name": "site-0"}).json()["id"]
        _wait_ready(admin, rid)
        _wait_ready(admin, mine)
    with rig.client("li") as li:  # an operator of site-0 only
        assert [r["id"] for r in li.get("/api/v1/reports").json()["data"]] == [mine]
        missing = li.get("/api/v1/reports/r0000000000000000")
        for path in (f"/api/v1/reports/{rid}", f"/api/v1/reports/{rid}/csv"):
            r = li.get(path)
            assert (r.status_code, r.json()) == (404, missing.json())
        assert li.get(f"/api/v1/reports/{mine}/xlsx").status_code == 200
        assert li.post("/api/v1/reports", json={"level": "district", "name": "蓬江区"}).status_code == 404
        assert li.post("/api/v1/reports", json={"level": "site", "name": "nowhere"}).status_code == 404
        assert li.get("/api/v1/kpis?city=江门市").status_code == 404  # site-0's city, but site-1's too
        assert li.get("/api/v1/kpis?site=site-1").status_code == 404
        assert li.get("/api/v1/kpis").status_code == 403
        assert li.get("/api/v1/kpis?site=site-0").json()["kpis"]["sites"] == 1
        tomorrow = {"level": "site", "name": "site-0", "period": "day", "day": "2100-01-01"}
        assert li.post("/api/v1/reports", json=tomorrow).status_code == 422


def test_the_schedule_asks_for_each_scope_once_and_drops_what_is_past_the_retention(
    rig, tmp_path, monkeypatch
):
    from alerts.reports.service import ReportService
    from alerts.reports.store import ReportStore

    monkeypatch.setattr(report_service, "RENDERERS", {"csv": render_csv})  # eight reports: keep it quick

    now = [DAY.end_ms + 9 * 3_600_000]  # 2026-12-04 09:00 local: yesterday and two shifts have ended
    reports = ReportService(
        ReportStore(tmp_path / "reports"),
        rig.service.registry.sites,
        rig.service.alarms.journal,
        shifts=parse_shifts("08:00,20:00"),
        levels=("site", "district"),
        keep_days=2,
        clock=lambda: now[0],
    )
    try:
        work = reports.scheduled()
        for w in work:
            w.result(timeout=10)
        made = reports.store.list()
        assert len(work) == len(made) == 2 * 3 + 2  # per site a day and two shifts; two districts
        assert {r.state for r in made} == {"ready"} and {r.requested_by for r in made} == {"system"}
        assert sorted({r.period.label for r in made}) == [
            "2026-12-03",
            "2026-12-03 08:00-20:00",
            "2026-12-03 20:00-08:00",
        ]
        assert reports.scheduled() == []  # idempotent: a second run, or a restart, makes nothing again
        old = made[0]
        now[0] += 5 * 86_400_000
        for w in reports.scheduled():
            w.result(timeout=10)
        assert reports.store.get(old.id) is None and not reports.store.file(old.id, "csv").exists()
    finally:
        reports.stop()


def test_a_report_waits_while_ingest_is_behind_but_not_longer_than_max_pause(rig, tmp_path, monkeypatch):
    from alerts.reports.service import ReportService
    from alerts.reports.store import ReportStore

    monkeypatch.setattr(report_service, "RENDERERS", {"csv": render_csv})
    monkeypatch.setattr(report_service, "PAUSE_STEP_S", 0.01)
    busy = [True]
    reports = ReportService(
        ReportStore(tmp_path / "reports"),
        rig.service.registry.sites,
        rig.service.alarms.journal,
        levels=("site",),
        clock=lambda: DAY.end_ms + 3_600_000,
        pause_while=lambda: busy[0],
    )
    try:
        work = reports.scheduled()
        wall.sleep(0.2)
        assert {r.state for r in reports.store.list()} == {"pending"}  # none made while ingest is behind
        busy[0] = False
        for w in work:
            w.result(timeout=10)
        assert {r.state for r in reports.store.list()} == {"ready"}
    finally:
        reports.stop()
    # waiting is bounded: a report is made after max_pause_s even if ingest never keeps up
    patient = ReportService(
        ReportStore(tmp_path / "reports-2"),
        rig.service.registry.sites,
        rig.service.alarms.journal,
        levels=("site",),
        clock=lambda: DAY.end_ms + 3_600_000,
        pause_while=lambda: True,
        max_pause_s=0.05,
    )
    try:
        for w in patient.scheduled():
            w.result(timeout=10)
        assert {r.state for r in patient.store.list()} == {"ready"}
    finally:
        patient.stop()


def test_reports_rendered_in_a_child_process_are_the_ones_rendered_in_the_service(rig, tmp_path):
    from alerts.reports.service import ReportService, render_all
    from alerts.reports.store import ReportStore

    reports = ReportService(
        ReportStore(tmp_path / "reports"),
        rig.service.registry.sites[:1],
        rig.service.alarms.journal,
        levels=("site",),
        clock=lambda: DAY.end_ms + 3_600_000,
        render_in_process=True,
    )
    try:
        (work,) = reports.scheduled()
        stored = work.result(timeout=60)
        assert stored.state == "ready"
        report = reports.kpis(stored.scope, stored.period)
        here = render_all(report)
        there = {fmt: reports.store.file(stored.id, fmt).read_bytes() for fmt in here}
        assert there["csv"] == here["csv"]  # the same report, whichever process drew it
        assert there["xlsx"].startswith(b"PK")
    finally:
        reports.stop()


def test_the_report_settings_are_checked_when_they_load(tmp_path):
    from pydantic import ValidationError

    from hazmon.config import Settings

    s = Settings(data_dir=tmp_path, rosters=None, shifts="07:30, 15:30,23:30", report_levels="District, city")
    assert s.shift_starts == (time(7, 30), time(15, 30), time(23, 30))
    assert s.report_level_list == ("district", "city")
    off = Settings(data_dir=tmp_path, rosters=None, shifts="none", report_levels="")
    assert (off.shift_starts, off.report_level_list) == ((), ())
    for bad in ({"shifts": "8h"}, {"shifts": "08:00,08:00"}, {"report_levels": "county"}):
        with pytest.raises(ValidationError):
            Settings(data_dir=tmp_path, rosters=None, **bad)
