"""Accessibility of the console (issue 14): axe-core (vendored in tests/browser/vendor, MPL-2.0) on
every screen, as an operator sees them, in Chinese and in English; no serious or critical violation.
The findings of every run are saved to artifacts/axe.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import GAS_SITE, REPO, TANK_SITE, password

pytestmark = pytest.mark.integration

AXE = Path(__file__).with_name("vendor") / "axe.min.js"
SCREENS = (
    ("alarms", "#/alarms", "#alarm-table[data-loaded='true']"),
    ("overview", "#/sites", "#site-grid[data-loaded='true']"),
    ("site", f"#/sites/{GAS_SITE}", "#site-mimic[data-loaded='true']"),
    ("trend", f"#/sites/{TANK_SITE}/sensors/LT-201", "#trend[data-rendered='true']"),
    ("history", "#/history", "#history-table[data-loaded='true']"),
    ("reports", "#/reports", "#report-table[data-loaded='true']"),
)


AXE_RUN = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(v => ({
  id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ')),
}))"""


def axe_violations(page: Page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate(AXE_RUN)


def test_no_screen_of_the_console_has_a_serious_accessibility_violation(browser, plant):
    plant.ramp(GAS_SITE, "GT-102", top=45.0)  # something on the list, the banner and the tiles
    # the console's CSP allows no inline script: this context lets the test inject axe-core
    context = browser.new_context(bypass_csp=True, timezone_id="Asia/Shanghai", locale="zh-CN")
    try:
        check_every_screen(context.new_page(), plant)
    finally:
        context.close()


def check_every_screen(page: Page, plant) -> None:
    findings: dict[str, list[dict]] = {}
    page.goto(plant.url + "/console/")
    expect(page.locator("#login-form")).to_be_visible()
    findings["login"] = axe_violations(page)
    page.fill("#username", "op-jm")
    page.fill("#password", password("op-jm"))
    page.click("#login-btn")
    expect(page.locator("#alarm-table")).to_have_attribute("data-loaded", "true")
    for lang in ("zh", "en"):
        if lang == "en":
            page.click("#lang-btn")
            expect(page.locator("html")).to_have_attribute("lang", "en")
        for name, hash_, ready in SCREENS:
            page.goto(plant.url + "/console/" + hash_)
            expect(page.locator(ready)).to_have_count(1, timeout=15_000)
            findings[f"{name}-{lang}"] = axe_violations(page)
    out = REPO / "artifacts" / "axe.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(findings, ensure_ascii=False, indent=1), encoding="utf-8")
    serious = {
        screen: [v for v in found if v["impact"] in ("serious", "critical")]
        for screen, found in findings.items()
    }
    assert not any(serious.values()), json.dumps(
        {k: v for k, v in serious.items() if v}, ensure_ascii=False, indent=1
    )
