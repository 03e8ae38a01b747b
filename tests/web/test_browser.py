"""The dashboard in a real browser: Playwright driving Debian's Chromium against the real
server. Skipped, saying why, when Playwright or /usr/bin/chromium is missing (``.ci/run``
installs both). ``MLWARD_SCREENSHOTS=DIR`` saves the README's screenshots there."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.web.conftest import HOSTILE, Site, tamper
from tests.web.test_api import later_report

from mlward.cli.main import main

pytestmark = pytest.mark.server
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does)",
                allow_module_level=True)

LAPTOP = {"width": 1366, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Watch:
    """A page that records every dialog (alert) and console error."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)


@pytest.fixture
def page(browser: Any) -> Iterator[Watch]:
    context = browser.new_context(viewport=LAPTOP)
    yield Watch(context.new_page())
    context.close()


def shot(page: Any, name: str) -> None:
    folder = os.environ.get("MLWARD_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_overview_shows_the_project(page: Watch, site: Site) -> None:
    page.page.goto(site.url + "/")
    card = page.page.locator(f'article.project[data-project="{site.root.name}"]')
    assert "fail" in card.inner_text()
    assert "MW101" in page.page.locator("table.findings").inner_text()
    assert "Signed head: size" in page.page.locator("section.card", has_text="Ledger").inner_text()
    shot(page.page, "dashboard-overview")


def test_inventory_filters(page: Watch, site: Site) -> None:
    page.page.goto(site.url + "/inventory")
    page.page.select_option("select[name=kind]", "dataset")
    page.page.click("form.filters button")
    page.page.wait_for_url("**/inventory?*kind=dataset*")
    kinds = page.page.locator("table.assets tbody tr td:first-child").all_inner_texts()
    assert kinds and set(kinds) == {"dataset"}
    page.page.fill("input[name=q]", "no-such-thing")
    page.page.click("form.filters button")
    assert "nothing matches" in page.page.locator("table.assets").inner_text()


def test_findings_filter_by_severity_and_path(page: Watch, site: Site) -> None:
    page.page.goto(site.url + "/findings")
    assert page.page.locator("tr.finding").count() == 2
    page.page.select_option("select[name=severity]", "critical")
    page.page.fill("input[name=path]", "downloaded/")
    page.page.click("form.filters button")
    page.page.wait_for_url("**/findings?*path=downloaded*")
    rows = page.page.locator("tr.finding")
    assert rows.count() == 1
    assert "downloaded/sentiment.pkl" in rows.inner_text()
    assert "remediation" in rows.inner_text()
    shot(page.page, "dashboard-findings")


def test_model_page_draws_the_lineage(page: Watch, site: Site) -> None:
    page.page.goto(site.url + "/inventory?kind=model&q=classifier")
    page.page.locator("table.assets a", has_text="classifier.pt").first.click()
    # The BOM's observation carries the lineage (the scan's has none): open the one that has.
    if page.page.locator("svg.lineage").count() == 0:
        page.page.go_back()
        page.page.locator("table.assets a", has_text="classifier.pt").last.click()
    nodes = page.page.locator("svg.lineage g.node")
    kinds = {n.get_attribute("data-kind"): n.get_attribute("data-location")
             for n in nodes.all()}
    assert kinds == {"dataset": "data/train.csv", "run": "r-1",
                     "model": "models/classifier.pt"}
    assert page.page.locator("svg.lineage line.edge").count() == 2
    shot(page.page, "dashboard-model")


def test_ledger_proof_verifies(page: Watch, site: Site) -> None:
    page.page.goto(site.url + "/ledger")
    assert page.page.locator("#verification .ok").inner_text() == "ok"
    page.page.locator("table.ledger a", has_text="proof").first.click()
    assert page.page.locator("#proof-result").inner_text().startswith("VERIFIED")
    shot(page.page, "dashboard-ledger-proof")


def test_ledger_consistency_between_checkpoints(page: Watch, site: Site) -> None:
    page.page.goto(site.url + "/ledger")
    page.page.select_option("select[name=old]", "0")
    page.page.select_option("select[name=new]", "1")
    page.page.click("form.filters button")
    assert page.page.locator("#consistency").inner_text().startswith("consistent")


def test_tampered_ledger_shows_failed(page: Watch, own_site: Site) -> None:
    tamper(own_site.root, 0)
    page.page.goto(own_site.url + "/ledger")
    assert page.page.locator("#verification .bad").inner_text() == "FAILED"
    page.page.goto(own_site.url + "/ledger/0")
    assert page.page.locator("#proof-result").inner_text().startswith("FAILED")


def test_live_update_after_push(page: Watch, own_site: Site, tmp_path: Path) -> None:
    page.page.goto(own_site.url + "/")
    page.page.wait_for_selector("#live.on")
    page.page.evaluate("window.__sameDocument = true")
    assert page.page.locator('article.project[data-project="from-ci"]').count() == 0
    later = later_report(own_site.report, tmp_path)
    assert main(["push", own_site.url, str(later), "--project", "from-ci"]) == 0
    page.page.wait_for_selector('article.project[data-project="from-ci"]', timeout=15_000)
    assert page.page.evaluate("window.__sameDocument") is True  # updated, not reloaded


def test_query_box_returns_rows(page: Watch, site: Site) -> None:
    page.page.goto(site.url + "/query")
    page.page.fill("#q", 'models.filter(m, m.pickle && m.findings > 0).map(m, {"path": m.path})')
    page.page.click("form.query button")
    cells = page.page.locator("table.query-result tbody td").all_inner_texts()
    assert sorted(cells) == sorted(["downloaded/sentiment.pkl", HOSTILE])
    shot(page.page, "dashboard-query")
    page.page.fill("#q", "models.filter(")
    page.page.click("form.query button")
    assert "does not compile" in page.page.locator("#query-error").inner_text()


def test_hostile_file_name_is_inert(page: Watch, site: Site) -> None:
    response = page.page.goto(site.url + "/findings")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert HOSTILE in page.page.locator("table.findings").inner_text()  # shown as text
    assert page.page.locator("main img").count() == 0
    assert page.page.locator("main script").count() == 0
    page.page.goto(site.url + "/query?q=" + "models.map(m, m.path)")
    page.page.wait_for_timeout(300)
    assert page.dialogs == []


def test_phone_width(browser: Any, site: Site) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True)
    try:
        p = context.new_page()
        for path in ("/", "/findings", "/ledger", "/inventory"):
            p.goto(site.url + path)
            # The page itself never scrolls sideways (wide tables scroll in their box).
            assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), \
                path
            assert p.locator("header nav a", has_text="Findings").is_visible()
        p.goto(site.url + "/")
        shot(p, "dashboard-phone")
    finally:
        context.close()
